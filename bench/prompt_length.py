"""Token lengths of the item-profile prompts of a dataset, as the generator sees them.

    python bench/prompt_length.py --model resources/models/SmolLM2-135M-Instruct
    python bench/prompt_length.py --model ... --template old/item_profile.txt

Every ml-100k item's prompt (the template filled with its text and its training-only extrinsic
line, wrapped in the chat template) is tokenized. The generator computes the prefix that all
prompts share once (the instructions and the in-context examples); each prompt then costs its
own tokens: they, not the shared prefix, drive a CPU run's prompt work. Needs the dataset's
item text, random split, filtered users and canonical reviews (``snakemake --cores 1
results/data/ml-100k/split/random.parquet results/data/ml-100k/canonical/reviews.parquet``).
A template without ``{extrinsic}`` (the zero-shot one before P4R's prompt) ignores that field.
``--time N`` also answers the first N prompts in one float32 batch of 64 new tokens on the CPU
and reports the seconds and the answers' tokens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from transformers import AutoTokenizer

from llmrec.text.extrinsic import item_extrinsic
from llmrec.text.generate import shared_prefix

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a Hugging Face folder or a .gguf file")
    parser.add_argument("--template", type=Path, help="default: the packaged item_profile.txt")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--reviews-per-item", type=int, default=2)
    parser.add_argument("--review-words", type=int, default=25)
    parser.add_argument("--time", type=int, default=0, help="prompts to answer, timed")
    args = parser.parse_args()
    model = Path(args.model)
    if model.suffix == ".gguf":
        tokenizer = AutoTokenizer.from_pretrained(model.parent, gguf_file=model.name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(model)
    template = (
        args.template.read_text(encoding="utf-8")
        if args.template
        else (REPO / "workflow/llmrec/text/prompts/item_profile.txt").read_text(encoding="utf-8")
    )
    data = REPO / "results" / "data" / args.dataset
    text = pq.read_table(data / "item_text.parquet", columns=["text"]).column("text").to_pylist()
    extrinsic = item_extrinsic(
        data / "split" / "random.parquet",
        data / "canonical" / "reviews.parquet",
        data / "item_text.parquet",
        data / "filtered" / "users.parquet",
        per_item=args.reviews_per_item,
        words=args.review_words,
    )
    encoded = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": template.format(item_text=t, extrinsic=e)}],
            add_generation_prompt=True,
            return_dict=False,
        )
        for t, e in zip(text, extrinsic)
    ]
    prefix = len(shared_prefix(encoded))
    total = np.array([len(e) for e in encoded])
    own = total - prefix
    row = {
        "prompts": len(encoded),
        "shared_prefix_tokens": prefix,
        "mean_tokens": round(float(total.mean()), 1),
        "own_tokens_mean": round(float(own.mean()), 1),
        "own_tokens_max": int(own.max()),
    }
    if args.time:
        from llmrec.text.generate import Generator

        prompts = [
            template.format(item_text=t, extrinsic=e)
            for t, e in zip(text[: args.time], extrinsic[: args.time])
        ]
        generator = Generator(str(model), device="cpu", batch_size=args.time, progress=False)
        start = time.perf_counter()
        answers = generator.generate_tokens(prompts)
        row["seconds"] = round(time.perf_counter() - start, 1)
        row["new_tokens"] = sum(map(len, answers))
    print(json.dumps(row))


if __name__ == "__main__":
    main()

"""LoRA training throughput of a causal LM on a CPU (not a test).

    python bench/lora_throughput.py                     # SmolLM2-135M-Instruct, 1 thread
    python bench/lora_throughput.py --threads 2 --steps 6 --batch-size 8 --tokens 128

A few steps of :func:`llmrec.llm.train.fit_lm` (LoRA on the query and value projections by
default) on made-up instruction pairs of ``--tokens`` tokens, the prompt masked out of the loss
as in the study's fine-tuning, then the same batches forward only. Reports prompts/s and
tokens/s of both and the peak RSS.

Measured on 2 shared AMD EPYC cores beside two other jobs, 1 thread, SmolLM2-135M-Instruct
float32, r=8 on q/v, batch 8 x 128 tokens, 3 steps: training 0.59 prompts/s (75.7 tokens/s),
forward only 1.74 prompts/s (223 tokens/s), peak RSS 3.6 GiB. Earlier by hand, 2 threads on
the same cores: about 140 tokens/s training, 400 forward only.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from llmrec.llm.lm import add_lora, load_causal_lm  # noqa: E402
from llmrec.llm.train import Example, fit_lm, instruction_collate  # noqa: E402

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "resources/models/SmolLM2-135M-Instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="HF folder or hub id")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4, help="training steps timed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per prompt + answer")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--targets", default="q_proj,v_proj", help="LoRA target modules")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm, tokenizer = load_causal_lm(args.model)
    torch.manual_seed(0)
    model = add_lora(lm, args.rank, 2 * args.rank, 0.05, args.targets.split(","))
    words = tokenizer.encode(" liked Toy Story (1995); disliked Heat", add_special_tokens=False)
    row = (words * (args.tokens // len(words) + 1))[: args.tokens]
    answer = 16  # the last tokens are the answer
    examples = [Example(row[:-answer], row[-answer:]) for _ in range(args.batch_size * args.steps)]

    def collate(batch):
        return instruction_collate(batch, pad_id=tokenizer.pad_token_id, max_len=args.tokens)

    history = fit_lm(
        model,
        lambda epoch: examples,
        collate,
        epochs=1,
        batch_size=args.batch_size,
        lr=1e-4,
        progress=False,
    )
    batch = collate(examples[: args.batch_size])
    with torch.no_grad():
        model(**batch)  # warm-up
        started = time.perf_counter()
        for _ in range(args.steps):
            model(**batch)
        forward = time.perf_counter() - started
    tokens = int(batch["attention_mask"].sum())
    print(
        json.dumps(
            {
                "model": Path(args.model).name,
                "threads": args.threads,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "tokens_per_prompt": args.tokens,
                "lora": {"rank": args.rank, "targets": args.targets},
                "train_prompts_per_s": round(history[0]["examples_per_s"], 2),
                "train_tokens_per_s": round(history[0]["tokens_per_s"], 1),
                "forward_prompts_per_s": round(args.steps * args.batch_size / forward, 2),
                "forward_tokens_per_s": round(args.steps * tokens / forward, 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""P5 training throughput and constrained-beam evaluation time on ml-100k (not a test).

    python bench/p5.py                         # 2 threads, CPU, config.yaml's arithmetic model
    python bench/p5.py --device cuda

The default config's model and data: sequential indexing of ml-100k
(results/data/ml-100k/sequences.parquet from ``snakemake data``), the tokenizer trained on the
prompt corpus, a T5 of ``arithmetic.model``. It times ``--steps`` training steps of
:func:`llmrec.p5.train.train_seq2seq`'s kind (batch ``arithmetic.train.batch_size``, windows of
at most 20 items) after one warm-up step and reports samples per second; then
:func:`llmrec.p5.decoding.recommend` for every user's test prompt (k = beams = 10) and counts
the encoder's forward calls, which must equal the number of batches (the encoder runs once per
batch, not once per beam step).

Measured with untrained weights (the decoding work does not depend on them), ml-100k, the
default model (2 layers, d_model 128), 20 training steps after one warm-up:
- 2 AMD EPYC cores, 2 threads: 192 training samples/s (0.33 s a step); 943 users decoded in
  4.8 s, the encoder run 15 times for 15 batches;
- one H200 (``--device cuda --threads 8 --steps 30``, torch 2.11): 2,504 samples/s; 2.3 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from llmrec.p5.decoding import Trie, recommend  # noqa: E402
from llmrec.p5.indexing import sequential_indexing  # noqa: E402
from llmrec.p5.model import P5, build_t5, collate  # noqa: E402
from llmrec.p5.prompts import SEEN, evaluation_examples, training_examples  # noqa: E402
from llmrec.p5.tokenizer import train_tokenizer  # noqa: E402
from llmrec.studies.arithmetic import load_sequences  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sequences", type=Path, default=REPO / "results/data/ml-100k/sequences.parquet"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["arithmetic"]
    sequences = load_sequences(str(args.sequences))
    n_items = int(max(s.max() for s in sequences)) + 1
    index = sequential_indexing(sequences, n_items)
    pairs = training_examples(
        sequences,
        index,
        max_history=cfg["prompts"]["max_history"],
        windows_per_user=cfg["prompts"]["windows_per_user"],
        rng=np.random.default_rng(0),
    )
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(
            [t for p in pairs for t in p], cfg["tokenizer"]["vocab_size"], Path(tmp) / "tok"
        )
    torch.manual_seed(0)
    options = {k: v for k, v in cfg["model"].items() if k != "whole_word"}
    model = P5(build_t5(len(tokenizer), **options)).to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train = cfg["train"]
    batch = train["batch_size"]
    times = []
    for step in range(args.steps + 1):
        chunk = pairs[step * batch : (step + 1) * batch]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        tensors = {
            k: v.to(args.device)
            for k, v in collate(
                chunk, tokenizer, train["max_source_len"], train["max_target_len"], False
            ).items()
        }
        loss = model(**tensors)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    users, sources, _ = evaluation_examples(
        sequences, index, stage="test", template=SEEN[0], max_history=cfg["prompts"]["max_history"]
    )
    calls = []
    hook = model.t5.get_encoder().register_forward_hook(lambda *a: calls.append(1))
    start = time.perf_counter()
    top = recommend(
        model,
        tokenizer,
        sources,
        Trie.from_items(index, tokenizer),
        k=args.k,
        batch_size=cfg["evaluation"]["batch_size"],
        device=args.device,
    )
    seconds = time.perf_counter() - start
    hook.remove()
    batches = -(-len(sources) // cfg["evaluation"]["batch_size"])
    print(
        json.dumps(
            {
                "device": args.device,
                "threads": args.threads,
                "batch_size": batch,
                "train_samples_per_second": batch * len(times) / sum(times),
                "train_step_seconds": float(np.mean(times)),
                "eval_users": len(users),
                "eval_seconds": seconds,
                "k": args.k,
                "beams": args.k,
                "encoder_calls": len(calls),
                "batches": batches,
                "valid_ids": bool(((top >= 0) & (top < n_items)).all()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

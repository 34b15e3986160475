"""Seconds and memory of one SASRec training epoch on ml-100k (not a test).

    python bench/sasrec.py                        # 2 threads, CPU
    python bench/sasrec.py --device cuda --epochs 10

One epoch is ``llmrec.training.sequential.train_epoch``, the function ``fit_sasrec`` runs:
every user's training part (leave-one-out, last ``--max-len`` transitions), cross-entropy over
all items at every target position, AdamW. SASRec with max length 50, hidden 64, 2 layers,
1 head, dropout 0.2, batch 2048 users (so all of ml-100k's 943 users make one step). Reads
results/data/ml-100k/sequences.parquet (``snakemake data``) or, when it is absent, says so and
times synthetic sequences of ml-100k's size. Prints JSON: seconds per epoch (mean of
``--epochs`` after ``--warmup``, and each of them), the process's peak RSS and, on CUDA,
``torch.cuda.max_memory_allocated``.

Measured on the real ml-100k sequences (943 users, 1,349 items, 38,719 target positions):
- 2 CPU threads (AMD EPYC, 2 cores shared with other work): 1.52 s and 1.46 s per epoch in two
  runs (mean of 5 after one warm-up; single epochs 1.04-2.13 s), peak RSS 2.0-2.1 GiB. Most of
  a step is the [38,719 x 1,349] logits: their matmuls and the log-softmax backward.
- one H200 (``--device cuda --warmup 2 --epochs 10``, torch 2.11): 0.0089 s per epoch
  (0.0086-0.0094 s), 1,190 MiB of CUDA memory at peak, peak RSS 1.4 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from llmrec.device import resolve_device
from llmrec.models.sasrec import SASRec
from llmrec.training.seed import init_seed
from llmrec.training.sequential import train_epoch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "results" / "data" / "ml-100k"
N_USERS, N_ITEMS, N_INTERACTIONS = 943, 1349, 99_287


def load_sequences(seed: int) -> tuple[list[np.ndarray], int, str]:
    """ml-100k's per-user item sequences and item count, or synthetic ones of its size."""
    path = DATA / "sequences.parquet"
    if path.exists():
        items = pq.read_table(path, columns=["items"]).column("items").to_pylist()
        sequences = [np.asarray(seq, dtype=np.int64) for seq in items]
        stats = DATA / "stats.json"
        n_items = (
            json.loads(stats.read_text())["items"]
            if stats.exists()
            else 1 + max(int(seq.max()) for seq in sequences)
        )
        return sequences, n_items, str(path.relative_to(REPO))
    print(
        f"{path} is absent (run `snakemake data`): timing synthetic sequences of "
        f"ml-100k's size instead",
        file=sys.stderr,
    )
    rng = np.random.default_rng(seed)
    lengths = rng.multinomial(N_INTERACTIONS - 20 * N_USERS, np.full(N_USERS, 1 / N_USERS)) + 20
    return [rng.integers(N_ITEMS, size=n) for n in lengths], N_ITEMS, "synthetic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    sequences, n_items, source = load_sequences(args.seed)
    init_seed(args.seed)
    model = SASRec(n_items, max_len=args.max_len, hidden=args.hidden, num_layers=args.layers).to(
        device
    )
    # The optimizer fit_sasrec builds, at its default learning rate.
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.0, fused=True
    )
    rng = np.random.default_rng(args.seed)
    seconds = []
    for epoch in range(args.warmup + args.epochs):
        start = time.perf_counter()
        loss = train_epoch(model, sequences, optimizer, args.batch_size, rng, device)
        if epoch >= args.warmup:  # train_epoch ends with .item(), so CUDA work is finished
            seconds.append(time.perf_counter() - start)

    targets = sum(min(max(len(seq) - 3, 0), args.max_len) for seq in sequences)
    result = {
        "data": source,
        "users": len(sequences),
        "items": n_items,
        "target_positions": targets,
        "device": str(device),
        "threads": args.threads,
        "max_len": args.max_len,
        "hidden": args.hidden,
        "layers": args.layers,
        "batch_size": args.batch_size,
        "seconds_per_epoch": statistics.mean(seconds),
        "epoch_seconds": seconds,
        "last_loss": loss,
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

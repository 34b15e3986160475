"""Speed and memory of full-ranking evaluation on all ml-1m users (not a test).

    python bench/evaluation.py                     # the real random split if it was built
    python bench/evaluation.py --synthetic --batch-size 256 --threads 1

Scores are a dot product of random 64-d user and item embeddings. Items the user had in train or
valid are excluded and test items are the truth, as at test time. Reads the split from
results/data/ml-1m/split/random.parquet when it exists (``snakemake data``), otherwise builds a
random matrix of ml-1m's size (6,040 users x 3,416 items, about 1M interactions, 80/10/10).
Prints the seconds of each stage and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from llmrec.data.artifacts import Interactions, load_split
from llmrec.evaluation import coverage, gini, ranking_metrics, summarize, topk

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "results" / "data" / "ml-1m"
N_USERS, N_ITEMS, N_INTERACTIONS = 6040, 3416, 1_000_209


def synthetic_split(seed: int = 0) -> Interactions:
    """Random interactions of ml-1m's size, each put in train/valid/test with 0.8/0.1/0.1."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS, N_INTERACTIONS)
    items = rng.integers(0, N_ITEMS, N_INTERACTIONS)
    part = rng.choice(3, N_INTERACTIONS, p=[0.8, 0.1, 0.1])

    def csr(mask: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix(
            (np.ones(mask.sum(), np.float32), (users[mask], items[mask])), shape=(N_USERS, N_ITEMS)
        )
        m.sum_duplicates()
        return m

    return Interactions(csr(part == 0), csr(part == 1), csr(part == 2))


def load(synthetic: bool) -> tuple[Interactions, str]:
    split = DATA / "split" / "random.parquet"
    if synthetic or not split.exists():
        return synthetic_split(), "synthetic"
    n_users = pq.read_metadata(DATA / "filtered" / "users.parquet").num_rows
    n_items = pq.read_metadata(DATA / "filtered" / "items.parquet").num_rows
    return load_split(split, n_users, n_items), str(split.relative_to(REPO))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="ignore the real split")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        # On a loaded machine, small ops with several OpenMP threads can be slower than one.
        torch.set_num_threads(args.threads)

    data, source = load(args.synthetic)
    n_users, n_items = data.shape
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(n_users, 64, generator=gen)
    item_emb = torch.randn(n_items, 64, generator=gen)
    exclude = (data.train + data.valid).tocsr()
    truth = data.test
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    print(
        f"{source}: {n_users:,} users x {n_items:,} items, {truth.nnz:,} test and "
        f"{exclude.nnz:,} excluded interactions, {len(users):,} users with a test item; "
        f"torch threads {torch.get_num_threads()}"
    )
    rss_before = peak_rss_mb()

    t0 = time.perf_counter()
    top = topk(
        lambda u: user_emb[u] @ item_emb.T, users, exclude, max(args.ks), batch_size=args.batch_size
    )
    t1 = time.perf_counter()
    per_user = ranking_metrics(top, truth, users, args.ks)
    t2 = time.perf_counter()
    summary = summarize(per_user)
    print(f"topk (k={max(args.ks)}, batch {args.batch_size}): {t1 - t0:.3f} s")
    print(f"ranking_metrics (ks={args.ks}): {t2 - t1:.3f} s")
    print(
        f"evaluation total: {t2 - t0:.3f} s; coverage {coverage(top, n_items):.3f}, "
        f"gini {gini(top, n_items):.3f}"
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB (after loading data: {rss_before:.0f} MB)")
    print("means: " + ", ".join(f"{k}={v:.4f}" for k, v in summary.items() if "@10" in k))


if __name__ == "__main__":
    main()

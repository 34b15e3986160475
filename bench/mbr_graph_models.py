"""Speed and peak memory of the multi-behaviour graph baselines on an ml-1m-sized graph.

    python bench/mbr_graph_models.py                  # both models, 1 thread
    python bench/mbr_graph_models.py --epochs 1 --rank-iterations 5
    python bench/mbr_graph_models.py --data results/data/ml-1m/mbr   # the real ml-1m

The graph is random but shaped like ml-1m as three behaviours: 6,040 users, 3,416 items, about
1M deduplicated events (users' activity log-normal, items' popularity Zipf-like), split by
ml-1m's rating shares into dislike (<= 2, 16%), neutral (3, 26%) and like (>= 4, 58%), in that
funnel order, like the target. Validation: one like per user held out of the target graph.

1. ``CascadingGCN`` (64-d, 2 layers per behaviour, residual and normalisation on) trained by
   ``train_bpr`` at batch 2048, lr 1e-3: seconds per training epoch (validation excluded) and
   one validation's seconds (all users, full ranking).
2. ``CascadingRank`` (alpha 0, beta 0.9): seconds per iteration for all users (every user
   through ``--rank-iterations`` steps of every behaviour, tolerance 0, divided by the steps),
   then the default run (tolerance 1e-4, at most 100 steps) for all users.

Each part runs in its own process, so the peak resident memory (``ru_maxrss``) it reports is its
own (it includes Python, torch and the graphs).

Not a test. Measured once (CPU, 1 thread, on a 2-core machine that another long benchmark was
using, so the times are upper bounds; nnz per behaviour 160,012 / 260,518 / 573,639 after
holding out 6,030 likes):

    cascading_gcn   epoch 39.1 s, 33.1 s (train_bpr, batch 2048, 281 steps); one validation
                    0.36 s; peak RSS 684 MiB
    cascading_rank  7.7 s per iteration (one step of one behaviour) for all 6,040 users
                    (chunk 256); default run (tolerance 1e-4, at most 100 steps) 45.7 s for all
                    users; peak RSS 778 MiB

With ``--data results/data/ml-1m/mbr`` (the real ml-1m as dislike / neutral / like, training
graphs of 154,064 / 251,395 / 559,825 edges; 1 thread, beside two Snakemake runs on the 2 cores):

    cascading_gcn   epoch 49.7 s; one validation 0.74 s; peak RSS 681 MiB
    cascading_rank  4.46 s per iteration for all 6,040 users; default run 48.2 s; peak RSS
                    801 MiB
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch

from llmrec.models.cascading_gcn import CascadingGCN
from llmrec.models.cascading_rank import CascadingRank
from llmrec.models.lightgcn import normalized_bipartite
from llmrec.training.loop import train_bpr
from llmrec.training.seed import init_seed

SHARES = (0.16, 0.26, 0.58)
"""ml-1m's shares of ratings <= 2, == 3 and >= 4."""


def ml1m_like(
    n_users: int = 6040, n_items: int = 3416, n_events: int = 1_000_209, seed: int = 0
) -> tuple[list[sp.csr_matrix], sp.csr_matrix]:
    """Per-behaviour matrices ``[dislike, neutral, like_train]`` and the held-out likes."""
    rng = np.random.default_rng(seed)
    user_weight = rng.lognormal(0.0, 1.0, n_users)
    item_weight = 1.0 / (np.arange(n_items) + 10.0) ** 0.9
    # Twice the draws, deduplicated, then n_events of them: one rating per (user, movie).
    users = rng.choice(n_users, 2 * n_events, p=user_weight / user_weight.sum())
    items = rng.choice(n_items, 2 * n_events, p=item_weight / item_weight.sum())
    pairs = np.unique(users.astype(np.int64) * n_items + items)
    pairs = np.sort(rng.choice(pairs, min(n_events, len(pairs)), replace=False))
    behaviour = rng.choice(3, len(pairs), p=SHARES)
    mats = [
        sp.csr_matrix(
            (
                np.ones(int((behaviour == b).sum()), np.float32),
                (pairs[behaviour == b] // n_items, pairs[behaviour == b] % n_items),
            ),
            shape=(n_users, n_items),
        )
        for b in range(3)
    ]
    like = mats[-1].tolil()
    valid = sp.lil_matrix(like.shape, dtype=np.float32)
    for u in range(n_users):
        if len(like.rows[u]) > 1:
            item = like.rows[u][rng.integers(len(like.rows[u]))]
            valid[u, item] = 1.0
            like[u, item] = 0.0
    target = sp.csr_matrix(like)
    target.eliminate_zeros()
    return [*mats[:-1], target], sp.csr_matrix(valid)


def real_data(folder: str) -> tuple[list[sp.csr_matrix], sp.csr_matrix]:
    """The training graphs of a built dataset (``results/data/<name>/mbr``) in funnel order, and
    its validation items, as :func:`ml1m_like` gives them."""
    from llmrec.data.artifacts import load_behaviour_graphs, load_behaviour_sequences

    graphs = load_behaviour_graphs(f"{folder}/graphs_valid.npz")
    seqs = load_behaviour_sequences(f"{folder}/sequences.parquet")
    users = np.flatnonzero(seqs.valid_item >= 0)
    valid = sp.csr_matrix(
        (np.ones(len(users), np.float32), (users, seqs.valid_item[users])),
        shape=(graphs.n_users, graphs.n_items),
    )
    return [graphs.matrices[b] for b in graphs.behaviours], valid


def load(data: str | None) -> tuple[list[sp.csr_matrix], sp.csr_matrix]:
    return real_data(data) if data else ml1m_like()


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_cascading_gcn(threads: int, epochs: int, data: str | None) -> dict:
    torch.set_num_threads(threads)
    mats, valid = load(data)
    adjs = [normalized_bipartite(m) for m in mats]
    init_seed(0)
    model = CascadingGCN(*mats[0].shape, len(mats), embedding_dim=64, num_layers=2)
    _, history = train_bpr(
        model,
        adjs,
        mats[-1],
        valid,
        epochs=epochs,
        eval_every=1,
        metric="hit@10",
        progress=False,
    )
    return {
        "model": "cascading_gcn",
        "nnz_per_behaviour": [m.nnz for m in mats],
        "epoch_seconds": [round(row["train_seconds"], 2) for row in history],
        "validation_seconds": round(history[-1]["eval_seconds"], 2),
        "hit@10_after": history[-1]["hit@10"],
        "peak_rss_mib": round(peak_mib()),
    }


def bench_cascading_rank(threads: int, iterations: int, data: str | None) -> dict:
    torch.set_num_threads(threads)
    mats, _ = load(data)
    users = torch.arange(mats[0].shape[0])
    fixed = CascadingRank(mats, iterations=iterations, tolerance=0.0)
    start = time.perf_counter()
    fixed.scores(users)
    per_iteration = (time.perf_counter() - start) / (iterations * len(mats))
    default = CascadingRank(mats)
    start = time.perf_counter()
    scores = default.scores(users)
    default_seconds = time.perf_counter() - start
    assert torch.isfinite(scores).all()
    return {
        "model": "cascading_rank",
        "seconds_per_iteration_all_users": round(per_iteration, 3),
        "default_run_seconds_all_users": round(default_seconds, 2),
        "peak_rss_mib": round(peak_mib()),
    }


def in_own_process(fn, *args) -> dict:
    """``fn(*args)`` in a fresh process, so that its ``ru_maxrss`` is its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="cascading GNN epochs to time")
    parser.add_argument("--rank-iterations", type=int, default=3)
    parser.add_argument(
        "--data", help="a built dataset's mbr folder (results/data/ml-1m/mbr); default: random"
    )
    args = parser.parse_args()
    results = [
        in_own_process(bench_cascading_rank, args.threads, args.rank_iterations, args.data),
        in_own_process(bench_cascading_gcn, args.threads, args.epochs, args.data),
    ]
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()

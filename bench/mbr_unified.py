"""Speed and peak memory of the unified multi-behaviour model's training on ml-1m's size.

    python bench/mbr_unified.py                                  # synthetic ml-1m, 1 thread
    python bench/mbr_unified.py --epochs 2
    python bench/mbr_unified.py --data results/data/ml-1m/mbr    # the real ml-1m artifacts

Synthetic: the graphs of ``bench/mbr_graph_models.py`` (6,040 users, 3,416 items, about 1M
events as dislike / neutral / like, one like per user held out for validation), each user's
events in a random order as its typed sequence (the whole sequence its training part).
Real: ``sequences.parquet`` and ``graphs_valid.npz`` of a built dataset. Either way the LLM view
is random 576-d vectors (SmolLM2-135M's hidden size) and the model is the full ``unified``
variant at ``mbr.unified``'s settings in ``config.yaml`` (64-d, 2 layers, max_len 30, batch 64,
label hold-out 0.5, align 0.1).

Reported: seconds per training epoch (validation excluded), one validation's seconds (all
users, full ranking), and the process's peak resident memory (``ru_maxrss``: Python, torch and
the data included).

Not a test. Measured on 2 idle cores (CPU, 1 thread unless said), at the settings above:

    real ml-1m (965,284 training events; --data, 2 epochs)
              epoch 23.8 s and 21.8 s (95 steps of 64 users, each propagating the three
              graphs); one validation 1.1 s; peak RSS 1,057 MiB; 2 threads: epoch 20.0 s
    synthetic ml-1m (994,169 events; 1 epoch)
              epoch 26.2 s; one validation 1.1 s; peak RSS 952 MiB

Earlier, at batch 256 and max_len 50 without the label hold-out, beside two other jobs:
synthetic 32.6 s an epoch (24 steps), validation 2.2 s, 1,600 MiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import yaml

from llmrec.models.lightgcn import normalized_bipartite, sparse_adjacency
from llmrec.models.unified import UnifiedMBR
from llmrec.training.seed import init_seed
from llmrec.training.unified import fit_unified

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from mbr_graph_models import ml1m_like  # noqa: E402

TEXT_DIM = 576


def synthetic() -> tuple[list[sp.csr_matrix], list[np.ndarray], list[np.ndarray], np.ndarray]:
    """ml-1m-sized graphs in funnel order, and per user its events (items, behaviours) in a
    random order, and its validation item (-1: none)."""
    mats, valid = ml1m_like()
    rng = np.random.default_rng(1)
    items, kinds = [], []
    for u in range(mats[0].shape[0]):
        its = np.concatenate([m[u].indices for m in mats])
        codes = np.concatenate([np.full(m[u].nnz, b, np.int64) for b, m in enumerate(mats)])
        order = rng.permutation(len(its))
        items.append(its[order].astype(np.int64))
        kinds.append(codes[order])
    valid_item = np.full(mats[0].shape[0], -1, np.int64)
    rows, cols = valid.nonzero()
    valid_item[rows] = cols
    return mats, items, kinds, valid_item


def real(folder: str) -> tuple[list[sp.csr_matrix], list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The same from a built dataset's training graphs and sequences (training part only)."""
    from llmrec.data.artifacts import load_behaviour_graphs, load_behaviour_sequences

    graphs = load_behaviour_graphs(f"{folder}/graphs_valid.npz")
    seqs = load_behaviour_sequences(f"{folder}/sequences.parquet")
    items = [i[:n].astype(np.int64) for i, n in zip(seqs.items, seqs.n_train)]
    kinds = [b[:n].astype(np.int64) for b, n in zip(seqs.behaviours, seqs.n_train)]
    return [graphs.matrices[b] for b in graphs.behaviours], items, kinds, seqs.valid_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--data", help="a built dataset's mbr folder (results/data/ml-1m/mbr); default: random"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mats, items, kinds, valid_item = real(args.data) if args.data else synthetic()
    n_users, n_items = mats[0].shape
    init_seed(0)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["mbr"]["unified"]
    dims = ("embedding_dim", "num_layers", "max_len", "num_heads", "dropout")
    net = UnifiedMBR(n_users, n_items, len(mats), *(cfg[k] for k in dims), text_dim=TEXT_DIM)
    net.set_item_text(torch.randn(n_items, TEXT_DIM))
    target = len(mats) - 1
    train = ("holdout", "align_weight", "temperature", "batch_size", "lr", "weight_decay")
    _, history = fit_unified(
        net,
        [sparse_adjacency(normalized_bipartite(m)) for m in mats],
        items,
        kinds,
        np.array([len(i) for i in items], np.int64),
        valid_item,
        target=target,
        exclude=mats[-1],
        target_graph=mats[-1],
        epochs=args.epochs,
        eval_every=1,
        progress=False,
        **{k: cfg[k] for k in train},
    )
    print(
        json.dumps(
            {
                "model": "unified",
                "data": args.data or "synthetic ml-1m",
                "events": int(sum(len(i) for i in items)),
                "epoch_seconds": [round(r["train_seconds"], 2) for r in history],
                "validation_seconds": round(history[-1]["eval_seconds"], 2),
                "ndcg@10_after": round(history[-1]["ndcg@10"], 4),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()

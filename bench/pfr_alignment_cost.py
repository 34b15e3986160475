"""Seconds per training epoch of LightGCN, and of PFR aligning a sample of each batch's nodes
against aligning all of them (``pfr.alignment.*.max_nodes``), on one thread.

    python bench/pfr_alignment_cost.py --epochs 3 --max-nodes 256 0

Needs the ml-100k random split and graph (``snakemake --cores 1
results/data/ml-100k/graph/random.npz``). The text embeddings are random vectors of the
encoder's size: the cost does not depend on what they hold. The 2,048-pair batches of ml-100k
hold about 700 distinct users and 900 distinct items each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from llmrec.data.artifacts import load_graph, load_split
from llmrec.models.lightgcn import LightGCN, sparse_adjacency
from llmrec.models.pfr import PFR
from llmrec.training.loop import train_bpr
from llmrec.training.seed import init_seed

REPO = Path(__file__).resolve().parents[1]


def seconds_per_epoch(net, adj, split, epochs: int, extra=None) -> float:
    _, history = train_bpr(
        net, adj, split.train, split.valid, epochs=epochs, eval_every=epochs, extra_loss=extra,
        progress=False,
    )  # fmt: skip
    return sum(row["train_seconds"] for row in history) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-nodes", type=int, nargs="+", default=[256, 0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = REPO / "results" / "data" / args.dataset
    graph = load_graph(data / "graph" / "random.npz")
    split = load_split(data / "split" / "random.parquet", graph.n_users, graph.n_items)
    adj = sparse_adjacency(graph.normalized_adjacency(), "cpu")
    rng = np.random.default_rng(0)
    user = torch.from_numpy(rng.standard_normal((graph.n_users, 384), dtype=np.float32))
    item = torch.from_numpy(rng.standard_normal((graph.n_items, 384), dtype=np.float32))

    init_seed(0)
    base = seconds_per_epoch(LightGCN(graph.n_users, graph.n_items), adj, split, args.epochs)
    print(json.dumps({"model": "lightgcn", "seconds_per_epoch": round(base, 2)}), flush=True)
    for max_nodes in args.max_nodes:
        init_seed(0)
        net = PFR(graph.n_users, graph.n_items, user, item, max_nodes=max_nodes or None)

        def extra(m, users, pos, neg, user_final, item_final):
            return 0.001 * m.alignment_loss(users, pos, user_final, item_final)

        seconds = seconds_per_epoch(net, adj, split, args.epochs, extra)
        row = {"model": "pfr", "max_nodes": max_nodes or "all", "seconds_per_epoch": seconds}
        print(json.dumps(row | {"seconds_per_epoch": round(seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()

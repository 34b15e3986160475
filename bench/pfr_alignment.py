"""Validation sweep of the alignment weight of SGE and PFR (not a test; chooses config values).

    python bench/pfr_alignment.py --weights 0.1 0.01 0.001 --seed 0

Needs the default PFR run's inputs (``snakemake --cores 2 results/tables/pfr.csv``): the ml-100k
random split and graph, and the item-text, item-profile and user-profile embeddings. Trains each
model with each weight on the training split and prints its best validation Recall@20 (the
early-stopping metric); the test split is not touched.

Measured (seed 0, 1 thread, max_nodes 256, LightGCN alone 0.3513):
SGE 0.1366 / 0.3517 / 0.3508 and PFR 0.2944 / 0.3434 / 0.3514 for weights 0.1 / 0.01 / 0.001.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from llmrec.data.artifacts import load_graph, load_split
from llmrec.models.lightgcn import sparse_adjacency
from llmrec.models.pfr import PFR
from llmrec.studies.pfr import mean_item_embeddings
from llmrec.training.loop import train_bpr
from llmrec.training.seed import init_seed

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1, 0.01, 0.001])
    parser.add_argument("--models", nargs="+", default=["sge", "pfr"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-nodes", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, text = REPO / "results" / "data" / args.dataset, REPO / "results" / "text" / args.dataset
    graph = load_graph(data / "graph" / "random.npz")
    split = load_split(data / "split" / "random.parquet", graph.n_users, graph.n_items)
    adj = sparse_adjacency(graph.normalized_adjacency(), "cpu")
    for model in args.models:
        if model == "pfr":
            item = np.load(text / "embeddings" / "item_profiles_random.npy")
            user = np.load(text / "embeddings" / "user_profiles_random.npy")
        else:
            item = np.load(text / "embeddings" / "item_text.npy")
            user = mean_item_embeddings(split.train, item)
        for weight in args.weights:
            init_seed(args.seed)
            net = PFR(
                graph.n_users,
                graph.n_items,
                torch.from_numpy(user),
                torch.from_numpy(item),
                max_nodes=args.max_nodes,
            )

            def extra(m, users, pos, neg, user_final, item_final, w=weight):
                return w * m.alignment_loss(users, pos, user_final, item_final)

            start = time.perf_counter()
            _, history = train_bpr(
                net, adj, split.train, split.valid, extra_loss=extra, seed=args.seed, progress=False
            )
            best = max(history, key=lambda row: row["recall@20"])
            print(
                json.dumps(
                    {
                        "model": model,
                        "weight": weight,
                        "valid_recall@20": round(best["recall@20"], 4),
                        "best_epoch": best["epoch"],
                        "epochs": history[-1]["epoch"],
                        "seconds": round(time.perf_counter() - start),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()

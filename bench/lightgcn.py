"""Speed and accuracy of our LightGCN against PyG's, on a prepared dataset (not a test).

    python bench/lightgcn.py                           # ml-100k, random split, 1 thread
    python bench/lightgcn.py --dataset ml-1m --timing-epochs 5 --skip-convergence

Both models run through the same loop (``llmrec.training.loop.train_bpr``: the same batches,
negatives, Adam, validation and early stopping), 64-d, 3 layers, batch 2048, lr 1e-3, L2 1e-4.
PyG's model is called the way its ``examples/lightgcn.py`` does: ``get_embedding`` on the
binary adjacency (its ``LGConv`` applies ``gcn_norm`` on every call) and
``recommendation_loss`` on the unique nodes of the batch. It is fed the adjacency as a torch
sparse CSR tensor (``torch_sparse`` is not installed, so no ``SparseTensor``) and, for
reference, as the ``edge_index`` of the example.

1. Epoch time: ``--timing-epochs`` epochs of each, taken in turns, median training seconds per
   epoch (validation excluded), side by side in one process.
2. Convergence: each trained until recall@20 on validation has not improved for ``--patience``
   validations (every 5 epochs); test Recall@20 / NDCG@20 of the best state, ranking every item
   outside train and validation.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.nn.models import LightGCN as PygLightGCNModel

from llmrec.data.artifacts import Interactions, load_graph, load_split
from llmrec.evaluation.ranking import evaluate, summarize
from llmrec.models.lightgcn import LightGCN, sparse_adjacency
from llmrec.training.loop import train_bpr
from llmrec.training.seed import init_seed

REPO = Path(__file__).resolve().parents[1]


class PygLightGCN(nn.Module):
    """PyG's ``LightGCN`` behind the interface ``train_bpr`` expects, used as its example does."""

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int, num_layers: int, reg_weight: float
    ) -> None:
        super().__init__()
        self.num_users = num_users
        self.reg_weight = reg_weight
        self.pyg = PygLightGCNModel(num_users + num_items, embedding_dim, num_layers)

    def propagate(self, adj: Tensor) -> tuple[Tensor, Tensor]:
        final = self.pyg.get_embedding(adj)
        return final[: self.num_users], final[self.num_users :]

    def scores(self, users: Tensor, user_final: Tensor, item_final: Tensor) -> Tensor:
        return user_final[users] @ item_final.T

    def bpr_loss(
        self, users: Tensor, pos: Tensor, neg: Tensor, user_final: Tensor, item_final: Tensor
    ) -> tuple[Tensor, Tensor]:
        u = user_final[users]
        pos_rank, neg_rank = (u * item_final[pos]).sum(-1), (u * item_final[neg]).sum(-1)
        node_id = torch.cat([users, pos + self.num_users, neg + self.num_users]).unique()
        loss = self.pyg.recommendation_loss(
            pos_rank, neg_rank, node_id=node_id, lambda_reg=self.reg_weight
        )
        return loss, loss.new_zeros(())  # PyG's L2 term is inside its loss already


def build(name: str, n_users: int, n_items: int, args: argparse.Namespace) -> nn.Module:
    init_seed(args.seed)
    if name == "ours":
        return LightGCN(n_users, n_items, args.dim, args.layers)
    return PygLightGCN(n_users, n_items, args.dim, args.layers, args.reg_weight)


def held_out_metrics(model: nn.Module, adj: Tensor, data: Interactions) -> dict[str, float]:
    """Test recall@20 and NDCG@20, ranking every item outside train and validation."""
    with torch.no_grad():
        user_final, item_final = model.propagate(adj)
    per_user = evaluate(
        lambda u: model.scores(u, user_final, item_final),
        data.test,
        data.train + data.valid,
        ks=[20],
    )
    return {k: v for k, v in summarize(per_user).items() if k in ("recall@20", "ndcg@20")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--split", default="random")
    # One thread by default: on a machine shared with other jobs, two threads of small kernels
    # wait on each other's time slices and the epoch times swung 20-fold between runs.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timing-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--skip-convergence", action="store_true")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--reg-weight", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    root = REPO / "results" / "data" / args.dataset
    graph = load_graph(root / "graph" / f"{args.split}.npz")
    n_users, n_items = graph.n_users, graph.n_items
    data = load_split(root / "split" / f"{args.split}.parquet", n_users, n_items)
    normalized = graph.normalized_adjacency()
    binary = normalized.copy()
    binary.data[:] = 1.0
    coo = binary.tocoo()
    adjacency = {
        "ours": sparse_adjacency(normalized),
        "pyg-csr": sparse_adjacency(binary),
        "pyg-edge_index": torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
    }
    print(
        f"{args.dataset}/{args.split}: {n_users} users, {n_items} items, "
        f"{data.train.nnz} training pairs; {args.threads} threads"
    )
    train = dict(
        batch_size=args.batch_size,
        lr=args.lr,
        reg_weight=args.reg_weight,
        seed=args.seed,
        progress=False,
        metric="recall@20",
    )

    # Epochs of the three alternate, so that a load on the machine slows all of them alike (each
    # turn is a one-epoch train_bpr with a new Adam: a step costs the same).
    models = {name: build(name, n_users, n_items, args) for name in adjacency}
    seconds: dict[str, list[float]] = {name: [] for name in adjacency}
    for _ in range(args.timing_epochs):
        for name, adj in adjacency.items():
            _, history = train_bpr(models[name], adj, data.train, data.valid, epochs=1, **train)
            seconds[name].append(history[0]["train_seconds"])
    results: dict = {
        "timing": {
            name: {"median_s": statistics.median(s), "epochs_s": s} for name, s in seconds.items()
        },
        "converged": {},
    }
    base = results["timing"]["ours"]["median_s"]
    print(f"\nseconds per training epoch (median of {args.timing_epochs}):")
    for name, row in results["timing"].items():
        print(f"  {name:16s} {row['median_s']:8.3f} s   {row['median_s'] / base:6.1f}x ours")

    if not args.skip_convergence:
        for name in ("ours", "pyg-csr"):
            model = build(name, n_users, n_items, args)
            start = time.perf_counter()
            _, history = train_bpr(
                model,
                adjacency[name],
                data.train,
                data.valid,
                epochs=args.max_epochs,
                eval_every=5,
                patience=args.patience,
                **train,
            )
            wall = time.perf_counter() - start
            best = max(history, key=lambda row: row["recall@20"])
            test = held_out_metrics(model, adjacency[name], data)
            results["converged"][name] = {
                "epochs": history[-1]["epoch"],
                "best_epoch": best["epoch"],
                "wall_s": wall,
                "valid_recall@20": best["recall@20"],
                **{f"test_{k}": v for k, v in test.items()},
            }
        print("\nconverged (early stopping on valid recall@20):")
        for name, row in results["converged"].items():
            print(
                f"  {name:8s} test recall@20 {row['test_recall@20']:.4f}  ndcg@20 "
                f"{row['test_ndcg@20']:.4f}  (valid {row['valid_recall@20']:.4f}, best epoch "
                f"{row['best_epoch']}, stopped at {row['epochs']}, {row['wall_s']:.0f} s)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

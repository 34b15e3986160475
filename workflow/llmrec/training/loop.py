"""BPR training of a graph recommender with early stopping on a validation metric."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from llmrec.evaluation.ranking import evaluate, summarize
from llmrec.models.lightgcn import sparse_adjacency
from llmrec.progress import Progress
from llmrec.training.early_stopping import check_schedule, fit_with_early_stopping
from llmrec.training.sampler import bpr_batches

ExtraLoss = Callable[[nn.Module, Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
"""``extra_loss(model, users, pos, neg, user_final, item_final) -> scalar`` added to each step."""


def train_bpr(
    model: nn.Module,
    graph_adj: sp.csr_matrix | Tensor | Sequence[sp.csr_matrix | Tensor],
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    *,
    exclude: sp.csr_matrix | None = None,
    epochs: int = 1000,
    batch_size: int = 2048,
    lr: float = 1e-3,
    reg_weight: float = 1e-4,
    eval_every: int = 5,
    patience: int = 10,
    metric: str = "recall@20",
    extra_loss: ExtraLoss | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, Tensor], list[dict]]:
    """Train ``model`` with Adam on BPR and return its best validation state and the history.

    Args:
        model: has ``propagate(adj) -> (user_final, item_final)``, ``bpr_loss(users, pos, neg,
            user_final, item_final) -> (bpr, reg)`` and ``scores(users, user_final, item_final)``
            (see ``llmrec.models.lightgcn.LightGCN``). Seed before building it (``init_seed``).
        graph_adj: the model's adjacency, or a sequence of them (one per behaviour, passed to
            ``propagate`` as a list); a scipy matrix is converted once with
            ``sparse_adjacency``, a tensor is used as given.
        train: user x item training interactions; each epoch visits every pair once
            (``bpr_batches``).
        valid: user x item validation interactions, the truth of ``metric``.
        exclude: user x item interactions masked in validation rankings (default None:
            ``train``). The multi-behaviour study trains on target pairs and masks the training
            target items, so it passes nothing; the option is for a loop whose pairs and mask
            differ.
        epochs: most epochs to run (default 1000).
        batch_size: triples per step (default 2048).
        lr: Adam learning rate (default 1e-3).
        reg_weight: weight of the L2 term returned by ``bpr_loss`` (default 1e-4).
        eval_every: epochs between validations; the last epoch is always validated (default 5).
        patience: validations without a strict improvement of ``metric`` before stopping
            (default 10).
        metric: ``name@k`` among ``llmrec.evaluation.ranking.METRICS`` (default ``recall@20``).
        extra_loss: optional term added to every step's loss, e.g. an alignment loss
            (default None).
        seed: seeds the order of the pairs and the negatives (default 0).
        progress: show a tqdm bar over epochs (default True). Either way the log gets a line
            every 30 s: epochs done (the ETA is to ``epochs``; early stopping may come first)
            and, within an epoch that long, its batches.
        device: where the model, the adjacency and the batches live (default ``cpu``).

    Returns:
        The best state (a copy, also loaded back into ``model``) and one dict per validation:
        ``epoch``, ``loss`` (mean over the last epoch's steps), ``metric`` value,
        ``train_seconds`` (training since the previous validation) and ``eval_seconds``.
    """
    check_schedule(metric, epochs, eval_every, patience)
    model.to(device)
    if sp.issparse(graph_adj) or isinstance(graph_adj, Tensor):
        adj = _on_device(graph_adj, device)
    else:
        adj = [_on_device(a, device) for a in graph_adj]
    # One fused kernel per parameter instead of a dozen element-wise passes: 5% of a step.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    rng = np.random.default_rng(seed)
    n_batches = -(-train.nnz // batch_size)

    def run_epoch(epoch: int) -> float:
        model.train()
        loss_sum, n_pairs = torch.zeros((), device=device), 0
        with Progress(n_batches, f"epoch {epoch}", "batches", bar=False) as batches_done:
            for users, pos, neg in bpr_batches(train, batch_size, rng):
                users, pos, neg = users.to(device), pos.to(device), neg.to(device)
                # Propagation runs once per step over the whole graph: every ego embedding
                # reaches the batch's final embeddings, so nothing can be cached between steps.
                user_final, item_final = model.propagate(adj)
                bpr, reg = model.bpr_loss(users, pos, neg, user_final, item_final)
                loss = bpr + reg_weight * reg
                if extra_loss is not None:
                    loss = loss + extra_loss(model, users, pos, neg, user_final, item_final)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(users)
                n_pairs += len(users)
                batches_done.update()
        return loss_sum.item() / max(n_pairs, 1)

    return fit_with_early_stopping(
        model,
        run_epoch,
        lambda: {
            metric: validate(model, adj, train if exclude is None else exclude, valid, metric)
        },
        epochs=epochs,
        eval_every=eval_every,
        patience=patience,
        metric=metric,
        progress=progress,
    )


def _on_device(adj: sp.csr_matrix | Tensor, device: str | torch.device) -> Tensor:
    """A scipy adjacency converted with ``sparse_adjacency``, or a tensor moved, to ``device``."""
    return sparse_adjacency(adj, device) if sp.issparse(adj) else adj.to(device)


@torch.no_grad()
def validate(
    model: nn.Module,
    adj: Tensor | list[Tensor],
    exclude: sp.csr_matrix,
    truth: sp.csr_matrix,
    metric: str,
) -> float:
    """``metric`` of ``model`` ranking every item not in ``exclude`` against ``truth``."""
    model.eval()
    user_final, item_final = model.propagate(adj)
    k = int(metric.partition("@")[2])
    per_user = evaluate(
        lambda users: model.scores(users.to(user_final.device), user_final, item_final),
        truth,
        exclude,
        ks=[k],
    )
    return summarize(per_user)[metric]

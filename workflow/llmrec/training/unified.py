"""Training and stage-wise user states of the unified multi-behaviour recommender.

The examples and labels are :mod:`llmrec.training.next_target`'s (every position of a user's
training part labelled with its next target item), the epoch loop and early stopping
:func:`~llmrec.training.early_stopping.fit_with_early_stopping`'s; what is added is the graph
propagation at every step, the user ids a batch needs for its graph states, and the alignment
term.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor

from llmrec.evaluation.ranking import evaluate, summarize
from llmrec.models.lightgcn import normalized_bipartite, sparse_adjacency
from llmrec.models.sasrec import PAD
from llmrec.models.unified import UnifiedMBR
from llmrec.progress import Progress
from llmrec.training.early_stopping import check_schedule, fit_with_early_stopping
from llmrec.training.next_target import training_examples, training_users
from llmrec.training.sequential import left_pad


@torch.no_grad()
def stage_states(
    model: UnifiedMBR,
    adjs: Sequence[Tensor] | None,
    items: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    cut: np.ndarray,
    device: str | torch.device,
    batch_size: int = 1024,
) -> tuple[Tensor, Tensor]:
    """Every user's state after its first ``cut[u]`` events ``[n_users, d]`` (zeros for a user
    with none: nothing to predict from) and the scoring item vectors ``[n_items, d]``, the graph
    states propagated over ``adjs`` (one stage's graphs), the model in eval mode."""
    model.eval()
    user_graph, _, item_vectors = model.propagate(adjs)
    cut = np.asarray(cut)
    states = torch.zeros(len(cut), model.embedding_dim, device=item_vectors.device)
    users = np.flatnonzero(cut > 0)
    for lo in range(0, len(users), batch_size):
        rows = users[lo : lo + batch_size]
        seqs = left_pad([items[u][: cut[u]] for u in rows], model.max_len).to(device)
        behs = left_pad([behaviours[u][: cut[u]] for u in rows], model.max_len).to(device)
        index = torch.from_numpy(rows).to(device)
        states[index] = model(index, seqs, behs, user_graph, item_vectors)[:, -1]
    return states, item_vectors


def fit_unified(
    model: UnifiedMBR,
    adjs: Sequence[Tensor] | None,
    items: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    n_train: np.ndarray,
    valid_item: np.ndarray,
    *,
    target: int,
    exclude: sp.csr_matrix,
    target_graph: sp.csr_matrix | None = None,
    holdout: float = 0.0,
    align_weight: float = 0.1,
    temperature: float = 0.2,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    eval_every: int = 5,
    patience: int = 5,
    metric: str = "ndcg@10",
    ks: Sequence[int] = (10, 20),
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[dict[str, Tensor], list[dict]]:
    """Train ``model`` on next-target cross-entropy over all items plus ``align_weight`` times
    its alignment InfoNCE; keep its best validation state.

    Each step propagates the training graphs (``adjs``) once, fuses the batch's graph states
    with its Transformer states at every labelled position and scores every item
    (:func:`~llmrec.training.next_target.fit_next_target`'s objective); the alignment term
    covers the distinct items of the batch's inputs and labels. Validation ranks the validation
    target after the training part (:func:`stage_states` on ``adjs``), ``exclude`` masked.

    Args:
        model: seeded before it was built (``init_seed``); its LLM view loaded if it has one.
        adjs: the training (validation-stage) normalised adjacencies in funnel order, as torch
            sparse CSR tensors on ``device``; ``None`` for a model without the GNN.
        items, behaviours: per user (index = user id), item ids and behaviour indices in time
            order.
        n_train: per user, how many leading events are the training part.
        valid_item: per user, the validation target (``-1``: not validated).
        target: the target behaviour's index.
        exclude: users x items never ranked in validation.
        target_graph: the training target edges (users x items), the last of ``adjs`` before
            normalisation; needed when ``holdout`` > 0 with the GNN.
        holdout: share of the training target edges left out of the target graph each epoch
            (default 0: none). The positions answered by a held-out edge train the fused state,
            the others the Transformer's state alone (the GNN and the Transformer alone are
            trained on every position). Without it the graph state of a training position
            already holds the edge to its answer, which no test case's graph does: the fusion
            learns to trust a shortcut that is gone at test time.
        align_weight: weight of the alignment term; ignored without an LLM view (default 0.1).
        temperature: the InfoNCE temperature (default 0.2).
        epochs: most epochs (default 100).
        batch_size: users per step (default 256).
        lr: learning rate of AdamW, betas (0.9, 0.98) (default 1e-3).
        weight_decay: AdamW's decoupled weight decay (default 0.0).
        eval_every: epochs between validations; the last is always validated (default 5).
        patience: validations without a strict improvement before stopping (default 5).
        metric: the early-stopping criterion, ``name@k`` (default ``ndcg@10``).
        ks: cut-offs of the validation metrics in the history (default (10, 20)).
        seed: seeds the user order (numpy) and torch's global generator (dropout) (default 0).
        device: where the model and batches live (default ``cpu``).
        progress: show a tqdm bar over epochs (default True).

    Returns:
        The best state (a copy, also loaded into ``model``) and one dict per validation:
        ``epoch``, ``loss`` (the epoch's mean cross-entropy plus weighted alignment per step),
        ``align`` (the last epoch's mean alignment term, unweighted; 0 without an LLM view),
        the validation metrics, ``train_seconds`` and ``eval_seconds``.
    """
    cutoffs = sorted({*ks, check_schedule(metric, epochs, eval_every, patience)})
    users = training_users(behaviours, n_train, target)
    seqs, behs, labels = training_examples(items, behaviours, n_train, target)
    if not seqs:
        raise ValueError("no user has a target event after its first event in the training part")
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay, fused=True
    )
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n_batches = -(-len(seqs) // batch_size)
    valid_users = np.flatnonzero(np.asarray(valid_item) >= 0)
    truth = sp.csr_matrix(
        (np.ones(len(valid_users), np.float32), (valid_users, valid_item[valid_users])),
        shape=exclude.shape,
    )
    align_sum: list[float] = []
    held = holdout > 0 and adjs is not None
    if held and target_graph is None:
        raise ValueError("holdout needs the training target graph (target_graph)")
    fused_gnn = model.gnn is not None and model.seq is not None

    def run_epoch(epoch: int) -> float:
        model.train()
        total, align = torch.zeros((), device=device), torch.zeros((), device=device)
        epoch_adjs, kept = adjs, None
        if held:
            epoch_adjs, kept = _held_out_graph(adjs, target_graph, holdout, rng, device)
        batches = _batches(users, seqs, behs, labels, model.max_len, batch_size, rng)
        with Progress(n_batches, f"epoch {epoch}", "batches", bar=False) as done:
            for user, seq, beh, label in batches:
                fuse = None
                real = label != PAD
                if kept is not None:
                    # Answered by an edge still in this epoch's graph: not the fused state's.
                    edge = user[:, None].numpy() * target_graph.shape[1] + label.numpy()
                    fuse = torch.from_numpy(~np.isin(edge, kept)).to(device)
                    if not fused_gnn:  # the GNN alone: only the held-out answers are fair
                        real &= fuse.cpu()
                user, seq, beh, label = (t.to(device) for t in (user, seq, beh, label))
                real = real.to(device)
                user_graph, collaborative, item_vectors = model.propagate(epoch_adjs)
                if not bool(real.any()):
                    done.update()
                    continue
                states = model(user, seq, beh, user_graph, item_vectors, fuse)[real]
                loss = F.cross_entropy(model.scores(states, item_vectors), label[real])
                alignment = model.alignment_loss(
                    torch.cat([label[real], seq[seq != PAD]]), collaborative, temperature
                )
                loss = loss + align_weight * alignment
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
                align += alignment.detach()
                done.update()
        align_sum.append(align.item() / n_batches)
        return total.item() / n_batches

    def validate() -> dict[str, float]:
        states, item_vectors = stage_states(model, adjs, items, behaviours, n_train, device)
        metrics = summarize(
            evaluate(
                lambda u: model.scores(states[u.to(device)], item_vectors), truth, exclude, cutoffs
            )
        )
        return {"align": align_sum[-1], **metrics}

    return fit_with_early_stopping(
        model,
        run_epoch,
        validate,
        epochs=epochs,
        eval_every=eval_every,
        patience=patience,
        metric=metric,
        progress=progress,
    )


def _held_out_graph(
    adjs: Sequence[Tensor],
    target_graph: sp.csr_matrix,
    share: float,
    rng: np.random.Generator,
    device: str | torch.device,
) -> tuple[list[Tensor], np.ndarray]:
    """``adjs`` with the target (last) graph rebuilt without a random ``share`` of its edges,
    and the kept edges as sorted ``user * n_items + item`` keys."""
    coo = target_graph.tocoo()
    keep = rng.random(coo.nnz) >= share
    graph = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=target_graph.shape
    )
    kept = np.sort(coo.row[keep].astype(np.int64) * target_graph.shape[1] + coo.col[keep])
    return [*adjs[:-1], sparse_adjacency(normalized_bipartite(graph), device)], kept


def _batches(
    users: np.ndarray,
    seqs: list[np.ndarray],
    behs: list[np.ndarray],
    labels: list[np.ndarray],
    max_len: int,
    batch_size: int,
    rng: np.random.Generator,
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """One epoch of user ids ``[batch]`` and their left-padded ``(items, behaviours, labels)``
    ``[batch, max_len]``, users shuffled (each user's last ``max_len`` positions)."""
    order = rng.permutation(len(seqs))
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        yield (
            torch.from_numpy(users[rows]),
            *(left_pad([part[r] for r in rows], max_len) for part in (seqs, behs, labels)),
        )

"""Next-target-item training and ranking of a sequence model over behaviour-typed sequences.

A user's sequence holds every event (item and behaviour) in time order; the model reads all of
them and predicts the next event of the *target* behaviour (a buy). ``n_train[u]`` leading
events form the training part (before the validation target's time). Validation ranks for the
validation target given the training part, test for the test target given the whole sequence.
The user's target items in the history are masked from the ranking; items met only in auxiliary
behaviours are not (they are legitimate answers).

With target-only sequences (every behaviour the target) this is plain next-item training, so
SASRec and its behaviour-aware variant run through the same code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from llmrec.evaluation.ranking import ScoresFn, ranking_metrics, summarize, topk
from llmrec.models.sasrec import PAD
from llmrec.training.early_stopping import check_schedule, fit_with_early_stopping
from llmrec.training.sequential import cross_entropy_epoch, left_pad


def next_target_labels(items: np.ndarray, behaviours: np.ndarray, target: int) -> np.ndarray:
    """Per position t, the item of the first target event after t; ``PAD`` where there is none.

    Views v1 v2, buy b1, view v3, buy b2 give b1 b1 b2 b2 PAD: a buy's own position predicts
    the next buy, and the last position (no later buy) is not labelled.
    """
    n = len(items)
    at = np.where(np.asarray(behaviours) == target, np.arange(n), n)
    # Suffix minimum of the target positions, shifted by one: the first target after t.
    after = np.append(np.minimum.accumulate(at[::-1])[::-1][1:], n)
    return np.append(items, PAD).astype(np.int64)[after]


def target_only(
    items: Sequence[np.ndarray], behaviours: Sequence[np.ndarray], n_train: np.ndarray, target: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Each user's target events alone, and how many of them are in the training part: the
    inputs of plain SASRec (``BehaviourSASRec(n_items, 0)``) through this module."""
    kept = [np.asarray(b) == target for b in behaviours]
    return (
        [np.asarray(i)[k] for i, k in zip(items, kept)],
        [np.asarray(b)[k] for b, k in zip(behaviours, kept)],
        np.array([k[:n].sum() for k, n in zip(kept, n_train)], dtype=np.int64),
    )


def training_examples(
    items: Sequence[np.ndarray], behaviours: Sequence[np.ndarray], n_train: np.ndarray, target: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per trainable user, the training part's ``(items, behaviours, labels)`` up to (and not
    including) its last target event.

    Events from the last target on have no later target in the training part: they would be
    unlabelled, and under the causal mask no labelled position reads them. Users without a
    target event after their first event have no example.
    """
    seqs, behs, labels = [], [], []
    for u in training_users(behaviours, n_train, target):
        part, kinds = items[u][: n_train[u]], behaviours[u][: n_train[u]]
        end = np.flatnonzero(kinds == target)[-1]
        seqs.append(part[:end])
        behs.append(kinds[:end])
        labels.append(next_target_labels(part, kinds, target)[:end])
    return seqs, behs, labels


def training_users(
    behaviours: Sequence[np.ndarray], n_train: np.ndarray, target: int
) -> np.ndarray:
    """The users with a training example (:func:`training_examples`, same order): a target
    event after the first event of the training part."""
    return np.array(
        [u for u, n in enumerate(np.asarray(n_train)) if (behaviours[u][1:n] == target).any()],
        dtype=np.int64,
    )


def target_history(
    items: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    cut: np.ndarray,
    target: int,
    n_items: int,
) -> sp.csr_matrix:
    """``n_users x n_items`` with a 1 for each target item among each user's first ``cut[u]``
    events: what the ranking masks (auxiliary items stay candidates)."""
    rows, cols = [], []
    for u, n in enumerate(np.asarray(cut)):
        bought = items[u][:n][behaviours[u][:n] == target]
        rows.append(np.full(len(bought), u, dtype=np.int64))
        cols.append(bought.astype(np.int64))
    rows_a, cols_a = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (rows, cols))
    out = sp.csr_matrix(
        (np.ones(len(rows_a), np.float32), (rows_a, cols_a)), shape=(len(items), n_items)
    )
    out.data[:] = 1.0  # repeated purchases summed to counts
    return out


def history_scores(
    model: nn.Module,
    items: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    cut: np.ndarray,
    device: str | torch.device,
) -> ScoresFn:
    """A ``ScoresFn``: scores ``[B, n_items]`` of the next target item after user u's first
    ``cut[u]`` events (their last ``model.max_len`` read), the model in eval mode, no grad.

    A user with an empty history is an error: there is nothing to predict from.
    """
    cut = np.asarray(cut)

    @torch.no_grad()
    def scores(users: Tensor) -> Tensor:
        rows = users.tolist()
        empty = [u for u in rows if cut[u] < 1]
        if empty:
            raise ValueError(
                f"user {empty[0]} has no events before its cut to predict from; "
                f"leave such users out of the evaluation (truth -1)"
            )
        model.eval()
        seqs = left_pad([items[u][: cut[u]] for u in rows], model.max_len).to(device)
        behs = left_pad([behaviours[u][: cut[u]] for u in rows], model.max_len).to(device)
        return model.scores(model(seqs, behs)[:, -1])

    return scores


def rank_histories(
    model: nn.Module,
    histories_items: Sequence[np.ndarray],
    histories_behaviours: Sequence[np.ndarray],
    exclude: sp.csr_matrix,
    k: int,
    device: str | torch.device,
    batch_size: int = 1024,
) -> np.ndarray:
    """Top-``k`` ids ``[n, k]`` for the target after each of ``n`` histories; row i of
    ``exclude`` is masked for history i. Ties by id, ``-1`` padding (``topk``)."""
    cut = np.array([len(h) for h in histories_items])
    scores = history_scores(model, histories_items, histories_behaviours, cut, device)
    return topk(scores, np.arange(len(cut)), exclude, k, batch_size=batch_size)


def evaluate_next_target(
    model: nn.Module,
    items: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    cut: np.ndarray,
    truth_item: np.ndarray,
    target: int,
    ks: Sequence[int],
    device: str | torch.device,
    exclude: sp.csr_matrix | None = None,
) -> pd.DataFrame:
    """Per-user ``ranking_metrics`` of ``truth_item`` (``-1``: not evaluated) given each user's
    first ``cut[u]`` events, their target items masked (``exclude``, built by
    ``target_history`` when None)."""
    truth_item = np.asarray(truth_item)
    users = np.flatnonzero(truth_item >= 0)
    if exclude is None:
        exclude = target_history(items, behaviours, cut, target, model.n_items)
    truth = sp.csr_matrix(
        (np.ones(len(users), np.float32), (users, truth_item[users])), shape=exclude.shape
    )
    top = topk(history_scores(model, items, behaviours, cut, device), users, exclude, max(ks))
    return ranking_metrics(top, truth, users, ks)


def fit_next_target(
    model: nn.Module,
    items: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    n_train: np.ndarray,
    valid_item: np.ndarray,
    *,
    target: int,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    eval_every: int = 1,
    patience: int = 5,
    metric: str = "ndcg@10",
    ks: Sequence[int] = (10, 20),
    exclude: sp.csr_matrix | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[dict[str, Tensor], list[dict]]:
    """Train ``model`` on next-target cross-entropy over all items; keep its best validation state.

    Every position of a user's training part (its first ``n_train[u]`` events) is labelled with
    the item of the next target event after it within the training part (``next_target_labels``;
    unlabelled positions are dropped), and scored against every item with a softmax, as
    ``llmrec.training.sequential.fit_sasrec`` does. Nothing at or after ``n_train[u]`` is read.

    Args:
        model: has ``max_len``, ``n_items``, ``forward(seqs, behaviours) -> [B, L, hidden]`` and
            ``scores(hidden_last)`` (``llmrec.models.bsasrec.BehaviourSASRec``). Seed before
            building it (``init_seed``).
        items, behaviours: per user (index = user id), item ids and behaviour indices in time
            order.
        n_train: per user, how many leading events are the training part.
        valid_item: per user, the validation target (``-1``: not validated).
        target: the target behaviour's index.
        epochs: most epochs (default 200).
        batch_size: users per step (default 128).
        lr: learning rate of AdamW, betas (0.9, 0.98) (default 1e-3).
        weight_decay: AdamW's decoupled weight decay (default 0.0).
        eval_every: epochs between validations; the last is always validated (default 1).
        patience: validations without a strict improvement before stopping (default 5).
        metric: the early-stopping criterion, ``name@k`` (default ``ndcg@10``).
        ks: cut-offs of the validation metrics in the history (default (10, 20)).
        exclude: users x items never ranked in validation (default None: each user's target
            items of the training part).
        seed: seeds the user order (numpy) and torch's global generator (dropout) (default 0).
        device: where the model and batches live (default ``cpu``).
        progress: show a tqdm bar over epochs (default True); the log gets a line every 30 s.

    Returns:
        The best state (a copy, also loaded into ``model``) and one dict per validation:
        ``epoch``, ``loss`` (mean cross-entropy per labelled position), the validation metrics,
        ``train_seconds`` and ``eval_seconds``.
    """
    cutoffs = sorted({*ks, check_schedule(metric, epochs, eval_every, patience)})
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
    if exclude is None:
        exclude = target_history(items, behaviours, n_train, target, model.n_items)
    return fit_with_early_stopping(
        model,
        lambda epoch: cross_entropy_epoch(
            model,
            _batches(seqs, behs, labels, model.max_len, batch_size, rng),
            n_batches,
            optimizer,
            device,
            desc=f"epoch {epoch}",
        ),
        lambda: summarize(
            evaluate_next_target(
                model, items, behaviours, n_train, valid_item, target, cutoffs, device, exclude
            )
        ),
        epochs=epochs,
        eval_every=eval_every,
        patience=patience,
        metric=metric,
        progress=progress,
    )


def _batches(
    seqs: list[np.ndarray],
    behs: list[np.ndarray],
    labels: list[np.ndarray],
    max_len: int,
    batch_size: int,
    rng: np.random.Generator,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """One epoch of left-padded ``(items, behaviours, labels)`` ``[batch, max_len]``, users
    shuffled; each user's last ``max_len`` positions, as ``fit_sasrec``'s batches."""
    order = rng.permutation(len(seqs))
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        yield tuple(left_pad([part[r] for r in rows], max_len) for part in (seqs, behs, labels))

"""Next-item training and leave-one-out evaluation of a sequential model such as SASRec.

Leave-one-out: of each user's time-ordered items, the last is the test target, the second-last
the validation target, and the rest the training part. Rankings cover the whole catalogue,
items the user has already seen included: a sequence may repeat items (listens, purchases), and
a generative recommender such as P5 likewise produces any item id, so nothing is excluded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmrec.evaluation.ranking import ranking_metrics, summarize, topk
from llmrec.models.sasrec import PAD
from llmrec.progress import Progress
from llmrec.training.early_stopping import check_schedule, fit_with_early_stopping

MIN_LENGTH = 3
"""Fewest items a user needs to be evaluated: one of history, a validation and a test item."""


def left_pad(seqs: Sequence[np.ndarray], length: int) -> Tensor:
    """``[len(seqs), length]`` LongTensor of each sequence's last ``length`` items, ``PAD`` left."""
    out = np.full((len(seqs), length), PAD, dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[len(seq) - length :] if len(seq) > length else seq
        out[row, length - len(tail) :] = tail
    return torch.from_numpy(out)


def trainable_users(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """Users with a training transition: two items or more before the last two."""
    return np.flatnonzero([len(seq) >= 4 for seq in sequences])


def training_batches(
    sequences: Sequence[np.ndarray], max_len: int, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of ``(inputs, targets)`` LongTensors ``[batch, max_len]``, users shuffled.

    A user's training part is its sequence without the last two items; the inputs are its items
    but the last, the targets its items but the first, both cut to the last ``max_len``
    positions and padded with ``PAD`` on the left (as in SASRec's reference code, an epoch sees
    each user's most recent ``max_len`` transitions). Users with fewer than two training items
    have no transition and are left out.
    """
    train = [seq[:-2] for seq in sequences]
    users = trainable_users(sequences)
    users = users[rng.permutation(len(users))]
    for lo in range(0, len(users), batch_size):
        parts = [train[u] for u in users[lo : lo + batch_size]]
        yield left_pad([p[:-1] for p in parts], max_len), left_pad([p[1:] for p in parts], max_len)


def train_epoch(
    model: nn.Module,
    sequences: Sequence[np.ndarray],
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    rng: np.random.Generator,
    device: str | torch.device,
    desc: str = "epoch",
) -> float:
    """One pass of ``training_batches`` through ``cross_entropy_epoch``; returns its loss."""
    n_batches = -(-len(trainable_users(sequences)) // batch_size)
    batches = training_batches(sequences, model.max_len, batch_size, rng)
    return cross_entropy_epoch(model, batches, n_batches, optimizer, device, desc)


def cross_entropy_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, ...]],
    n_batches: int,
    optimizer: torch.optim.Optimizer,
    device: str | torch.device,
    desc: str = "epoch",
) -> float:
    """One pass over ``batches`` of ``(*inputs, targets)``, each ``[batch, L]``: the hidden
    states ``model(*inputs)`` score every item at each position whose target is not ``PAD``;
    returns the mean cross-entropy per target position.

    An epoch longer than 30 s logs its batches done (of ``n_batches``), named ``desc``.
    """
    model.train()
    loss_sum, n_targets = torch.zeros((), device=device), 0
    with Progress(n_batches, desc, "batches", bar=False) as batches_done:
        for *inputs, targets in batches:
            inputs, targets = [t.to(device) for t in inputs], targets.to(device)
            real = targets != PAD
            # Scores only where there is a target: the padding would triple the
            # [positions x items] logits, the largest tensor of a step, on short sequences.
            logits = model.scores(model(*inputs)[real])
            loss = F.cross_entropy(logits, targets[real])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(logits)
            n_targets += len(logits)
            batches_done.update()
    return loss_sum.item() / max(n_targets, 1)


def fit_sasrec(
    model: nn.Module,
    sequences: Sequence[np.ndarray],
    *,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    eval_every: int = 1,
    patience: int = 5,
    metric: str = "ndcg@10",
    ks: Sequence[int] = (5, 10),
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[dict[str, Tensor], list[dict]]:
    """Train ``model`` on next-item cross-entropy; return its best validation state and history.

    Every non-padded position of a training part predicts the next item with a softmax over all
    items (SASRec's paper samples one negative per position with binary cross-entropy; the full
    softmax trains markedly better, https://arxiv.org/abs/2309.07602). Validation ranks all
    items for each user's second-last item given the training part (``evaluate_sasrec``).

    Args:
        model: has ``max_len``, ``forward(seqs) -> [B, L, hidden]`` and
            ``scores(hidden_last) -> [B, n_items]`` (see ``llmrec.models.sasrec.SASRec``).
            Seed before building it (``init_seed``).
        sequences: per user (index = user id), the item ids in time order.
        epochs: most epochs to run (default 200).
        batch_size: users per step (default 128).
        lr: learning rate of AdamW, betas (0.9, 0.98) as in SASRec (default 1e-3).
        weight_decay: AdamW's decoupled weight decay, on every parameter; 0 is plain Adam
            (default 0.0).
        eval_every: epochs between validations; the last epoch is always validated (default 1).
        patience: validations without a strict improvement of ``metric`` before stopping
            (default 5).
        metric: ``name@k`` among ``llmrec.evaluation.ranking.METRICS``, the early-stopping
            criterion (default ``ndcg@10``).
        ks: cut-offs of the validation metrics recorded in the history (default (5, 10)).
        seed: seeds the user order (numpy) and the dropout masks (torch's global generator is
            reseeded here) (default 0). Runs repeat exactly on CPU; on CUDA the masked attention's
            backward (memory-efficient kernel) is not deterministic.
        device: where the model and the batches live (default ``cpu``).
        progress: show a tqdm bar over epochs (default True). Either way the log gets a line
            every 30 s: epochs done (the ETA is to ``epochs``; early stopping may come first)
            and, within an epoch that long, its batches.

    Returns:
        The best state (a copy, also loaded back into ``model``) and one dict per validation:
        ``epoch``, ``loss`` (mean cross-entropy per target over the last epoch), every validation
        metric at ``ks`` and at ``metric``'s k, ``train_seconds`` (training since the previous
        validation) and ``eval_seconds``.
    """
    k = check_schedule(metric, epochs, eval_every, patience)
    cutoffs = sorted({*ks, k})
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay, fused=True
    )
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    return fit_with_early_stopping(
        model,
        lambda epoch: train_epoch(
            model, sequences, optimizer, batch_size, rng, device, desc=f"epoch {epoch}"
        ),
        lambda: summarize(evaluate_sasrec(model, sequences, "valid", cutoffs, device)),
        epochs=epochs,
        eval_every=eval_every,
        patience=patience,
        metric=metric,
        progress=progress,
    )


def consecutive_sequences(
    order: np.ndarray, n: int, length: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``n`` runs of ``length`` consecutive entries of ``order`` (the items in the order of
    their numbers), each from a start drawn uniformly; all of ``order`` where it is shorter."""
    length = min(length, len(order))
    starts = rng.integers(0, len(order) - length + 1, size=n)
    return [order[start : start + length] for start in starts]


def pretrain_ordered(
    model: nn.Module,
    order: np.ndarray,
    *,
    sequences: int,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` to predict the next number in runs of consecutive numbers (ordered item
    embeddings): each epoch, ``sequences`` fresh runs of :func:`consecutive_sequences`, each
    ``max_len`` transitions long, through the same loss and optimizer as :func:`fit_sasrec`
    (a fresh AdamW). No validation: it runs all ``epochs``.

    Args:
        model: as in :func:`fit_sasrec`.
        order: every item id, in the order of the items' numbers.
        sequences: runs per epoch.
        epochs: epochs to run.
        batch_size: runs per step (default 128).
        lr: learning rate of AdamW, betas (0.9, 0.98) (default 1e-3).
        seed: seeds the runs' starts and order, and the dropout masks (default 0).
        device: where the model and the batches live (default ``cpu``).
        progress: show a tqdm bar over epochs (default True).

    Returns:
        One dict per epoch: ``epoch``, ``loss`` (mean cross-entropy per target) and ``seconds``.
    """
    if min(sequences, epochs) < 1:
        raise ValueError(f"sequences and epochs must be at least 1, got {sequences} and {epochs}")
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0, fused=True
    )
    rng = np.random.default_rng([seed, 4])
    torch.manual_seed(seed)
    history = []
    with Progress(epochs, "ordered pre-training", "epochs", bar=progress) as epochs_done:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            # training_batches keeps all but a sequence's last two items (leave-one-out's
            # validation and test): two more items give max_len transitions.
            runs = consecutive_sequences(order, sequences, model.max_len + 3, rng)
            loss = train_epoch(
                model, runs, optimizer, batch_size, rng, device, desc=f"pre-training epoch {epoch}"
            )
            history.append({"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - start})
            epochs_done.update()
            epochs_done.set_postfix(loss=f"{loss:.4f}")
    return history


@torch.no_grad()
def rank_next(
    model: nn.Module,
    histories: Sequence[np.ndarray],
    k: int,
    device: str | torch.device,
    batch_size: int = 1024,
) -> np.ndarray:
    """Top-``k`` item ids ``[len(histories), k]``, best first, for the item after each history.

    Each history's last ``model.max_len`` items are read. Every item is a candidate (nothing is
    excluded); ties go to the smaller id and ``k > n_items`` pads with ``-1``, as in
    ``llmrec.evaluation.ranking.topk``, which does the ranking.
    """
    empty = [i for i, h in enumerate(histories) if len(h) == 0]
    if empty:
        raise ValueError(
            f"{len(empty)} histories are empty (the first is number {empty[0]}); "
            f"there is nothing to predict the next item from"
        )
    model.eval()

    def scores(rows: Tensor) -> Tensor:
        seqs = left_pad([histories[i] for i in rows.tolist()], model.max_len).to(device)
        return model.scores(model(seqs)[:, -1])

    nothing_excluded = sp.csr_matrix((len(histories), model.n_items), dtype=np.float32)
    return topk(scores, np.arange(len(histories)), nothing_excluded, k, batch_size=batch_size)


def evaluate_sasrec(
    model: nn.Module,
    sequences: Sequence[np.ndarray],
    stage: str,
    ks: Sequence[int],
    device: str | torch.device,
) -> pd.DataFrame:
    """Per-user leave-one-out metrics (``ranking_metrics``) of the ``stage`` target.

    ``valid``: the second-last item given the items before it. ``test``: the last item given
    all before it, the validation item included. Users with fewer than ``MIN_LENGTH`` items are
    left out, at both stages, so that both tables cover the same users.
    """
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    held_out = 2 if stage == "valid" else 1
    users = np.flatnonzero([len(seq) >= MIN_LENGTH for seq in sequences])
    histories = [sequences[u][:-held_out] for u in users]
    targets = np.array([sequences[u][-held_out] for u in users], dtype=np.int64)
    truth = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, targets)),
        shape=(len(sequences), model.n_items),
    )
    top = rank_next(model, histories, max(ks), device)
    return ranking_metrics(top, truth, users, ks)

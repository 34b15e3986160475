"""Full ranking over the whole catalogue and the per-user top-k metrics every study reports.

Protocol: every item a user has not interacted with in training (and, at test time, validation)
is a candidate; no negative sampling. ``topk`` ranks the candidates, ``ranking_metrics`` scores
the lists against the held-out items, ``evaluate`` chains the two, ``summarize`` averages.

Definitions, for a user with relevant (held-out) items T, |T| > 0, and ranked list
r_1, r_2, ... (rank i counts from 1; rel_i = 1 if r_i is in T, else 0; padding is never relevant):

    hits@k      = sum_{i<=k} rel_i
    recall@k    = hits@k / |T|
    precision@k = hits@k / k              (k, not the list length: padding counts as a miss)
    hit@k       = 1 if hits@k > 0 else 0
    DCG@k       = sum_{i<=k} rel_i / log2(i + 1)
    IDCG@k      = sum_{i<=min(|T|, k)} 1 / log2(i + 1)
    ndcg@k      = DCG@k / IDCG@k
    mrr@k       = 1 / (rank of the first relevant item) if it is within the top k, else 0

Users with no relevant item are left out of the table (they are not counted as zeros): recall
and NDCG are undefined for them, and counting them as zeros would make a dataset's score depend
on how many users happen to have nothing held out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

ScoresFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps a LongTensor of user ids ``[batch]`` to a float tensor of scores ``[batch, n_items]``."""

METRICS = ("recall", "ndcg", "mrr", "hit", "precision")
PAD = -1
"""Item id that fills a list when a user has fewer than k candidate items."""
MAX_BATCH_SCORES = 2**27
"""Most scores ranked at once (0.5 GiB of float32; the masked copy and top-k double it)."""


def topk(
    scores_fn: ScoresFn, users: np.ndarray, exclude: sp.csr_matrix, k: int, batch_size: int = 1024
) -> np.ndarray:
    """Rank all items for ``users`` and return the ids of the best ``k``, best first.

    Args:
        scores_fn: see ``ScoresFn``; called once per batch of users, under ``torch.no_grad``,
            with a CPU LongTensor (move it to the model's device inside). Its result is copied
            before masking, so it may return a view of cached scores; the ranking runs on the
            device of that result.
        users: user ids (rows of ``exclude``), any integer dtype.
        exclude: ``n_users x n_items``; the stored entries of a user's row (training items, and
            validation items at test time) are set to ``-inf`` and so never recommended.
        k: list length.
        batch_size: most users scored at once (default 1024); fewer where
            ``batch_size x n_items`` would exceed :data:`MAX_BATCH_SCORES` scores (Taobao's
            millions of items), so memory stays bounded whatever the catalogue.

    Returns:
        int64 array ``[len(users), k]``. A user with fewer than ``k`` candidates (items that are
        neither excluded nor scored ``-inf``) gets ``-1`` (``PAD``) in the remaining positions,
        and so does every user when ``k > n_items``.

    Ties are broken by item id, smaller first, both inside the list and at its cut-off, so the
    lists depend only on the scores: not on the device, the thread count or the batch size.
    (``torch.topk`` alone leaves the order of tied items unspecified.) NaN scores are an error.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    users = np.asarray(users, dtype=np.int64)
    n_items = exclude.shape[1]
    exclude = sp.csr_matrix(exclude)
    out = np.full((len(users), k), PAD, dtype=np.int64)
    depth = min(k, n_items)
    batch_size = max(1, min(batch_size, MAX_BATCH_SCORES // max(n_items, 1)))
    with torch.no_grad():
        for lo in range(0, len(users), batch_size):
            batch = users[lo : lo + batch_size]
            scores = scores_fn(torch.from_numpy(batch))
            if scores.shape != (len(batch), n_items):
                raise ValueError(
                    f"scores_fn returned shape {tuple(scores.shape)} for "
                    f"{len(batch)} users; expected ({len(batch)}, {n_items})"
                )
            scores = scores.to(dtype=torch.float32, copy=True)
            nan_rows = torch.isnan(scores).any(1).cpu().numpy()
            if nan_rows.any():
                raise ValueError(
                    f"scores_fn returned NaN scores for {nan_rows.sum()} users, "
                    f"the first being user {batch[nan_rows][0]}"
                )
            _mask(scores, exclude[batch])
            out[lo : lo + len(batch), :depth] = _top_rows(scores, depth).cpu().numpy()
    return out


def _mask(scores: torch.Tensor, excluded: sp.csr_matrix) -> None:
    """Set ``scores[row, item] = -inf`` for every stored entry of ``excluded``, in place."""
    rows = np.repeat(np.arange(excluded.shape[0]), np.diff(excluded.indptr))
    rows_t = torch.from_numpy(rows).to(scores.device)
    cols_t = torch.from_numpy(excluded.indices.astype(np.int64)).to(scores.device)
    scores[rows_t, cols_t] = -torch.inf


def _top_rows(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the ids of the k highest scores, ties by smaller id, ``PAD`` where ``-inf``."""
    values, items = torch.topk(scores, k, dim=1, sorted=True)
    kth = values[:, -1:]
    # topk keeps an unspecified subset of the items tied with the k-th score. Only rows where
    # some of those ties fall outside the list need the slower exact selection.
    cut = ((scores == kth).sum(1) > (values == kth).sum(1)).nonzero().squeeze(1)
    if len(cut):
        items[cut] = _lowest_ids_at_cut(scores[cut], kth[cut], k)
    # Order ties inside the list by id: sort by id, then stably by score.
    items = items.sort(dim=1).values
    picked = scores.gather(1, items)
    order = torch.sort(picked, dim=1, descending=True, stable=True).indices
    items = items.gather(1, order)
    items[picked.gather(1, order) == -torch.inf] = PAD
    return items


def _lowest_ids_at_cut(scores: torch.Tensor, kth: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the items above ``kth``, filled up to k with the lowest ids scored ``kth``."""
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(1, keepdim=True)
    tied &= tied.to(torch.int32).cumsum(1, dtype=torch.int32) <= room
    return (above | tied).nonzero()[:, 1].view(-1, k)  # row by row, ids ascending


def _relevant_rows(truth: sp.csr_matrix, users: np.ndarray) -> sp.csr_matrix:
    """``truth[users]`` with duplicates merged, explicit zeros dropped and indices sorted."""
    rows = sp.csr_matrix(truth)[users]
    rows.sum_duplicates()
    rows.eliminate_zeros()
    rows.sort_indices()
    return rows


def ranking_metrics(
    top: np.ndarray, truth: sp.csr_matrix, users: np.ndarray, ks: Sequence[int]
) -> pd.DataFrame:
    """Per-user recall, NDCG, MRR, hit rate and precision at each k (see the module docstring).

    Args:
        top: ``[len(users), K]`` item ids best first, ``-1`` for padding, ``K >= max(ks)``;
            a row should not repeat an item.
        truth: ``n_users x n_items``; the stored non-zero entries of a row are its relevant items.
        users: the user id of each row of ``top``.
        ks: cut-offs.

    Returns:
        One row per user with at least one relevant item, in the order of ``users``: column
        ``user_id``, then ``recall@k`` for each k, ``ndcg@k`` for each k, and so on in the
        order of ``METRICS``; float64.
    """
    top = np.asarray(top, dtype=np.int64)
    users = np.asarray(users, dtype=np.int64)
    ks = [int(k) for k in ks]
    if top.ndim != 2 or len(top) != len(users):
        raise ValueError(f"top must have one row per user: shape {top.shape}, {len(users)} users")
    if not ks or min(ks) < 1 or max(ks) > top.shape[1]:
        raise ValueError(f"cut-offs {ks} must be between 1 and the list length {top.shape[1]}")
    rel = _relevant_rows(truth, users)
    n_rel = np.diff(rel.indptr)
    keep = n_rel > 0
    top, users, n_rel = top[keep], users[keep], n_rel[keep]
    rel = rel[keep]
    hits = _hits(top[:, : max(ks)], rel)

    positions = np.arange(1, hits.shape[1] + 1)
    discount = 1.0 / np.log2(positions + 1)
    cum_hits = np.cumsum(hits, axis=1)
    cum_dcg = np.cumsum(hits * discount, axis=1)
    ideal = np.cumsum(discount)
    # Rank of the first hit; one past the list when there is none, so ``first <= k`` fails.
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, hits.shape[1] + 1)

    per_k: dict[int, dict[str, np.ndarray]] = {}
    for k in ks:
        h = cum_hits[:, k - 1].astype(np.float64)
        per_k[k] = {
            "recall": h / n_rel,
            "ndcg": cum_dcg[:, k - 1] / ideal[np.minimum(n_rel, k) - 1],
            "mrr": np.where(first <= k, 1.0 / first, 0.0),
            "hit": (h > 0).astype(np.float64),
            "precision": h / k,
        }
    columns = {"user_id": users} | {f"{m}@{k}": per_k[k][m] for m in METRICS for k in ks}
    return pd.DataFrame(columns)


def _hits(top: np.ndarray, rel: sp.csr_matrix) -> np.ndarray:
    """Boolean ``[n, K]``: is ``top[i, j]`` a relevant item of row i (``rel`` indices sorted)."""
    n_items = rel.shape[1]
    rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    # One sorted key per (row, item) pair turns the membership test into one searchsorted.
    keys = rows * n_items + rel.indices
    query = np.arange(len(top), dtype=np.int64)[:, None] * n_items + np.maximum(top, 0)
    pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    found = keys[pos] == query if len(keys) else np.zeros(top.shape, dtype=bool)
    return found & (top >= 0)


def evaluate(
    scores_fn: ScoresFn,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix,
    ks: Sequence[int],
    batch_size: int = 1024,
) -> pd.DataFrame:
    """Rank for every user with a relevant item in ``truth`` and return ``ranking_metrics``.

    ``exclude`` holds the items never to recommend (training, plus validation when testing);
    ``batch_size`` is passed to ``topk``.
    """
    all_users = np.arange(truth.shape[0])
    users = np.flatnonzero(np.diff(_relevant_rows(truth, all_users).indptr) > 0)
    top = topk(scores_fn, users, exclude, max(ks), batch_size=batch_size)
    return ranking_metrics(top, truth, users, ks)


def summarize(per_user: pd.DataFrame) -> dict[str, float]:
    """Mean of every metric column over users (``user_id`` left out); an empty table is an error."""
    if per_user.empty:
        raise ValueError("no users to summarise: the truth matrix had no relevant items")
    means = per_user.drop(columns="user_id").mean()
    return {name: float(value) for name, value in means.items()}

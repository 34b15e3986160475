"""Where a recommender helps: leave-one-out metrics overall, on tail items and on sparse users.

One held-out item per user (the multi-behaviour study's leave-one-out on the target behaviour),
ranked by full ranking over the catalogue with :func:`llmrec.evaluation.ranking.topk` and scored
by :func:`llmrec.evaluation.ranking.ranking_metrics` (the project's one metrics module). Segments
of the test cases (a user is in a segment or not; outside it its value is NaN, which the tables'
tests leave out):

- ``overall``: every evaluated user;
- ``tail``: the held-out item is outside the head, the ``head_share`` (20%) most popular items
  by training target events (the "bottom 80%", the long tail's "body and tail");
- ``strict_tail``: the held-out item is in the bottom ``strict_tail_share`` (20%);
- ``sparse``: the user has at most ``sparse_max`` (5) training target events;
- ``tail_within``: the tail cases ranked *within the tail*, head items removed from the
  candidates, as long-tail studies rank a head or tail subset on its own.

Item popularity is the count of training target events; items are ranked by it, ties by the
smaller id, so the head is exactly ``ceil(head_share * n_items)`` items.

Per user and segment also ``tail_share@k``: the share of the top-k list that are tail (non-head)
items; per run and segment ``coverage@k``: the share of the catalogue in at least one of the
segment's top-k lists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .ranking import PAD, ScoresFn, ranking_metrics, topk

SEGMENTS = ("overall", "tail", "strict_tail", "sparse", "tail_within")
SEGMENT_METRICS = ("hit", "ndcg")
HEAD, BODY, STRICT_TAIL = 0, 1, 2


def popularity_groups(
    counts: np.ndarray, head_share: float = 0.2, strict_tail_share: float = 0.2
) -> np.ndarray:
    """Each item's group by its training count: ``HEAD`` (the ``ceil(head_share * n)`` most
    popular), ``STRICT_TAIL`` (the ``ceil(strict_tail_share * n)`` least popular) or ``BODY``;
    ties in count are ranked by the smaller id first."""
    if not (0 < head_share < 1 and 0 < strict_tail_share < 1):
        raise ValueError(
            f"head_share and strict_tail_share must lie between 0 and 1, got {head_share} and "
            f"{strict_tail_share}"
        )
    counts = np.asarray(counts)
    n = len(counts)
    order = np.lexsort((np.arange(n), -counts))  # most popular first, ties by id
    groups = np.full(n, BODY, dtype=np.int8)
    groups[order[: math.ceil(head_share * n)]] = HEAD
    groups[order[n - math.ceil(strict_tail_share * n) :]] = STRICT_TAIL
    return groups


def segment_columns(ks: Sequence[int]) -> list[str]:
    """The per-user columns of :func:`evaluate_segments`: ``<segment>/<metric>@k`` for every
    segment, metric of :data:`SEGMENT_METRICS` and ``tail_share``, and k."""
    return [f"{s}/{m}@{k}" for s in SEGMENTS for m in (*SEGMENT_METRICS, "tail_share") for k in ks]


def evaluate_segments(
    scores_fn: ScoresFn,
    users: np.ndarray,
    targets: np.ndarray,
    exclude: sp.csr_matrix,
    groups: np.ndarray,
    user_train_targets: np.ndarray,
    ks: Sequence[int],
    *,
    sparse_max: int = 5,
    batch_size: int = 1024,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Rank every item for ``users`` and score each segment (module docstring).

    Args:
        scores_fn: users -> scores ``[batch, n_items]`` (see ``ranking.ScoresFn``).
        users: evaluated user ids.
        targets: each user's held-out item.
        exclude: ``n_users x n_items``; a user's items never recommended (its earlier target
            items).
        groups: each item's :func:`popularity_groups` group.
        user_train_targets: per user id, its number of training target events.
        ks: cut-offs.
        sparse_max: most training target events of a ``sparse`` user (default 5).
        batch_size: users ranked at once (default 1024).

    Returns:
        The per-user table (``user_id`` and :func:`segment_columns`, NaN outside a segment) and
        per segment the run's ``coverage@k`` (items in the segment users' top-k lists, as a
        share of the catalogue).
    """
    users = np.asarray(users, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    n_users, n_items = exclude.shape
    if len(users) != len(targets):
        raise ValueError(f"{len(users)} users but {len(targets)} held-out items")
    truth = sp.csr_matrix(
        (np.ones(len(users), np.float32), (users, targets)), shape=(n_users, n_items)
    )
    top = topk(scores_fn, users, exclude, max(ks), batch_size=batch_size)
    overall = ranking_metrics(top, truth, users, ks).set_index("user_id")
    if len(overall) != len(users):
        raise ValueError("a held-out item is missing from the truth: every user needs one")

    target_group = groups[targets]
    in_segment = {
        "overall": np.ones(len(users), bool),
        "tail": target_group != HEAD,
        "strict_tail": target_group == STRICT_TAIL,
        "sparse": np.asarray(user_train_targets)[users] <= sparse_max,
    }
    lists = {segment: top for segment in in_segment}
    values = {segment: overall for segment in in_segment}
    # The tail cases again, ranked among tail items only.
    tail = np.flatnonzero(in_segment["tail"])
    in_segment["tail_within"] = in_segment["tail"]
    lists["tail_within"] = np.full_like(top, PAD)
    values["tail_within"] = overall * np.nan
    if len(tail):
        head_items = torch.from_numpy(np.flatnonzero(groups == HEAD))

        def tail_scores(batch: torch.Tensor) -> torch.Tensor:
            scores = scores_fn(batch).to(dtype=torch.float32, copy=True)
            return scores.index_fill_(1, head_items.to(scores.device), -torch.inf)

        top_tail = topk(tail_scores, users[tail], exclude, max(ks), batch_size)
        lists["tail_within"][tail] = top_tail
        within = ranking_metrics(top_tail, truth, users[tail], ks).set_index("user_id")
        values["tail_within"].loc[within.index] = within

    columns: dict[str, np.ndarray] = {"user_id": users}
    coverage: dict[str, dict[str, float]] = {}
    for segment in SEGMENTS:
        mask, ranked = in_segment[segment], lists[segment]
        listed = ranked >= 0
        is_tail = np.zeros(ranked.shape, bool)
        is_tail[listed] = groups[ranked[listed]] != HEAD
        coverage[segment] = {}
        for name in SEGMENT_METRICS:
            for k in ks:
                per_user = values[segment][f"{name}@{k}"].to_numpy()
                columns[f"{segment}/{name}@{k}"] = np.where(mask, per_user, np.nan)
        for k in ks:
            columns[f"{segment}/tail_share@{k}"] = np.where(mask, is_tail[:, :k].sum(1) / k, np.nan)
            items = np.unique(ranked[mask, :k])
            coverage[segment][f"coverage@{k}"] = len(items[items != PAD]) / n_items
    return pd.DataFrame(columns)[["user_id", *segment_columns(ks)]], coverage

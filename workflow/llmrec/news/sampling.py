"""Negative sampling for news recommendation, with POPK's popular negatives.

Training in the MIND literature pairs each clicked article of an impression with ``k`` (npratio)
articles of the same impression that were shown but not clicked, and trains a (k+1)-way softmax.
POPK intervenes in that sampling: ``popk`` of the ``k`` negatives are replaced by *popular*
articles, which compete for the user's attention whether or not they were in the impression.

Popularity (no future leakage): an article's clicks in the training log during
``[t0 - window, t0)``, where ``t0`` is the start of the ``step``-long time bucket (default one hour)
that holds the impression's time. Only clicks strictly before that bucket count, so nothing at or
after the impression is used; the hour's lag keeps the computation to one ranking per bucket.
``window=None`` counts every earlier click. The ``pool_size`` most-clicked articles (ties: lower
article id first) form the pool popular negatives are drawn from, uniformly or in proportion to
their clicks (``weighting``).

Rules, per training sample (one clicked article of one impression):

- popular negatives exclude the articles the user clicked (the impression's clicks and the
  user's history) and the impression's own candidates, so they are always new competitors;
  when fewer than ``popk`` pool articles remain, the rest come from the impression;
- in-impression negatives: ``k - popk`` drawn without replacement from the impression's
  non-clicked candidates; an impression with fewer than that is sampled *with replacement*.
  Microsoft Recommenders' MIND iterator (``newsample``) and the PyTorch ports of it pad such
  samples with a blank article instead; sampling with replacement keeps every negative a real
  article, so the model is never trained to rank an empty title last;
- a clicked article whose impression has no non-clicked candidate is dropped when in-impression
  negatives are needed (``k - popk > 0``); their number is returned.

With ``popk = 0`` this is the plain sampler (:func:`plain_negatives`). With ``popk > 0`` and the
same seed, a click whose impression has at least ``k`` negatives keeps the first ``k - popk`` of
the plain sampler's negatives and gets popular articles in place of the rest: the counterfactual
is the replacement alone (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

WEIGHTINGS = ("uniform", "clicks")


@dataclass
class Impressions:
    """Impressions as flat arrays: impression ``i`` shows ``candidates[offsets[i]:offsets[i+1]]``
    with click ``labels`` there, and the user's history is ``history[h_offsets[i]:...]``."""

    ids: np.ndarray
    users: np.ndarray
    times: np.ndarray
    offsets: np.ndarray
    candidates: np.ndarray
    labels: np.ndarray
    h_offsets: np.ndarray
    history: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table) -> Impressions:
        """From a table with MIND's columns (``split/mind.parquet``)."""

        def flat(name: str) -> tuple[np.ndarray, np.ndarray]:
            column = table.column(name).combine_chunks()
            offsets = column.offsets.to_numpy().astype(np.int64)
            values = column.values.to_numpy(zero_copy_only=False)
            return offsets - offsets[0], values[offsets[0] : offsets[-1]]

        offsets, candidates = flat("candidates")
        _, labels = flat("labels")
        h_offsets, history = flat("history")
        return cls(
            table.column("impression_id").to_numpy(),
            table.column("user_id").to_numpy(),
            table.column("timestamp").to_numpy(),
            offsets,
            candidates.astype(np.int64),
            labels.astype(np.int8),
            h_offsets,
            history.astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def clicks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(times, articles)`` of every click, in impression order."""
        row = np.repeat(np.arange(len(self)), self.sizes())
        clicked = self.labels > 0
        return self.times[row[clicked]], self.candidates[clicked]


class Popularity:
    """Most-clicked articles before each impression's time bucket (see the module docstring).

    Args:
        click_times: time of every training click.
        click_items: article of every training click.
        n_items: articles in the catalogue.
        window: seconds of clicks that count, or None for all earlier clicks.
        step: bucket length in seconds (default 3600).
        pool_size: articles in each bucket's pool (default 100).
    """

    def __init__(
        self,
        click_times: np.ndarray,
        click_items: np.ndarray,
        n_items: int,
        *,
        window: int | None = None,
        step: int = 3600,
        pool_size: int = 100,
    ) -> None:
        if step < 1 or pool_size < 1 or (window is not None and window < 1):
            raise ValueError("step, pool_size and window must be at least 1")
        order = np.argsort(click_times, kind="stable")
        self.times = np.asarray(click_times)[order]
        self.items = np.asarray(click_items)[order]
        self.n_items, self.window, self.step, self.pool_size = n_items, window, step, pool_size

    def bucket_start(self, times: np.ndarray) -> np.ndarray:
        return (np.asarray(times) // self.step) * self.step

    def counts_before(self, t0: int) -> np.ndarray:
        """Clicks per article in ``[t0 - window, t0)``."""
        hi = np.searchsorted(self.times, t0, side="left")
        lo = 0 if self.window is None else np.searchsorted(self.times, t0 - self.window, "left")
        return np.bincount(self.items[lo:hi], minlength=self.n_items)

    def pools(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pool articles and their click counts for each time: two ``[len(times), pool_size]``
        arrays, most clicked first; -1 (count 0) where fewer articles were clicked."""
        starts = self.bucket_start(times)
        buckets, inverse = np.unique(starts, return_inverse=True)
        pool = np.full((len(buckets), self.pool_size), -1, dtype=np.int64)
        weight = np.zeros((len(buckets), self.pool_size), dtype=np.int64)
        for b, t0 in enumerate(buckets):
            counts = self.counts_before(int(t0))
            clicked = np.flatnonzero(counts)
            top = clicked[np.lexsort((clicked, -counts[clicked]))][: self.pool_size]
            pool[b, : len(top)] = top
            weight[b, : len(top)] = counts[top]
        return pool[inverse], weight[inverse]


def _positives(imps: Impressions) -> tuple[np.ndarray, np.ndarray]:
    """Impression index and article of every click."""
    row = np.repeat(np.arange(len(imps)), imps.sizes())
    clicked = imps.labels > 0
    return row[clicked], imps.candidates[clicked]


def _negatives_of(imps: Impressions) -> tuple[np.ndarray, np.ndarray]:
    """CSR of every impression's non-clicked candidates."""
    row = np.repeat(np.arange(len(imps)), imps.sizes())
    keep = imps.labels == 0
    counts = np.bincount(row[keep], minlength=len(imps))
    return np.concatenate([[0], np.cumsum(counts)]), imps.candidates[keep]


def _draw(
    offsets: np.ndarray, values: np.ndarray, rows: np.ndarray, m: int, rng: np.random.Generator
) -> np.ndarray:
    """``m`` values of CSR row ``rows[j]`` for each ``j``: without replacement where the row has
    at least ``m``, with replacement otherwise. Rows must not be empty."""
    n = offsets[rows + 1] - offsets[rows]
    out = np.empty((len(rows), m), dtype=values.dtype)
    if m == 0 or len(rows) == 0:
        return out
    width = int(n.max())
    keys = rng.random((len(rows), width))
    keys[np.arange(width)[None, :] >= n[:, None]] = np.inf  # beyond the row: never chosen
    order = np.argsort(keys, axis=1, kind="stable")[:, :m]
    picks = np.zeros((len(rows), m), dtype=np.int64)
    picks[:, : order.shape[1]] = order
    short = n < m
    if short.any():  # with replacement: uniform positions within the row
        picks[short] = (rng.random((int(short.sum()), m)) * n[short, None]).astype(np.int64)
    return values[offsets[rows][:, None] + picks]


def plain_negatives(
    imps: Impressions, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The usual sampler: ``k`` negatives of each click from its own impression.

    Returns ``(impression index, clicked article, negatives [P, k], dropped clicks)``.
    """
    return sample_negatives(imps, k, 0, rng)


def sample_negatives(
    imps: Impressions,
    k: int,
    popk: int,
    rng: np.random.Generator,
    popularity: Popularity | None = None,
    weighting: str = "uniform",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``k`` negatives per click, ``popk`` of them popular articles (module docstring).

    Returns ``(impression index [P], clicked article [P], negatives [P, k], dropped clicks)``;
    each row's negatives hold the popular ones last.
    """
    if not 0 <= popk <= k or k < 1:
        raise ValueError(f"need 0 <= popk <= k and k >= 1, got k={k}, popk={popk}")
    if popk and popularity is None:
        raise ValueError("popk > 0 needs a Popularity")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    rows, positives = _positives(imps)
    neg_offsets, neg_values = _negatives_of(imps)
    has_negatives = np.diff(neg_offsets)[rows] > 0
    dropped = 0
    if k - popk > 0:
        dropped = int((~has_negatives).sum())
        rows, positives = rows[has_negatives], positives[has_negatives]
    in_impression = _draw(neg_offsets, neg_values, rows, k - popk, rng)
    if popk == 0:
        return rows, positives, in_impression, dropped

    pool, weight = popularity.pools(imps.times[rows])
    allowed = pool >= 0
    # Exclusions: the user's clicks (history and this impression) and the impression's candidates.
    seen_offsets, seen_values = _seen(imps)
    allowed &= ~_member(pool, rows, seen_offsets, seen_values)
    keys = rng.random(pool.shape)
    if weighting == "clicks":  # weighted sampling without replacement (exponential keys)
        keys = -np.log(keys) / np.maximum(weight, 1)
    keys[~allowed] = np.inf
    take = np.argsort(keys, axis=1, kind="stable")[:, :popk]
    popular = np.take_along_axis(pool, take, axis=1)
    missing = ~np.take_along_axis(allowed, take, axis=1)
    if missing.any():  # too few pool articles left: fill from the impression
        need = np.flatnonzero(missing.any(axis=1))
        fill = _draw(neg_offsets, neg_values, rows[need], popk, rng)
        popular[need] = np.where(missing[need], fill, popular[need])
    return rows, positives, np.concatenate([in_impression, popular], axis=1), dropped


def _seen(imps: Impressions) -> tuple[np.ndarray, np.ndarray]:
    """CSR per impression of the articles a popular negative must not be: its candidates and
    the user's history."""
    sizes = imps.sizes() + np.diff(imps.h_offsets)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    values = np.empty(offsets[-1], dtype=np.int64)
    row_c = np.repeat(np.arange(len(imps)), imps.sizes())
    pos_c = offsets[row_c] + (np.arange(len(row_c)) - imps.offsets[row_c])
    values[pos_c] = imps.candidates
    h_sizes = np.diff(imps.h_offsets)
    row_h = np.repeat(np.arange(len(imps)), h_sizes)
    pos_h = offsets[row_h] + imps.sizes()[row_h] + (np.arange(len(row_h)) - imps.h_offsets[row_h])
    values[pos_h] = imps.history
    return offsets, values


def _member(
    pool: np.ndarray, rows: np.ndarray, offsets: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """``pool[j, c]`` is among CSR row ``rows[j]`` of ``(offsets, values)``."""
    n_items = int(max(pool.max(initial=0), values.max(initial=0))) + 1
    row_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    seen = np.unique(row_of.astype(np.int64) * n_items + values)
    query = rows[:, None].astype(np.int64) * n_items + np.maximum(pool, 0)
    found = np.searchsorted(seen, query).clip(max=len(seen) - 1)
    return (seen[found] == query) & (pool >= 0) if len(seen) else np.zeros(pool.shape, bool)

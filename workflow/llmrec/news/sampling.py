"""Negative sampling for news recommendation, with POPK's popular negatives.

Training in the MIND literature pairs each clicked article of an impression with ``k`` (npratio)
articles of the same impression that were shown but not clicked, and trains a (k+1)-way softmax.
POPK (Azevedo et al., 2024, https://arxiv.org/abs/2407.09939) asks what if, at the impression's
time t, the popular articles P(t, popk) had competed for the click too, shown or not. Two modes:

- ``add`` (the paper's): the ``k`` impression negatives plus ``popk`` popular ones, a
  (1 + k + popk)-way softmax;
- ``replace``: ``popk`` of the ``k`` impression negatives are replaced by popular ones, a
  (k+1)-way softmax (fewer real shown-but-unclicked negatives).

Popularity at t, from training clicks only and nothing at or after t: with ``t0`` the start of
the ``step``-long time bin (default one hour) that holds t,

- ``acc`` (accumulated): the clicks in ``[t0 - window, t0)``, ``window=None``: all earlier clicks;
- ``ptb`` (per time bin): the clicks of the latest complete bin, ``[t0 - step, t0)``. The paper
  counts the current bin; its clicks up to t are a leak-free alternative we do not use, because
  it needs one ranking per impression instead of one per bin.

An article's popularity is its number of clicks (``measure="clicks"``) or its click ratio, clicks
over the times it was shown in training impressions in the same period (``"ratio"``; only
articles shown at least ``min_impressions`` times there count, so that one click of one showing
is not the most popular article). Ties: more clicks, then the lower article id first. The
``pool_size`` most popular articles form the pool.

Popular negatives (``selection``): the ``popk`` most popular allowed pool articles (``top``, the
paper's top-popk at t), or ``popk`` drawn from the allowed pool (``sample``), uniformly or in
proportion to their popularity (``weighting``). Allowed: not one of the impression's candidates,
not in the user's history field, and not an article the user clicked anywhere in the training
log at or before t. When fewer than ``popk`` pool articles are allowed, the rest come from the
impression's non-clicked candidates.

In-impression negatives: drawn without replacement from the impression's non-clicked candidates;
an impression with fewer is sampled *with replacement*. Microsoft Recommenders' MIND iterator
(``newsample``) and the PyTorch ports of it pad such samples with a blank article instead;
sampling with replacement keeps every negative a real article, so the model is never trained to
rank an empty title last. A click whose impression has no non-clicked candidate is dropped
(their number is returned).

With ``popk = 0`` this is the plain sampler (:func:`plain_negatives`) in both modes. With the
same seed, ``add`` keeps all ``k`` of the plain sampler's negatives and appends popular ones;
``replace`` keeps the first ``k - popk`` of them (for an impression with at least ``k``
negatives) and puts popular ones in place of the rest: the counterfactual is the intervention
alone (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

MODES = ("add", "replace")
LOGICS = ("acc", "ptb")
MEASURES = ("clicks", "ratio")
SELECTIONS = ("top", "sample")
WEIGHTINGS = ("uniform", "popularity")


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

    def shown(self) -> tuple[np.ndarray, np.ndarray]:
        """``(times, articles)`` of every candidate shown, clicked or not."""
        return np.repeat(self.times, self.sizes()), self.candidates


class Popularity:
    """The most popular articles before each impression's time bin (see the module docstring).

    Args:
        click_times: time of every training click.
        click_items: article of every training click.
        n_items: articles in the catalogue.
        logic: ``acc`` (clicks in ``window`` before the bin) or ``ptb`` (clicks of the previous
            bin); default ``acc``.
        window: seconds of clicks that ``acc`` counts, or None for all earlier clicks.
        step: bin length in seconds (default 3600).
        pool_size: articles in each bin's pool (default 100).
        measure: ``clicks`` or ``ratio`` (clicks over showings; needs ``shown_times`` and
            ``shown_items``, :meth:`Impressions.shown`).
        min_impressions: showings an article needs in the period to be ranked by ``ratio``.
    """

    def __init__(
        self,
        click_times: np.ndarray,
        click_items: np.ndarray,
        n_items: int,
        *,
        logic: str = "acc",
        window: int | None = None,
        step: int = 3600,
        pool_size: int = 100,
        measure: str = "clicks",
        shown_times: np.ndarray | None = None,
        shown_items: np.ndarray | None = None,
        min_impressions: int = 1,
    ) -> None:
        if step < 1 or pool_size < 1 or (window is not None and window < 1):
            raise ValueError("step, pool_size and window must be at least 1")
        if logic not in LOGICS:
            raise ValueError(f"logic must be one of {LOGICS}, got {logic!r}")
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        if measure == "ratio" and (shown_times is None or shown_items is None):
            raise ValueError("measure 'ratio' needs shown_times and shown_items")
        self.times, self.items = _by_time(click_times, click_items)
        if measure == "ratio":
            self.shown_times, self.shown_items = _by_time(shown_times, shown_items)
        self.n_items, self.pool_size = n_items, pool_size
        self.logic, self.window, self.step = logic, window, step
        self.measure, self.min_impressions = measure, min_impressions

    def bucket_start(self, times: np.ndarray) -> np.ndarray:
        return (np.asarray(times) // self.step) * self.step

    def _period(self, t0: int) -> tuple[int | None, int]:
        if self.logic == "ptb":
            return t0 - self.step, t0
        return (None if self.window is None else t0 - self.window), t0

    def counts_before(self, t0: int) -> np.ndarray:
        """Clicks per article in the period the logic counts before bin start ``t0``."""
        return _count(self.times, self.items, *self._period(t0), self.n_items)

    def scores_before(self, t0: int) -> np.ndarray:
        """Popularity per article before bin start ``t0``: clicks, or clicks / showings (0
        where an article was shown fewer than ``min_impressions`` times)."""
        clicks = self.counts_before(t0).astype(np.float64)
        if self.measure == "clicks":
            return clicks
        shown = _count(self.shown_times, self.shown_items, *self._period(t0), self.n_items)
        ranked = shown >= max(self.min_impressions, 1)
        return np.where(ranked, clicks / np.maximum(shown, 1), 0.0)

    def pools(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pool articles and their popularity for each time: two ``[len(times), pool_size]``
        arrays, most popular first; -1 (popularity 0) where fewer articles were popular."""
        starts = self.bucket_start(times)
        buckets, inverse = np.unique(starts, return_inverse=True)
        pool = np.full((len(buckets), self.pool_size), -1, dtype=np.int64)
        weight = np.zeros((len(buckets), self.pool_size), dtype=np.float64)
        for b, t0 in enumerate(buckets):
            scores = self.scores_before(int(t0))
            clicks = self.counts_before(int(t0))
            popular = np.flatnonzero(scores > 0)
            order = np.lexsort((popular, -clicks[popular], -scores[popular]))
            top = popular[order][: self.pool_size]
            pool[b, : len(top)] = top
            weight[b, : len(top)] = scores[top]
        return pool[inverse], weight[inverse]


def _by_time(times: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], np.asarray(items)[order]


def _count(
    times: np.ndarray, items: np.ndarray, lo: int | None, hi: int, n_items: int
) -> np.ndarray:
    """Events per article with time in ``[lo, hi)`` (``lo`` None: from the start)."""
    end = np.searchsorted(times, hi, side="left")
    begin = 0 if lo is None else np.searchsorted(times, lo, side="left")
    return np.bincount(items[begin:end], minlength=n_items)


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
    *,
    mode: str = "add",
    selection: str = "sample",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``k`` impression negatives per click and ``popk`` popular ones, added to them or in
    place of the last ``popk`` of them (``mode``; module docstring).

    Returns ``(impression index [P], clicked article [P], negatives [P, n], dropped clicks)``
    with ``n = k + popk`` (add) or ``k`` (replace); each row's negatives hold the popular ones
    last.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if k < 1 or popk < 0 or (mode == "replace" and popk > k):
        raise ValueError(
            f"need k >= 1 and 0 <= popk (<= k in replace mode), got k={k}, popk={popk}"
        )
    if popk and popularity is None:
        raise ValueError("popk > 0 needs a Popularity")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    rows, positives = _positives(imps)
    neg_offsets, neg_values = _negatives_of(imps)
    has_negatives = np.diff(neg_offsets)[rows] > 0
    n_impression = k - popk if mode == "replace" else k
    dropped = 0
    if n_impression > 0:
        dropped = int((~has_negatives).sum())
        rows, positives = rows[has_negatives], positives[has_negatives]
    in_impression = _draw(neg_offsets, neg_values, rows, n_impression, rng)
    if popk == 0:
        return rows, positives, in_impression, dropped

    pool, weight = popularity.pools(imps.times[rows])
    allowed = (pool >= 0) & ~_member(pool, rows, *_seen(imps))
    allowed &= ~_clicked_by_then(imps, rows, pool)
    if selection == "top":  # the most popular allowed articles, in pool order
        keys = np.broadcast_to(np.arange(pool.shape[1], dtype=np.float64), pool.shape).copy()
    else:
        keys = rng.random(pool.shape)
        if weighting == "popularity":  # weighted sampling without replacement (exponential keys)
            keys = -np.log(keys) / np.where(weight > 0, weight, np.finfo(float).tiny)
    keys[~allowed] = np.inf
    take = np.argsort(keys, axis=1, kind="stable")[:, :popk]
    popular = np.take_along_axis(pool, take, axis=1)
    missing = ~np.take_along_axis(allowed, take, axis=1)
    if popular.shape[1] < popk:  # a pool smaller than popk
        pad = np.full((len(rows), popk - popular.shape[1]), -1, dtype=np.int64)
        popular = np.concatenate([popular, pad], axis=1)
        missing = np.concatenate([missing, np.ones(pad.shape, bool)], axis=1)
    # Too few pool articles allowed: fill from the impression; a click whose impression has
    # nothing to fill with (replace mode with popk = k only) is dropped.
    unfillable = missing.any(axis=1) & ~(np.diff(neg_offsets)[rows] > 0)
    if unfillable.any():
        dropped += int(unfillable.sum())
        keep = ~unfillable
        rows, positives, in_impression = rows[keep], positives[keep], in_impression[keep]
        popular, missing = popular[keep], missing[keep]
    if missing.any():
        need = np.flatnonzero(missing.any(axis=1))
        fill = _draw(neg_offsets, neg_values, rows[need], popk, rng)
        popular[need] = np.where(missing[need], fill, popular[need])
    return rows, positives, np.concatenate([in_impression, popular], axis=1), dropped


def _clicked_by_then(imps: Impressions, rows: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``pool[j, c]`` was clicked by the user of impression ``rows[j]`` in any training
    impression at or before its time (the history field is checked apart)."""
    _, user_of = np.unique(imps.users, return_inverse=True)
    click_row = np.repeat(np.arange(len(imps)), imps.sizes())[imps.labels > 0]
    if not len(click_row):
        return np.zeros(pool.shape, bool)
    n_items = int(max(pool.max(initial=0), imps.candidates.max(initial=0))) + 1
    keys = user_of[click_row].astype(np.int64) * n_items + imps.candidates[imps.labels > 0]
    order = np.lexsort((imps.times[click_row], keys))
    keys, times = keys[order], imps.times[click_row][order]
    unique, start = np.unique(keys, return_index=True)
    first = times[start]  # each (user, article)'s first click
    query = user_of[rows][:, None].astype(np.int64) * n_items + np.maximum(pool, 0)
    found = np.searchsorted(unique, query).clip(max=len(unique) - 1)
    hit = (unique[found] == query) & (pool >= 0)
    return hit & (first[found] <= imps.times[rows][:, None])


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

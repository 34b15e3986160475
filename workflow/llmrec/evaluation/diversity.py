"""Diversity and popularity of recommendation lists, beyond accuracy.

Every function takes ``top``, the ``[n_users, k]`` item ids that ``ranking.topk`` returns;
``-1`` is padding and is ignored (a list's length is its number of real items). Per-user
functions return a float64 array with one value per row of ``top``, NaN where the value is
undefined (an empty list; for intra-list diversity, fewer than two items).

``popularity`` is an array over all items, normally the number of distinct training users who
interacted with each item; ``novelty`` assumes exactly that (see there).
"""

from __future__ import annotations

import numpy as np

CHUNK = 4096
"""Users per step in ``intra_list_diversity``; bounds memory at CHUNK x k x dim floats."""


def _valid(top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``top`` with padding replaced by item 0 (safe to index with) and the mask of real items."""
    top = np.asarray(top, dtype=np.int64)
    if top.ndim != 2:
        raise ValueError(f"top must be [n_users, k], got shape {top.shape}")
    mask = top >= 0
    return np.where(mask, top, 0), mask


def _row_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over the masked-in entries of each row; NaN for an empty row."""
    total = np.where(mask, values, 0.0).sum(axis=1)
    count = mask.sum(axis=1)
    return np.divide(total, count, out=np.full(len(values), np.nan), where=count > 0)


def coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue's ``n_items`` items recommended to at least one user."""
    items, mask = _valid(top)
    return len(np.unique(items[mask])) / n_items


def gini(
    top: np.ndarray,
    n_items: int,
    population: np.ndarray | None = None,
    exposure: np.ndarray | None = None,
) -> float:
    """Gini coefficient of how often each item is recommended.

    With the values x of the population's items sorted ascending, x_1 <= ... <= x_n:

        G = sum_i (2i - n - 1) x_i / (n sum_i x_i)

    0 when every item gets the same value, (n - 1) / n when one item gets everything.

    Args:
        top: ``[n_users, k]`` recommended items (-1 padding).
        n_items: items in the catalogue.
        population: the items that could be recommended (e.g. the candidates of the evaluated
            impressions); default all ``n_items``. Items outside it that can never be
            recommended would otherwise count as never recommended and push G towards 1
            whatever the ranker does.
        exposure: per item of the catalogue, how often it could have been recommended (e.g.
            the number of impressions that showed it). Given, x is an item's recommendations
            per exposure, so a ranker that ignores the items scores near 0 even when the
            candidate lists themselves favour some items; items with no exposure are left out.

    With no recommendation at all the values are equal and G is 0.
    """
    items, mask = _valid(top)
    counts = np.bincount(items[mask], minlength=n_items).astype(np.float64)
    keep = np.ones(n_items, bool) if population is None else np.isin(np.arange(n_items), population)
    if exposure is not None:
        exposure = np.asarray(exposure, dtype=np.float64)
        keep &= exposure > 0
        counts = np.divide(counts, exposure, out=np.zeros(n_items), where=exposure > 0)
    values = np.sort(counts[keep])
    if values.sum() == 0:
        return 0.0
    n = len(values)
    weights = 2 * np.arange(1, n + 1) - n - 1
    return float((weights * values).sum() / (n * values.sum()))


def intra_list_diversity(
    top: np.ndarray,
    item_vectors: np.ndarray | None = None,
    item_categories: np.ndarray | None = None,
) -> np.ndarray:
    """Per user, the mean dissimilarity over all pairs of items in the list.

    Give exactly one of:
        item_vectors: ``[n_items, dim]``; dissimilarity is 1 - cosine similarity (so 0 for
            identical directions, 1 for orthogonal, 2 for opposite). A zero vector has cosine 0
            with everything.
        item_categories: ``[n_items]`` labels of any dtype; dissimilarity is 1 when the two
            items' labels differ, so the result is the share of pairs from different categories.

    NaN for lists with fewer than two items.
    """
    if (item_vectors is None) == (item_categories is None):
        raise ValueError("give exactly one of item_vectors and item_categories")
    items, mask = _valid(top)
    m = mask.sum(axis=1).astype(np.float64)
    pairs = m * (m - 1)  # ordered pairs i != j
    similar = np.empty(len(items))  # sum of similarity over ordered pairs
    if item_vectors is not None:
        vectors = np.asarray(item_vectors, dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        for lo in range(0, len(items), CHUNK):
            v = unit[items[lo : lo + CHUNK]] * mask[lo : lo + CHUNK, :, None]
            # sum_{i != j} cos_ij = |sum_i v_i|^2 - sum_i |v_i|^2: no k x k matrix needed.
            similar[lo : lo + CHUNK] = (v.sum(axis=1) ** 2).sum(axis=1) - (v**2).sum(axis=(1, 2))
    else:
        _, labels = np.unique(np.asarray(item_categories), return_inverse=True)
        for lo in range(0, len(items), CHUNK):
            c = np.where(mask[lo : lo + CHUNK], labels[items[lo : lo + CHUNK]], -1)
            equal = (c[:, :, None] == c[:, None, :]) & (c[:, :, None] >= 0)
            # The diagonal (each item with itself) is not a pair.
            similar[lo : lo + CHUNK] = equal.sum(axis=(1, 2)) - m[lo : lo + CHUNK]
    return np.divide(pairs - similar, pairs, out=np.full(len(items), np.nan), where=pairs > 0)


def average_popularity(top: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per user, the mean ``popularity`` of the recommended items."""
    items, mask = _valid(top)
    return _row_mean(np.asarray(popularity, dtype=np.float64)[items], mask)


def tail_share(top: np.ndarray, popularity: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """Per user, the share of recommended items outside the head (long-tail items).

    The head is the ``floor(head_share * n_items)`` most popular items, ranking items by
    ``popularity`` descending and ties by smaller item id first, so the head has a fixed size
    even when many items share a popularity.
    """
    popularity = np.asarray(popularity)
    n_items = len(popularity)
    # The epsilon keeps e.g. 0.29 * 100 = 28.999... from losing an item to float rounding.
    n_head = int(np.floor(head_share * n_items + 1e-9))
    by_rank = np.lexsort((np.arange(n_items), -popularity.astype(np.float64)))
    in_head = np.zeros(n_items, dtype=bool)
    in_head[by_rank[:n_head]] = True
    items, mask = _valid(top)
    return _row_mean((~in_head[items]).astype(np.float64), mask)


def novelty(top: np.ndarray, popularity: np.ndarray, n_users: int) -> np.ndarray:
    """Per user, the mean self-information of the recommended items, in bits.

        novelty = mean_{i in list} -log2(max(pop_i, 1) / n_users)

    ``popularity`` counts the distinct training users of each item, so pop_i / n_users is the
    chance a user knows item i. An item nobody interacted with is floored at one user: its
    self-information would otherwise be infinite, and log2(n_users) is the most any observed
    item can have.
    """
    items, mask = _valid(top)
    pop = np.maximum(np.asarray(popularity, dtype=np.float64), 1.0)
    return _row_mean(-np.log2(pop[items] / n_users), mask)

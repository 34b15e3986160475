"""How well embeddings of the numbers 0, 1, 2, ... keep the numbers' order.

Two measures of an ``(n, dim)`` matrix whose row ``i`` embeds the number ``i``, both on
Euclidean distances ``d``:

- :func:`adjacent_distance`: the mean distance between the embeddings of ``i`` and ``i + 1``,
  divided by the mean distance over all pairs of distinct numbers. Points evenly spaced on a
  line give ``3 / (n + 1)``; points in no order about 1.
- :func:`ordered_triples`: the share of triples ``i < j < k`` with ``d(i, j) < d(i, k)`` and
  ``d(j, k) < d(i, k)``: the outer pair is the farthest apart. A line gives 1; points in no
  order, whose three distances are equally likely to be the largest, about 1/3.

Where there are more pairs or triples than a limit, a fixed-seed uniform sample of them is used,
so the same embeddings always give the same numbers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

MAX_PAIRS = 1_000_000
"""Pairs of distinct numbers :func:`adjacent_distance` averages over before it samples."""

MAX_TRIPLES = 200_000
"""Triples :func:`ordered_triples` counts before it samples: all of 100 numbers' 161,700."""


def _vectors(embeddings: Tensor | np.ndarray) -> Tensor:
    vectors = torch.as_tensor(embeddings).detach().cpu().double()
    if vectors.ndim != 2 or len(vectors) < 3:
        raise ValueError(
            f"need an (n, dim) matrix of n >= 3 numbers' embeddings, got shape "
            f"{tuple(vectors.shape)}"
        )
    return vectors


def _distance(vectors: Tensor, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 15) -> Tensor:
    """Distances of the row pairs ``(a[m], b[m])``, a chunk at a time: the differences of a
    million pairs of wide rows would not fit in memory at once."""
    a, b = torch.from_numpy(a), torch.from_numpy(b)
    return torch.cat(
        [
            (vectors[a[lo : lo + chunk]] - vectors[b[lo : lo + chunk]]).norm(dim=1)
            for lo in range(0, len(a), chunk)
        ]
    )


def mean_pairwise_distance(
    embeddings: Tensor | np.ndarray, max_pairs: int = MAX_PAIRS, seed: int = 0
) -> float:
    """Mean Euclidean distance over all pairs of distinct rows, or over ``max_pairs`` pairs drawn
    uniformly (with replacement, generator seeded with ``seed``) where there are more."""
    vectors = _vectors(embeddings)
    n = len(vectors)
    if n * (n - 1) // 2 <= max_pairs:
        return torch.pdist(vectors).mean().item()
    rng = np.random.default_rng(seed)
    a = rng.integers(n, size=max_pairs)
    b = (a + rng.integers(1, n, size=max_pairs)) % n  # any row but a, uniformly
    return _distance(vectors, a, b).mean().item()


def adjacent_distance(
    embeddings: Tensor | np.ndarray, max_pairs: int = MAX_PAIRS, seed: int = 0
) -> float:
    """Mean distance between the embeddings of ``i`` and ``i + 1`` over the mean distance of all
    pairs (:func:`mean_pairwise_distance`).

    Args:
        embeddings: ``(n, dim)``, row ``i`` the number ``i``'s embedding; ``n >= 3``.
        max_pairs: most pairs averaged exactly for the normaliser. (default: :obj:`MAX_PAIRS`)
        seed: seed of the normaliser's sample, where it samples. (default: :obj:`0`)
    """
    vectors = _vectors(embeddings)
    adjacent = (vectors[1:] - vectors[:-1]).norm(dim=1).mean().item()
    return adjacent / mean_pairwise_distance(vectors, max_pairs, seed)


def _triples(n: int, max_triples: int, seed: int) -> np.ndarray:
    """``(m, 3)`` sorted index triples: all of them, or ``max_triples`` drawn uniformly."""
    if math.comb(n, 3) <= max_triples:
        every = itertools.chain.from_iterable(itertools.combinations(range(n), 3))
        return np.fromiter(every, dtype=np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    # Three distinct numbers, uniformly: draw, then redraw the rows that repeat one.
    triples = rng.integers(n, size=(max_triples, 3))
    while True:
        triples.sort(axis=1)
        bad = (triples[:, 0] == triples[:, 1]) | (triples[:, 1] == triples[:, 2])
        if not bad.any():
            return triples
        triples[bad] = rng.integers(n, size=(int(bad.sum()), 3))


def ordered_triples(
    embeddings: Tensor | np.ndarray, max_triples: int = MAX_TRIPLES, seed: int = 0
) -> float:
    """Share of triples ``i < j < k`` with ``d(i, j) < d(i, k)`` and ``d(j, k) < d(i, k)``.

    Args:
        embeddings: ``(n, dim)``, row ``i`` the number ``i``'s embedding; ``n >= 3``.
        max_triples: most triples counted exactly; beyond, that many drawn uniformly.
            (default: :obj:`MAX_TRIPLES`)
        seed: seed of the sample, where it samples. (default: :obj:`0`)
    """
    vectors = _vectors(embeddings)
    t = _triples(len(vectors), max_triples, seed)
    outer = _distance(vectors, t[:, 0], t[:, 2])
    ordered = (_distance(vectors, t[:, 0], t[:, 1]) < outer) & (
        _distance(vectors, t[:, 1], t[:, 2]) < outer
    )
    return ordered.double().mean().item()

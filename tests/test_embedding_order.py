"""The two order measures of number embeddings on hand-made embeddings: points on a line, the
same points shuffled, random points; exact and sampled counts agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmrec.evaluation.embedding_order import (
    adjacent_distance,
    mean_pairwise_distance,
    ordered_triples,
)


def line(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` points evenly spaced on a random line through a random point."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=dim) + np.arange(n)[:, None] * rng.normal(size=dim)


@pytest.mark.parametrize("n", [3, 10, 100])
def test_a_line_is_perfectly_ordered(n):
    # Mean distance of all pairs of 0..n-1 is (n+1)/3 spacings; neighbours are one apart.
    assert adjacent_distance(line(n)) == pytest.approx(3 / (n + 1))
    assert ordered_triples(line(n)) == 1.0


def test_random_points_are_not_ordered():
    points = np.random.default_rng(1).normal(size=(100, 16))
    assert ordered_triples(points) == pytest.approx(1 / 3, abs=0.02)
    assert adjacent_distance(points) == pytest.approx(1.0, abs=0.05)


def test_a_shuffled_line_loses_its_order():
    points = line(100)[np.random.default_rng(2).permutation(100)]
    assert adjacent_distance(points) > 0.5  # a line is 3/101
    # Three points on a line: the outer pair is the farthest apart in 1/3 of random orders.
    assert ordered_triples(points) == pytest.approx(1 / 3, abs=0.02)


def test_a_closed_ring_breaks_triples_but_not_neighbours():
    # Numbers on a circle: neighbours close, but i and k far apart in number can be close.
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert adjacent_distance(ring) < 0.15
    assert 0.4 < ordered_triples(ring) < 0.9


def test_more_triples_than_the_limit_are_sampled_with_a_fixed_seed():
    points = np.random.default_rng(3).normal(size=(60, 4)) + np.arange(60)[:, None] * 0.2
    exact = ordered_triples(points)  # C(60, 3) = 34,220 <= the default limit
    assert math.comb(60, 3) < 200_000
    sampled = ordered_triples(points, max_triples=20_000)
    assert sampled == ordered_triples(torch.from_numpy(points), max_triples=20_000)
    assert sampled != ordered_triples(points, max_triples=20_000, seed=1)
    assert sampled == pytest.approx(exact, abs=0.02)


def test_more_pairs_than_the_limit_are_sampled():
    points = np.random.default_rng(4).normal(size=(300, 4))
    exact = mean_pairwise_distance(points)
    sampled = mean_pairwise_distance(points, max_pairs=20_000)
    assert sampled != exact and sampled == pytest.approx(exact, rel=0.02)
    diffs = points[:, None] - points[None]
    assert exact == pytest.approx(np.linalg.norm(diffs, axis=2)[np.triu_indices(300, 1)].mean())


@pytest.mark.parametrize("shape", [(2, 4), (5,)])
def test_needs_a_matrix_of_three_numbers_or_more(shape):
    with pytest.raises(ValueError, match="n >= 3"):
        ordered_triples(np.zeros(shape))

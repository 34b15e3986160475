"""The arithmetic study's embedding measures and co-occurrence counts on hand cases (its table:
tests/test_tables.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.studies.arithmetic_report import consecutive_pairs, similarity_by_distance


def test_consecutive_pairs_counted_on_training_parts_only():
    # Items 0..3 numbered 1001..1004. Users' last two items are not training data.
    index = ["1001", "1002", "1003", "1004"]
    sequences = [
        np.array([0, 1, 9, 9]),  # trains on 0, 1: pair (1001, 1002) adjacent
        np.array([2, 0, 1, 9, 9]),  # trains on 2, 0, 1
        np.array([3, 9, 2, 1]),
    ]  # trains on 3, 9: the 2 and 1 at the end are held out
    stats = consecutive_pairs(sequences, index)
    assert stats["pairs"] == 3  # (1001,1002), (1002,1003), (1003,1004)
    # co-occurring: (0,1) by users 0 and 1; (1,2) by user 1; (2,3) by nobody
    assert stats["cooccur"] == pytest.approx(2 / 3)
    assert stats["users"] == pytest.approx((2 + 1 + 0) / 3)
    # adjacent in a training part: (0,1) yes; (1,2) no (2 then 0 then 1); (2,3) no
    assert stats["adjacent"] == pytest.approx(1 / 3)


def test_similarity_by_distance_falls_for_continuous_embeddings():
    angles = torch.linspace(0, np.pi / 2, 100)
    smooth = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    curve = similarity_by_distance(smooth, list(range(100)), max_distance=10)
    assert np.all(np.diff(curve) < 0) and curve[0] == pytest.approx(np.cos(np.pi / 2 / 99))
    scrambled = smooth[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    assert similarity_by_distance(scrambled, list(range(100)), 10)[0] < curve[0] - 0.1

"""Tail-aware leave-one-out evaluation: item groups by popularity, each segment's metrics on
hand-made scores whose ranks are known, and the within-tail ranking."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from llmrec.evaluation.segments import (
    BODY,
    HEAD,
    STRICT_TAIL,
    evaluate_segments,
    popularity_groups,
    segment_columns,
)


def test_groups_take_the_shares_of_items_ties_by_smaller_id():
    counts = np.array([5, 0, 9, 0, 3, 3, 1, 0, 2, 7])
    groups = popularity_groups(counts, head_share=0.2, strict_tail_share=0.3)
    assert list(np.flatnonzero(groups == HEAD)) == [2, 9]  # 9 and 7 events
    # Three least popular: the zeros 1, 3, 7; by smaller id first, 7 is the last of all.
    assert list(np.flatnonzero(groups == STRICT_TAIL)) == [1, 3, 7]
    assert (groups == BODY).sum() == 5
    with pytest.raises(ValueError, match="between 0 and 1"):
        popularity_groups(counts, head_share=1.0)


# 4 items: 0 is the head (share 0.25), 3 the strict tail (share 0.25), 1 and 2 the body.
COUNTS = np.array([10, 5, 4, 0])
# Scores give every user the same order 0 > 1 > 2 > 3.
SCORES = torch.tensor([[4.0, 3.0, 2.0, 1.0]]).repeat(4, 1)


def run(targets, exclude=None, train_targets=(1, 9, 2, 9), ks=(1, 2)):
    users = np.arange(len(targets))
    exclude = exclude if exclude is not None else sp.csr_matrix((4, 4), dtype=np.float32)
    groups = popularity_groups(COUNTS, 0.25, 0.25)
    return evaluate_segments(
        lambda u: SCORES[u],
        users,
        np.array(targets),
        exclude,
        groups,
        np.array(train_targets),
        list(ks),
        sparse_max=5,
    )


def test_each_segment_holds_its_users_and_nan_elsewhere():
    table, coverage = run([0, 1, 3, 2])
    assert list(table.columns) == ["user_id", *segment_columns([1, 2])]
    np.testing.assert_array_equal(table["overall/hit@1"], [1, 0, 0, 0])
    np.testing.assert_array_equal(table["overall/hit@2"], [1, 1, 0, 0])
    # Tail: targets outside the head (users 1, 2, 3).
    assert table["tail/hit@2"].isna().tolist() == [True, False, False, False]
    assert table["strict_tail/hit@2"].notna().tolist() == [False, False, True, False]
    # Sparse: at most 5 training target events (users 0 and 2).
    assert table["sparse/hit@1"].notna().tolist() == [True, False, True, False]
    # NDCG of rank 2 is 1 / log2(3).
    assert table.loc[1, "overall/ndcg@2"] == pytest.approx(1 / np.log2(3))
    # Every list is [0, 1]: half of it is tail.
    np.testing.assert_allclose(table["overall/tail_share@2"], 0.5)
    assert coverage["overall"] == {"coverage@1": 0.25, "coverage@2": 0.5}


def test_within_the_tail_the_head_items_are_no_candidates():
    table, coverage = run([0, 1, 3, 2])
    # Without item 0, the order is 1 > 2 > 3: user 1's item is first, user 3's second.
    np.testing.assert_array_equal(table["tail_within/hit@1"].tolist()[1:], [1, 0, 0])
    np.testing.assert_array_equal(table["tail_within/hit@2"].tolist()[1:], [1, 0, 1])
    assert np.isnan(table.loc[0, "tail_within/hit@1"])
    np.testing.assert_allclose(table["tail_within/tail_share@2"].dropna(), 1.0)
    assert coverage["tail_within"]["coverage@2"] == 0.5  # items 1 and 2


def test_excluded_items_are_never_ranked_and_a_missing_target_is_refused():
    exclude = sp.csr_matrix(([1.0], ([1], [0])), shape=(4, 4))  # user 1 has item 0 masked
    table, _ = run([0, 1, 3, 2], exclude=exclude)
    assert table.loc[1, "overall/hit@1"] == 1  # item 1 moves up to first
    with pytest.raises(ValueError, match="held-out items"):
        evaluate_segments(
            lambda u: SCORES[u],
            np.arange(3),
            np.array([0, 1]),
            exclude,
            popularity_groups(COUNTS, 0.25, 0.25),
            np.zeros(4),
            [1],
        )

"""Ranking metrics and diversity against values worked out by hand (significance:
test_significance.py; the metrics against scikit-learn: test_metrics_reference.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from llmrec.evaluation import (
    average_popularity,
    coverage,
    evaluate,
    gini,
    intra_list_diversity,
    novelty,
    ranking_metrics,
    summarize,
    tail_share,
    topk,
)


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """A 0/1 user x item matrix whose row u holds the items in rows[u]."""
    users = [u for u, items in enumerate(rows) for _ in items]
    items = [i for row in rows for i in row]
    return sp.csr_matrix((np.ones(len(items)), (users, items)), shape=(len(rows), n_items))


def fixed_scores(matrix: list[list[float]]):
    """A scores_fn that looks rows up in a fixed [n_users, n_items] matrix."""
    table = torch.tensor(matrix, dtype=torch.float32)
    return lambda users: table[users]


# ---------------------------------------------------------------- ranking_metrics


def test_metrics_match_hand_computed_values():
    # user 0: truth {2, 5, 9}, list [5, 1, 9, 3, 4] -> hits at ranks 1 and 3.
    # user 1: truth {7},       list [0, 1, 7, 3, 4] -> one hit at rank 3.
    # user 2: truth {4},       list [4, -1, -1, -1, -1] (padding) -> hit at rank 1.
    # user 3: truth {0},       list [3, -1, ...]: -1 must never match (not even as "last item").
    truth = csr([[2, 5, 9], [7], [4], [0, 9]], n_items=10)
    top = np.array([[5, 1, 9, 3, 4], [0, 1, 7, 3, 4], [4, -1, -1, -1, -1], [3, -1, -1, -1, -1]])
    got = ranking_metrics(top, truth, np.arange(4), ks=[1, 3, 5]).set_index("user_id")

    idcg3 = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # = 1 + 0.6309 + 0.5
    dcg_u0 = 1 / math.log2(2) + 1 / math.log2(4)  # ranks 1 and 3 = 1.5
    expected = {
        0: {
            "recall@5": 2 / 3,
            "precision@5": 2 / 5,
            "hit@5": 1,
            "mrr@5": 1 / 1,
            "ndcg@5": dcg_u0 / idcg3,
            # top-3 holds the same two hits; IDCG@3 also runs over min(3, 3) = 3 ranks.
            "recall@3": 2 / 3,
            "precision@3": 2 / 3,
            "ndcg@3": dcg_u0 / idcg3,
            # top-1 = [5], a hit; IDCG@1 = 1/log2(2) = 1.
            "recall@1": 1 / 3,
            "precision@1": 1,
            "hit@1": 1,
            "mrr@1": 1,
            "ndcg@1": 1,
        },
        1: {
            "recall@5": 1,
            "precision@5": 1 / 5,
            "hit@5": 1,
            "mrr@5": 1 / 3,
            # DCG = 1/log2(3 + 1) = 0.5; IDCG over min(1, 5) = 1 rank = 1.
            "ndcg@5": 0.5,
            "mrr@3": 1 / 3,
            "recall@1": 0,
            "hit@1": 0,
            "mrr@1": 0,
            "ndcg@1": 0,
        },
        2: {"recall@5": 1, "precision@5": 1 / 5, "hit@5": 1, "mrr@5": 1, "ndcg@5": 1},
        3: {"recall@5": 0, "precision@5": 0, "hit@5": 0, "mrr@5": 0, "ndcg@5": 0},
    }
    for user, values in expected.items():
        for column, value in values.items():
            assert got.loc[user, column] == pytest.approx(value), (user, column)


def test_metric_columns_and_users_with_empty_truth_are_skipped():
    truth = csr([[1], [], [2]], n_items=4)
    top = np.array([[1, 0], [0, 1], [0, 1]])
    got = ranking_metrics(top, truth, np.array([0, 1, 2]), ks=[1, 2])
    assert list(got.columns) == [
        "user_id",
        "recall@1",
        "recall@2",
        "ndcg@1",
        "ndcg@2",
        "mrr@1",
        "mrr@2",
        "hit@1",
        "hit@2",
        "precision@1",
        "precision@2",
    ]
    assert got["user_id"].tolist() == [0, 2]  # user 1 has no truth: left out, not a zero row
    # Means over users 0 (hit at rank 1) and 2 (no hit): hit@1 = (1 + 0) / 2.
    assert summarize(got)["hit@1"] == pytest.approx(0.5)
    assert "user_id" not in summarize(got)


def test_metrics_reject_a_list_shorter_than_the_cutoff():
    with pytest.raises(ValueError, match="cut-offs"):
        ranking_metrics(np.zeros((1, 3), dtype=int), csr([[0]], 5), np.array([0]), ks=[5])


# ---------------------------------------------------------------- topk


def test_excluded_items_never_appear_even_with_the_highest_score():
    scores = fixed_scores([[9.0, 1.0, 5.0, 3.0], [0.0, 9.0, 8.0, 7.0]])
    exclude = csr([[0], [1, 2]], n_items=4)
    top = topk(scores, np.array([0, 1]), exclude, k=2)
    assert top.tolist() == [[2, 3], [3, 0]]
    assert top.dtype == np.int64


def test_ties_are_broken_by_smaller_item_id_inside_and_at_the_cutoff():
    scores = fixed_scores([[1.0, 2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    none = csr([[], []], n_items=5)
    # Three items tie at 2.0; only two fit in the list, so ids 1 and 2 get in, 3 does not.
    assert topk(scores, np.array([0]), none, k=2).tolist() == [[1, 2]]
    assert topk(scores, np.array([0]), none, k=4).tolist() == [[1, 2, 3, 0]]
    assert topk(scores, np.array([1]), none, k=3).tolist() == [[0, 1, 2]]


def test_fewer_candidates_than_k_are_padded_with_minus_one():
    scores = fixed_scores([[4.0, 3.0, 2.0, 1.0]])
    exclude = csr([[0, 2]], n_items=4)
    assert topk(scores, np.array([0]), exclude, k=3).tolist() == [[1, 3, -1]]
    # k beyond the catalogue: all candidates, then padding.
    assert topk(scores, np.array([0]), exclude, k=6).tolist() == [[1, 3, -1, -1, -1, -1]]


def test_batching_gives_the_same_lists_as_one_batch():
    rng = np.random.default_rng(0)
    # Small integer scores make ties common, so the tie rule is exercised across batches.
    table = torch.from_numpy(rng.integers(0, 4, size=(23, 17)).astype(np.float32))
    exclude = sp.csr_matrix(rng.random((23, 17)) < 0.3)
    users = rng.permutation(23)
    whole = topk(lambda u: table[u], users, exclude, k=6, batch_size=1000)
    for batch_size in (1, 4, 7):
        assert np.array_equal(topk(lambda u: table[u], users, exclude, 6, batch_size), whole)


def test_a_large_catalogue_is_ranked_in_smaller_batches(monkeypatch):
    from llmrec.evaluation import ranking

    rng = np.random.default_rng(2)
    table = torch.from_numpy(rng.random((40, 17)).astype(np.float32))
    exclude = sp.csr_matrix((40, 17))
    whole = topk(lambda u: table[u], np.arange(40), exclude, k=5)
    sizes = []

    def scores(users):
        sizes.append(len(users))
        return table[users]

    # A budget of 34 scores is two users of 17 items at a time.
    monkeypatch.setattr(ranking, "MAX_BATCH_SCORES", 34)
    assert np.array_equal(topk(scores, np.arange(40), exclude, k=5), whole)
    assert max(sizes) == 2 and sum(sizes) == 40


def test_topk_matches_a_full_stable_sort():
    rng = np.random.default_rng(1)
    table = rng.integers(0, 5, size=(30, 12)).astype(np.float32)
    exclude = sp.csr_matrix(rng.random((30, 12)) < 0.5)
    top = topk(lambda u: torch.from_numpy(table)[u], np.arange(30), exclude, k=8)
    for u in range(30):
        candidates = np.setdiff1d(np.arange(12), exclude[u].indices)
        # Score descending, then item id ascending; -1 after the last candidate.
        ranked = candidates[np.lexsort((candidates, -table[u, candidates]))][:8]
        assert top[u].tolist() == ranked.tolist() + [-1] * (8 - len(ranked))


def test_topk_leaves_the_callers_scores_untouched_and_rejects_nan():
    table = torch.tensor([[3.0, 2.0, 1.0]])
    topk(lambda u: table[0:1], np.array([0]), csr([[0]], 3), k=1)  # a view, not a copy
    assert table.tolist() == [[3.0, 2.0, 1.0]]
    with pytest.raises(ValueError, match="NaN"):
        topk(fixed_scores([[1.0, float("nan")]]), np.array([0]), csr([[]], 2), k=1)
    with pytest.raises(ValueError, match="shape"):
        topk(fixed_scores([[1.0, 2.0]]), np.array([0]), csr([[]], 3), k=1)


def test_evaluate_ranks_only_users_with_truth_and_excludes_seen_items():
    # Item 0 scores highest for everyone but user 0 has seen it; user 1 has no test item.
    scores = fixed_scores([[9.0, 5.0, 1.0, 0.0]] * 3)
    truth = csr([[1], [], [2]], n_items=4)
    exclude = csr([[0], [], []], n_items=4)
    got = evaluate(scores, truth, exclude, ks=[1, 2])
    assert got["user_id"].tolist() == [0, 2]
    # user 0: list [1, 2] -> hit at rank 1; user 2: list [0, 1] -> no hit.
    assert got["hit@1"].tolist() == [1.0, 0.0]
    assert got["mrr@2"].tolist() == [1.0, 0.0]


# ---------------------------------------------------------------- diversity


def test_coverage_counts_distinct_items_over_the_catalogue():
    # Items 0 and 1 are recommended (padding ignored): 2 of 4.
    assert coverage(np.array([[0, 1], [1, -1]]), n_items=4) == pytest.approx(0.5)


def test_gini_of_equal_concentrated_and_intermediate_counts():
    assert gini(np.array([[0, 1], [2, 3]]), n_items=4) == pytest.approx(0.0)
    # Everything on item 2 of 5: (n - 1) / n = 4 / 5.
    assert gini(np.array([[2], [2], [2]]), n_items=5) == pytest.approx(4 / 5)
    # Counts [0, 1, 3]: weights 2i - n - 1 = [-2, 0, 2] -> 6; n * sum = 3 * 4 = 12 -> 0.5.
    assert gini(np.array([[1, 2], [2, -1], [2, -1]]), n_items=3) == pytest.approx(0.5)


def test_gini_over_the_population_and_per_exposure():
    # Items 0-2 can be recommended; 3-9 never could. Over the catalogue, the idle items make
    # even an even spread look concentrated; over the population it is 0.
    top = np.array([[0, 1], [2, 0], [1, 2]])
    assert gini(top, n_items=10) > 0.6
    assert gini(top, n_items=10, population=np.array([0, 1, 2])) == pytest.approx(0.0)
    # Item 0 was shown twice as often and recommended twice as often: equal per showing.
    top = np.array([[0], [0], [1], [2]])
    exposure = np.array([4, 2, 2] + [0] * 7)
    assert gini(top, 10, np.array([0, 1, 2])) > 0.1
    assert gini(top, 10, np.array([0, 1, 2]), exposure) == pytest.approx(0.0)


def test_random_ranker_low_and_concentrated_ranker_high_gini_of_dev_recommendations():
    """The POPK table's Gini: a ranker that ignores the articles must score low, one that
    always puts the same articles first high, on candidate lists skewed like MIND's."""
    from llmrec.studies.popk import recommendation_gini

    rng = np.random.default_rng(0)
    n_items, shown = 5000, np.arange(400)  # most of the catalogue is never a dev candidate
    weight = 1 / np.arange(1, len(shown) + 1)  # some candidates are shown far more often
    lists = [
        rng.choice(shown, int(rng.integers(15, 40)), replace=False, p=weight / weight.sum())
        for _ in range(3000)
    ]
    random_top = np.array([rng.permutation(c)[:10] for c in lists])
    favourite = rng.permutation(len(shown))  # one fixed preference order over the articles
    concentrated = np.array([c[np.argsort(favourite[c])][:10] for c in lists])
    assert recommendation_gini(random_top, lists, n_items) < 0.15
    assert recommendation_gini(concentrated, lists, n_items) > 0.5
    # Over the whole catalogue both looked alike (the old column).
    assert gini(random_top, n_items) > 0.9 and gini(concentrated, n_items) > 0.9


def test_intra_list_diversity_with_categories():
    categories = np.array(["a", "a", "b", "c"])
    top = np.array([[0, 1, 2], [0, 1, -1], [3, -1, -1]])
    got = intra_list_diversity(top, item_categories=categories)
    # user 0: pairs (0,1) same, (0,2) and (1,2) differ -> 2/3; user 1: one same pair -> 0;
    # user 2: one item, no pair -> NaN.
    assert got[:2] == pytest.approx([2 / 3, 0.0])
    assert np.isnan(got[2])


def test_intra_list_diversity_with_vectors():
    vectors = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [-1, 0, 0], [3, 3, 0]])
    top = np.array([[0, 1, 2], [0, 3, -1], [0, 4, -1], [0, 5, 1]])
    got = intra_list_diversity(top, item_vectors=vectors)
    # orthogonal -> 1 - 0 = 1; same direction (any length) -> 0; opposite -> 1 - (-1) = 2;
    # [e1, (1,1)/sqrt2, e2]: cosines 1/sqrt2, 0, 1/sqrt2 -> mean(1 - cos) = (3 - sqrt2) / 3.
    assert got == pytest.approx([1.0, 0.0, 2.0, (3 - math.sqrt(2)) / 3])
    with pytest.raises(ValueError, match="exactly one"):
        intra_list_diversity(top)


def test_average_popularity_and_novelty():
    popularity = np.array([8, 4, 1, 0])
    top = np.array([[0, 1], [2, 3], [-1, -1]])
    assert average_popularity(top, popularity)[:2] == pytest.approx([6.0, 0.5])
    got = novelty(top, popularity, n_users=8)
    # user 0: -log2(8/8) = 0 and -log2(4/8) = 1 -> 0.5.
    # user 1: -log2(1/8) = 3, and item 3's zero popularity is floored at 1 user -> 3.
    assert got[:2] == pytest.approx([0.5, 3.0])
    assert np.isnan(got[2])  # an empty list has no mean


def test_tail_share_breaks_popularity_ties_by_item_id():
    # 10 items, head = 20% = 2 items. Items 1, 2 and 7 tie at the top; ids 1 and 2 win.
    popularity = np.array([5, 9, 9, 1, 0, 0, 3, 9, 2, 2])
    top = np.array([[1, 7, 3], [2, -1, -1], [0, 1, 2]])
    # user 0: item 1 head, 7 and 3 tail -> 2/3; user 1: only head -> 0; user 2: 0 tail -> 1/3.
    assert tail_share(top, popularity) == pytest.approx([2 / 3, 0.0, 1 / 3])


# --- MIND impression metrics ---------------------------------------------------------------------


def test_impression_metrics_match_hand_computed_values():
    from llmrec.evaluation.impressions import impression_metrics

    # Ranked by score: a(0), b(1), d(1), c(0). Clicked b and d at ranks 2 and 3.
    frame = impression_metrics(
        [np.array([0, 1, 0, 1])], [np.array([0.9, 0.8, 0.1, 0.5])], impression_ids=[42]
    )
    row = frame.iloc[0]
    assert row["impression_id"] == 42
    assert row["auc"] == pytest.approx(0.5)  # (b > c) and (d > c) of 4 pairs
    assert row["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    assert row["ndcg@5"] == pytest.approx(dcg / (1 + 1 / math.log2(3)))
    assert row["ndcg@10"] == pytest.approx(row["ndcg@5"])


def test_impression_metrics_cutoff_ties_and_one_class():
    from llmrec.evaluation.impressions import auc, mrr, ndcg

    labels = np.zeros(12, dtype=int)
    labels[7] = 1
    scores = -np.arange(12, dtype=float)  # shown order = ranked order; the click is 8th
    assert ndcg(labels, scores, 5) == 0.0
    assert ndcg(labels, scores, 10) == pytest.approx(1 / math.log2(9))
    assert auc(labels, scores) == pytest.approx(4 / 11)  # above 4 of the 11 non-clicks
    # Ties: a click tied with a non-click is half right; shown order breaks the rank tie.
    assert auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    assert mrr(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_impression_auc_agrees_with_pairs_counted_directly():
    from llmrec.evaluation.impressions import auc

    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 2, 15)
        labels[:2] = [0, 1]
        scores = rng.integers(0, 5, 15).astype(float)  # many ties
        pos, neg = scores[labels == 1], scores[labels == 0]
        pairs = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
        assert auc(labels, scores) == pytest.approx(pairs / (len(pos) * len(neg)))

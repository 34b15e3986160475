"""The hand-written metrics against scikit-learn on random data, so that an edit cannot drift
from the standard definitions unnoticed (scikit-learn is a test-only dependency)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import (
    label_ranking_average_precision_score,
    ndcg_score,
    roc_auc_score,
    top_k_accuracy_score,
)

from llmrec.evaluation import evaluate
from llmrec.evaluation.impressions import impression_metrics

N_USERS, N_ITEMS = 60, 40


def random_ranking_case(seed: int, relevant_per_user: int):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(N_USERS, N_ITEMS))  # continuous: no ties
    truth = np.zeros((N_USERS, N_ITEMS))
    for u in range(N_USERS):
        truth[u, rng.choice(N_ITEMS, relevant_per_user, replace=False)] = 1
    exclude = sp.csr_matrix((N_USERS, N_ITEMS))  # nothing masked: sklearn ranks every item
    per_user = evaluate(
        lambda users: torch.from_numpy(scores[users.numpy()]),
        sp.csr_matrix(truth),
        exclude,
        ks=[1, 5, 10, N_ITEMS],
    )
    return scores, truth, per_user


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("relevant", [1, 3])
def test_ndcg_matches_sklearn(seed, relevant):
    scores, truth, per_user = random_ranking_case(seed, relevant)
    for k in (1, 5, 10, N_ITEMS):
        expected = [ndcg_score(truth[[u]], scores[[u]], k=k) for u in range(N_USERS)]
        assert per_user[f"ndcg@{k}"].to_numpy() == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hit_and_mrr_match_sklearn_with_one_relevant_item(seed):
    scores, truth, per_user = random_ranking_case(seed, 1)
    labels = truth.argmax(1)
    for k in (1, 5, 10):
        hits = [
            top_k_accuracy_score([labels[u]], scores[[u]], k=k, labels=range(N_ITEMS))
            for u in range(N_USERS)
        ]
        assert per_user[f"hit@{k}"].to_numpy() == pytest.approx(hits)
        assert per_user[f"recall@{k}"].to_numpy() == pytest.approx(hits)
    # With one relevant item, label-ranking average precision is its reciprocal rank.
    rr = [label_ranking_average_precision_score(truth[[u]], scores[[u]]) for u in range(N_USERS)]
    assert per_user[f"mrr@{N_ITEMS}"].to_numpy() == pytest.approx(rr)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_impression_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels, scores = [], []
    for _ in range(50):
        size = int(rng.integers(2, 30))
        y = (rng.random(size) < 0.2).astype(int)
        y[rng.integers(size)] = 1  # at least one click
        labels.append(y)
        scores.append(rng.normal(size=size))
    got = impression_metrics(labels, scores)
    for i, (y, s) in enumerate(zip(labels, scores)):
        row = got.iloc[i]
        if 0 < y.sum() < len(y):
            assert row["auc"] == pytest.approx(roc_auc_score(y, s))
        else:
            assert np.isnan(row["auc"])
        for k in (5, 10):  # binary gains: MIND's 2^label - 1 equals sklearn's label
            assert row[f"ndcg@{k}"] == pytest.approx(ndcg_score([y], [s], k=k))
        if y.sum() == 1:  # MIND's MRR with one click is its reciprocal rank
            assert row["mrr"] == pytest.approx(label_ranking_average_precision_score([y], [s]))


def test_auc_counts_a_tie_as_one_half_like_sklearn():
    y, s = np.array([1, 0, 0, 1]), np.array([0.5, 0.5, 0.1, 0.9])
    assert impression_metrics([y], [s])["auc"].iloc[0] == pytest.approx(roc_auc_score(y, s))

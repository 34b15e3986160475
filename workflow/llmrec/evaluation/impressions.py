"""MIND's impression metrics: AUC, MRR, nDCG@5 and nDCG@10 of each impression, then averaged.

An impression is a list of candidate articles shown to a user with click labels. Each metric is
computed within one impression from the model's scores and averaged over impressions, as MIND's
official evaluation script does (Wu et al., "MIND: A Large-scale Dataset for News
Recommendation", ACL 2020):

- AUC: the share of (clicked, not clicked) pairs ranked the right way; ties count one half.
- MRR: the mean over clicked articles of 1 / rank (MIND's ``mrr_score``: the sum of reciprocal
  ranks of the clicked articles divided by their number).
- nDCG@k: DCG of the top k with gain ``2^label - 1`` and discount ``log2(rank + 1)``, over the
  DCG of the ideal order.

Ranks order the candidates by score, highest first; tied scores keep the order in which the
candidates were shown (MIND's script leaves ties to ``np.argsort``). Impressions without a click
or without a non-click have no AUC; they get NaN and are left out of AUC's mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

IMPRESSION_METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of one impression (NaN without both classes)."""
    labels = np.asarray(labels) > 0
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: a tie between a click and a non-click counts 1/2
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def mrr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean reciprocal rank of the clicked articles of one impression."""
    ranked = np.asarray(labels, dtype=np.float64)[_order(scores)]
    if ranked.sum() == 0:
        return float("nan")
    return float((ranked / np.arange(1, len(ranked) + 1)).sum() / ranked.sum())


def _dcg(gains: np.ndarray, k: int) -> float:
    gains = gains[:k]
    return float(((2.0**gains - 1) / np.log2(np.arange(2, len(gains) + 2))).sum())


def ndcg(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """nDCG@k of one impression."""
    labels = np.asarray(labels, dtype=np.float64)
    ideal = _dcg(np.sort(labels)[::-1], k)
    if ideal == 0:
        return float("nan")
    return _dcg(labels[_order(scores)], k) / ideal


def impression_metrics(
    labels: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    impression_ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per impression: ``impression_id`` (or its position) and the four metrics."""
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} label lists but {len(scores)} score lists")
    rows = []
    for y, s in zip(labels, scores):
        if len(y) != len(s):
            raise ValueError(f"an impression has {len(y)} labels but {len(s)} scores")
        rows.append((auc(y, s), mrr(y, s), ndcg(y, s, 5), ndcg(y, s, 10)))
    frame = pd.DataFrame(rows, columns=list(IMPRESSION_METRICS))
    ids = np.arange(len(rows)) if impression_ids is None else np.asarray(impression_ids)
    frame.insert(0, "impression_id", ids)
    return frame

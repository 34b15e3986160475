"""Evaluation shared by every study: full-ranking metrics, significance tests, diversity."""

from .diversity import average_popularity, coverage, gini, intra_list_diversity, novelty, tail_share
from .ranking import METRICS, PAD, ScoresFn, evaluate, ranking_metrics, summarize, topk
from .significance import compare, holm, seed_user_test

__all__ = [
    "METRICS",
    "PAD",
    "ScoresFn",
    "average_popularity",
    "compare",
    "coverage",
    "evaluate",
    "gini",
    "holm",
    "intra_list_diversity",
    "novelty",
    "ranking_metrics",
    "seed_user_test",
    "summarize",
    "tail_share",
    "topk",
]

"""Paired significance tests between two models' per-user metrics on the same users."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` against ``b`` (two-sided).

    Args:
        a, b: one value per user, same users in the same order.

    Returns:
        ``t_p`` (``scipy.stats.ttest_rel``), ``wilcoxon_p`` (``scipy.stats.wilcoxon`` with
        ``zero_method='wilcox'``, which drops users whose difference is zero), ``mean_diff``
        (mean of ``a - b``) and ``n`` (number of pairs).

    When every difference is zero both p-values are 1.0: the samples are identical, which is no
    evidence of a difference, whereas scipy gives NaN or raises depending on its version. When
    the differences are all equal but non-zero the t-test's p is 0 (zero variance).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-d and of equal length: {a.shape}, {b.shape}")
    if len(a) < 2:
        raise ValueError(f"a paired test needs at least 2 pairs, got {len(a)}")
    diff = a - b
    result: dict[str, float | int] = {"mean_diff": float(diff.mean()), "n": len(a)}
    if not diff.any():
        return result | {"t_p": 1.0, "wilcoxon_p": 1.0}
    result["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    result["wilcoxon_p"] = float(stats.wilcoxon(diff, zero_method="wilcox").pvalue)
    return result


def compare(
    per_user_a: pd.DataFrame, per_user_b: pd.DataFrame, metric: str, key: str = "user_id"
) -> dict[str, float | int]:
    """``paired_tests`` of one metric column over the users both tables share.

    The tables are ``ranking_metrics`` outputs; they are joined on ``key`` (inner; default
    ``user_id``, ``impression_id`` for impression metrics), so users only one model was
    evaluated on are left out. The result adds ``mean_a`` and ``mean_b``, the metric's means
    over the shared users.
    """
    for name, table in (("a", per_user_a), ("b", per_user_b)):
        if metric not in table.columns:
            raise KeyError(
                f"metric {metric!r} is not a column of table {name}: {list(table.columns)}"
            )
    both = per_user_a[[key, metric]].merge(
        per_user_b[[key, metric]], on=key, suffixes=("_a", "_b"), validate="one_to_one"
    )
    both = both.dropna()  # e.g. AUC of an impression without a non-click
    if both.empty:
        raise ValueError(f"the two tables share no {key}: they cannot be compared")
    a, b = both[f"{metric}_a"].to_numpy(), both[f"{metric}_b"].to_numpy()
    return paired_tests(a, b) | {"mean_a": float(a.mean()), "mean_b": float(b.mean())}

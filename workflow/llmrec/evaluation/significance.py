"""Significance of a difference between two trained methods, counting seeds as well as users.

Every table of the project uses this module, and its docstring is the one place the method is
described (the study pages in docs/ point here).

The question a table asks is whether method A would score better than method B on average over
new training runs (seeds) and new users. A run's per-user metric ``x[s, u]`` (seed ``s``, user
``u``) varies with both: a seed shifts every user of its run at once (initialisation, batch
order), and users differ from each other. The test used before 2026-11 averaged each user's
value over the seeds and ran a paired test over users; the seed-to-seed variation then never
entered it, and two identical models split 3 vs 3 seeds were called different in 10-19% of
comparisons at alpha 0.05 (issue 14; ``tests/test_significance.py`` reproduces it).

**The test** (:func:`seed_user_test`). The difference of the grand means
``d = mean(x_A) - mean(x_B)`` over all seeds and shared users has, by the method of moments for
the model ``x[m, s, u] = mu_m + alpha[m, s] + beta[m, u] + e[m, s, u]``, the variance

    Var(d) = sigma2_seed_A / S_A + sigma2_seed_B / S_B + Var_u(D_u) / N

where ``D_u`` is user u's seed-averaged difference between the methods (it carries user-level
noise and each user's interaction with the method; the user effect common to both cancels,
which makes the test paired over users) and ``N`` is the number of shared users. The seed
variance of a method is the variance of its per-seed means (over users) less the part that
comes from the within-run noise, ``mean_u Var_s(x[s, u]) / N``, floored at zero. The statistic
``d / sqrt(Var(d))`` is referred to Student's t with Welch-Satterthwaite degrees of freedom,
where each seed term counts with its raw variance of per-seed means and ``S - 1`` degrees of
freedom: the seed level, with its few runs, sets the degrees of freedom whenever it matters.
Seeds of the two methods are treated as independent draws (not paired by seed number); where
runs with the same seed number are positively correlated this is conservative.

In the A/A calibration of ``tests/test_significance.py`` (same model, disjoint seeds; synthetic
per-user values of 500 users with a per-seed shift of sd 0 to 0.02 beside a per-user noise of sd
0.15; 300 comparisons each) the test rejects 2-5% at alpha 0.05 with 3 and 5 seeds per method,
where the old test rejects 23-50% once seeds shift the runs. Without a seed effect it is slightly
conservative (2% with 3 seeds).

With a single seed for a method its seed variance cannot be estimated: it is taken to be the
other method's (a stated assumption); with a single seed on both sides the p-value is NaN.

**Multiple comparisons** (:func:`holm`): a table makes many comparisons (rows x metrics); every
p-value of a table is adjusted with Holm's step-down method (it controls the family-wise error
rate under any dependence between the tests, which metrics of the same runs have), and tables
report the raw and the adjusted p.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

NOTE = (
    "p: two-sided test of the difference over seeds and {units} (seed-to-seed and "
    "{unit}-to-{unit} variation both counted; docs/evaluation.md); Holm p: adjusted by "
    "Holm over every test of the table."
)
"""The tables' sentence on their p-values; ``NOTE.format(units="users", unit="user")``."""


def seed_user_test(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """Two-sided test of equal means of ``a`` and ``b`` over seeds and users (module docstring).

    Args:
        a, b: ``[seeds, users]`` per-user values of each seed's run; the same users in the same
            columns. Each may have its own number of seeds.

    Returns:
        ``p``, ``mean_diff`` (``mean(a) - mean(b)``), ``se`` (its standard error), ``df``
        (Welch-Satterthwaite), ``seed_sd_a`` and ``seed_sd_b`` (the estimated seed-level standard
        deviations of a run's mean), ``users`` and ``seeds_a``/``seeds_b``. When a and b are
        identical the p-value is 1.0; when one seed per method leaves the seed variance unknown
        it is NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"seed x user matrices must have the same users (columns): {a.shape}, {b.shape}"
        )
    n = a.shape[1]
    if n < 2:
        raise ValueError(f"a test over users needs at least 2 shared users, got {n}")
    diff_by_user = a.mean(0) - b.mean(0)
    result: dict[str, float | int] = {
        "mean_diff": float(diff_by_user.mean()),
        "users": n,
        "seeds_a": len(a),
        "seeds_b": len(b),
    }
    seed_a, seed_b = _seed_component(a), _seed_component(b)
    if seed_a is None and seed_b is None:
        unknown = {"p": np.nan, "se": np.nan, "df": np.nan, "seed_sd_a": np.nan}
        return result | unknown | {"seed_sd_b": np.nan}
    # One seed on a side: assume its seed variance is the other side's (docstring).
    seed_a, seed_b = seed_a or seed_b, seed_b or seed_a
    user_var = diff_by_user.var(ddof=1) / n
    variance = user_var
    df_denominator = user_var**2 / (n - 1)
    for (sigma2, raw, df), seeds in ((seed_a, len(a)), (seed_b, len(b))):
        variance += sigma2 / seeds
        df_denominator += (raw / seeds) ** 2 / df
    result |= {"seed_sd_a": float(np.sqrt(seed_a[0])), "seed_sd_b": float(np.sqrt(seed_b[0]))}
    if variance == 0:  # identical, or differing by a constant with no noise at all
        same = result["mean_diff"] == 0
        return result | {"p": 1.0 if same else 0.0, "se": 0.0, "df": np.nan}
    df = variance**2 / df_denominator if df_denominator > 0 else np.inf
    t = result["mean_diff"] / np.sqrt(variance)
    p = float(2 * stats.t.sf(abs(t), df))
    return result | {"p": p, "se": float(np.sqrt(variance)), "df": float(df)}


def _seed_component(x: np.ndarray) -> tuple[float, float, int] | None:
    """(seed variance of a run's mean, raw variance of the per-seed means, its degrees of
    freedom), or None with a single seed."""
    seeds, n = x.shape
    if seeds < 2:
        return None
    raw = x.mean(1).var(ddof=1)
    within = x.var(0, ddof=1).mean() / n  # what the within-run noise adds to a run's mean
    return max(raw - within, 0.0), raw, seeds - 1


class NothingToCompare(ValueError):
    """Two methods share fewer than two units with a value of the metric (e.g. HR@1 over valid
    answers, where few answers are valid): no test is possible."""


def seed_user_matrices(
    runs_a: Sequence[pd.DataFrame], runs_b: Sequence[pd.DataFrame], metric: str, key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each method's ``[seeds, units]`` values of ``metric`` over the units (users,
    impressions) that every run of both has a value for, and those units' keys.

    The tables are ``ranking_metrics`` (or impression metrics) outputs, one per seed; a unit
    missing from a run or NaN there (e.g. AUC of an impression without a non-click) is left out
    of the comparison.
    """
    columns = []
    for name, runs in (("a", runs_a), ("b", runs_b)):
        if not runs:
            raise ValueError(f"method {name} has no runs to compare")
        for table in runs:
            if metric not in table.columns:
                raise KeyError(
                    f"metric {metric!r} is not a column of a run of {name}: {list(table.columns)}"
                )
            if table[key].duplicated().any():
                raise ValueError(f"a run of {name} lists a {key} twice")
            columns.append(table.set_index(key)[metric])
    wide = pd.concat(columns, axis=1, join="inner").dropna()
    if len(wide) < 2:
        raise NothingToCompare(
            f"the runs share {len(wide)} {key}s with a value: nothing to compare"
        )
    values = wide.to_numpy().T
    return values[: len(runs_a)], values[len(runs_a) :], wide.index.to_numpy()


def compare(
    runs_a: Sequence[pd.DataFrame],
    runs_b: Sequence[pd.DataFrame],
    metric: str,
    key: str = "user_id",
) -> dict[str, float | int]:
    """:func:`seed_user_test` of one metric between two methods' runs (one per-unit table per
    seed) over the units all runs share (:func:`seed_user_matrices`)."""
    a, b, _ = seed_user_matrices(runs_a, runs_b, metric, key)
    return seed_user_test(a, b)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count as tests.

    The i-th smallest of m p-values becomes ``max_{j<=i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    if m == 0:
        return out
    order = present[np.argsort(p[present], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out

"""The seed-and-user significance test: calibration on A/A comparisons, power, Holm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from llmrec.evaluation.significance import compare, holm, seed_user_matrices, seed_user_test

USERS = 500


def runs(rng: np.random.Generator, base: np.ndarray, seeds: int, seed_sd: float) -> np.ndarray:
    """``[seeds, users]`` per-user values of one model: the users' own level, a shift per seed
    (initialisation moves every user of a run at once) and per-user noise."""
    shift = rng.normal(0.0, seed_sd, size=(seeds, 1))
    return base + shift + rng.normal(0.0, 0.15, size=(seeds, len(base)))


def old_test(a: np.ndarray, b: np.ndarray) -> float:
    """What the tables did before: average each user over seeds, paired t-test over users."""
    return stats.ttest_rel(a.mean(0), b.mean(0)).pvalue


def rejection_rates(seeds: int, seed_sd: float, shift: float = 0.0, trials: int = 300):
    rng = np.random.default_rng(7)
    new, old = [], []
    for _ in range(trials):
        base = rng.uniform(0.0, 0.6, USERS)
        a, b = runs(rng, base, seeds, seed_sd), runs(rng, base, seeds, seed_sd) + shift
        new.append(seed_user_test(a, b)["p"] < 0.05)
        old.append(old_test(a, b) < 0.05)
    return np.mean(new), np.mean(old)


@pytest.mark.parametrize("seeds, seed_sd", [(3, 0.01), (3, 0.02), (5, 0.01)])
def test_identical_models_are_rarely_called_different(seeds, seed_sd):
    # A/A: the same model on disjoint seeds, a seed spread like LightGCN's on ml-100k.
    new, old = rejection_rates(seeds, seed_sd)
    assert new <= 0.075, f"{new:.1%} false positives at alpha 0.05"
    assert old > 0.15, f"the old test should fail this calibration, got {old:.1%}"


def test_no_seed_effect_keeps_the_rate_near_nominal():
    new, _ = rejection_rates(3, 0.0)
    assert 0.0 <= new <= 0.075


def test_a_real_difference_is_found():
    new, _ = rejection_rates(5, 0.005, shift=0.03, trials=100)
    assert new >= 0.9


def test_a_seed_shift_alone_is_not_a_difference():
    # Two runs per model whose users differ only by one constant per run: the old test saw
    # 500 users all moving the same way; here the runs disagree with each other as much.
    base = np.linspace(0.1, 0.5, USERS)
    a = np.stack([base + 0.02, base - 0.01])
    b = np.stack([base + 0.01, base - 0.02])
    assert old_test(a, b) < 1e-10
    assert seed_user_test(a, b)["p"] > 0.3


def test_identical_runs_give_p_of_one_and_one_seed_each_gives_nan():
    a = np.array([[0.1, 0.5, 0.3], [0.2, 0.4, 0.3]])
    assert seed_user_test(a, a.copy())["p"] == 1.0
    single = seed_user_test(a[:1], a[1:] + 0.1)
    assert np.isnan(single["p"]) and single["mean_diff"] == pytest.approx(-0.1 + 0.0)


def test_one_seed_borrows_the_other_methods_seed_variance():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 0.1, (4, 50))
    b = rng.normal(0.3, 0.1, (1, 50))
    got = seed_user_test(a, b)
    assert got["seed_sd_a"] == got["seed_sd_b"] and 0 <= got["p"] <= 1


def test_the_statistic_by_hand():
    # No within-run noise: the seed variance is the raw variance of the per-seed means.
    a = np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]])  # seed means 2, 3 -> var 0.5
    b = np.array([[0.0, 2.0, 3.0], [0.0, 2.0, 3.0]])  # seed means 5/3, 5/3 -> var 0
    got = seed_user_test(a, b)
    # D_u = (1.5-0, 2.5-2, 3.5-3) = (1.5, .5, .5): mean 5/6, var 1/3 -> user term 1/9.
    # within-run variance of a: every user 0.5 -> 0.5 / 3 = 1/6 off the raw 0.5 -> 1/3.
    variance = 1 / 9 + (1 / 3) / 2 + 0.0
    assert got["mean_diff"] == pytest.approx(5 / 6)
    assert got["se"] == pytest.approx(np.sqrt(variance))
    df = variance**2 / ((1 / 9) ** 2 / 2 + (0.5 / 2) ** 2 / 1 + 0.0)
    assert got["df"] == pytest.approx(df)
    assert got["p"] == pytest.approx(2 * stats.t.sf((5 / 6) / np.sqrt(variance), df))


def test_matrices_keep_units_every_run_has():
    a1 = pd.DataFrame({"user_id": [3, 1, 2, 9], "ndcg@10": [0.3, 0.1, 0.2, 0.9]})
    a2 = pd.DataFrame({"user_id": [1, 2, 3], "ndcg@10": [0.2, np.nan, 0.4]})
    b1 = pd.DataFrame({"user_id": [1, 2, 3, 7], "ndcg@10": [0.0, 0.1, 0.1, 0.5]})
    a, b, units = seed_user_matrices([a1, a2], [b1], "ndcg@10", "user_id")
    assert sorted(units.tolist()) == [1, 3]  # 2 is NaN in a2, 9 and 7 in one method only
    order = np.argsort(units)
    assert a[:, order].tolist() == [[0.1, 0.3], [0.2, 0.4]]
    assert b[:, order].tolist() == [[0.0, 0.1]]
    with pytest.raises(ValueError, match="share 0 user_ids"):
        compare([a1], [b1.assign(user_id=[4, 5, 6, 8])], "ndcg@10")
    with pytest.raises(KeyError, match="recall@10"):
        compare([a1], [b1], "recall@10")


def test_holm_by_hand_and_against_nan():
    got = holm([0.01, 0.04, 0.03, np.nan])
    # Sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06.
    assert got[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(got[3])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]
    assert np.isnan(holm([np.nan])).all()


def test_fewer_than_two_shared_units_is_nothing_to_compare():
    import pandas as pd

    from llmrec.evaluation.significance import NothingToCompare, seed_user_matrices

    a = [pd.DataFrame({"user_id": [0, 1, 2], "m": [1.0, float("nan"), 0.0]})]
    b = [pd.DataFrame({"user_id": [0, 1, 3], "m": [0.0, 1.0, 1.0]})]
    with pytest.raises(NothingToCompare, match="share 1 user_ids"):
        seed_user_matrices(a, b, "m", "user_id")

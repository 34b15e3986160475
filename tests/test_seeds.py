"""Aggregation over seeds for the study tables."""

import pandas as pd
import pytest

from llmrec.studies.seeds import mean_over_seeds, mean_std


def test_mean_std_is_the_sample_std_and_zero_for_one_run():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([0.5]) == (0.5, 0.0)


def test_mean_over_seeds_pairs_rows_by_key():
    a = pd.DataFrame({"user_id": [0, 1], "hit@5": [1.0, 0.0]})
    b = pd.DataFrame({"user_id": [1, 0], "hit@5": [1.0, 0.0]})
    mean = mean_over_seeds([a, b], "user_id")
    assert mean["user_id"].tolist() == [0, 1] and mean["hit@5"].tolist() == [0.5, 0.5]

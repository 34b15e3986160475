"""Aggregating repeated runs (seeds) for the study tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds; the std of a single run is 0."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def mean_over_seeds(frames: Sequence[pd.DataFrame], key: str) -> pd.DataFrame:
    """Each ``key``'s (user's, impression's) metrics averaged over the runs, for paired tests."""
    return pd.concat(frames).groupby(key).mean().reset_index()

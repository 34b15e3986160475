"""Figures as files: the headless backend chosen in one place, PNGs written atomically."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; cluster nodes have no display
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402

from .io import atomic_path  # noqa: E402


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """``matplotlib.pyplot.subplots`` on the headless backend."""
    return plt.subplots(nrows, ncols, **kwargs)


def figure(**kwargs: Any) -> Figure:
    """``matplotlib.pyplot.figure`` on the headless backend (for grids of uneven panels)."""
    return plt.figure(**kwargs)


def save_png(fig: Figure, path: str, dpi: int = 150) -> None:
    """Write ``fig`` to ``path`` as PNG (no half-written file on failure) and close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)


def seed_count(seeds: Iterable[int]) -> str:
    """The seed count a figure's title gives, from a table's ``seeds`` column: ``3 seeds``, or
    ``2-3 seeds`` where some rows have fewer runs."""
    low, high = min(seeds), max(seeds)
    count = str(low) if low == high else f"{low}-{high}"
    return f"{count} seed{'s' * (high != 1)}"

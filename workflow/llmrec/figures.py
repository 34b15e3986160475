"""Figures as files: the headless backend chosen in one place, PNGs written atomically."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; cluster nodes have no display
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402

from .io import atomic_path  # noqa: E402


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """``matplotlib.pyplot.subplots`` on the headless backend."""
    return plt.subplots(nrows, ncols, **kwargs)


def save_png(fig: Figure, path: str, dpi: int = 150) -> None:
    """Write ``fig`` to ``path`` as PNG (no half-written file on failure) and close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)

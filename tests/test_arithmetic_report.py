"""The arithmetic study's embedding measures and co-occurrence counts on hand cases, and the
embedding figure and its HTML table (the study table: tests/test_tables.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.studies.arithmetic_report import consecutive_pairs, similarity_by_distance


def test_consecutive_pairs_counted_on_training_parts_only():
    # Items 0..3 numbered 1001..1004. Users' last two items are not training data.
    index = ["1001", "1002", "1003", "1004"]
    sequences = [
        np.array([0, 1, 9, 9]),  # trains on 0, 1: pair (1001, 1002) adjacent
        np.array([2, 0, 1, 9, 9]),  # trains on 2, 0, 1
        np.array([3, 9, 2, 1]),
    ]  # trains on 3, 9: the 2 and 1 at the end are held out
    stats = consecutive_pairs(sequences, index)
    assert stats["pairs"] == 3  # (1001,1002), (1002,1003), (1003,1004)
    # co-occurring: (0,1) by users 0 and 1; (1,2) by user 1; (2,3) by nobody
    assert stats["cooccur"] == pytest.approx(2 / 3)
    assert stats["users"] == pytest.approx((2 + 1 + 0) / 3)
    # adjacent in a training part: (0,1) yes; (1,2) no (2 then 0 then 1); (2,3) no
    assert stats["adjacent"] == pytest.approx(1 / 3)


def test_similarity_by_distance_falls_for_continuous_embeddings():
    angles = torch.linspace(0, np.pi / 2, 100)
    smooth = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    curve = similarity_by_distance(smooth, list(range(100)), max_distance=10)
    assert np.all(np.diff(curve) < 0) and curve[0] == pytest.approx(np.cos(np.pi / 2 / 99))
    scrambled = smooth[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    assert similarity_by_distance(scrambled, list(range(100)), 10)[0] < curve[0] - 0.1


def _embedding_table(max_distance=5):
    """Similarity by distance for the five weight sets; each trained set a known shift from
    the start's."""
    from llmrec.studies.arithmetic_report import WEIGHTS

    start = np.linspace(0.06, -0.02, max_distance)
    shifts = dict(zip(WEIGHTS.values(), [0.0, 0.01, -0.002, 0.003, 0.0005]))
    rows = [
        {"model": name, "distance": d, "mean_cosine": s + shift}
        for name, shift in shifts.items()
        for d, s in enumerate(start, start=1)
    ]
    return pd.DataFrame(rows), shifts


def test_embeddings_figure_shows_changes_from_the_start_in_small_multiples(monkeypatch):
    from llmrec.studies import arithmetic_report
    from llmrec.studies.arithmetic_report import START, embeddings_figure

    table, shifts = _embedding_table()
    consecutive = {name: np.full(99, 0.1 + shift) for name, shift in shifts.items()}
    figures = []
    monkeypatch.setattr(arithmetic_report, "save_png", lambda fig, path: figures.append(fig))
    embeddings_figure(table, consecutive, "unused.png")
    (fig,) = figures
    start, consecutive_ax, *small = fig.axes
    assert len(small) == 4  # one panel per trained weight set: nothing overplotted
    trained = [m for m in shifts if m != START]
    for ax, name in zip(small, trained):
        (line,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 5]
        assert line.get_ydata() == pytest.approx([shifts[name]] * 5)  # the change, not the level
        assert list(ax.get_xticks()) == [1, 5]  # distances are integers from 1
        assert "θ₀" in ax.get_title() and "_" not in ax.get_title().replace("θ_arith", "")
    # The consecutive-pairs panel: one dot with an error bar per trained set.
    bars = [c for c in consecutive_ax.containers if c.has_yerr]
    assert len(bars) == 4
    assert [c.lines[0].get_ydata()[0] for c in bars] == pytest.approx([shifts[m] for m in trained])
    assert "1 seed" in fig._suptitle.get_text()
    plt.close(fig)


def test_embeddings_html_has_the_figures_numbers():
    from llmrec.studies.arithmetic_report import embeddings_html

    table, _ = _embedding_table()
    page = embeddings_html(table)
    assert "<th>theta_arith</th>" in page and "<th>task vector</th>" in page
    assert '<td class="number">0.0600</td>' in page  # theta_0 at d = 1
    assert '<td class="number">+0.01000</td>' in page  # theta_arith - theta_0
    assert '<td class="number">-0.00200</td>' in page  # P5 - theta_0

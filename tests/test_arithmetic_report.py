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
    """Similarity by distance for the five T5 weight sets, each trained set a known shift from
    the start's, and the three SASRec sets; order measures known per set."""
    from llmrec.studies.arithmetic_report import ITEMS, PIECES, SASREC_WEIGHTS, WEIGHTS

    start = np.linspace(0.06, -0.02, max_distance)
    shifts = dict(zip(WEIGHTS.values(), [0.0, 0.01, -0.002, 0.003, 0.0005]))
    shifts |= dict.fromkeys(SASREC_WEIGHTS.values(), 0.5)  # levels far from the T5's
    rows = [
        {
            "embeddings": PIECES if name in WEIGHTS.values() else ITEMS,
            "model": name,
            "distance": d,
            "mean_cosine": s + shift,
            "adjacent_distance": 0.9 - i / 10,
            "ordered_triples": 0.3 + i / 20,
        }
        for i, (name, shift) in enumerate(shifts.items())
        for d, s in enumerate(start, start=1)
    ]
    return pd.DataFrame(rows), shifts


def test_embeddings_figure_shows_changes_from_the_start_in_small_multiples(monkeypatch):
    from llmrec.studies import arithmetic_report
    from llmrec.studies.arithmetic_report import START, embeddings_figure

    table, shifts = _embedding_table()
    shifts = {m: v for m, v in shifts.items() if m in arithmetic_report.WEIGHTS.values()}
    consecutive = {name: np.full(99, 0.1 + shift) for name, shift in shifts.items()}
    figures = []
    monkeypatch.setattr(arithmetic_report, "save_png", lambda fig, path: figures.append(fig))
    embeddings_figure(table, consecutive, "unused.png")
    (fig,) = figures
    start, consecutive_ax, *small, adjacent_ax, triples_ax = fig.axes
    assert len(small) == 4  # one panel per trained T5 weight set: nothing overplotted
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
    # The order measures: one bar per weight set, T5's and SASRec's, first set on top.
    for ax, values in (
        (adjacent_ax, [0.9 - i / 10 for i in range(8)]),
        (triples_ax, [0.3 + i / 20 for i in range(8)]),
    ):
        widths = [bar.get_width() for bar in sorted(ax.patches, key=lambda b: -b.get_y())]
        assert widths == pytest.approx(values)
    ticks = sorted(
        zip(adjacent_ax.get_yticks(), adjacent_ax.get_yticklabels()), key=lambda t: -t[0]
    )
    labels = [label.get_text() for _, label in ticks]  # top to bottom
    assert labels[0] == "θ₀ (start) (T5)" and labels[-1] == "SASRec + ordered pre-training"
    plt.close(fig)


def test_embeddings_html_has_the_figures_numbers():
    from llmrec.studies.arithmetic_report import embeddings_html

    table, _ = _embedding_table()
    page = embeddings_html(table)
    assert "<th>theta_arith</th>" in page and "<th>task vector</th>" in page
    assert '<td class="number">0.0600</td>' in page  # theta_0 at d = 1
    assert '<td class="number">+0.01000</td>' in page  # theta_arith - theta_0
    assert '<td class="number">-0.00200</td>' in page  # P5 - theta_0
    assert "<th>SASRec</th>" not in page  # the similarity sections are the T5's
    order = page.split("Order of the embeddings")[1]
    assert "<td>SASRec, ordered pre-training only</td>" in order
    assert '<td class="number">0.200</td>' in order  # the last set's adjacent distance
    assert '<td class="number">0.650</td>' in order  # and its ordered triples


def test_embeddings_table_measures_sasrec_items_in_the_order_of_their_numbers(
    tmp_path, monkeypatch
):
    from llmrec.p5 import tokenizer
    from llmrec.p5.indexing import write_index
    from llmrec.studies import arithmetic_report
    from llmrec.studies.arithmetic_report import SASREC_WEIGHTS, WEIGHTS, arithmetic_embeddings

    monkeypatch.setattr(tokenizer, "load_tokenizer", lambda path: None)
    monkeypatch.setattr(arithmetic_report, "number_piece_ids", lambda tok: list(range(100)))
    monkeypatch.setattr(arithmetic_report, "save_png", lambda fig, path: plt.close(fig))
    rng = np.random.default_rng(0)
    inputs = {"tokenizer": "unused", "index": str(tmp_path / "index.parquet")}
    for key in WEIGHTS:  # T5 pieces in no order
        inputs[key] = str(tmp_path / f"{key}.pt")
        torch.save({"shared.weight": torch.from_numpy(rng.normal(size=(120, 8)))}, inputs[key])
    # 30 items whose embeddings lie on a line in the order of their (shuffled) numbers.
    numbers = rng.permutation(30)
    write_index(inputs["index"], [str(1001 + n) for n in numbers], "random")
    items = torch.from_numpy(numbers[:, None] * rng.normal(size=(1, 8)))
    for key in SASREC_WEIGHTS:
        inputs[key] = str(tmp_path / f"{key}.pt")
        torch.save({"item_embedding.weight": torch.cat([torch.zeros(1, 8), items])}, inputs[key])
    out = {k: str(tmp_path / f"out.{k}") for k in ("table", "html", "figure")}
    arithmetic_embeddings(inputs, out, max_distance=5)
    table = pd.read_csv(out["table"]).drop_duplicates("model").set_index("model")
    assert len(table) == 8
    for name in SASREC_WEIGHTS.values():
        assert table.loc[name, "ordered_triples"] == 1.0
        assert table.loc[name, "adjacent_distance"] == pytest.approx(3 / 31)
    for name in WEIGHTS.values():
        assert table.loc[name, "ordered_triples"] == pytest.approx(1 / 3, abs=0.05)

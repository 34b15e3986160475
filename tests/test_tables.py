"""The study tables: runs attributed by their summaries' keys, and the three studies' CSV and
markdown on hand-made runs, checked against values worked out here (the p-values from the
seed-and-user test on the runs each row holds, then Holm over the table)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.evaluation.significance import holm, seed_user_test
from llmrec.studies.arithmetic_report import arithmetic_table
from llmrec.studies.pfr import pfr_table
from llmrec.studies.popk import popk_table, variant_label
from llmrec.studies.tables import (
    cell,
    dataset_table_html,
    frame_html,
    mean_over_seeds,
    mean_std,
    metric_label,
    number,
    read_runs,
    run_keys,
)

PROVENANCE = ["git_commit", "config_sha256"]


def write_run(
    folder: Path, keys: dict, units: pd.DataFrame, name: str, test: dict | None = None, **extra
) -> tuple[str, str]:
    """A run as the training functions leave it: per-unit metrics and a summary whose ``test``
    holds their means."""
    folder.mkdir(parents=True)
    units.to_parquet(folder / name, index=False)
    means = {c: float(units[c].mean()) for c in units.columns[1:]}
    summary = {**keys, **extra, "test": means | (test or {})}
    (folder / "summary.json").write_text(json.dumps(summary))
    return str(folder / "summary.json"), str(folder / name)


def inputs(runs: list[tuple[str, str]], units: str) -> dict[str, list[str]]:
    return {"summaries": [s for s, _ in runs], units: [u for _, u in runs]}


def outputs(tmp_path: Path) -> dict[str, str]:
    return {
        "table": str(tmp_path / "t.csv"),
        "markdown": str(tmp_path / "t.md"),
        "html": str(tmp_path / "t.html"),
    }


def html_rows(path: Path) -> list[list[str]]:
    """The text of each row's cells of the HTML table at ``path`` (header first), as a browser
    reads it: a cell's note follows its value after a space."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.rows[-1].append(" ".join(self.cell))
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Rows()
    parser.feed(path.read_text())
    return parser.rows


def p_text(p: float, p_holm: float) -> str:
    return f"p={p:.2g}, Holm p={p_holm:.2g}"


def p_of(runs: list, baseline_runs: list) -> float:
    """The test's p between two rows, from each seed's per-unit values."""
    return seed_user_test(np.array(runs, float), np.array(baseline_runs, float))["p"]


def test_mean_std_is_the_sample_std_and_zero_for_one_run():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([0.5]) == (0.5, 0.0)


def test_mean_over_seeds_pairs_rows_by_key():
    a = pd.DataFrame({"user_id": [0, 1], "hit@5": [1.0, 0.0]})
    b = pd.DataFrame({"user_id": [1, 0], "hit@5": [1.0, 0.0]})
    mean = mean_over_seeds([a, b], "user_id")
    assert mean["user_id"].tolist() == [0, 1] and mean["hit@5"].tolist() == [0.5, 0.5]


def test_cell_writes_the_change_and_p_it_is_given():
    assert cell(0.12344, 0.00561) == "0.1234 ± 0.0056"
    assert cell(0.12344, 0.00561, p=0.0234) == "0.1234 ± 0.0056 (p=0.023)"
    assert cell(0.5, 0.0, change=12.34, p=3.6e-06) == "0.5000 ± 0.0000 (+12.3%, p=3.6e-06)"
    assert cell(0.5, 0.0, change=-5.0, p=float("nan")) == "0.5000 ± 0.0000 (-5.0%)"
    # A change against a baseline mean of 0 is NaN: left out, not "+nan%".
    assert cell(0.5, 0.0, change=float("nan"), p=0.5) == "0.5000 ± 0.0000 (p=0.5)"
    assert cell(0.5, 0.0, p=0.01, p_holm=0.04) == "0.5000 ± 0.0000 (p=0.01, Holm p=0.04)"


def test_metric_labels_are_for_a_reader():
    assert metric_label("ndcg@10") == "nDCG@10"
    assert metric_label("recall@20") == "Recall@20"
    assert metric_label("ild_category") == "ILD (category)"
    assert metric_label("something_new") == "something_new"


def test_number_formats_a_plain_tables_values():
    assert [number(v) for v in (3, 12345, 0.712500, 1234.56, 3.6e-06, float("nan"), "ml-100k")] == [
        "3",
        "12,345",
        "0.7125",
        "1,235",
        "3.6e-06",
        "",
        "ml-100k",
    ]
    assert number(np.int64(7)) == "7" and number(True) == "True"


def test_frame_html_shows_every_value_escaped_with_the_provenance_below(tmp_path):
    frame = pd.DataFrame(
        {
            "dataset": ["ml-100k", "<b>news</b>"],
            "users": [943, 50],
            "density": [0.063047, np.nan],
            "git_commit": ["abc123", "abc123"],
            "config_sha256": ["f00d", "f00d"],
        }
    )
    page = frame_html(frame, "Datasets", note="Sizes & more.")
    path = tmp_path / "d.html"
    path.write_text(page)
    assert html_rows(path) == [
        ["dataset", "users", "density"],  # provenance is not a column
        ["ml-100k", "943", "0.06305"],
        ["<b>news</b>", "50", ""],
    ]
    assert "&lt;b&gt;news&lt;/b&gt;" in page and "Sizes &amp; more." in page
    assert "git commit abc123" in page and "config sha256 f00d" in page
    assert page.startswith("<!DOCTYPE html>") and "<title>Datasets</title>" in page


def test_dataset_table_html_renders_the_data_stages_csv(tmp_path):
    table = tmp_path / "datasets.csv"
    pd.DataFrame(
        {"dataset": ["ml-100k"], "users": [943], "items": [1682], "interactions": [100000]}
    ).to_csv(table, index=False)
    out = tmp_path / "datasets.html"
    dataset_table_html({"table": str(table)}, {"html": str(out)})
    assert html_rows(out)[1] == ["ml-100k", "943", "1,682", "100,000"]


def _units(values, key="user_id"):
    return pd.DataFrame({key: range(len(values)), "hit@1": np.asarray(values, dtype=float)})


def test_runs_are_read_from_their_keys_and_bad_summaries_are_refused(tmp_path):
    keys = run_keys(study="pfr", dataset="toy", model="pfr", variant=None, seed="3")
    assert keys == {"study": "pfr", "dataset": "toy", "model": "pfr", "variant": None, "seed": 3}
    # The path says another dataset, model and seed: the summary wins.
    good = write_run(
        tmp_path / "results/pfr/ml-1m/lightgcn/seed0", keys, _units([1, 0]), "per_user.parquet"
    )
    (run,) = read_runs("pfr", [good[0]], [good[1]])
    assert (run.dataset, run.model, run.variant, run.seed) == ("toy", "pfr", None, 3)
    assert run.test == {"hit@1": 0.5}
    old = write_run(tmp_path / "old", {"model": "pfr", "seed": 0}, _units([1, 0]), "u.parquet")
    with pytest.raises(ValueError, match="rerun"):
        read_runs("pfr", [old[0]], [old[1]])
    with pytest.raises(ValueError, match="the 'pfr' study, not of 'popk'"):
        read_runs("popk", [good[0]], [good[1]])
    twin = write_run(tmp_path / "twin", keys, _units([0, 0]), "u.parquet")
    with pytest.raises(ValueError, match="same run"):
        read_runs("pfr", [good[0], twin[0]], [good[1], twin[1]])
    with pytest.raises(ValueError, match="per-unit"):
        read_runs("pfr", [good[0]], [])


PFR_METRICS = ["recall@1", "ndcg@1", "mrr@1", "hit@1", "precision@1"]


def _pfr_units(values):
    return pd.DataFrame(
        {"user_id": range(4), **{m: np.asarray(values, float) for m in PFR_METRICS}}
    )


def test_pfr_table(tmp_path):
    def run(folder, model, seed, values):
        keys = run_keys(study="pfr", dataset="toy", model=model, variant=None, seed=seed)
        return write_run(tmp_path / folder, keys, _pfr_units(values), "per_user.parquet")

    runs = [
        run("results/pfr/toy/lightgcn/seed0", "lightgcn", 0, [1, 0, 0, 0]),
        run("results/pfr/toy/lightgcn/seed1", "lightgcn", 1, [0, 0, 1, 0]),
        run("results/pfr/toy/pfr/seed0", "pfr", 0, [1, 1, 0, 1]),
        # a misleading folder: another dataset, model and seed
        run("results/pfr/ml-1m/lightgcn/seed7", "pfr", 1, [1, 1, 1, 1]),
        run("results/pfr/toy/sge/seed0", "sge", 0, [1, 0, 1, 0]),
    ]
    pfr_table(inputs(runs, "per_user"), outputs(tmp_path), ks=[1], synthetic=["toy"])
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == (
        ["dataset", "model", "seeds"]
        + [f"{m}{s}" for m in PFR_METRICS for s in ("", "_std", "_p", "_p_holm")]
        + PROVENANCE
    )
    assert table[["dataset", "model", "seeds"]].values.tolist() == [
        ["toy (synthetic)", "lightgcn", 2],
        ["toy (synthetic)", "sge", 1],
        ["toy (synthetic)", "pfr", 2],
    ]
    base = [[1, 0, 0, 0], [0, 0, 1, 0]]  # LightGCN's two seeds
    p_sge = p_of([[1, 0, 1, 0]], base)
    p_pfr = p_of([[1, 1, 0, 1], [1, 1, 1, 1]], base)
    # Ten tests in the table (two rows x five metrics), adjusted together.
    holm_sge, holm_pfr = holm([p_sge] * 5 + [p_pfr] * 5)[[0, 5]]
    expected = {  # mean, std, p, Holm p
        "lightgcn": (0.25, 0.0, np.nan, np.nan),
        "sge": (0.5, 0.0, p_sge, holm_sge),
        "pfr": (0.875, np.sqrt(2) / 8, p_pfr, holm_pfr),
    }
    assert 0 < p_pfr < holm_pfr < 1
    for model, (mean, std, p, p_holm) in expected.items():
        row = table.set_index("model").loc[model]
        for m in PFR_METRICS:
            got = [row[m], row[f"{m}_std"], row[f"{m}_p"], row[f"{m}_p_holm"]]
            assert got == pytest.approx([mean, std, p, p_holm], rel=1e-5, nan_ok=True)
    lines = (tmp_path / "t.md").read_text().split("\n")
    sge_cell = f"0.5000 ± 0.0000 ({p_text(*expected['sge'][2:])})"
    pfr_cell = f"0.8750 ± 0.1768 ({p_text(*expected['pfr'][2:])})"
    assert lines[:5] == [
        "| dataset | model | seeds | " + " | ".join(PFR_METRICS) + " |",
        "|---|---|---|---|---|---|---|---|",
        "| toy (synthetic) | lightgcn | 2 | " + " | ".join(["0.2500 ± 0.0000"] * 5) + " |",
        "| toy (synthetic) | sge | 1 | " + " | ".join([sge_cell] * 5) + " |",
        "| toy (synthetic) | pfr | 2 | " + " | ".join([pfr_cell] * 5) + " |",
    ]
    assert lines[5:7] == [
        "",
        "Mean ± std over seeds; in brackets the p-values against LightGCN. p: two-sided test "
        "of the difference over seeds and users (seed-to-seed and user-to-user variation both "
        "counted; docs/evaluation.md); Holm p: adjusted by Holm over every test of the table. "
        "MRR@k is the "
        "reciprocal rank of the first hit within the top k. Full ranking "
        "over all items, training and validation items masked.",
    ]
    # The report's HTML: every metric, its tests under its value, the baseline's row shaded.
    rows = html_rows(tmp_path / "t.html")
    assert rows[0] == ["dataset", "model", "seeds"] + [metric_label(m) for m in PFR_METRICS]
    assert rows[0][3:] == ["Recall@1", "nDCG@1", "MRR@1", "Hit@1", "Precision@1"]
    tests = {m: p_text(*expected[m][2:]) for m in ("sge", "pfr")}
    assert rows[1:] == [
        ["toy (synthetic)", "lightgcn", "2"] + ["0.2500 ± 0.0000"] * 5,
        ["toy (synthetic)", "sge", "1"] + [f"0.5000 ± 0.0000 {tests['sge']}"] * 5,
        ["toy (synthetic)", "pfr", "2"] + [f"0.8750 ± 0.1768 {tests['pfr']}"] * 5,
    ]
    page = (tmp_path / "t.html").read_text()
    assert page.count('<tr class="baseline">') == 1 and "seed-to-seed and user-to-user" in page


POPK_UNIT_METRICS = [
    "auc",
    "mrr",
    "ndcg@5",
    "ndcg@10",
    "ild_category",
    "ild_embedding",
    "avg_popularity",
    "tail_share",
    "novelty",
]
POPK_METRICS = POPK_UNIT_METRICS[:6] + [
    "avg_popularity",
    "tail_share",
    "novelty",
    "coverage",
    "gini",
]


def test_popk_table(tmp_path):
    def run(folder, popk, seed, values, coverage, gini, tail=None):
        frame = pd.DataFrame(
            {"impression_id": range(4), **{m: np.asarray(values, float) for m in POPK_UNIT_METRICS}}
        )
        if tail is not None:
            frame["tail_share"] = np.asarray(tail, float)
        keys = run_keys(
            study="popk",
            dataset="news",
            model="nrms",
            variant=variant_label(popk, "add"),
            seed=seed,
        )
        return write_run(
            tmp_path / folder,
            keys,
            frame,
            "per_impression.parquet",
            {"coverage": coverage, "gini": gini},
            popk=popk,
        )

    runs = [
        run("results/popk/news/nrms/popk0/seed0", 0, 0, [0.2, 0.4, 0.6, 0.8], 0.5, 0.4, [0] * 4),
        run("results/popk/news/nrms/popk0/seed1", 0, 1, [0.4, 0.4, 0.6, 0.6], 0.5, 0.4, [0] * 4),
        run("results/popk/news/nrms/popk2/seed0", 2, 0, [0.4, 0.6, 0.8, 1.0], 0.6, 0.2),
        # a misleading folder: another dataset, model, popk and seed
        run("results/popk/mind/lstur/popk0/seed5", 2, 1, [0.6, 0.5, 0.7, 0.6], 0.7, 0.2),
    ]
    popk_table(inputs(runs, "per_impression"), outputs(tmp_path))
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == (
        ["dataset", "model", "popk", "seeds"]
        + [f"{m}{s}" for m in POPK_METRICS for s in ("", "_std", "_change_%", "_p", "_p_holm")]
        + PROVENANCE
    )
    assert table[["dataset", "model", "popk", "seeds"]].values.tolist() == [
        ["news", "nrms", "0", 2],
        ["news", "nrms", "2 (add)", 2],
    ]
    base, top = table.iloc[0], table.iloc[1]
    popk2 = [[0.4, 0.6, 0.8, 1.0], [0.6, 0.5, 0.7, 0.6]]
    p = p_of(popk2, [[0.2, 0.4, 0.6, 0.8], [0.4, 0.4, 0.6, 0.6]])
    p_tail = p_of(popk2, [[0] * 4] * 2)
    # Nine tested metrics (coverage and Gini are one number per run), adjusted together.
    p_holm, p_tail_holm = holm([p] * 8 + [p_tail])[[0, 8]]
    expected = {m: (0.65, np.sqrt(2) / 20, 30.0, p, p_holm) for m in POPK_UNIT_METRICS}
    expected["tail_share"] = (0.65, np.sqrt(2) / 20, np.nan, p_tail, p_tail_holm)  # base mean 0
    expected["coverage"] = (0.65, np.sqrt(2) / 20, 30.0, np.nan, np.nan)  # one per run: no test
    expected["gini"] = (0.2, 0.0, -50.0, np.nan, np.nan)
    for m, values in expected.items():
        got = [top[m], top[f"{m}_std"], top[f"{m}_change_%"], top[f"{m}_p"], top[f"{m}_p_holm"]]
        assert got == pytest.approx(values, rel=1e-5, nan_ok=True), m
    assert base["auc"] == pytest.approx(0.5) and base["auc_change_%"] == 0
    assert np.isnan(base["auc_p"]) and np.isnan(base["tail_share_change_%"])
    lines = (tmp_path / "t.md").read_text().split("\n")
    columns = [
        "auc",
        "mrr",
        "ndcg@5",
        "ndcg@10",
        "ild_category",
        "ild_embedding",
        "coverage",
        "avg_popularity",
        "tail_share",
        "novelty",
    ]
    tested = f"0.6500 ± 0.0707 (+30.0%, {p_text(p, p_holm)})"
    top_cells = [tested] * 6 + ["0.6500 ± 0.0707 (+30.0%)", tested, "0.6500 ± 0.0707", tested]
    base_cells = ["0.5000 ± 0.0000"] * 8 + ["0.0000 ± 0.0000", "0.5000 ± 0.0000"]
    assert lines[:4] == [
        "| dataset | model | popk | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * 10,
        "| news | nrms | 0 | " + " | ".join(base_cells) + " |",
        "| news | nrms | 2 (add) | " + " | ".join(top_cells) + " |",
    ]
    assert lines[4] == "" and lines[5].startswith(
        "Mean ± std over seeds on the dev impressions; in brackets the change against popk = 0"
    )
    # The HTML has every metric the CSV has (Gini too), and the seeds.
    rows = html_rows(tmp_path / "t.html")
    assert rows[0] == ["dataset", "model", "popk", "seeds"] + [
        metric_label(m) for m in POPK_METRICS
    ]
    tested = f"0.6500 ± 0.0707 +30.0%, {p_text(p, p_holm)}"
    assert rows[2] == ["news", "nrms", "2 (add)", "2"] + [tested] * 6 + [
        tested,  # avg_popularity
        "0.6500 ± 0.0707",  # tail_share: popk 0's mean is 0, as in the markdown
        tested,  # novelty
        "0.6500 ± 0.0707 +30.0%",  # coverage: no test
        "0.2000 ± 0.0000 -50.0%",  # gini
    ]
    assert rows[1][4:] == ["0.5000 ± 0.0000"] * 7 + ["0.0000 ± 0.0000"] + [
        "0.5000 ± 0.0000"
    ] * 2 + ["0.4000 ± 0.0000"]


def test_arithmetic_table(tmp_path):
    def run(folder, method, seed, setting, hits):
        keys = run_keys(study="arithmetic", dataset="toy", model=method, variant=setting, seed=seed)
        frame = pd.DataFrame(
            {
                "user_id": range(8),
                "hit@1": np.asarray(hits, float),
                "ndcg@1": np.asarray(hits, float),
            }
        )
        extra = {"method": method} | ({"setting": setting} if setting else {})
        return write_run(tmp_path / folder, keys, frame, "per_user.parquet", **extra)

    root = "results/arithmetic/toy"
    runs = [
        run(f"{root}/p5/seed{s}/seen", "p5", s, "seen", [1, 0, 0, 0, 1, 0, 0, 0]) for s in (0, 1)
    ]
    runs += [run(f"{root}/p5/seed{s}/unseen", "p5", s, "unseen", [0] * 8) for s in (0, 1)]
    runs += [
        run(f"{root}/precondition/seed0/seen", "precondition", 0, "seen", [1, 1, 0, 0, 1, 1, 0, 0]),
        run(f"{root}/precondition/seed1/seen", "precondition", 1, "seen", [1, 1, 1, 0, 1, 1, 0, 0]),
        run(f"{root}/sasrec/seed0", "sasrec", 0, None, [1, 1, 1, 1, 0, 0, 0, 0]),
        # a misleading folder: another dataset, method, seed and setting
        run(
            "results/arithmetic/ml-1m/p5/seed3/unseen", "sasrec", 1, None, [1, 1, 1, 1, 0, 0, 0, 0]
        ),
    ]
    arithmetic_table(
        inputs(runs, "per_user"), outputs(tmp_path), ks=[1], settings=["seen", "unseen"]
    )
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == (
        ["dataset", "setting", "method", "seeds"]
        + [
            f"{m}{s}"
            for m in ("hit@1", "ndcg@1")
            for s in ("", "_std", "_change_%", "_p", "_p_holm")
        ]
        + PROVENANCE
    )
    assert table[["setting", "method", "seeds"]].values.tolist() == [
        ["seen", "P5", 2],
        ["seen", "pre-conditioning", 2],
        ["seen", "SASRec", 2],
        ["unseen", "P5", 2],
        ["unseen", "SASRec", 2],
    ]
    p5_seen = [[1, 0, 0, 0, 1, 0, 0, 0]] * 2
    pre = [[1, 1, 0, 0, 1, 1, 0, 0], [1, 1, 1, 0, 1, 1, 0, 0]]
    sasrec = [[1, 1, 1, 1, 0, 0, 0, 0]] * 2
    p_pre, p_sas = p_of(pre, p5_seen), p_of(sasrec, p5_seen)
    p_unseen = p_of(sasrec, [[0] * 8] * 2)
    # Row by row, metric by metric: three tested rows x two metrics, adjusted together.
    adjusted = holm([p_pre, p_pre, p_sas, p_sas, p_unseen, p_unseen])
    h_pre, h_sas, h_unseen = adjusted[[0, 2, 4]]
    expected = [
        (0.25, 0.0, 0.0, np.nan, np.nan),
        (0.5625, np.sqrt(2) / 16, 125.0, p_pre, h_pre),
        (0.5, 0.0, 100.0, p_sas, h_sas),
        (0.0, 0.0, 0.0, np.nan, np.nan),
        (0.5, 0.0, np.nan, p_unseen, h_unseen),
    ]  # against a P5 mean of 0: no change
    for m in ("hit@1", "ndcg@1"):
        got = table[[m, f"{m}_std", f"{m}_change_%", f"{m}_p", f"{m}_p_holm"]].values.tolist()
        assert got == [pytest.approx(e, rel=1e-5, nan_ok=True) for e in expected]
    lines = (tmp_path / "t.md").read_text().split("\n")
    assert lines[:7] == [
        "| dataset | prompts | method | seeds | hit@1 | ndcg@1 |",
        "|---|---|---|---|---|---|",
        "| toy | seen | P5 | 2 | " + " | ".join(["0.2500 ± 0.0000"] * 2) + " |",
        "| toy | seen | pre-conditioning | 2 | "
        + " | ".join([f"0.5625 ± 0.0884 (+125.0%, {p_text(p_pre, h_pre)})"] * 2)
        + " |",
        "| toy | seen | SASRec | 2 | "
        + " | ".join([f"0.5000 ± 0.0000 (+100.0%, {p_text(p_sas, h_sas)})"] * 2)
        + " |",
        "| toy | unseen | P5 | 2 | " + " | ".join(["0.0000 ± 0.0000"] * 2) + " |",
        "| toy | unseen | SASRec | 2 | "
        + " | ".join([f"0.5000 ± 0.0000 ({p_text(p_unseen, h_unseen)})"] * 2)
        + " |",
    ]
    assert lines[7] == "" and lines[8].startswith(
        "Mean ± std over seeds of the leave-one-out test item's hit rate and NDCG at k"
    )
    rows = html_rows(tmp_path / "t.html")
    assert rows[0] == ["dataset", "prompts", "method", "seeds", "Hit@1", "nDCG@1"]
    assert (
        rows[2]
        == ["toy", "seen", "pre-conditioning", "2"]
        + [f"0.5625 ± 0.0884 +125.0%, {p_text(p_pre, h_pre)}"] * 2
    )
    assert (
        rows[5]
        == ["toy", "unseen", "SASRec", "2"] + [f"0.5000 ± 0.0000 {p_text(p_unseen, h_unseen)}"] * 2
    )
    assert (tmp_path / "t.html").read_text().count('<tr class="baseline">') == 2  # P5, per setting


def test_a_model_can_have_its_own_baseline(tmp_path):
    # SASRec + ordered pre-training is compared with SASRec, the other rows with P5.
    def run(method, seed, hits):
        keys = run_keys(study="arithmetic", dataset="toy", model=method, variant=None, seed=seed)
        frame = pd.DataFrame({"user_id": range(4), "hit@1": np.asarray(hits, float)})
        frame["ndcg@1"] = frame["hit@1"]
        return write_run(tmp_path / f"{method}{seed}", keys, frame, "per_user.parquet")

    p5 = [[1, 0, 0, 0], [0, 1, 0, 0]]
    sasrec = [[1, 1, 0, 0], [1, 1, 1, 0]]
    ordered = [[1, 1, 1, 1], [1, 1, 1, 0]]
    runs = [run("p5", s, p5[s]) for s in (0, 1)] + [run("sasrec", s, sasrec[s]) for s in (0, 1)]
    runs += [run("sasrec_ordered", s, ordered[s]) for s in (0, 1)]
    arithmetic_table(inputs(runs, "per_user"), outputs(tmp_path), ks=[1], settings=["seen"])
    table = pd.read_csv(tmp_path / "t.csv").set_index("method")
    row = table.loc["SASRec + ordered pre-training"]
    assert row["hit@1_change_%"] == pytest.approx(100 * (0.875 - 0.625) / 0.625)
    assert row["hit@1_p"] == pytest.approx(p_of(ordered, sasrec), rel=1e-5)
    assert table.loc["SASRec", "hit@1_p"] == pytest.approx(p_of(sasrec, p5), rel=1e-5)


def test_each_column_can_be_compared_with_its_best_model(tmp_path):
    # Two segments of the same runs, read by column prefix; the best model differs by column.
    from llmrec.studies.tables import Run, TableSpec, build_rows

    values = {
        "a": {"hit@1": [[1, 1, 0, 0], [1, 1, 1, 0]], "ndcg@1": [[0, 0, 0, 0], [0, 0, 1, 0]]},
        "b": {"hit@1": [[1, 0, 0, 0], [0, 1, 0, 0]], "ndcg@1": [[1, 1, 1, 0], [1, 1, 0, 0]]},
        "c": {"hit@1": [[0, 0, 0, 0], [0, 0, 0, 1]], "ndcg@1": [[0, 0, 0, 1], [0, 0, 0, 1]]},
    }
    runs = []
    for model, metrics in values.items():
        for seed in (0, 1):
            frame = pd.DataFrame({"user_id": range(4)})
            for metric, per_seed in metrics.items():
                frame[f"tail/{metric}"] = np.asarray(per_seed[seed], float)
            path = tmp_path / f"{model}{seed}.parquet"
            frame.to_parquet(path, index=False)
            test = {m: float(np.mean(v[seed])) for m, v in metrics.items()}
            runs.append(Run("toy", model, "tail", seed, test, str(path), prefix="tail/"))
    spec = TableSpec(
        study="toy",
        columns=("dataset", "variant", "model"),
        markdown_columns=("dataset", "model"),
        models=("a", "b", "c"),
        baseline={},
        best_of=("a", "b"),
        unit="user_id",
        unit_table="per_user",
        metrics=("hit@1", "ndcg@1"),
        note="",
    )
    rows = {row["model"]: row for row, _ in build_rows(runs, spec)}
    assert rows["a"]["hit@1_vs"] == "a" and np.isnan(rows["a"]["hit@1_p"])
    assert rows["a"]["ndcg@1_vs"] == "b" and np.isnan(rows["b"]["ndcg@1_p"])
    a, b, c = (values[m]["hit@1"] for m in "abc")
    assert rows["b"]["hit@1_p"] == pytest.approx(p_of(b, a), rel=1e-5)
    # c is no candidate for the best, but is compared with it.
    assert rows["c"]["hit@1_p"] == pytest.approx(p_of(c, a), rel=1e-5)
    assert rows["c"]["ndcg@1_p"] == pytest.approx(
        p_of(values["c"]["ndcg@1"], values["b"]["ndcg@1"]), rel=1e-5
    )

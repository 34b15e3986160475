"""Gathering Snakemake benchmark files into the benchmarks table, its HTML and its figure, per
rule: each file attributed by the rule benchmark pattern it matches."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from llmrec import benchmarks
from llmrec.benchmarks import benchmarks_table, pattern_regex, read_benchmarks

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
DATASET = r"{dataset,ml\-100k|synthetic\-news}"
# As the workflow passes them: the rules' patterns with their wildcard constraints.
PATTERNS = {
    "fetch_dataset": f"results/benchmarks/data/fetch/{DATASET}.tsv",
    "item_profiles": f"results/benchmarks/text/{DATASET}/item_profiles.tsv",
    "train_pfr": f"results/benchmarks/pfr/{DATASET}/{{model,lightgcn|sge|pfr}}/"
    "seed{seed,\\d+}.tsv",
    "pfr_table": "results/benchmarks/pfr/table.tsv",
    "p5_arithmetic": f"results/benchmarks/arithmetic/{DATASET}/arithmetic/seed{{seed,\\d+}}.tsv",
    "train_p5": f"results/benchmarks/arithmetic/{DATASET}/{{trained,p5|precondition}}/"
    "seed{seed,\\d+}.tsv",
    "train_sasrec": f"results/benchmarks/arithmetic/{DATASET}/sasrec/seed{{seed,\\d+}}.tsv",
    "evaluate_p5": f"results/benchmarks/arithmetic/{DATASET}/{{p5_method,p5|precondition|"
    "task_vector}/seed{seed,\\d+}/{setting,seen|unseen}.tsv",
}


def write(path, *rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        HEADER + "".join(f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{s}\n" for s, rss in rows)
    )


def test_pattern_regex_reads_snakemake_wildcards_and_constraints():
    regex = pattern_regex("a/{dataset,x|y}/seed{seed,\\d{1,2}}/{name}.tsv")
    match = regex.fullmatch("a/y/seed12/b/c.tsv")
    assert match.groupdict() == {"dataset": "y", "seed": "12", "name": "b/c"}  # .+ spans folders
    assert (
        regex.fullmatch("a/z/seed1/c.tsv") is None and regex.fullmatch("a/x/seed123/c.tsv") is None
    )
    assert pattern_regex("{a}-{a}.tsv").fullmatch("x-y.tsv") is None  # a repeated wildcard


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    """A working folder with benchmark files as a run leaves them."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "results" / "benchmarks"
    write(root / "pfr" / "ml-100k" / "lightgcn" / "seed0.tsv", (10.0, 500.0), (12.5, 510.0))
    write(root / "pfr" / "ml-100k" / "pfr" / "seed1.tsv", (30.0, 700.0))
    write(root / "pfr" / "table.tsv", (0.5, 90.0))
    write(root / "data" / "fetch" / "ml-100k.tsv", (1.5, 150.0))
    write(root / "text" / "ml-100k" / "item_profiles.tsv", (405.0, 1624.4))
    write(root / "arithmetic" / "ml-100k" / "arithmetic" / "seed0.tsv", (70.0, 800.0))
    write(root / "arithmetic" / "ml-100k" / "p5" / "seed0.tsv", (350.0, 900.0))
    write(root / "arithmetic" / "ml-100k" / "p5" / "seed0" / "seen.tsv", (20.0, 600.0))
    write(root / "arithmetic" / "ml-100k" / "sasrec" / "seed0.tsv", (170.0, 2000.0))
    write(root / "old_stage" / "renamed_rule.tsv", (5.0, 10.0))  # no rule makes it any more
    return tmp_path


def test_each_file_is_the_benchmark_of_the_rule_whose_pattern_it_matches(run_folder, caplog):
    with caplog.at_level(logging.WARNING):
        table = read_benchmarks("results/benchmarks", PATTERNS)
    jobs = table.set_index(["rule", "job"])
    assert jobs.loc[("train_pfr", "dataset=ml-100k, model=lightgcn, seed=0"), "seconds"] == 12.5
    assert jobs.loc[("train_pfr", "dataset=ml-100k, model=lightgcn, seed=0"), "max_rss_mb"] == 510
    assert jobs.loc[("fetch_dataset", "dataset=ml-100k"), "max_rss_mb"] == 150.0
    assert jobs.loc[("item_profiles", "dataset=ml-100k"), "cpu_seconds"] == 405.0
    # The arithmetic folder holds four rules' files: each goes to its own.
    assert set(table["rule"]) == {
        "train_pfr",
        "pfr_table",
        "fetch_dataset",
        "item_profiles",
        "p5_arithmetic",
        "train_p5",
        "evaluate_p5",
        "train_sasrec",
    }
    assert jobs.loc[("train_p5", "dataset=ml-100k, trained=p5, seed=0"), "seconds"] == 350.0
    assert jobs.loc[("p5_arithmetic", "dataset=ml-100k, seed=0"), "seconds"] == 70.0
    assert jobs.loc[("train_sasrec", "dataset=ml-100k, seed=0"), "seconds"] == 170.0
    assert jobs.loc[
        ("evaluate_p5", "dataset=ml-100k, p5_method=p5, seed=0, setting=seen"), "seconds"
    ] == (20.0)
    assert jobs.loc[("pfr_table", ""), "seconds"] == 0.5
    # A file no rule's pattern matches is left out, and said so.
    assert len(table) == 9 and "renamed_rule.tsv" in caplog.text


def test_without_constraints_the_most_specific_pattern_wins(run_folder):
    loose = {
        "train_p5": "results/benchmarks/arithmetic/{dataset}/{trained}/seed{seed}.tsv",
        "train_sasrec": "results/benchmarks/arithmetic/{dataset}/sasrec/seed{seed}.tsv",
    }
    table = read_benchmarks("results/benchmarks", loose)
    assert table.set_index("job").loc["dataset=ml-100k, seed=0", "rule"] == "train_sasrec"


def test_table_html_and_figure_are_per_rule(run_folder, monkeypatch):
    figures = []
    monkeypatch.setattr(benchmarks, "save_png", lambda fig, path, **kw: figures.append(fig))
    out = {
        "table": str(run_folder / "b.csv"),
        "html": str(run_folder / "b.html"),
        "figure": str(run_folder / "b.png"),
    }
    benchmarks_table({}, out, benchmarks=PATTERNS)
    table = pd.read_csv(out["table"])
    assert len(table) == 9 and list(table.columns[:2]) == ["rule", "job"]
    page = (run_folder / "b.html").read_text()
    assert "<h2>Per rule</h2>" in page and "<h2>Per job</h2>" in page
    # train_pfr: 2 jobs, 42.5 s in all, the longest 30 s, peak 700 MB.
    assert '<td>train_pfr</td><td class="number">2</td><td class="number">42.5</td>' in page
    assert "dataset=ml-100k, model=pfr, seed=1" in page
    (fig,) = figures
    ax_time, ax_memory = fig.axes
    labels = [t.get_text() for t in ax_time.get_yticklabels()]
    assert len(labels) == 8 and labels[-1] == "item_profiles (1 job)"  # the longest at the top
    assert "train_pfr (2 jobs)" in labels
    assert ax_time.get_xscale() == "log"
    widths = {lab: bar.get_width() for lab, bar in zip(labels, ax_time.patches)}
    assert widths["train_pfr (2 jobs)"] == 42.5
    memory = {lab: bar.get_width() for lab, bar in zip(labels, ax_memory.patches)}
    assert memory["train_pfr (2 jobs)"] == 700.0
    plt.close(fig)


def test_the_figure_is_written_and_closed(run_folder):
    out = {k: str(run_folder / f"b.{k}") for k in ("table", "html", "figure")}
    benchmarks_table({}, out, benchmarks=PATTERNS)
    assert (run_folder / "b.figure").read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == []  # the figure is closed once saved
    assert not [p for p in run_folder.iterdir() if p.name.startswith(".")]  # no temp file

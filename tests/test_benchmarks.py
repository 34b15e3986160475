"""Gathering Snakemake benchmark files into the benchmarks table and figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from llmrec.benchmarks import benchmarks_table, read_benchmarks

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write(path, *rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        HEADER + "".join(f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{s}\n" for s, rss in rows)
    )


def test_benchmark_files_become_one_row_each(tmp_path):
    folder = tmp_path / "benchmarks"
    write(folder / "pfr" / "ml-100k" / "lightgcn" / "seed0.tsv", (10.0, 500.0), (12.5, 510.0))
    write(folder / "data" / "fetch" / "ml-100k.tsv", (1.5, 150.0))
    write(folder / "text" / "ml-100k" / "item_profiles.tsv", (405.0, 1624.4))
    table = read_benchmarks(folder).set_index(["rule", "job"])
    assert table.loc[("pfr/ml-100k", "lightgcn/seed0"), "seconds"] == 12.5  # the last run
    assert table.loc[("data/fetch", "ml-100k"), "max_rss_mb"] == 150.0
    assert table.loc[("text/ml-100k", "item_profiles"), "cpu_seconds"] == 405.0
    out = {"table": str(tmp_path / "b.csv"), "figure": str(tmp_path / "b.png")}
    benchmarks_table({}, out, folder=str(folder))
    assert len(pd.read_csv(out["table"])) == 3
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == []  # the figure is closed once saved
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file

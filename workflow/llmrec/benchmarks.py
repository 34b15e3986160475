"""Gather Snakemake's per-job benchmark files into one table and one figure.

Every rule that trains, generates or encodes has a ``benchmark:`` file under
``results/benchmarks/<stage>/<step>/...tsv`` (wall seconds, peak RSS, CPU time, ...). This module
reads the ones present after a run: ``rule`` is ``<stage>/<step>`` (for example
``pfr/ml-100k`` is the PFR training of ml-100k: the path below ``results/benchmarks`` up to the
last folder) and ``job`` the rest of the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .figures import save_png, subplots
from .io import write_csv

COLUMNS = {
    "s": "seconds",
    "max_rss": "max_rss_mb",
    "cpu_time": "cpu_seconds",
    "mean_load": "mean_load",
}


def read_benchmarks(folder: str | Path) -> pd.DataFrame:
    """One row per benchmark file (its last line: the last run of the job)."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        rel = path.relative_to(folder)
        last = frame.iloc[-1]
        row = {
            "rule": "/".join(rel.parts[:2]) if len(rel.parts) > 2 else rel.parts[0],
            "job": "/".join(rel.parts[2:])[:-4] if len(rel.parts) > 2 else rel.stem,
        }
        for source, name in COLUMNS.items():
            row[name] = pd.to_numeric(last.get(source), errors="coerce")
        rows.append(row)
    return pd.DataFrame(rows, columns=["rule", "job", *COLUMNS.values()])


def benchmarks_table(
    input: Mapping, output: Mapping[str, str], *, folder: str = "results/benchmarks"
) -> None:
    """``results/tables/benchmarks.csv`` and its figure: time and peak memory per rule."""
    table = read_benchmarks(folder)
    write_csv(output["table"], table)
    per_rule = (
        table.groupby("rule")
        .agg(seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max"), jobs=("job", "count"))
        .sort_values("seconds")
    )
    fig, (ax_t, ax_m) = subplots(1, 2, figsize=(11, 0.35 * len(per_rule) + 1.5), sharey=True)
    labels = [f"{r} ({n})" for r, n in zip(per_rule.index, per_rule["jobs"])]
    ax_t.barh(labels, per_rule["seconds"] / 60)
    ax_t.set_xlabel("wall minutes, summed over the rule's jobs (jobs)")
    ax_m.barh(labels, per_rule["max_rss_mb"])
    ax_m.set_xlabel("peak RSS of the rule's largest job (MB)")
    fig.suptitle("Where a run's time and memory go (Snakemake benchmark files)")
    fig.tight_layout()
    save_png(fig, output["figure"], dpi=130)

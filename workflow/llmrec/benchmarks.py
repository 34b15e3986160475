"""Gather Snakemake's per-job benchmark files into one table and one figure, per rule.

Every rule that does work has a ``benchmark:`` file (wall seconds, peak RSS, CPU time, ...). The
workflow passes each rule's benchmark pattern, wildcard constraints included (``{rule name:
"results/benchmarks/pfr/{dataset,...}/{model,...}/seed{seed,\\d+}.tsv"}``); a file is the
benchmark of the rule whose pattern matches its path, and its ``job`` is the wildcards that
match gives (``dataset=ml-100k, model=pfr, seed=0``). A file no pattern matches is left out
with a warning: a leftover of a renamed or removed rule.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import save_png, subplots
from .io import write_csv, write_text
from .studies.tables import frame_table, html_page

log = logging.getLogger(__name__)

COLUMNS = {
    "s": "seconds",
    "max_rss": "max_rss_mb",
    "cpu_time": "cpu_seconds",
    "mean_load": "mean_load",
}
# Snakemake's wildcard syntax: ``{name}`` or ``{name,constraint}`` (braces nest one level).
WILDCARD = re.compile(
    r"\{\s*(?P<name>\w+)\s*(?:,\s*(?P<constraint>(?:[^{}]+|\{\d+(?:,\d+)?\})*))?\}"
)


def pattern_regex(pattern: str) -> re.Pattern:
    """The regex a path must match to be an instance of the Snakemake file ``pattern``: each
    wildcard a named group of its constraint (``.+`` without one), as Snakemake reads it."""
    parts, last, seen = [], 0, set()
    for match in WILDCARD.finditer(pattern):
        parts.append(re.escape(pattern[last : match.start()]))
        name = match.group("name")
        if name in seen:
            parts.append(f"(?P={name})")
        else:
            seen.add(name)
            parts.append(f"(?P<{name}>{match.group('constraint') or '.+'})")
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts))


def match_rule(path: str, regexes: Mapping[str, re.Pattern]) -> tuple[str, str] | None:
    """(rule, job) of the benchmark file ``path``, or None; where several rules' patterns match,
    the one with the most fixed characters (as a reader would say: the most specific)."""
    found = []
    for rule, regex in regexes.items():
        if match := regex.fullmatch(path):
            fixed = len(path) - sum(len(v) for v in match.groupdict().values())
            job = ", ".join(f"{k}={v}" for k, v in match.groupdict().items())
            found.append((fixed, rule, job))
    if not found:
        return None
    _, rule, job = max(found, key=lambda f: f[0])
    return rule, job


def read_benchmarks(folder: str | Path, benchmarks: Mapping[str, str]) -> pd.DataFrame:
    """One row per benchmark file below ``folder`` (its last line: the last run of the job),
    attributed to the rule whose pattern in ``benchmarks`` matches its path. ``folder`` is
    written as the patterns begin (``results/benchmarks``), relative to the working folder."""
    regexes = {rule: pattern_regex(pattern) for rule, pattern in benchmarks.items()}
    rows, unknown = [], []
    for path in sorted(Path(folder).rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        found = match_rule(path.as_posix(), regexes)
        if found is None:
            unknown.append(path.as_posix())
            continue
        last = frame.iloc[-1]
        row = {"rule": found[0], "job": found[1]}
        for source, name in COLUMNS.items():
            row[name] = pd.to_numeric(last.get(source), errors="coerce")
        rows.append(row)
    if unknown:
        log.warning(
            "%d benchmark files match no rule's benchmark pattern (left out): %s",
            len(unknown),
            ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""),
        )
    table = pd.DataFrame(rows, columns=["rule", "job", *COLUMNS.values()])
    return table.sort_values(["rule", "job"], ignore_index=True)


def per_rule(table: pd.DataFrame) -> pd.DataFrame:
    """Each rule's jobs, wall seconds (summed and of its longest job), CPU seconds and the peak
    memory of its largest job, longest first."""
    return (
        table.groupby("rule")
        .agg(
            jobs=("job", "count"),
            seconds=("seconds", "sum"),
            longest_job_seconds=("seconds", "max"),
            cpu_seconds=("cpu_seconds", "sum"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .sort_values("seconds", ascending=False)
        .reset_index()
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def benchmarks_figure(rules: pd.DataFrame, path: str) -> None:
    """Per rule: wall time summed over its jobs (log axis: rules of a second and of an hour
    both show) and the peak memory of its largest job."""
    rules = rules.iloc[::-1]  # the longest at the top
    labels = [f"{r} ({n} job{'s' * (n != 1)})" for r, n in zip(rules["rule"], rules["jobs"])]
    y = np.arange(len(rules))
    fig, (ax_t, ax_m) = subplots(1, 2, figsize=(12, 0.32 * len(rules) + 1.6), sharey=True)
    seconds = rules["seconds"].clip(lower=0.01)  # a log axis has no 0
    ax_t.barh(y, seconds, color="C0")
    ax_t.set_xscale("log")
    ax_t.set_xlim(right=seconds.max() * 8)  # room for the labels
    for yi, s in zip(y, rules["seconds"]):
        ax_t.annotate(
            _duration(s),
            (max(s, 0.01), yi),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax_t.set_yticks(y, labels)
    ax_t.set_xlabel("wall time summed over the rule's jobs (s, log scale)")
    ax_m.barh(y, rules["max_rss_mb"], color="C1")
    ax_m.set_xlim(right=rules["max_rss_mb"].max() * 1.2)
    for yi, mb in zip(y, rules["max_rss_mb"]):
        ax_m.annotate(
            f"{mb:,.0f} MB",
            (mb, yi),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax_m.set_xlabel("peak memory (RSS) of the rule's largest job (MB)")
    for ax in (ax_t, ax_m):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Where this run's time and memory go, per rule (Snakemake benchmark files)")
    fig.tight_layout()
    save_png(fig, path, dpi=130)


NOTE = (
    "One row per job that did work in this results folder: the last run of each job, from "
    "Snakemake's benchmark files. seconds: wall time; max_rss_mb: peak resident memory; "
    "cpu_seconds: CPU time; mean_load: mean CPU load (%). The rule is the workflow's rule (the "
    "function of the same name runs it), the job its wildcards."
)


def benchmarks_table(
    input: Mapping,
    output: Mapping[str, str],
    *,
    benchmarks: Mapping[str, str],
    folder: str = "results/benchmarks",
) -> None:
    """``results/tables/benchmarks.csv`` (one row per job), its HTML (per rule, then per job)
    and its figure (per rule)."""
    table = read_benchmarks(folder, benchmarks)
    write_csv(output["table"], table)
    rules = per_rule(table)
    page = html_page(
        "Benchmarks: time and memory of this run's jobs",
        [("Per rule", frame_table(rules)), ("Per job", frame_table(table))],
        note=NOTE,
    )
    write_text(output["html"], page)
    benchmarks_figure(rules, output["figure"])

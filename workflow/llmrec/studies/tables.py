"""Study tables built from what each run recorded, never from where its files lie.

Every training or evaluation run writes a ``summary.json`` with its keys (:func:`run_keys`:
study, dataset, model, variant, seed) and its test metrics (``test``), and a table of per-unit
metrics (per user or per impression) for the paired tests. :func:`write_study_table` reads the
runs (:func:`read_runs`), groups them by dataset, variant and model, gives each group's
mean ± std over seeds, compares it with the study's baseline group (change in %, and the test of
:mod:`llmrec.evaluation.significance` over seeds and units, its p-values Holm-adjusted over the
whole table) and writes the
CSV, its markdown (every cell through :func:`cell`) and its HTML for the report (every metric,
:func:`study_html`). A :class:`TableSpec` holds what differs between studies: column names and
order, the baseline, the metrics, the note.

Tables that are not built from runs (datasets, benchmarks, ...) get their HTML from
:func:`frame_html`: ``snakemake --report`` shows an HTML file inline, a CSV only as a download.

A study whose runs measure several segments (overall, tail, ...) fits as a variant (one run per
segment) or as metric columns (``tail/recall@20``), each with its own per-unit column.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..evaluation.significance import NothingToCompare, compare, holm
from ..io import read_json, write_csv, write_text
from ..provenance import stamp
from .keys import Variant, run_keys  # noqa: F401 (run_keys: imported from here too)

KEYS = ("study", "dataset", "model", "variant", "seed")
PROVENANCE = ("git_commit", "config_sha256")
METRIC_NAMES = {
    "recall": "Recall",
    "ndcg": "nDCG",
    "mrr": "MRR",
    "hit": "Hit",
    "precision": "Precision",
    "auc": "AUC",
    "ild_category": "ILD (category)",
    "ild_embedding": "ILD (embedding)",
    "avg_popularity": "mean popularity",
    "tail_share": "tail share",
    "novelty": "novelty",
    "coverage": "coverage",
    "gini": "Gini",
}


def metric_label(metric: str) -> str:
    """A metric's name for a reader: ``ndcg@10`` -> ``nDCG@10``, ``ild_category`` ->
    ``ILD (category)``."""
    name, at, k = metric.partition("@")
    return METRIC_NAMES.get(name, name) + at + k


@dataclass(frozen=True)
class Run:
    """One run: its keys and test metrics from its summary, and its per-unit metrics file."""

    dataset: str
    model: str
    variant: Variant
    seed: int
    test: Mapping[str, float]
    units: str | pd.DataFrame  # a per-unit table's path, or the table itself
    prefix: str = ""  # the per-unit table's columns of this run, ``tail/`` of ``tail/hit@10``


def read_runs(study: str, summaries: Sequence[str], units: Sequence[str]) -> list[Run]:
    """The runs of ``study`` (``summaries[i]`` belongs with the per-unit table ``units[i]``)."""
    if len(summaries) != len(units):
        raise ValueError(
            f"{len(summaries)} summaries but {len(units)} per-unit tables: each run needs both"
        )
    runs, seen = [], {}
    for summary_path, units_path in zip(summaries, units):
        summary = read_json(summary_path)
        missing = [k for k in KEYS if k not in summary]
        if missing:
            raise ValueError(
                f"{summary_path} does not record {missing}: it was written before "
                f"runs recorded their keys; delete it and rerun its job"
            )
        if summary["study"] != study:
            raise ValueError(
                f"{summary_path} is a run of the {summary['study']!r} study, not of {study!r}"
            )
        run = Run(
            summary["dataset"],
            summary["model"],
            summary["variant"],
            int(summary["seed"]),
            summary["test"],
            str(units_path),
        )
        key = (run.dataset, run.model, run.variant, run.seed)
        if key in seen:
            raise ValueError(f"{summary_path} and {seen[key]} record the same run {key}")
        seen[key] = summary_path
        runs.append(run)
    return runs


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds; the std of a single run is 0."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def mean_over_seeds(frames: Sequence[pd.DataFrame], key: str) -> pd.DataFrame:
    """Each ``key``'s (user's, impression's) metrics averaged over the runs, for paired tests."""
    return pd.concat(frames).groupby(key).mean().reset_index()


def _unit_table(run: Run, unit: str) -> pd.DataFrame:
    table = run.units if isinstance(run.units, pd.DataFrame) else pd.read_parquet(run.units)
    if not run.prefix:
        return table
    picked = [c for c in table.columns if c.startswith(run.prefix)]
    return table[[unit, *picked]].rename(columns=lambda c: c.removeprefix(run.prefix))


@dataclass
class Group:
    """The runs (seeds) of one row of a table."""

    runs: list[Run]
    unit: str

    @cached_property
    def unit_tables(self) -> list[pd.DataFrame]:
        """Each run's (seed's) per-unit metrics (its ``prefix``'s columns, the prefix cut)."""
        return [_unit_table(r, self.unit) for r in self.runs]

    @cached_property
    def by_unit(self) -> pd.DataFrame:
        return mean_over_seeds(self.unit_tables, self.unit)


@dataclass(frozen=True)
class TableSpec:
    """What one study's table shows.

    Attributes:
        study: the ``study`` its runs record.
        columns: the leading columns, in the order rows are sorted by: ``dataset`` (sorted),
            ``model`` (in the order of ``models``) and ``variant`` (``variants``, or sorted).
        models: the study's models; runs of other models are left out.
        baseline: what makes a group's baseline out of the group: the keys it replaces, e.g.
            ``{"model": "lightgcn"}`` (same dataset and variant) or ``{"variant": 0}``.
        model_baselines: per model, a ``baseline`` in place of the table's (a variant of a
            model compared with that model, e.g. ``{"sasrec_ordered": {"model": "sasrec"}}``).
        markdown_columns: the markdown's leading columns (CSV names).
        unit: the per-unit tables' key column (``user_id``, ``impression_id``).
        unit_table: the input that lists the per-unit tables (``per_user``).
        metrics: the CSV's metrics, in order; each gets ``_std``, ``_change_%`` (when
            ``change``), ``_p`` (the seed-and-unit test against the baseline) and ``_p_holm``
            (``_p`` adjusted by Holm over every test of the table).
        note: the markdown's closing paragraph.
        names: CSV names of ``columns`` where they differ (``{"variant": "popk"}``).
        labels: the markdown's headers where they differ from the CSV's.
        model_names: display names of the models.
        variants: the variants in row order; a run without a variant appears under each.
        run_metrics: metrics measured once per run (coverage, Gini): no paired test.
        change: the change against the baseline, in % of the baseline's mean: of the means over
            seeds (``runs``), or of the means over units of the seed-averaged values (``units``,
            0 on the baseline's own row); ``None``: no change column.
        markdown_metrics: the markdown's metrics (default: all).
        annotate_if: a markdown cell gets its bracket (change, p) when this column of it
            (``p`` or ``change_%``) holds a value and the row is not the baseline's.
        title: the HTML page's heading.
        best_of: where given, each metric's baseline is the model among these with the highest
            mean in the same dataset and variant (the best baseline per column), not
            ``baseline``; the CSV names it in ``<metric>_vs``.

    ``change`` and ``annotate_if`` keep each study's numbers and notation exactly as they were
    before the studies shared this module (they part ways, e.g., against a baseline mean of 0).
    """

    study: str
    columns: tuple[str, ...]
    markdown_columns: tuple[str, ...]
    models: tuple[str, ...]
    baseline: Mapping[str, Variant]
    unit: str
    unit_table: str
    metrics: tuple[str, ...]
    note: str
    names: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    model_names: Mapping[str, str] = field(default_factory=dict)
    variants: tuple[Variant, ...] | None = None
    run_metrics: tuple[str, ...] = ()
    change: Literal["runs", "units"] | None = None
    markdown_metrics: tuple[str, ...] | None = None
    annotate_if: Literal["p", "change_%"] = "p"
    title: str = ""
    model_baselines: Mapping[str, Mapping[str, Variant]] = field(default_factory=dict)
    best_of: tuple[str, ...] = ()


GroupKey = tuple[str, Variant, str]  # (dataset, variant, model)


def _groups(runs: Sequence[Run], spec: TableSpec) -> dict[GroupKey, Group]:
    """Every non-empty group, in row order."""
    by_key: dict[GroupKey, list[Run]] = {}
    for run in runs:
        if run.model not in spec.models:
            continue
        if spec.variants is None:
            placed = [run.variant]
        else:
            placed = spec.variants if run.variant is None else [run.variant]
        for variant in placed:
            by_key.setdefault((run.dataset, variant, run.model), []).append(run)
    order = {
        "dataset": sorted({k[0] for k in by_key}),
        "variant": (
            list(spec.variants) if spec.variants is not None else sorted({k[1] for k in by_key})
        ),
        "model": list(spec.models),
    }
    rank = {name: {value: i for i, value in enumerate(values)} for name, values in order.items()}
    position = {"dataset": 0, "variant": 1, "model": 2}

    def sort_key(key: GroupKey) -> tuple[int, ...]:
        return tuple(rank[name][key[position[name]]] for name in spec.columns)

    keys = [k for k in by_key if k[1] in rank["variant"]]  # not variants the table leaves out
    return {k: Group(by_key[k], spec.unit) for k in sorted(keys, key=sort_key)}


def _baseline_key(key: GroupKey, spec: TableSpec) -> GroupKey:
    dataset, variant, model = key
    baseline = spec.model_baselines.get(model, spec.baseline)
    return (dataset, baseline.get("variant", variant), baseline.get("model", model))


def _best_key(
    key: GroupKey, metric: str, groups: Mapping[GroupKey, Group], spec: TableSpec
) -> GroupKey | None:
    """The group among ``best_of``'s models of ``key``'s dataset and variant with the highest
    mean ``metric`` over seeds (the first in model order on a tie); None if there is none."""
    dataset, variant, _ = key
    candidates = [k for k in groups if k[:2] == (dataset, variant) and k[2] in spec.best_of]
    if not candidates:
        return None
    means = np.array([mean_std([r.test[metric] for r in groups[k].runs])[0] for k in candidates])
    if np.isnan(means).all():  # e.g. a segment without a single test case
        return None
    return candidates[int(np.nanargmax(means))]


def _change(value: float, base: float) -> float:
    """``value``'s change in % of ``base``; NaN where ``base`` is 0 or NaN."""
    return 100 * (value - base) / base if base else np.nan


def _metric_cells(
    metric: str, group: Group, base: Group | None, is_baseline: bool, spec: TableSpec
) -> dict[str, float]:
    mean, std = mean_std([r.test[metric] for r in group.runs])
    cells = {metric: mean, f"{metric}_std": std}
    if spec.change == "runs":
        base_mean = np.nan if base is None else mean_std([r.test[metric] for r in base.runs])[0]
        cells[f"{metric}_change_%"] = _change(mean, base_mean)
    elif spec.change == "units":
        cells[f"{metric}_change_%"] = (
            0.0
            if is_baseline
            else np.nan
            if base is None
            else _change(group.by_unit[metric].mean(), base.by_unit[metric].mean())
        )
    cells[f"{metric}_p"] = np.nan
    # A row without a value (a metric its model does not measure) is not tested.
    tested = not (is_baseline or base is None or np.isnan(mean))
    if tested and metric not in spec.run_metrics:
        try:
            cells[f"{metric}_p"] = compare(
                group.unit_tables, base.unit_tables, metric, key=spec.unit
            )["p"]
        except NothingToCompare:  # too few shared units with a value: left untested (NaN)
            pass
    cells[f"{metric}_p_holm"] = np.nan  # filled over the whole table by build_rows
    return cells


def build_rows(
    runs: Sequence[Run], spec: TableSpec, synthetic: Sequence[str] = ()
) -> list[tuple[dict[str, Any], bool]]:
    """Each table row (leading columns, ``seeds``, metric columns) and whether it is a
    baseline row; every p-value of the table Holm-adjusted together (``_p_holm``)."""
    groups = _groups(runs, spec)
    rows = []
    for key, group in groups.items():
        dataset, variant, model = key
        values = {
            "dataset": dataset + (" (synthetic)" if dataset in synthetic else ""),
            "variant": variant,
            "model": spec.model_names.get(model, model),
        }
        row = {spec.names.get(c, c): values[c] for c in spec.columns} | {"seeds": len(group.runs)}
        row_is_baseline = False
        for metric in spec.metrics:
            if spec.best_of:
                base_key = _best_key(key, metric, groups, spec)
            else:
                base_key = _baseline_key(key, spec)
                row_is_baseline = base_key == key
            base = groups.get(base_key) if base_key else None
            row |= _metric_cells(metric, group, base, base_key == key, spec)
            if spec.best_of:
                row[f"{metric}_vs"] = (
                    spec.model_names.get(base_key[2], base_key[2]) if base_key else None
                )
        rows.append((row, row_is_baseline))
    tests = [(row, m) for row, _ in rows for m in spec.metrics]
    for (row, metric), adjusted in zip(tests, holm([row[f"{m}_p"] for row, m in tests])):
        row[f"{metric}_p_holm"] = adjusted
    return rows


def notes(change: float | None = None, p: float | None = None, p_holm: float | None = None) -> str:
    """``+12.3%, p=0.023, Holm p=0.18``: the change against the baseline, the test's p and its
    Holm-adjusted p; a NaN or missing one is left out."""
    parts = [] if change is None or math.isnan(change) else [f"{change:+.1f}%"]
    for label, value in (("p", p), ("Holm p", p_holm)):
        if value is not None and not math.isnan(value):
            parts.append(f"{label}={value:.2g}")
    return ", ".join(parts)


def cell(
    mean: float,
    std: float,
    change: float | None = None,
    p: float | None = None,
    p_holm: float | None = None,
) -> str:
    """``0.1234 ± 0.0056``, then in brackets what :func:`notes` gives where given."""
    note = notes(change, p, p_holm)
    return f"{mean:.4f} ± {std:.4f}" + (f" ({note})" if note else "")


def _annotation(
    row: Mapping[str, Any], metric: str, is_baseline: bool, spec: TableSpec
) -> tuple[float | None, float | None, float | None]:
    """The change, p and Holm p a cell shows: none on the baseline's row or where
    ``annotate_if`` is empty."""
    if is_baseline or math.isnan(row[f"{metric}_{spec.annotate_if}"]):
        return None, None, None
    return row.get(f"{metric}_change_%"), row[f"{metric}_p"], row[f"{metric}_p_holm"]


def markdown(rows: Sequence[tuple[Mapping[str, Any], bool]], spec: TableSpec) -> str:
    """The rows as a markdown table (every metric cell through :func:`cell`), then the note."""
    metrics = spec.markdown_metrics or spec.metrics
    header = [spec.labels.get(c, c) for c in spec.markdown_columns] + list(metrics)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, is_baseline in rows:
        cells = [str(row[c]) for c in spec.markdown_columns]
        for m in metrics:
            cells.append(cell(row[m], row[f"{m}_std"], *_annotation(row, m, is_baseline, spec)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + spec.note


# --- HTML for the report -------------------------------------------------------------------------

Cell = str | tuple[str, str]  # a value, or a value and a smaller note under it
NUMERIC = re.compile(r"[-+]?\d")  # cells that start like a number are right-aligned

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em; color: #222; }
h1 { font-size: 1.2em; margin: 0 0 0.6em; }
h2 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f3f3f3; text-align: left; position: sticky; top: 0; }
td { white-space: nowrap; }
td.number { text-align: right; }
td small { display: block; color: #666; }
tr.baseline td { background: #fafaf0; }
p.note { max-width: 60em; color: #444; }
p.provenance { color: #777; font-size: 0.85em; }
"""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def number(value: Any) -> str:
    """A plain table's value: integers as they are, other numbers to 4 significant digits
    (thousands separated), NaN as an empty cell."""
    if not _is_number(value):
        return "" if value is None else str(value)
    if math.isnan(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[Cell]], *, baseline: Sequence[bool] = ()
) -> str:
    """An HTML ``<table>``; every text escaped. A cell is a value or a (value, note) pair, the
    note in small type under the value; rows marked in ``baseline`` are shaded."""

    def td(value: Cell) -> str:
        main, note = value if isinstance(value, tuple) else (value, "")
        body = html.escape(main) + (f"<small>{html.escape(note)}</small>" if note else "")
        return f'<td class="number">{body}</td>' if NUMERIC.match(main) else f"<td>{body}</td>"

    marks = list(baseline) + [False] * (len(rows) - len(baseline))
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row, is_baseline in zip(rows, marks):
        tr = '<tr class="baseline">' if is_baseline else "<tr>"
        lines.append(tr + "".join(td(c) for c in row) + "</tr>")
    return "\n".join(lines + ["</table>"])


def html_page(
    title: str,
    sections: Sequence[tuple[str, str]],
    *,
    note: str = "",
    provenance: Mapping[str, str] | None = None,
) -> str:
    """A standalone HTML page: the title, each (heading, table) section, the note, and the git
    commit and config hash the table was made with."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, table in sections:
        parts += ([f"<h2>{html.escape(heading)}</h2>"] if heading else []) + [table]
    if note.strip():
        parts.append(f'<p class="note">{html.escape(note.strip())}</p>')
    if provenance and any(provenance.values()):
        made = ", ".join(
            f"{k.replace('_', ' ')} {html.escape(str(v))}" for k, v in provenance.items() if v
        )
        parts.append(f'<p class="provenance">Made with {made}.</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )


def provenance_of(frame: pd.DataFrame) -> dict[str, str]:
    """The git commit and config hash a table's rows are stamped with (:func:`stamp`)."""
    if frame.empty:
        return {}
    return {
        c: str(frame[c].iloc[0]) for c in PROVENANCE if c in frame and pd.notna(frame[c].iloc[0])
    }


def frame_table(frame: pd.DataFrame) -> str:
    """A plain table (no provenance columns) as an HTML ``<table>``, numbers by :func:`number`."""
    shown = frame.drop(columns=[c for c in PROVENANCE if c in frame])
    rows = [[number(v) for v in row] for row in shown.itertuples(index=False)]
    return html_table([str(c) for c in shown.columns], rows)


def frame_html(frame: pd.DataFrame, title: str, note: str = "") -> str:
    """A page of one plain table, with the commit and config hash its rows carry."""
    return html_page(title, [("", frame_table(frame))], note=note, provenance=provenance_of(frame))


def study_html(
    rows: Sequence[tuple[Mapping[str, Any], bool]],
    spec: TableSpec,
    provenance: Mapping[str, str] | None = None,
) -> str:
    """Every metric of the table (not only the markdown's): mean ± std over seeds, under it the
    change and the p-values as in the markdown; the baseline's rows shaded."""
    columns = list(dict.fromkeys([*spec.markdown_columns, "seeds"]))
    header = [spec.labels.get(c, c) for c in columns] + [metric_label(m) for m in spec.metrics]
    body = []
    for row, is_baseline in rows:
        cells: list[Cell] = [str(row[c]) for c in columns]
        for m in spec.metrics:
            note = notes(*_annotation(row, m, is_baseline, spec))
            cells.append((cell(row[m], row[f"{m}_std"]), note))
        body.append(cells)
    table = html_table(header, body, baseline=[b for _, b in rows])
    note = spec.note.strip() + " Shaded rows: the baseline the others are compared with."
    return html_page(spec.title or spec.study, [("", table)], note=note, provenance=provenance)


def write_study_table(
    input: Mapping[str, Sequence[str]],
    output: Mapping[str, str],
    spec: TableSpec,
    *,
    synthetic: Sequence[str] = (),
    provenance: Mapping | None = None,
    runs: Sequence[Run] | None = None,
    add_columns: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Read the runs (``input["summaries"]`` with ``input[spec.unit_table]``, or ``runs`` where
    the study reads them itself), write ``output["table"]`` (CSV, ``add_columns``' columns added,
    provenance columns last), ``output["markdown"]`` and ``output["html"]`` (for the report);
    return the table."""
    if runs is None:
        runs = read_runs(spec.study, input["summaries"], input[spec.unit_table])
    rows = build_rows(runs, spec, synthetic)
    stamped = stamp(provenance)
    table = pd.DataFrame([row for row, _ in rows])
    if add_columns is not None:
        table = add_columns(table)
    table = table.assign(**stamped)
    write_csv(output["table"], table)
    write_text(output["markdown"], markdown(rows, spec))
    write_text(output["html"], study_html(rows, spec, stamped))
    return table


DATASETS_NOTE = (
    "Users, items and interactions of each dataset as the models read it, after the configured "
    "filters; density = interactions / (users x items). News datasets: click events, and "
    "impressions over all splits. events_<behaviour>: the events of each behaviour (view, cart, "
    "buy, ...; rating for rated data). Rows marked synthetic are generated, not real data."
)


def dataset_table_html(input: Mapping[str, str], output: Mapping[str, str]) -> None:
    """The dataset table (``input["table"]``, written by the data stage) as HTML for the
    report."""
    frame = pd.read_csv(input["table"])
    write_text(output["html"], frame_html(frame, "Datasets", DATASETS_NOTE))

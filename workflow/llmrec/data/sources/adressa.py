"""Adressa, 1-week release (Gulla et al., WI 2017; https://reclab.idi.ntnu.no/dataset/) into raw
tables in MIND's shape.

``one_week.tar.gz`` unpacks into ``one_week/`` with one file per day, named by its date
(``20170101`` ... ``20170107``, no extension). Each line is one JSON object, one event of the
Adresseavisen site log, e.g. (abridged)::

    {"eventId": 906331936, "userId": "cx:kfub...:1w4r...", "time": 1483225203,
     "id": "2607fc7d7b4c0ede839a5ff6d499fa428237443e", "title": "- Det blir fyrverkeri",
     "category1": "nyheter|trondheim", "url": "http://adressa.no/nyheter/...",
     "publishtime": "2016-12-31T15:48:48.000Z", "activeTime": 27, "sessionStart": true, ...}

Only events with an article (``id``) and a ``title`` are reads; the others (front page views,
events without an article) are skipped. ``userId`` and ``time`` (Unix seconds) are required on
a read; a line that is not a JSON object, or a read with a value of the wrong type, stops the
load with the file and line (or is counted and skipped with ``skip_malformed: true``).

Adressa logs reads, not impressions. As the federated news papers that use it (FedRec,
Efficient-FedRec: days 1-5 history, day 6 train, day 7 test) and, by its own account, POPK, we
build impressions from the reads, with the last day file as ``dev``, the one before it as
``train`` and all earlier days as the users' histories:

- each user's first read of an article on the train (dev) day is an impression at that read's
  time whose candidates are the article (clicked) and ``negatives`` articles (not clicked)
  drawn uniformly, without replacement, from the articles someone read that day and this user
  never read (so they were live, and none is a click the log hides); candidate order is
  shuffled; all seeded (``impressions.seed``);
- the history of a train impression is the user's reads of the history days in time order
  (first read of each article); a dev impression's adds the train day's.

Articles: ``title``; ``category`` the first part of ``category1`` (``nyheter``) and
``subcategory`` all of it (``nyheter|trondheim``); no abstract (the release has no body text);
``url`` and ``publishtime`` kept. ``raw_interactions`` holds the impressions' clicks, as MIND's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from ..readers import iter_records, parse_json_line
from .amazon import field
from .mind import CLICK_EVENTS

log = logging.getLogger(__name__)

DAY_FILE = "[0-9]" * 8  # 20170101


def day_files(raw_dir: Path) -> list[Path]:
    """The day files below ``raw_dir``, in date order; at least three (history, train, dev)."""
    files = sorted((p for p in Path(raw_dir).rglob(DAY_FILE) if p.is_file()), key=lambda p: p.name)
    if len(files) < 3:
        raise FileNotFoundError(
            f"expected Adressa day files (one_week/20170101 ... 20170107) below {raw_dir}, found "
            f"{len(files)}; at least three are needed (history days, a train day, a dev day)"
        )
    return files


def _read(line: str) -> dict:
    record = parse_json_line(line)
    if not isinstance(record, dict):
        return record  # iter_records reports it
    if "id" not in record or "title" not in record:
        return {}  # not an article read
    return {
        "user": field(record, "userId", str, required=True),
        "item": field(record, "id", str, required=True),
        "title": field(record, "title", str, required=True),
        "time": field(record, "time", int, required=True),
        "category1": field(record, "category1", str),
        "url": field(record, "url", str),
        "publishtime": field(record, "publishtime", str),
    }


def _first_reads(reads: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """Each user's first ``(time, user, article)`` read of each article, in time order (file
    order on equal times)."""
    seen: set[tuple[str, str]] = set()
    first = []
    for read in sorted(reads, key=lambda r: r[0]):
        if read[1:] not in seen:
            seen.add(read[1:])
            first.append(read)
    return first


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    """Fill raw_items, raw_impressions and raw_interactions from the day files."""
    skip = bool(options.get("skip_malformed", False))
    settings = options.get("impressions") or {}
    negatives, seed = int(settings.get("negatives", 20)), int(settings.get("seed", 0))
    files = day_files(raw_dir)
    items: dict[str, dict] = {}  # first record of each article, in file order
    days: list[list[tuple[int, str, str]]] = []
    for path in files:
        reads = []
        for r in iter_records(path, _read, skip_malformed=skip):
            if r:
                items.setdefault(r["item"], r)
                reads.append((r["time"], r["user"], r["item"]))
        days.append(_first_reads(reads))
        log.info("%s: %d article reads", path, len(reads))

    history: dict[str, list[str]] = {}
    for day in days[:-2]:
        for _, user, item in day:
            history.setdefault(user, []).append(item)
    read_by: dict[str, set[str]] = {}
    for day in days:
        for _, user, item in day:
            read_by.setdefault(user, set()).add(item)

    rng = np.random.default_rng(seed)
    rows = []
    for split, day in (("train", days[-2]), ("dev", days[-1])):
        live = np.array(sorted({item for _, _, item in day}))
        for time, user, item in day:
            pool = live[~np.isin(live, list(read_by[user]))]
            drawn = rng.choice(pool, min(negatives, len(pool)), replace=False).tolist()
            candidates = [item, *drawn]
            order = rng.permutation(len(candidates))
            rows.append(
                {
                    "impression_key": len(rows) + 1,
                    "user_key": user,
                    "timestamp": time,
                    "history": list(history.get(user, [])),
                    "candidates": [candidates[i] for i in order],
                    "labels": [int(i == 0) for i in order],
                    "split": split,
                }
            )
        if split == "train":  # the dev day's histories hold the train day's reads
            for _, user, item in day:
                history.setdefault(user, []).append(item)

    impressions = pa.table(
        {
            "impression_key": pa.array([r["impression_key"] for r in rows], pa.int64()),
            "user_key": pa.array([r["user_key"] for r in rows], pa.string()),
            "timestamp": pa.array([r["timestamp"] for r in rows], pa.int64()),
            "history": pa.array([r["history"] for r in rows], pa.list_(pa.string())),
            "candidates": pa.array([r["candidates"] for r in rows], pa.list_(pa.string())),
            "labels": pa.array([r["labels"] for r in rows], pa.list_(pa.int8())),
            "split": pa.array([r["split"] for r in rows], pa.string()),
        }
    )
    ordered = list(items.values())
    articles = pa.table(
        {
            "item_key": pa.array([a["item"] for a in ordered], pa.string()),
            "ord": pa.array(range(len(ordered)), pa.int64()),
            "title": pa.array([a["title"] for a in ordered], pa.string()),
            "category": pa.array(
                [(a["category1"] or "").split("|")[0] or None for a in ordered], pa.string()
            ),
            "description": pa.nulls(len(ordered), pa.string()),
            "subcategory": pa.array([a["category1"] for a in ordered], pa.string()),
            "url": pa.array([a["url"] for a in ordered], pa.string()),
            "publishtime": pa.array([a["publishtime"] for a in ordered], pa.string()),
        }
    )
    con.register("adressa_impressions", impressions)
    con.register("adressa_items", articles)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_impressions AS SELECT * FROM adressa_impressions;
        CREATE OR REPLACE TEMP TABLE raw_items AS SELECT * FROM adressa_items ORDER BY ord""")
    con.execute(CLICK_EVENTS)
    con.unregister("adressa_impressions")
    con.unregister("adressa_items")

"""Ties in time and repeated events, from a source file to the splits and sequences.

Events of a user in the same second keep the order of the source file (as RecBole's stable sort
by time does), never item id order; repeated events of a user on one item and behaviour are
reduced as ``filter.dedupe`` says.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from llmrec.data import encode
from llmrec.data.canonical import write_canonical
from llmrec.data.sources import (
    amazon,
    csv_file,
    lastfm,
    mind,
    movielens,
    retailrocket,
    taobao,
    tmall,
    yelp,
)

from .conftest import FIXTURES

COLUMNS = {"user": "user", "item": "item", "timestamp": "time", "behaviour": "behaviour"}


def _build(tmp_path: Path, lines: list[str], **filter_options) -> dict[str, Path]:
    """A csv source of ``lines`` (user, item, time, behaviour) through parse, canonical tables
    and filter; return the paths of the filtered tables and of the splits and sequences."""
    raw = tmp_path / "raw"
    raw.mkdir(parents=True)
    (raw / "events.tsv").write_text("user\titem\ttime\tbehaviour\n" + "\n".join(lines) + "\n")
    con = duckdb.connect()
    options = {"csv": {"interactions": {"file": "events.tsv", "columns": COLUMNS}}}
    csv_file.load(con, raw, options, tmp_path / "scratch")
    names = ("interactions", "items", "users", "impressions")
    canonical = {t: tmp_path / "canonical" / f"{t}.parquet" for t in names}
    (tmp_path / "canonical").mkdir()
    write_canonical(con, canonical, "t")
    (tmp_path / "filtered").mkdir()
    paths = {t: tmp_path / "filtered" / f"{t}.parquet" for t in names[:3]}
    encode.filter_interactions(encode.connect(), canonical, paths, dataset="t", **filter_options)
    paths |= {n: tmp_path / f"{n}.parquet" for n in ("loo", "random", "sequences")}
    encode.split_leave_one_out(paths["interactions"], paths["loo"])
    encode.split_random(paths["interactions"], paths["random"], seed=0, ratios=(0.5, 0.25, 0.25))
    encode.build_sequences(paths["interactions"], paths["sequences"])
    return paths


def _original_ids(paths: dict[str, Path], table: str) -> list[tuple[str, str, str]]:
    """(user, item, split) in the table's row order, by the source's ids."""
    users = pq.read_table(paths["users"]).column("original_id").to_pylist()
    items = pq.read_table(paths["items"]).column("original_id").to_pylist()
    t = pq.read_table(paths[table]).to_pydict()
    return [(users[u], items[i], s) for u, i, s in zip(t["user_id"], t["item_id"], t["split"])]


# Two users whose lines interleave; each second's events are listed in decreasing item id order.
TIED = [
    "a\t9\t100\tview",
    "b\t4\t50\tview",
    "a\t7\t100\tview",
    "a\t5\t100\tview",
    "b\t3\t50\tview",
    "a\t3\t200\tview",
    "b\t8\t60\tview",
    "a\t2\t200\tview",
    "b\t1\t60\tview",
]


def test_ties_in_time_keep_the_files_order_in_splits_and_sequences(tmp_path):
    paths = _build(tmp_path, TIED)
    items = pq.read_table(paths["items"]).column("original_id").to_pylist()
    sequences = pq.read_table(paths["sequences"]).to_pydict()
    assert [[items[i] for i in seq] for seq in sequences["items"]] == [
        ["9", "7", "5", "3", "2"],
        ["4", "3", "8", "1"],
    ]
    # Item id order would make "3" (a) and "8" (b) the test items.
    assert _original_ids(paths, "loo") == [
        ("a", "9", "train"),
        ("a", "7", "train"),
        ("a", "5", "train"),
        ("a", "3", "valid"),
        ("a", "2", "test"),
        ("b", "4", "train"),
        ("b", "3", "train"),
        ("b", "8", "valid"),
        ("b", "1", "test"),
    ]
    assert [(u, i) for u, i, _ in _original_ids(paths, "random")] == [
        (u, i) for u, i, _ in _original_ids(paths, "loo")
    ]


def test_source_row_is_kept_through_the_filter_in_time_then_file_order(tmp_path):
    paths = _build(tmp_path, TIED)
    t = pq.read_table(paths["interactions"]).to_pydict()
    by_user = {}
    for user, time, row in zip(t["user_id"], t["timestamp"], t["source_row"]):
        by_user.setdefault(user, []).append((time, row))
    assert all(rows == sorted(rows) for rows in by_user.values())
    assert [row for _, row in by_user[0]] == [1, 3, 4, 6, 8]  # a's lines after the header


# User a views x three times, y twice (the second at a's last second), z once and buys x once.
REPEATS = [
    "a\tx\t1\tview",
    "a\ty\t2\tview",
    "a\tx\t3\tview",
    "a\tx\t3\tbuy",
    "a\tz\t4\tview",
    "a\tx\t5\tview",
    "a\ty\t6\tview",
    "b\tx\t1\tview",
    "b\tw\t2\tview",
    "b\tx\t3\tview",
    "b\tw\t3\tview",
    "b\tv\t4\tview",
]


def _events(paths, table="interactions"):
    users = pq.read_table(paths["users"]).column("original_id").to_pylist()
    items = pq.read_table(paths["items"]).column("original_id").to_pylist()
    t = pq.read_table(paths[table]).to_pydict()
    return [
        (users[u], items[i], time, b)
        for u, i, time, b in zip(t["user_id"], t["item_id"], t["timestamp"], t["behaviour"])
    ]


@pytest.mark.parametrize(
    "policy, expected",
    [
        (
            "first",
            [
                ("a", "x", 1, "view"),
                ("a", "y", 2, "view"),
                ("a", "x", 3, "buy"),
                ("a", "z", 4, "view"),
                ("b", "x", 1, "view"),
                ("b", "w", 2, "view"),
                ("b", "v", 4, "view"),
            ],
        ),
        (
            "last",
            [
                ("a", "x", 3, "buy"),
                ("a", "z", 4, "view"),
                ("a", "x", 5, "view"),
                ("a", "y", 6, "view"),
                ("b", "x", 3, "view"),
                ("b", "w", 3, "view"),
                ("b", "v", 4, "view"),
            ],
        ),
        ("keep", None),
    ],
)
def test_dedupe_keeps_one_event_per_user_item_and_behaviour(tmp_path, policy, expected):
    paths = _build(tmp_path, REPEATS, dedupe=policy)
    if expected is None:  # keep: every event, as before there was a policy
        expected = [(u, i, int(t), b) for u, i, t, b in (line.split("\t") for line in REPEATS)]
    assert _events(paths) == expected


def _pairs_by_split(paths, table):
    pairs = {}
    for user, item, split in _original_ids(paths, table):
        pairs.setdefault(split, Counter())[(user, item)] += 1
    return pairs


@pytest.mark.parametrize("table", ["loo", "random"])
def test_under_the_default_no_pair_is_in_training_and_test(tmp_path, table):
    """The default policy (first) on a view-only log with repeats: no (user, item) both in
    training and in validation or test; with keep, the old behaviour, a's test item y is also
    a training item."""
    views = [line for line in REPEATS if not line.endswith("buy")]
    paths = _build(tmp_path, views)
    pairs = _pairs_by_split(paths, table)
    assert not set(pairs["train"]) & (set(pairs.get("valid", {})) | set(pairs.get("test", {})))
    assert all(n == 1 for counts in pairs.values() for n in counts.values())

    kept = _build(tmp_path / "keep", views, dedupe="keep")
    assert pq.read_metadata(kept["interactions"]).num_rows == len(views)
    if table == "loo":
        pairs = _pairs_by_split(kept, "loo")
        assert pairs["test"][("a", "y")] == 1 and pairs["train"][("a", "y")] == 1


def test_an_unknown_policy_names_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"datasets\.t\.filter\.dedupe is True"):
        _build(tmp_path, REPEATS, dedupe=True)


# Each parser numbers events in the order of its files (derived events: of the line or the
# impression they come from).


def _lines(path: Path, skip: int = 0) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="latin-1") as fh:
        return [line.rstrip("\n") for line in fh][skip:]


def _delimited(path, delim, skip=0, user=0, item=1):
    return [(f[user], f[item]) for f in (line.split(delim) for line in _lines(path, skip) if line)]


def _json_lines(path, user, item):
    return [(r[user], r[item]) for r in map(json.loads, _lines(path))]


def _lastfm_first_tags(path):
    first = {}
    for n, (user, artist, _, ms) in enumerate(f.split("\t") for f in _lines(path, 1)):
        key = (user, artist)
        if key not in first or int(ms) < first[key][0]:
            first[key] = (int(ms), n)
    return sorted(first, key=lambda k: first[k][1])


def _mind_clicks(folder):
    clicks = []
    for split in ("MINDsmall_train", "MINDsmall_dev"):
        for line in _lines(folder / split / "behaviors.tsv"):
            fields = line.split("\t")
            clicks += [(fields[1], t[:-2]) for t in fields[4].split() if t.endswith("-1")]
    return clicks


SOURCES = {
    "ml-100k": (movielens, {}, lambda d: _delimited(d / "u.data", "\t")),
    "ml-100k-recbole": (movielens, {}, lambda d: _delimited(d / "ml-100k.inter", "\t", 1)),
    "ml-1m": (movielens, {}, lambda d: _delimited(d / "ratings.dat", "::")),
    "amazon-beauty": (
        amazon,
        {},
        lambda d: _json_lines(d / "reviews_Beauty_5.json.gz", "reviewerID", "asin"),
    ),
    "yelp": (
        yelp,
        {},
        lambda d: _json_lines(d / "yelp_academic_dataset_review.json", "user_id", "business_id"),
    ),
    "taobao": (taobao, {}, lambda d: _delimited(d / "UserBehavior.csv", ",")),
    "tmall": (tmall, {}, lambda d: _delimited(d / "user_log_format1.csv", ",", 1)),
    "retailrocket": (
        retailrocket,
        {},
        lambda d: _delimited(d / "events.csv", ",", 1, user=1, item=3),
    ),
    "lastfm": (lastfm, {}, lambda d: _lastfm_first_tags(d / "user_taggedartists-timestamps.dat")),
    "mind-small": (mind, {}, _mind_clicks),
    "csv": (
        csv_file,
        {
            "csv": {
                "interactions": {
                    "file": "interactions.tsv",
                    "columns": {"user": "user_id", "item": "item_id", "timestamp": "timestamp"},
                }
            }
        },
        lambda d: _delimited(d / "interactions.tsv", "\t", 1),
    ),
}


@pytest.mark.parametrize("fixture", SOURCES)
def test_every_parser_numbers_events_in_file_order(tmp_path, fixture):
    parser, options, expected = SOURCES[fixture]
    con = duckdb.connect()
    parser.load(con, FIXTURES / fixture, options, tmp_path / "scratch")
    got = con.execute(
        "SELECT user_key, item_key, source_row FROM raw_interactions ORDER BY source_row"
    ).fetchall()
    assert len({row for _, _, row in got}) == len(got)
    assert [(u, i) for u, i, _ in got] == expected(FIXTURES / fixture)

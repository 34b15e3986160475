"""The Retailrocket parser on a small copy of events.csv (tests/fixtures/retailrocket)."""

import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import retailrocket

from .conftest import fetch_and_parse

FIXTURE = Path(__file__).parent / "fixtures" / "retailrocket"
FILE = "events.csv"


def load(raw_dir: Path, tmp_path: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    retailrocket.load(con, raw_dir, options, tmp_path / "scratch")
    return con


def edited_copy(tmp_path: Path, line_no: int, text: str) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    lines = (raw / FILE).read_text().splitlines()
    lines[line_no - 1] = text
    (raw / FILE).write_text("\n".join(lines) + "\n")
    return raw


def test_events_become_behaviours_in_seconds(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute(
        "SELECT item_key, timestamp, behaviour, rating FROM raw_interactions "
        "WHERE user_key = '992329' ORDER BY timestamp, source_row"
    ).fetchall()
    assert rows == [
        ("248676", 1433224214, "view", None),  # 1433224214164 ms
        ("248676", 1433224214, "cart", None),  # addtocart, the same millisecond
        ("248676", 1433224300, "buy", None),  # transaction
        ("318965", 1433224300, "buy", None),  # the same transaction
    ]
    counts = con.execute(
        "SELECT behaviour, count(*) FROM raw_interactions GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert counts == [("buy", 3), ("cart", 2), ("view", 7)]
    types = con.execute("SELECT column_type FROM (DESCRIBE raw_interactions)").fetchall()
    assert [t[0] for t in types] == ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "FLOAT", "BIGINT"]


def test_items_are_the_distinct_items_without_text(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute("SELECT * FROM raw_items ORDER BY item_key").fetchall()
    assert rows == [
        (item, None, None, None, None)
        for item in ("248676", "318965", "355908", "356475", "367447")
    ]


def test_parse_rule_orders_ties_in_a_second_by_file_line(tmp_path):
    out = fetch_and_parse(tmp_path, "retailrocket", FIXTURE)
    users = pq.read_table(out["users"]).column("original_id").to_pylist()
    items = pq.read_table(out["item_table"]).column("original_id").to_pylist()
    assert users == ["111016", "257597", "599528", "992329"]
    events = pq.read_table(out["interactions"]).to_pylist()
    assert len(events) == 12

    def of(user):
        return [
            (items[e["item_id"]], e["timestamp"], e["behaviour"], e["source_row"])
            for e in events
            if users[e["user_id"]] == user
        ]

    # Lines 6 and 7 share a second: the cart (…200900 ms) stays before the view (…200100 ms)
    # because the file lists it first.
    assert of("599528") == [
        ("356475", 1433222147, "view", 3),
        ("356475", 1433222200, "cart", 4),
        ("367447", 1433222200, "view", 5),
        ("356475", 1433222276, "buy", 6),
    ]
    # A repeated view stays an event here (dedupe is the filter's job); the file is not in time
    # order, and the canonical table is.
    assert of("257597") == [
        ("355908", 1433221332, "view", 0),
        ("355908", 1433221955, "view", 7),
        ("248676", 1433221999, "view", 2),
    ]
    assert [(e[0], e[3]) for e in of("992329")] == [
        ("248676", 1),
        ("248676", 8),
        ("248676", 9),
        ("318965", 10),
    ]


@pytest.mark.parametrize(
    "line, why",
    [
        ("1433222200900,599528,add_to_cart,356475,", "event must be view, addtocart, transaction"),
        ("1433222200900,599528,addtocart,x356475,", 'Could not convert string "x356475"'),
        ("1433222200900,,addtocart,356475,", "visitorid and itemid must be given"),
        ("1433222200.9,599528,addtocart,356475,", "timestamp must be whole milliseconds"),
        (",599528,addtocart,356475,", "timestamp must be whole milliseconds"),
        ("1433222276276,599528,transaction,356475,t4000", 'Could not convert string "t4000"'),
    ],
)
def test_malformed_line(tmp_path, line, why):
    raw = edited_copy(tmp_path, 6, line)
    with pytest.raises(MalformedInputError, match=rf"{FILE}: line 6: .*{why}"):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    kept = con.execute("SELECT user_key, item_key FROM raw_interactions ORDER BY source_row")
    data = [line.split(",")[1:4:2] for line in (FIXTURE / FILE).read_text().splitlines()[1:]]
    assert kept.fetchall() == [tuple(pair) for n, pair in enumerate(data) if n != 4]

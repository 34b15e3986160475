"""The Tmall (IJCAI-15) parser on a small copy of user_log_format1.csv (tests/fixtures/tmall)."""

import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from llmrec.data.readers import MalformedInputError, check_rows, read_delimited
from llmrec.data.sources import tmall

from .conftest import fetch_and_parse

FIXTURE = Path(__file__).parent / "fixtures" / "tmall"
FILE = "user_log_format1.csv"
# 00:00 China time (UTC+8) of each day, from `date -d "2014-08-29 00:00 +0800" +%s`
MAY_11, JUN_02, JUN_11, JUL_05 = 1399737600, 1401638400, 1402416000, 1404489600
AUG_29, OCT_01, NOV_11, NOV_12 = 1409241600, 1412092800, 1415635200, 1415721600


def load(raw_dir: Path, tmp_path: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    tmall.load(con, raw_dir, options, tmp_path / "scratch")
    return con


def edited_copy(tmp_path: Path, edit) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    lines = (raw / FILE).read_text().splitlines()
    edit(lines)
    (raw / FILE).write_text("\n".join(lines) + "\n")
    return raw


def test_actions_become_behaviours_at_midnight_china_time(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute(
        "SELECT item_key, timestamp, behaviour, rating FROM raw_interactions "
        "WHERE user_key = '328862' ORDER BY timestamp, source_row"
    ).fetchall()
    assert rows == [
        ("575153", MAY_11, "fav", None),  # 0511
        ("323294", AUG_29, "view", None),  # 0829
        ("844400", AUG_29, "view", None),
        ("323294", AUG_29, "cart", None),
        ("323294", AUG_29, "buy", None),  # 829: the same day without its leading zero
        ("323294", NOV_11, "buy", None),
    ]
    counts = con.execute(
        "SELECT behaviour, count(*) FROM raw_interactions GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert counts == [("buy", 4), ("cart", 2), ("fav", 2), ("view", 6)]
    types = con.execute("SELECT column_type FROM (DESCRIBE raw_interactions)").fetchall()
    assert [t[0] for t in types] == ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "FLOAT", "BIGINT"]


def test_items_keep_category_seller_and_brand_smallest_first(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute("SELECT * FROM raw_items ORDER BY item_key::BIGINT").fetchall()
    assert rows == [
        ("323294", None, None, "833", None, "2882", "2661"),
        ("542871", None, None, "1467", None, "2882", "2661"),
        ("575153", None, None, "1271", None, "2882", "1360"),  # brand empty on one line
        ("844400", None, None, "1095", None, "2882", "2661"),  # two categories: the smaller
        ("996875", None, None, "1271", None, "1253", "2661"),  # two sellers: the smaller
        ("1086186", None, None, "1271", None, "1253", "1049"),
    ]


def test_items_do_not_depend_on_row_order(tmp_path):
    def reverse(lines):
        lines[1:] = lines[:0:-1]

    raw = edited_copy(tmp_path, reverse)
    query = "SELECT * FROM raw_items ORDER BY item_key"
    assert (
        load(raw, tmp_path).execute(query).fetchall()
        == load(FIXTURE, tmp_path).execute(query).fetchall()
    )


def test_parse_rule_orders_same_day_events_by_file_line(tmp_path):
    out = fetch_and_parse(tmp_path, "tmall", FIXTURE)
    users = pq.read_table(out["users"]).column("original_id").to_pylist()
    items = pq.read_table(out["item_table"]).column("original_id").to_pylist()
    assert users == ["234512", "328862", "356311"]
    events = pq.read_table(out["interactions"]).to_pylist()
    assert len(events) == 14
    first = [
        (items[e["item_id"]], e["timestamp"], e["behaviour"], e["source_row"])
        for e in events
        if users[e["user_id"]] == "328862"
    ]
    # 0829 and 829 are one day: its four events keep the file's order (lines 2-5), not item order
    assert first == [
        ("575153", MAY_11, "fav", 4),
        ("323294", AUG_29, "view", 0),
        ("844400", AUG_29, "view", 1),
        ("323294", AUG_29, "cart", 2),
        ("323294", AUG_29, "buy", 3),
        ("323294", NOV_11, "buy", 5),
    ]
    second = [
        (items[e["item_id"]], e["timestamp"], e["behaviour"])
        for e in events
        if users[e["user_id"]] == "234512"
    ]
    assert second == [
        ("575153", JUN_02, "cart"),
        ("844400", NOV_11, "view"),  # a repeated event stays an event in the canonical table
        ("844400", NOV_11, "view"),
        ("1086186", NOV_12, "buy"),
    ]
    third = {e["timestamp"] for e in events if users[e["user_id"]] == "356311"}
    assert third == {JUN_11, JUL_05, OCT_01}
    item_rows = pq.read_table(out["item_table"]).to_pylist()
    assert item_rows[items.index("575153")]["brand_id"] == "1360"


@pytest.mark.parametrize(
    "line, why",
    [
        ("328862,x844400,1271,2882,2661,0829,0", 'Could not convert string "x844400"'),
        (",844400,1271,2882,2661,0829,0", "user_id, item_id, cat_id and seller_id must be given"),
        ("328862,844400,1271,2882,2661,0829,4", "action_type must be 0, 1, 2 or 3"),
        ("328862,844400,1271,2882,2661,1345,0", "time_stamp must be a day of 2014 as MMDD"),
        ("328862,844400,1271,2882,2661,0229,0", "time_stamp must be a day of 2014 as MMDD"),
        ("328862,844400,1271,2882,2661,,0", "time_stamp must be a day of 2014 as MMDD"),
    ],
)
def test_malformed_line(tmp_path, line, why):
    raw = edited_copy(tmp_path, lambda lines: lines.__setitem__(2, line))
    with pytest.raises(MalformedInputError, match=rf"{FILE}: line 3: .*{why}"):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    kept = con.execute(
        "SELECT user_key, item_key FROM raw_interactions ORDER BY source_row"
    ).fetchall()
    data = [line.split(",")[:2] for line in (FIXTURE / FILE).read_text().splitlines()[1:]]
    assert kept == [tuple(pair) for n, pair in enumerate(data) if n != 1]  # line 3 is gone


def test_line_numbers_count_empty_and_rejected_lines(tmp_path):
    def edit(lines):
        lines[3] = "328862,x,833,2882,2661,0829,1"  # line 4: the reader rejects it
        lines.insert(6, "")  # line 7: empty
        lines[10] = "234512,1086186,1271,1253,1049,1313,2"  # line 11: no such day

    raw = edited_copy(tmp_path, edit)
    with pytest.raises(MalformedInputError, match=rf"{FILE}: line 4: "):
        load(raw, tmp_path)
    # Once the reader skips line 4, the day check names its own line.
    con = duckdb.connect()
    path = raw / FILE
    read_delimited(con, "t", path, tmall.COLUMNS, delim=",", header=True, skip_malformed=True)
    with pytest.raises(
        MalformedInputError, match=rf"{FILE}: line 11: .*'234512,1086186,.*,1313,2'"
    ):
        check_rows(con, "t", path, tmall.RULES, header=True)
    con = load(raw, tmp_path, skip_malformed=True)
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == 12

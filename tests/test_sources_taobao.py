"""The Taobao UserBehavior parser on a small copy of UserBehavior.csv (tests/fixtures/taobao)."""

import shutil
from pathlib import Path

import duckdb
import pytest

from llmrec.data.canonical import CANONICAL_TABLES, write_canonical
from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import taobao

FIXTURE = Path(__file__).parent / "fixtures" / "taobao"
WINDOW = [1511539200, 1512316800]  # 2017-11-25 to 2017-12-04, China time


def load(raw_dir: Path, tmp_path: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    taobao.load(con, raw_dir, options, tmp_path / "scratch")
    return con


def broken_copy(tmp_path: Path, line_no: int, text: str) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    lines = (raw / "UserBehavior.csv").read_text().splitlines()
    lines[line_no - 1] = text
    (raw / "UserBehavior.csv").write_text("\n".join(lines) + "\n")
    return raw


def test_time_window_keeps_start_and_drops_end(tmp_path):
    con = load(FIXTURE, tmp_path, time_window=WINDOW)
    rows = con.execute(
        "SELECT user_key, item_key, timestamp, behaviour, rating "
        "FROM raw_interactions "
        "WHERE user_key = '1' ORDER BY timestamp"
    ).fetchall()
    assert rows == [
        ("1", "230380", 1511539200, "view", None),  # exactly the start
        ("1", "2268318", 1511544070, "view", None),
        ("1", "2333346", 1511561733, "view", None),
        ("1", "2268318", 1511572885, "cart", None),
        ("1", "2268318", 1511593493, "buy", None),
        ("1", "4365585", 1511596146, "fav", None),
    ]
    counts = con.execute(
        "SELECT behaviour, count(*) FROM raw_interactions GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert counts == [("buy", 2), ("cart", 2), ("fav", 2), ("view", 7)]
    outside = con.execute(
        "SELECT count(*) FROM raw_interactions WHERE timestamp IN "
        "(1511400000, 1512316800, 1512400000)"
    ).fetchone()[0]
    assert outside == 0
    types = con.execute("SELECT column_type FROM (DESCRIBE raw_interactions)").fetchall()
    assert [t[0] for t in types] == ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "FLOAT", "BIGINT"]


def test_items_are_the_distinct_kept_items(tmp_path):
    con = load(FIXTURE, tmp_path, time_window=WINDOW)
    rows = con.execute("SELECT * FROM raw_items ORDER BY item_key::BIGINT").fetchall()
    assert rows == [
        ("230380", None, None, "411153", None),
        ("2268318", None, None, "2520377", None),
        ("2333346", None, None, "2520771", None),
        ("2576651", None, None, "149192", None),
        ("3031354", None, None, "2735466", None),
        ("4365585", None, None, "2520377", None),
        ("5002615", None, None, "1320293", None),  # listed under two categories: the smaller
    ]


def test_without_window_every_row_is_kept(tmp_path):
    con = load(FIXTURE, tmp_path)
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == 16
    assert con.execute("SELECT count(*) FROM raw_items").fetchone()[0] == 8


@pytest.mark.parametrize(
    "line", ["1,2268318,2520377,click,1511572885", "1,x2268318,2520377,cart,1511572885"]
)
def test_malformed_line(tmp_path, line):
    raw = broken_copy(tmp_path, 3, line)
    with pytest.raises(MalformedInputError, match=r"UserBehavior.csv: line 3: "):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == 15
    assert (
        con.execute("SELECT count(*) FROM raw_interactions WHERE behaviour = 'cart'").fetchone()[0]
        == 1
    )


def test_write_canonical(tmp_path):
    con = load(FIXTURE, tmp_path, time_window=WINDOW)
    out = {name: tmp_path / f"{name}.parquet" for name in CANONICAL_TABLES}
    counts = write_canonical(con, out, "taobao")
    assert counts == {"users": 3, "items": 7, "interactions": 13, "impressions": 0}
    items = duckdb.sql(f"SELECT item_id, original_id, category FROM '{out['items']}'").fetchall()
    assert items == [
        (0, "230380", "411153"),
        (1, "2268318", "2520377"),
        (2, "2333346", "2520771"),
        (3, "2576651", "149192"),
        (4, "3031354", "2735466"),
        (5, "4365585", "2520377"),
        (6, "5002615", "1320293"),
    ]
    users = duckdb.sql(f"SELECT user_id, original_id FROM '{out['users']}'").fetchall()
    assert users == [(0, "1"), (1, "100"), (2, "1000")]
    events = duckdb.sql(
        f"SELECT item_id, timestamp, behaviour FROM '{out['interactions']}' WHERE user_id = 2"
    ).fetchall()
    assert events == [(5, 1512300000, "view"), (4, 1512310000, "view")]

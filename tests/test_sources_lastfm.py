"""The HetRec 2011 Last.fm parser on a small copy of its files (tests/fixtures/lastfm)."""

import shutil
from pathlib import Path

import duckdb
import pytest

from llmrec.data.canonical import CANONICAL_TABLES, write_canonical
from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import lastfm

FIXTURE = Path(__file__).parent / "fixtures" / "lastfm"
TAGGED = "user_taggedartists-timestamps.dat"


def load(raw_dir: Path, tmp_path: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    lastfm.load(con, raw_dir, options, tmp_path / "scratch")
    return con


def copy_fixture(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    return raw


def test_interactions_are_first_tag_times_of_tagged_pairs(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute(
        "SELECT user_key, item_key, timestamp FROM raw_interactions ORDER BY user_key, timestamp"
    ).fetchall()
    assert rows == [
        ("2", "1", 1238536800),  # tagged twice: the earlier time
        ("2", "18", 1241128800),
        ("2", "113", 1243807200),
        ("2", "133", 1246399200),
        ("2", "158", 1249077600),  # two tags at the same time: one event
        ("2", "4562", 1251756000),
        ("3", "1", 1220220000),
        ("3", "18", 1222812000),
        ("3", "289", 1225494000),
        ("3", "4562", 1228086000),
        ("3", "113", 1230764400),
        ("3", "999", 1233442800),  # an artist missing from artists.dat is kept
        ("4", "4562", -428720401),  # -428720400500 ms, floored
        ("4", "289", 1262300400),
    ]
    # (2, 7) is only in user_artists.dat: no time, so no event.
    assert con.execute("SELECT DISTINCT behaviour, rating FROM raw_interactions").fetchall() == [
        ("listen", None)
    ]
    types = con.execute("SELECT column_type FROM (DESCRIBE raw_interactions)").fetchall()
    assert [t[0] for t in types] == ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "FLOAT", "BIGINT"]


def test_items_are_artists_with_their_most_used_tag(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute("SELECT * FROM raw_items ORDER BY ord").fetchall()
    assert rows == [
        ("1", 0, "MALICE MIZER", "goth", None, "http://www.last.fm/music/MALICE+MIZER"),
        ("7", 1, "Marilyn Manson", None, None, "http://www.last.fm/music/Marilyn+Manson"),
        ("18", 2, "The Crüxshadows", "goth", None, "http://www.last.fm/music/The+Cr%C3%BCxshadows"),
        (
            "113",
            3,
            "Dustin O'Halloran",
            "chillout",
            None,
            "http://www.last.fm/music/Dustin+O%27Halloran",
        ),
        ("133", 4, "Lauki", "chillout", None, "http://www.last.fm/music/Lauki"),
        # j-rock (13) and pop (24) once each: the smaller tag id wins.
        (
            "158",
            5,
            "עברי לידר",
            "j-rock",
            None,
            "http://www.last.fm/music/%D7%A2%D7%91%D7%A8%D7%99+%D7%9C%D7%99%D7%93%D7%A8",
        ),
        ("289", 6, "Britney Spears", "pop", None, "http://www.last.fm/music/Britney+Spears"),
        # tags.dat is Latin-1: "música latina" must come out as such.
        (
            "4562",
            7,
            '"Weird Al" Yankovic',
            "música latina",
            None,
            "http://www.last.fm/music/%22Weird+Al%22+Yankovic",
        ),
    ]


def test_without_tags_file_categories_are_null(tmp_path):
    raw = copy_fixture(tmp_path)
    (raw / "tags.dat").unlink()
    con = load(raw, tmp_path)
    assert con.execute("SELECT count(*), count(category) FROM raw_items").fetchone() == (8, 0)


def test_malformed_line(tmp_path):
    raw = copy_fixture(tmp_path)
    lines = (raw / TAGGED).read_text().splitlines()
    assert lines[4] == "2\t113\t73\t1243807200000"
    lines[4] = "2\t113\tseventy-three\t1243807200000"
    (raw / TAGGED).write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedInputError, match=rf"{TAGGED}: line 5: "):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == 13
    assert (
        con.execute(
            "SELECT count(*) FROM raw_interactions WHERE user_key = '2' AND item_key = '113'"
        ).fetchone()[0]
        == 0
    )


def test_write_canonical(tmp_path):
    con = load(FIXTURE, tmp_path)
    out = {name: tmp_path / f"{name}.parquet" for name in CANONICAL_TABLES}
    counts = write_canonical(con, out, "lastfm")
    assert counts == {"users": 3, "items": 9, "interactions": 14, "impressions": 0}
    items = duckdb.sql(f"SELECT item_id, original_id, category FROM '{out['items']}'").fetchall()
    assert items == [
        (0, "1", "goth"),
        (1, "7", None),
        (2, "18", "goth"),
        (3, "113", "chillout"),
        (4, "133", "chillout"),
        (5, "158", "j-rock"),
        (6, "289", "pop"),
        (7, "4562", "música latina"),
        (8, "999", None),
    ]
    users = duckdb.sql(f"SELECT user_id, original_id FROM '{out['users']}'").fetchall()
    assert users == [(0, "2"), (1, "3"), (2, "4")]
    last_user = duckdb.sql(
        f"SELECT item_id, timestamp FROM '{out['interactions']}' WHERE user_id = 2"
    ).fetchall()
    assert last_user == [(7, -428720401), (6, 1262300400)]

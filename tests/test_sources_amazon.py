"""The McAuley 2014 Amazon parser on a small copy of the Beauty files (fixtures/amazon-beauty)."""

import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from llmrec.data.canonical import CANONICAL_TABLES, write_canonical
from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import amazon

FIXTURE = Path(__file__).parent / "fixtures" / "amazon-beauty"
REVIEWS, META = "reviews_Beauty_5.json.gz", "meta_Beauty.json.gz"
U1, U2, U3 = "A1YJEY40YUW4SE", "A3CIUOJXQ5VDQ2", "A2QVQ8MS2ZYSVI"


def load(raw_dir: Path, tmp_path: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    amazon.load(con, raw_dir, options, tmp_path / "scratch")
    return con


def broken_copy(tmp_path: Path, name: str, line_no: int, text: str) -> Path:
    """Copy the fixture with line ``line_no`` (1-based) of ``name`` replaced by ``text``."""
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    with gzip.open(raw / name, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    lines[line_no - 1] = text
    with gzip.open(raw / name, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return raw


def test_interactions(tmp_path):
    con = load(FIXTURE, tmp_path)
    assert con.execute("DESCRIBE raw_interactions").fetchall() == [
        ("user_key", "VARCHAR", "YES", None, None, None),
        ("item_key", "VARCHAR", "YES", None, None, None),
        ("timestamp", "BIGINT", "YES", None, None, None),
        ("behaviour", "VARCHAR", "YES", None, None, None),
        ("rating", "FLOAT", "YES", None, None, None),
        ("source_row", "BIGINT", "YES", None, None, None),
    ]
    rows = con.execute(
        "SELECT user_key, item_key, timestamp, behaviour, rating FROM raw_interactions "
        "WHERE user_key = ? ORDER BY timestamp",
        [U1],
    ).fetchall()
    assert rows == [
        (U1, "B00004U9V2", 1378425600, "review", 4.0),
        (U1, "B0000530HU", 1386460800, "review", 3.0),
        (U1, "7806397051", 1391040000, "review", 1.0),
        (U1, "B00004TMFE", 1397779200, "review", 5.0),
        (U1, "B000052YAN", 1400000000, "review", 5.0),
    ]
    per_user = con.execute(
        "SELECT user_key, count(*) FROM raw_interactions GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert per_user == [(U1, 5), (U3, 2), (U2, 5)]


def test_items_are_the_reviewed_ones_in_meta_order(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute("SELECT * FROM raw_items ORDER BY ord").fetchall()
    assert rows == [
        (
            "B00004TMFE",
            0,
            "L'Oréal Paris Revitalift Night Cream, 1.7 oz",
            "Night Creams",
            'Wake up to "younger-looking" skin.',
            "L'Oreal Paris",
            12.5,
            ["Beauty", "Skin Care", "Face", "Night Creams"],
        ),
        (
            "7806397051",
            2,
            None,
            "Concealers & Neutralizers",
            'Crème & Brûlée concealer palette; it\'s "6 colours".',
            None,
            None,
            ["Beauty", "Makeup", "Face", "Concealers & Neutralizers"],
        ),
        (
            "B00004U9V2",
            4,
            "Crabtree & Evelyn - Gardener's Ultra-Moisturising Hand Therapy Pump - 250g/8.8 OZ",
            None,
            "日本語 ✓ moisturising",
            "Crabtree &amp; Evelyn",
            30.0,
            None,
        ),
        (
            "B0000530HU",
            5,
            "Nivea Men Shaving Gel",
            "Shaving Gels",
            None,
            None,
            2.99,
            ["Beauty", "Shaving & Hair Removal", "Men", "Shaving Gels"],
        ),
        (
            "B00006L9LC",
            6,
            "Citre Shine Moisture Burst Shampoo - 16 fl oz",
            "Shampoos",
            None,
            "Citre Shine",
            23.0,
            ["Beauty", "Hair Care", "Shampoos"],
        ),
    ]
    types = dict(
        con.execute("SELECT column_name, column_type FROM (DESCRIBE raw_items)").fetchall()
    )
    assert types == {
        "item_key": "VARCHAR",
        "ord": "BIGINT",
        "title": "VARCHAR",
        "category": "VARCHAR",
        "description": "VARCHAR",
        "brand": "VARCHAR",
        "price": "DOUBLE",
        "categories": "VARCHAR[]",
    }


def test_malformed_review_line(tmp_path):
    raw = broken_copy(
        tmp_path, REVIEWS, 3, '{"reviewerID": "A1YJEY40YUW4SE", "asin": "B00004U9V2", '
    )
    with pytest.raises(MalformedInputError, match=rf"{REVIEWS}: line 3: "):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == 11
    assert (
        con.execute(
            "SELECT count(*) FROM raw_interactions WHERE user_key = ? AND item_key = 'B00004U9V2'",
            [U1],
        ).fetchone()[0]
        == 0
    )


def test_review_with_a_rating_of_the_wrong_type_is_malformed(tmp_path):
    raw = broken_copy(
        tmp_path,
        REVIEWS,
        2,
        '{"reviewerID": "A1YJEY40YUW4SE", "asin": "B00004TMFE", '
        '"overall": "5.0", "unixReviewTime": 1397779200}',
    )
    with pytest.raises(MalformedInputError, match=rf"{REVIEWS}: line 2: 'overall' is a str"):
        load(raw, tmp_path)


def test_meta_line_with_code_is_rejected_not_run(tmp_path):
    marker = tmp_path / "executed"
    code = f"__import__('os').system('touch {marker}')"
    raw = broken_copy(tmp_path, META, 3, f"{{'asin': '7806397051', 'title': {code}}}")
    with pytest.raises(MalformedInputError, match=rf"{META}: line 3: "):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    assert not marker.exists()
    keys = [row[0] for row in con.execute("SELECT item_key FROM raw_items ORDER BY ord").fetchall()]
    assert keys == ["B00004TMFE", "B00004U9V2", "B0000530HU", "B00006L9LC"]


def test_write_canonical(tmp_path):
    con = load(FIXTURE, tmp_path)
    out = {name: tmp_path / f"{name}.parquet" for name in CANONICAL_TABLES}
    counts = write_canonical(con, out, "amazon-beauty")
    assert counts == {"users": 3, "items": 6, "interactions": 12, "impressions": 0}
    items = duckdb.sql(f"SELECT item_id, original_id, title FROM '{out['items']}'").fetchall()
    # Meta order first; the reviewed item missing from the metadata comes last, without a title.
    assert items == [
        (0, "B00004TMFE", "L'Oréal Paris Revitalift Night Cream, 1.7 oz"),
        (1, "7806397051", None),
        (
            2,
            "B00004U9V2",
            "Crabtree & Evelyn - Gardener's Ultra-Moisturising Hand Therapy Pump - 250g/8.8 OZ",
        ),
        (3, "B0000530HU", "Nivea Men Shaving Gel"),
        (4, "B00006L9LC", "Citre Shine Moisture Burst Shampoo - 16 fl oz"),
        (5, "B000052YAN", None),
    ]
    users = duckdb.sql(f"SELECT user_id, original_id FROM '{out['users']}'").fetchall()
    assert users == [(0, U1), (1, U3), (2, U2)]
    first = duckdb.sql(f"SELECT * FROM '{out['interactions']}' LIMIT 2").fetchall()
    assert first == [(0, 2, 1378425600, "review", 4.0, 2), (0, 3, 1386460800, "review", 3.0, 3)]


def test_review_texts_are_kept_for_the_item_prompts(tmp_path):
    con = load(FIXTURE, tmp_path)
    (text,) = con.execute(
        "SELECT text FROM raw_reviews WHERE user_key = ? AND item_key = '7806397051'", [U1]
    ).fetchone()
    assert text.startswith("Very oily and creamy. Not at all what I expected")
    assert con.execute("SELECT count(*) FROM raw_reviews").fetchone()[0] == 12
    columns = [row[0] for row in con.execute("DESCRIBE raw_interactions").fetchall()]
    assert columns == ["user_key", "item_key", "timestamp", "behaviour", "rating", "source_row"]

"""The Yelp Open Dataset parser on a small copy of its JSON-lines files (tests/fixtures/yelp)."""

import shutil
from pathlib import Path

import duckdb
import pytest

from llmrec.data.canonical import CANONICAL_TABLES, write_canonical
from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import yelp

FIXTURE = Path(__file__).parent / "fixtures" / "yelp"
REVIEWS, BUSINESS = "yelp_academic_dataset_review.json", "yelp_academic_dataset_business.json"
Y1, Y2, Y3 = "mh_-eMZ6K5RLWhZyISBhwA", "OyoGAe7OKpv6SyGZT5g77Q", "8g_iMtfSiwikVnbP2etR0A"


def load(raw_dir: Path, tmp_path: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    yelp.load(con, raw_dir, options, tmp_path / "scratch")
    return con


def broken_copy(tmp_path: Path, name: str, line_no: int, text: str) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    lines = (raw / name).read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = text
    (raw / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return raw


def test_interactions(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute(
        "SELECT user_key, item_key, timestamp, behaviour, rating "
        "FROM raw_interactions "
        "WHERE user_key = ? ORDER BY timestamp",
        [Y1],
    ).fetchall()
    assert rows == [
        (Y1, "mWMc6_wTdE0EUBKIGXDVfA", 1325604498, "review", 5.0),  # 2012-01-03 15:28:18 UTC
        (Y1, "tUFrWirKiKi_TAnsVWINQQ", 1391632230, "review", 3.0),
        (Y1, "n_0UpQx1hsNbnPUSlodU8w", 1420329663, "review", 5.0),
        (Y1, "Pns2l4eNsfO8kk83dixA6A", 1484427255, "review", 4.0),
        (Y1, "MTSW4McQd7CbVtyjqoe9mw", 1531001351, "review", 3.0),  # 2018-07-07 22:09:11 UTC
    ]
    per_user = dict(
        con.execute("SELECT user_key, count(*) FROM raw_interactions GROUP BY ALL").fetchall()
    )
    assert per_user == {Y1: 5, Y2: 5, Y3: 2}
    types = con.execute("SELECT column_type FROM (DESCRIBE raw_interactions)").fetchall()
    assert [t[0] for t in types] == ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "FLOAT", "BIGINT"]


def test_items_are_businesses_in_file_order(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute("SELECT * FROM raw_items ORDER BY ord").fetchall()
    assert rows == [
        (
            "Pns2l4eNsfO8kk83dixA6A",
            0,
            "Abby Rappoport, LAC, CMQ",
            "Doctors",
            "Santa Barbara, CA",
            [
                "Doctors",
                "Traditional Chinese Medicine",
                "Naturopathic/Holistic",
                "Acupuncture",
                "Health & Medical",
                "Nutritionists",
            ],
            5.0,
        ),
        (
            "mpf3x-BjTdTEA3yCZrAYPw",
            1,
            "The UPS Store",
            "Shipping Centers",
            "Affton, MO",
            [
                "Shipping Centers",
                "Local Services",
                "Notaries",
                "Mailbox Centers",
                "Printing Services",
            ],
            3.0,
        ),
        (
            "tUFrWirKiKi_TAnsVWINQQ",
            2,
            "Target",
            "Department Stores",
            "Tucson, AZ",
            ["Department Stores", "Shopping", "Fashion"],
            3.5,
        ),
        (
            "MTSW4McQd7CbVtyjqoe9mw",
            3,
            "St Honore Pastries",
            "Restaurants",
            "Philadelphia, PA",
            ["Restaurants", "Food", "Bubble Tea", "Coffee & Tea", "Bakeries"],
            4.0,
        ),
        (
            "mWMc6_wTdE0EUBKIGXDVfA",
            4,
            "Perkiomen Valley Brewery",
            "Brewpubs",
            "Green Lane, PA",
            ["Brewpubs", "Breweries", "Food"],
            4.5,
        ),
        ("CF33F8-E6oudUQ46HnavjQ", 5, "Sonic Drive-In", None, "Ashland City, TN", None, 2.0),
        ("n_0UpQx1hsNbnPUSlodU8w", 6, 'Café "Zoë\'s" Kitchen', None, "Edmonton, AB", None, 4.0),
    ]
    types = dict(
        con.execute("SELECT column_name, column_type FROM (DESCRIBE raw_items)").fetchall()
    )
    assert types["categories"] == "VARCHAR[]" and types["stars"] == "DOUBLE"


@pytest.mark.parametrize(
    "text",
    [
        '{"review_id":"saUsX_uimxRlCVr67Z4Jig","user_id":"mh_-eMZ6K5RLWhZyISBhwA","business_id":',
        '{"review_id":"saUsX_uimxRlCVr67Z4Jig","business_id":"tUFrWirKiKi_TAnsVWINQQ","stars":3.0,'
        '"date":"2014-02-05 20:30:30"}',  # no user_id
        '{"review_id":"saUsX_uimxRlCVr67Z4Jig","user_id":"mh_-eMZ6K5RLWhZyISBhwA",'
        '"business_id":"tUFrWirKiKi_TAnsVWINQQ","stars":3.0,"date":"05/02/2014"}',
    ],
)
def test_malformed_review_line(tmp_path, text):
    raw = broken_copy(tmp_path, REVIEWS, 3, text)
    with pytest.raises(MalformedInputError, match=rf"{REVIEWS}: line 3: "):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == 11
    assert (
        con.execute(
            "SELECT count(*) FROM raw_interactions WHERE item_key = 'tUFrWirKiKi_TAnsVWINQQ'"
        ).fetchone()[0]
        == 1
    )


def test_business_with_old_list_categories_is_malformed(tmp_path):
    raw = broken_copy(
        tmp_path,
        BUSINESS,
        2,
        '{"business_id":"mpf3x-BjTdTEA3yCZrAYPw",'
        '"name":"The UPS Store","categories":["Shipping Centers","Notaries"]}',
    )
    with pytest.raises(MalformedInputError, match=rf"{BUSINESS}: line 2: 'categories' is a list"):
        load(raw, tmp_path)
    con = load(raw, tmp_path, skip_malformed=True)
    ords = con.execute("SELECT item_key, ord FROM raw_items ORDER BY ord LIMIT 2").fetchall()
    assert ords == [("Pns2l4eNsfO8kk83dixA6A", 0), ("tUFrWirKiKi_TAnsVWINQQ", 1)]


def test_write_canonical(tmp_path):
    con = load(FIXTURE, tmp_path)
    out = {name: tmp_path / f"{name}.parquet" for name in CANONICAL_TABLES}
    counts = write_canonical(con, out, "yelp")
    assert counts == {"users": 3, "items": 7, "interactions": 12, "impressions": 0}
    items = duckdb.sql(f"SELECT item_id, original_id, categories FROM '{out['items']}'").fetchall()
    assert [row[:2] for row in items] == [
        (0, "Pns2l4eNsfO8kk83dixA6A"),
        (1, "mpf3x-BjTdTEA3yCZrAYPw"),
        (2, "tUFrWirKiKi_TAnsVWINQQ"),
        (3, "MTSW4McQd7CbVtyjqoe9mw"),
        (4, "mWMc6_wTdE0EUBKIGXDVfA"),
        (5, "CF33F8-E6oudUQ46HnavjQ"),
        (6, "n_0UpQx1hsNbnPUSlodU8w"),
    ]
    assert items[2][2] == ["Department Stores", "Shopping", "Fashion"]
    users = duckdb.sql(f"SELECT user_id, original_id FROM '{out['users']}'").fetchall()
    assert users == [(0, Y3), (1, Y2), (2, Y1)]  # by key: digits sort before letters
    events = duckdb.sql(
        f"SELECT item_id, timestamp, rating FROM '{out['interactions']}' WHERE user_id = 0"
    ).fetchall()
    assert events == [(3, 1403909041, 5.0), (0, 1426477867, 4.0)]


def test_review_texts_are_kept_for_the_item_prompts(tmp_path):
    con = load(FIXTURE, tmp_path)
    rows = con.execute(
        "SELECT item_key, timestamp, text FROM raw_reviews WHERE user_key = ? ORDER BY timestamp",
        [Y1],
    ).fetchall()
    assert len(rows) == 5
    assert rows[-1] == (
        "MTSW4McQd7CbVtyjqoe9mw",
        1531001351,
        "If you decide to eat here, just be aware it is going to take about 2 hours.",
    )
    out = {name: tmp_path / f"{name}.parquet" for name in CANONICAL_TABLES}
    write_canonical(con, out, "yelp")
    reviews = duckdb.sql(f"SELECT * FROM '{out['reviews']}' WHERE user_original_id = '{Y1}'")
    assert len(reviews.fetchall()) == 5


def test_review_texts_are_cut_and_their_whitespace_collapsed(tmp_path):
    from llmrec.data.canonical import REVIEW_CHARS

    long = "word \\n\\n " * REVIEW_CHARS  # JSON-escaped newlines
    raw = broken_copy(
        tmp_path,
        REVIEWS,
        1,
        '{"review_id":"x","user_id":"mh_-eMZ6K5RLWhZyISBhwA","business_id":'
        f'"MTSW4McQd7CbVtyjqoe9mw","stars":3.0,"text":"{long}","date":"2018-07-07 22:09:11"}}',
    )
    con = load(raw, tmp_path)
    (text,) = con.execute(
        "SELECT text FROM raw_reviews WHERE timestamp = 1531001351 AND user_key = ?",
        ["mh_-eMZ6K5RLWhZyISBhwA"],
    ).fetchone()
    assert len(text) == REVIEW_CHARS and text.startswith("word word word")

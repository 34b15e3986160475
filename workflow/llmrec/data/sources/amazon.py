"""McAuley et al.'s 2014 Amazon review data (one category): 5-core reviews and item metadata.

``reviews_<Category>_5.json.gz`` holds one strict JSON object per line (``reviewerID``, ``asin``,
``overall`` rating, ``unixReviewTime`` in seconds, ``reviewText``).
``meta_<Category>.json.gz`` holds one Python dict literal per line, single-quoted
(``{'asin': ..., 'title': ..., 'price': 3.17, 'brand': ..., 'categories': [[...], ...],
'description': ...}``); every key but ``asin`` may be missing. It is parsed with
``ast.literal_eval``, never ``eval``.

Decisions:

- Each review is a ``review`` event rated ``overall``; ``source_row`` is its line's position
  among the review records. Its ``reviewText``, whitespace collapsed and cut to
  :data:`~llmrec.data.canonical.REVIEW_CHARS` characters, goes to ``raw_reviews``: P4R's
  extrinsic item attributes (the text stage keeps only training interactions' reviews).
- Only items that someone reviewed are kept: the metadata files list 20 (Beauty) to 65 (Clothing)
  times more items than the 5-core reviews. ``literal_eval`` costs about 0.3 ms for a typical
  2 KB line (measured), some 8 minutes for the 1.5M lines of Clothing, so a line that starts
  with ``{'asin': '<id>'`` for an unreviewed id is not parsed at all (a malformed one there goes
  unnoticed; it would be dropped anyway). ``ord`` is the item's position among the metadata
  records; a reviewed item missing from the metadata gets no row here (no title).
- ``categories`` is the first category path of the item, e.g. ``['Beauty', 'Skin Care', 'Hands &
  Nails']``, and ``category`` its most specific (last) entry; both are null without a path.
  Text is kept as the source has it, HTML entities (``&amp;``) included.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa

from ..canonical import REVIEW_CHARS
from ..readers import iter_records, parse_json_line, parse_python_literal_line, records_to_table
from . import find_file

REVIEW_SCHEMA = pa.schema(
    [
        ("user_key", pa.string()),
        ("item_key", pa.string()),
        ("timestamp", pa.int64()),
        ("behaviour", pa.string()),
        ("rating", pa.float32()),
        ("text", pa.string()),
    ]
)
META_SCHEMA = pa.schema(
    [
        ("item_key", pa.string()),
        ("ord", pa.int64()),
        ("title", pa.string()),
        ("category", pa.string()),
        ("description", pa.string()),
        ("brand", pa.string()),
        ("price", pa.float64()),
        ("categories", pa.list_(pa.string())),
    ]
)
LEADING_ASIN = re.compile(r"\{'asin': '([^'\\]*)'")
NUMBER = (int, float)


def field(record: dict, key: str, types: type | tuple[type, ...], required: bool = False):
    """Return ``record[key]`` if it is one of ``types`` or missing (null); raise ValueError else.

    The check runs inside ``parse_line`` so that :func:`iter_records` names the line of a record
    whose values have the wrong type (pyarrow would fail later, without a line number).
    """
    value = record.get(key)
    if value is None:
        if required:
            raise ValueError(f"the record has no {key!r}")
        return None
    if not isinstance(value, types) or isinstance(value, bool):
        raise ValueError(f"{key!r} is a {type(value).__name__}: {value!r:.80}")
    return value


def _review(line: str) -> dict:
    record = parse_json_line(line)
    if not isinstance(record, dict):
        return record  # iter_records reports it
    return {
        "user_key": field(record, "reviewerID", str, required=True),
        "item_key": field(record, "asin", str, required=True),
        "timestamp": field(record, "unixReviewTime", int, required=True),
        "behaviour": "review",
        "rating": field(record, "overall", NUMBER, required=True),
        "text": field(record, "reviewText", str),
    }


def _meta_parser(reviewed: set[str]):
    def parse(line: str) -> dict:
        leading = LEADING_ASIN.match(line)
        if leading and leading.group(1) not in reviewed:
            return {}  # an item nobody reviewed: counted for ord, then dropped
        record = parse_python_literal_line(line)
        if not isinstance(record, dict):
            return record
        paths = field(record, "categories", list) or [[]]
        path = paths[0]
        if not isinstance(path, list) or not all(isinstance(c, str) for c in path):
            raise ValueError(f"'categories' is not a list of lists of strings: {paths!r:.80}")
        return {
            "item_key": field(record, "asin", str, required=True),
            "title": field(record, "title", str),
            "category": path[-1] if path else None,
            "description": field(record, "description", str),
            "brand": field(record, "brand", str),
            "price": field(record, "price", NUMBER),
            "categories": path or None,
        }

    return parse


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    skip = options.get("skip_malformed", False)
    reviews = iter_records(find_file(raw_dir, "reviews_*_5.json.gz"), _review, skip_malformed=skip)
    records_to_table(con, "amazon_reviews", reviews, REVIEW_SCHEMA, scratch / "reviews.parquet")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT user_key, item_key, timestamp, behaviour, rating, rowid AS source_row
        FROM amazon_reviews""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_reviews AS
        SELECT user_key, item_key, timestamp, text FROM (
            SELECT user_key, item_key, timestamp,
                   left(trim(regexp_replace(text, '\\s+', ' ', 'g')), {REVIEW_CHARS}) AS text
            FROM amazon_reviews)
        WHERE text <> ''""")
    con.execute("DROP TABLE amazon_reviews")

    reviewed = {
        key for (key,) in con.execute("SELECT DISTINCT item_key FROM raw_interactions").fetchall()
    }
    meta = iter_records(
        find_file(raw_dir, "meta_*.json.gz"), _meta_parser(reviewed), skip_malformed=skip
    )
    kept = ({**record, "ord": ord_} for ord_, record in enumerate(meta) if record)
    records_to_table(con, "amazon_meta", kept, META_SCHEMA, scratch / "meta.parquet")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT * FROM amazon_meta WHERE item_key IN (SELECT item_key FROM raw_interactions)
        ORDER BY ord""")
    con.execute("DROP TABLE amazon_meta")

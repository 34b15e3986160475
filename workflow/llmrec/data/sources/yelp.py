"""Yelp Open Dataset: JSON lines, one object per line.

- ``yelp_academic_dataset_review.json`` (about 5 GB, 7M lines): ``review_id, user_id,
  business_id, stars, useful, funny, cool, text, date`` with ``date`` like ``2018-07-07 22:09:11``;
- ``yelp_academic_dataset_business.json``: ``business_id, name, address, city, state, stars,
  review_count, categories, attributes, ...``, ``categories`` one comma-separated string or null
  (the format since 2019; releases before had a list there, which is rejected as malformed).

Decisions:

- Each review is a ``review`` event rated ``stars``, timed by ``date`` read as UTC;
  ``source_row`` is its position among the review lines. Its text, whitespace collapsed and cut
  to :data:`~llmrec.data.canonical.REVIEW_CHARS` characters, goes to ``raw_reviews``: P4R's
  extrinsic item attributes (the text stage keeps only training interactions' reviews).
- Items are all businesses in file order: ``title`` is the name, ``categories`` the list of
  categories and ``category`` the first one (both null when there are none), ``description`` is
  "city, state"; the business's average ``stars`` is kept.
- Reading: duckdb's ``read_json`` with explicit columns is fast (1.7 s for a synthetic
  1M-line, 860 MB review file on 2 cores without the review text, against 15 s line by line in
  Python),
  but its errors name the wrong line (the one after a broken line) and it reads a missing field
  as null. So each file is read by duckdb first, and read again line by line with
  :func:`iter_records` only if duckdb fails or finds a row that the line-by-line check would
  reject: that pass raises with the file and line, or skips such lines with ``skip_malformed``.
  duckdb's JSON reader also refuses a file that starts with a byte-order mark, which the line by
  line pass reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ..canonical import REVIEW_CHARS
from ..readers import iter_records, parse_json_line, records_to_table
from . import find_file
from .amazon import NUMBER, field  # the typed-field check inside parse_line

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def _review(line: str) -> dict:
    record = parse_json_line(line)
    if not isinstance(record, dict):
        return record  # iter_records reports it
    date = field(record, "date", str, required=True)
    datetime.strptime(date, DATE_FORMAT)  # raises ValueError on a bad date
    return {
        "user_id": field(record, "user_id", str, required=True),
        "business_id": field(record, "business_id", str, required=True),
        "stars": field(record, "stars", NUMBER, required=True),
        "date": date,
        "text": field(record, "text", str),
    }


def _business(line: str) -> dict:
    record = parse_json_line(line)
    if not isinstance(record, dict):
        return record
    return {
        "business_id": field(record, "business_id", str, required=True),
        **{key: field(record, key, str) for key in ("name", "city", "state", "categories")},
        "stars": field(record, "stars", NUMBER),
    }


# For each file: the columns duckdb reads, how they become the table's columns, which rows the
# line-by-line parser above would reject, and the table's schema for that parser.
REVIEWS = (
    {
        "user_id": "VARCHAR",
        "business_id": "VARCHAR",
        "stars": "DOUBLE",
        "date": "VARCHAR",
        "text": "VARCHAR",
    },
    "user_id, business_id, stars, date, text",
    f"user_id IS NULL OR business_id IS NULL OR stars IS NULL "
    f"OR try_strptime(date, '{DATE_FORMAT}') IS NULL",
    _review,
    pa.schema(
        [
            ("user_id", pa.string()),
            ("business_id", pa.string()),
            ("stars", pa.float64()),
            ("date", pa.string()),
            ("text", pa.string()),
        ]
    ),
)
BUSINESSES = (
    {
        "business_id": "VARCHAR",
        "name": "VARCHAR",
        "city": "VARCHAR",
        "state": "VARCHAR",
        "categories": "JSON",
        "stars": "DOUBLE",
    },
    "business_id, name, city, state, categories->>'$' AS categories, stars",
    "business_id IS NULL OR json_type(categories) <> 'VARCHAR'",
    _business,
    pa.schema(
        [
            ("business_id", pa.string()),
            ("name", pa.string()),
            ("city", pa.string()),
            ("state", pa.string()),
            ("categories", pa.string()),
            ("stars", pa.float64()),
        ]
    ),
)


def _read_json_lines(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    columns: dict,
    select: str,
    invalid: str,
    parse_line: Callable[[str], dict],
    schema: pa.Schema,
    scratch: Path,
    skip_malformed: bool,
) -> None:
    """Fill ``table`` from ``path`` by duckdb, or line by line where duckdb cannot be trusted."""
    spec = "{" + ", ".join(f"'{name}': '{type_}'" for name, type_ in columns.items()) + "}"
    source = str(path).replace("'", "''")
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {table} AS SELECT {select}, ({invalid}) AS invalid
            FROM read_json('{source}', format='newline_delimited', columns={spec})""")
        if not con.execute(f"SELECT bool_or(invalid) FROM {table}").fetchone()[0]:
            con.execute(f"ALTER TABLE {table} DROP COLUMN invalid")
            return
    except duckdb.Error:
        pass
    records = iter_records(path, parse_line, skip_malformed=skip_malformed)
    records_to_table(con, table, records, schema, scratch / f"{table}.parquet")


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    skip = options.get("skip_malformed", False)
    _read_json_lines(
        con,
        "yelp_reviews",
        find_file(raw_dir, "yelp_academic_dataset_review.json"),
        *REVIEWS,
        scratch,
        skip,
    )
    _read_json_lines(
        con,
        "yelp_businesses",
        find_file(raw_dir, "yelp_academic_dataset_business.json"),
        *BUSINESSES,
        scratch,
        skip,
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT user_id AS user_key, business_id AS item_key,
               epoch(strptime(date, '{DATE_FORMAT}'))::BIGINT AS timestamp,
               'review' AS behaviour, stars::FLOAT AS rating, rowid AS source_row
        FROM yelp_reviews""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_reviews AS
        SELECT user_key, item_key, timestamp, text FROM (
            SELECT user_id AS user_key, business_id AS item_key,
                   epoch(strptime(date, '{DATE_FORMAT}'))::BIGINT AS timestamp,
                   left(trim(regexp_replace(text, '\\s+', ' ', 'g')), {REVIEW_CHARS}) AS text
            FROM yelp_reviews)
        WHERE text <> ''""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        WITH business AS (
            SELECT *, rowid AS ord, nullif(list_filter(
                list_transform(string_split(categories, ','), c -> trim(c)), c -> c <> ''), [])
                AS category_list
            FROM yelp_businesses
        )
        SELECT business_id AS item_key, ord, name AS title, category_list[1] AS category,
               nullif(concat_ws(', ', city, state), '') AS description,
               category_list AS categories, stars
        FROM business ORDER BY ord""")
    con.execute("DROP TABLE yelp_reviews; DROP TABLE yelp_businesses")

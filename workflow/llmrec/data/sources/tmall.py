"""Tmall (IJCAI-15 repeat buyers, Tianchi): the user log ``user_log_format1.csv``, about 55M rows.

A header line, then ``user_id, item_id, cat_id, seller_id, brand_id, time_stamp, action_type``:
integers, ``brand_id`` sometimes empty, ``time_stamp`` the day as MMDD (``0829``, or ``829``
without the leading zero) in 2014 (the log spans 2014-05-11 to 2014-11-12), ``action_type`` 0
click, 1 add to cart, 2 purchase, 3 add to favourites.

Decisions:

- Actions become the behaviours ``view``, ``cart``, ``buy``, ``fav``. There is no rating.
  ``source_row`` is the event's position in the file.
- The source has **day resolution only**: an event's ``timestamp`` is 00:00 China time (UTC+8)
  of its day, in Unix seconds. A user's events of one day all tie, so they keep the file's
  order (``source_row``); which of a day's purchases is a user's leave-one-out test item is the
  file's choice, not the clock's.
- A non-numeric or missing id, an ``action_type`` other than 0-3 or a ``time_stamp`` that is not
  a day of 2014 (``1345``, ``0230``) makes the line malformed: the error names it, or
  ``skip_malformed`` drops it.
- There is no item text: items are the distinct items of the events, with no ``ord``, title or
  description; ``category`` is ``cat_id``, and ``seller_id`` and ``brand_id`` are kept as extra
  columns. An item listed with several values of one of them takes the smallest (a missing
  brand counts only where the item has no other), so the result does not depend on row order.
- The log's companion files (``user_info_format1.csv``, the train and test pairs of the
  repeat-buyer task) are not read.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ..readers import check_rows, read_delimited
from . import find_file

FILE = "user_log_format1.csv"
BEHAVIOURS = {0: "view", 1: "cart", 2: "buy", 3: "fav"}
COLUMNS = {
    "user_id": "INTEGER",
    "item_id": "INTEGER",
    "cat_id": "INTEGER",
    "seller_id": "INTEGER",
    "brand_id": "INTEGER",
    "time_stamp": "INTEGER",  # MMDD: 0829 and 829 both read as 829
    "action_type": "INTEGER",
}
YEAR = 2014
CHINA_OFFSET_S = 8 * 3600
DAY = f"make_date({YEAR}, time_stamp // 100, time_stamp % 100)"
RULES = {
    "user_id IS NOT NULL AND item_id IS NOT NULL AND cat_id IS NOT NULL "
    "AND seller_id IS NOT NULL": "user_id, item_id, cat_id and seller_id must be given",
    f"time_stamp > 0 AND try({DAY}) IS NOT NULL": f"time_stamp must be a day of {YEAR} as MMDD",
    "action_type IN (" + ", ".join(map(str, BEHAVIOURS)) + ")": "action_type must be 0, 1, 2 or 3",
}


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    path = find_file(raw_dir, FILE)
    skip = options.get("skip_malformed", False)
    read_delimited(con, "tmall_events", path, COLUMNS, delim=",", header=True, skip_malformed=skip)
    check_rows(con, "tmall_events", path, RULES, header=True, skip_malformed=skip)
    renamed = " ".join(f"WHEN {code} THEN '{name}'" for code, name in BEHAVIOURS.items())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT user_id::VARCHAR AS user_key, item_id::VARCHAR AS item_key,
               epoch({DAY})::BIGINT - {CHINA_OFFSET_S} AS timestamp,
               CASE action_type {renamed} END AS behaviour, NULL::FLOAT AS rating,
               rowid AS source_row
        FROM tmall_events""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT item_id::VARCHAR AS item_key, NULL::BIGINT AS ord, NULL::VARCHAR AS title,
               min(cat_id)::VARCHAR AS category, NULL::VARCHAR AS description,
               min(seller_id)::VARCHAR AS seller_id, min(brand_id)::VARCHAR AS brand_id
        FROM tmall_events GROUP BY item_id""")
    con.execute("DROP TABLE tmall_events")

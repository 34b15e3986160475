"""Retailrocket (Kaggle "Retailrocket recommender system dataset"): ``events.csv``, about 2.8M rows.

A header line, then ``timestamp, visitorid, event, itemid, transactionid``: the time in Unix
milliseconds, integer visitor and item ids, the event ``view``, ``addtocart`` or
``transaction``, and a transaction id that only transactions carry.

Decisions:

- Events become the behaviours ``view``, ``cart`` and ``buy``. There is no rating.
  ``source_row`` is the event's position in the file.
- ``timestamp`` is floored to seconds, the unit of every canonical table: a user's events in
  the same second keep the file's order (``source_row``), not their milliseconds' order.
- A missing or non-numeric visitor or item id, a time that is not a whole number of
  milliseconds, a non-numeric transaction id or another event name makes the line malformed:
  the error names it, or ``skip_malformed`` drops it. The transaction id is not kept (nor is it
  checked that only transactions have one).
- There is no item text: items are the distinct items of the events, with no ``ord``, title,
  category or description. The release's ``item_properties_part{1,2}.csv`` (hashed property
  values over time, with a ``categoryid`` among them) and ``category_tree.csv`` are optional
  and not read.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ..readers import check_rows, read_delimited
from . import find_file

FILE = "events.csv"
BEHAVIOURS = {"view": "view", "addtocart": "cart", "transaction": "buy"}
COLUMNS = {
    # Unix milliseconds; read as text because duckdb would round "1433222200.9" to an integer
    "timestamp": "VARCHAR",
    "visitorid": "INTEGER",
    "event": "VARCHAR",
    "itemid": "INTEGER",
    "transactionid": "INTEGER",
}
RULES = {
    "visitorid IS NOT NULL AND itemid IS NOT NULL": "visitorid and itemid must be given",
    r"regexp_full_match(timestamp, '\d{1,18}')": "timestamp must be whole milliseconds",
    "event IN (" + ", ".join(f"'{e}'" for e in BEHAVIOURS) + ")": (
        "event must be " + ", ".join(BEHAVIOURS)
    ),
}


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    path = find_file(raw_dir, FILE)
    skip = options.get("skip_malformed", False)
    read_delimited(
        con, "retailrocket_events", path, COLUMNS, delim=",", header=True, skip_malformed=skip
    )
    check_rows(con, "retailrocket_events", path, RULES, header=True, skip_malformed=skip)
    renamed = " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in BEHAVIOURS.items())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT visitorid::VARCHAR AS user_key, itemid::VARCHAR AS item_key,
               timestamp::BIGINT // 1000 AS timestamp, CASE event {renamed} END AS behaviour,
               NULL::FLOAT AS rating, rowid AS source_row
        FROM retailrocket_events""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT DISTINCT itemid::VARCHAR AS item_key, NULL::BIGINT AS ord, NULL::VARCHAR AS title,
               NULL::VARCHAR AS category, NULL::VARCHAR AS description
        FROM retailrocket_events""")
    con.execute("DROP TABLE retailrocket_events")

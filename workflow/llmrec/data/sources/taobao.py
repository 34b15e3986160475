"""Tianchi Taobao UserBehavior: one CSV file, ``UserBehavior.csv``, about 100M rows, no header.

Columns ``user_id, item_id, category_id, behavior_type, timestamp`` (integers but the behaviour,
timestamp in Unix seconds), behaviour one of ``pv`` (page view), ``cart``, ``fav``, ``buy``.

Decisions:

- Behaviours are renamed ``view``, ``cart``, ``fav``, ``buy``; any other value, like a
  non-numeric id, makes the line malformed (the behaviour is read as an ENUM, so duckdb itself
  names the line). There is no rating. ``source_row`` is the event's line in the file.
- Option ``time_window: [start, end]`` keeps events with ``start <= timestamp < end`` (the
  dataset's documented span is 2017-11-25 to 2017-12-03 China time, yet a few rows lie far
  outside); without it every row is kept.
- Taobao has no item text: items are the distinct items of the kept events, with no ``ord``,
  title or description, and ``category`` the category id; an item listed under several
  categories takes the smallest id, so the result does not depend on row order.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ..readers import read_delimited
from . import find_file

BEHAVIOURS = {"pv": "view", "cart": "cart", "fav": "fav", "buy": "buy"}
COLUMNS = {
    "user_id": "INTEGER",
    "item_id": "INTEGER",
    "category_id": "INTEGER",
    "behaviour": "ENUM(" + ", ".join(f"'{b}'" for b in BEHAVIOURS) + ")",
    "timestamp": "BIGINT",
}


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    read_delimited(
        con,
        "taobao_events",
        find_file(raw_dir, "UserBehavior.csv"),
        COLUMNS,
        delim=",",
        skip_malformed=options.get("skip_malformed", False),
    )
    window = options.get("time_window")
    kept = (
        "TRUE"
        if window is None
        else (f"timestamp >= {int(window[0])} AND timestamp < {int(window[1])}")
    )
    renamed = " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in BEHAVIOURS.items())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT user_id::VARCHAR AS user_key, item_id::VARCHAR AS item_key, timestamp,
               CASE behaviour {renamed} END AS behaviour, NULL::FLOAT AS rating,
               rowid AS source_row
        FROM taobao_events WHERE {kept}""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT item_id::VARCHAR AS item_key, NULL::BIGINT AS ord, NULL::VARCHAR AS title,
               min(category_id)::VARCHAR AS category, NULL::VARCHAR AS description
        FROM taobao_events WHERE {kept} GROUP BY item_id""")
    con.execute("DROP TABLE taobao_events")

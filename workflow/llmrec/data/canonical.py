"""Canonical tables: the one format every source is parsed into.

A source parser (``llmrec.data.sources.<name>.load``) fills temporary duckdb tables keyed by the
source's own ids:

- ``raw_interactions(user_key VARCHAR, item_key VARCHAR, timestamp BIGINT, behaviour VARCHAR,
  rating FLOAT, source_row BIGINT)``: one row per event; ``timestamp`` in Unix seconds, ``rating``
  null where the source has none, ``source_row`` the event's position in the source files (the
  row it was read or derived from, increasing in reading order);
- ``raw_items(item_key VARCHAR, ord BIGINT, title VARCHAR, category VARCHAR, description VARCHAR,
  ...)``: ``ord`` is the item's position in the source's item file; further columns are kept;
- ``raw_users(user_key VARCHAR, ord BIGINT, ...)``, optional;
- ``raw_reviews(user_key VARCHAR, item_key VARCHAR, timestamp BIGINT, text VARCHAR)``, optional:
  review texts (Yelp, Amazon), cut to :data:`REVIEW_CHARS` characters by the parser;
- ``raw_impressions(impression_key BIGINT, user_key VARCHAR, timestamp BIGINT,
  history VARCHAR[], candidates VARCHAR[], labels TINYINT[], split VARCHAR)``, news only; labels
  are null where the source hides them (MIND's test set).

:func:`write_canonical` then gives users and items contiguous integer ids starting at 0 (in the
source file's order, then by key for ids seen only in interactions) and writes four typed parquet
files (and ``reviews``, keyed by the source's ids, which survive filtering as
``original_id``; empty where the source has no review text). The source ids are kept in
``original_id``.

Events are ordered by user, time and ``source_row``: events of a user in the same second stay in
the order the source lists them (RecBole's stable sort by time gives the same order). Breaking
such ties by item id instead would put them in increasing id order, a pattern that sequence
models learn and that leaks into leave-one-out test items (docs/datasets.md).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ..io import atomic_path

CANONICAL_TABLES = ("interactions", "items", "users", "impressions", "reviews")

# A review's first characters kept: P4R's prompts quote a few review snippets per item, and the
# full Yelp review file holds 5 GB of text.
REVIEW_CHARS = 400

REQUIRED_ITEM_COLUMNS = ("item_key", "ord", "title", "category", "description")
REQUIRED_INTERACTION_COLUMNS = (
    "user_key",
    "item_key",
    "timestamp",
    "behaviour",
    "rating",
    "source_row",
)


class EmptyDatasetError(ValueError):
    """A dataset has no interactions left."""


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        con.execute(f"COPY ({query}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")


def _key_order(alias: str, key: str) -> str:
    # Numeric source ids sort as numbers (2 before 10); others as strings.
    return f"{alias}.ord NULLS LAST, TRY_CAST({alias}.{key} AS BIGINT) NULLS LAST, {alias}.{key}"


def write_canonical(con: duckdb.DuckDBPyConnection, out: dict[str, Path], dataset: str) -> dict:
    """Assign contiguous ids and write the canonical tables named in ``out``; return counts."""
    tables = _tables(con)
    if "raw_interactions" not in tables or "raw_items" not in tables:
        raise RuntimeError(f"{dataset}: the parser made no raw_interactions or raw_items table")
    for table, required in (
        ("raw_items", REQUIRED_ITEM_COLUMNS),
        ("raw_interactions", REQUIRED_INTERACTION_COLUMNS),
    ):
        missing = [c for c in required if c not in _columns(con, table)]
        if missing:
            raise RuntimeError(f"{dataset}: {table} lacks the column(s) {missing}")
    dup = con.execute(
        "SELECT item_key FROM raw_items GROUP BY item_key HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if dup:
        raise ValueError(f"{dataset}: item id {dup[0]!r} appears twice in the item file")
    n_events = con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0]
    has_impressions = "raw_impressions" in tables
    if n_events == 0 and not has_impressions:
        raise EmptyDatasetError(f"{dataset}: the source files hold no interactions")

    extra_keys = ""
    if has_impressions:
        extra_keys = """
            UNION SELECT unnest(history) FROM raw_impressions
            UNION SELECT unnest(candidates) FROM raw_impressions"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE item_ids AS
        WITH seen AS (SELECT item_key FROM raw_interactions {extra_keys}),
        keys AS (
            SELECT item_key, ord FROM raw_items
            UNION ALL
            SELECT item_key, NULL::BIGINT AS ord FROM (SELECT DISTINCT item_key FROM seen)
            WHERE item_key NOT IN (SELECT item_key FROM raw_items)
        )
        SELECT k.item_key, (row_number() OVER (ORDER BY {_key_order("k", "item_key")}) - 1)::INTEGER
               AS item_id
        FROM keys k""")

    user_source = "raw_users" if "raw_users" in tables else None
    user_seen = "SELECT user_key FROM raw_interactions"
    if has_impressions:
        user_seen += " UNION SELECT user_key FROM raw_impressions"
    listed = f"SELECT user_key, ord FROM {user_source} UNION ALL " if user_source else ""
    not_listed = (
        f"WHERE user_key NOT IN (SELECT user_key FROM {user_source})" if user_source else ""
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE user_ids AS
        WITH keys AS (
            {listed}
            SELECT user_key, NULL::BIGINT AS ord FROM (SELECT DISTINCT user_key FROM ({user_seen}))
            {not_listed}
        )
        SELECT k.user_key, (row_number() OVER (ORDER BY {_key_order("k", "user_key")}) - 1)::INTEGER
               AS user_id
        FROM keys k""")

    _copy(
        con,
        """
        SELECT u.user_id, i.item_id, r.timestamp::BIGINT AS timestamp,
               r.behaviour::VARCHAR AS behaviour, r.rating::FLOAT AS rating,
               r.source_row::BIGINT AS source_row
        FROM raw_interactions r
        JOIN user_ids u USING (user_key) JOIN item_ids i USING (item_key)
        ORDER BY u.user_id, r.timestamp, r.source_row""",
        out["interactions"],
    )

    item_extra = [c for c in _columns(con, "raw_items") if c not in REQUIRED_ITEM_COLUMNS]
    extra_sql = "".join(f', r."{c}"' for c in item_extra)
    _copy(
        con,
        f"""
        SELECT i.item_id, i.item_key AS original_id, r.title::VARCHAR AS title,
               r.category::VARCHAR AS category, r.description::VARCHAR AS description{extra_sql}
        FROM item_ids i LEFT JOIN raw_items r USING (item_key)
        ORDER BY i.item_id""",
        out["items"],
    )

    if user_source:
        user_extra = [c for c in _columns(con, user_source) if c not in ("user_key", "ord")]
        user_extra_sql = "".join(f', r."{c}"' for c in user_extra)
        user_join = f"LEFT JOIN {user_source} r USING (user_key)"
    else:
        user_extra_sql, user_join = "", ""
    _copy(
        con,
        f"""
        SELECT u.user_id, u.user_key AS original_id{user_extra_sql}
        FROM user_ids u {user_join} ORDER BY u.user_id""",
        out["users"],
    )

    if has_impressions:
        _write_impressions(con, out["impressions"])
    else:
        _copy(
            con,
            """
            SELECT NULL::BIGINT AS impression_id, NULL::INTEGER AS user_id,
                   NULL::BIGINT AS timestamp, NULL::INTEGER[] AS history,
                   NULL::INTEGER[] AS candidates, NULL::TINYINT[] AS labels,
                   NULL::VARCHAR AS split
            LIMIT 0""",
            out["impressions"],
        )

    if "reviews" in out:
        _write_reviews(con, out["reviews"], "raw_reviews" in tables)

    return {
        "users": con.execute("SELECT count(*) FROM user_ids").fetchone()[0],
        "items": con.execute("SELECT count(*) FROM item_ids").fetchone()[0],
        "interactions": n_events,
        "impressions": (
            con.execute("SELECT count(*) FROM raw_impressions").fetchone()[0]
            if has_impressions
            else 0
        ),
    }


def _write_reviews(con: duckdb.DuckDBPyConnection, path: Path, has_reviews: bool) -> None:
    """Review texts keyed by the source's user and item ids (``original_id`` after filtering)."""
    if has_reviews:
        query = """
            SELECT user_key::VARCHAR AS user_original_id, item_key::VARCHAR AS item_original_id,
                   timestamp::BIGINT AS timestamp, text::VARCHAR AS text
            FROM raw_reviews ORDER BY item_original_id, timestamp, user_original_id"""
    else:
        query = """
            SELECT NULL::VARCHAR AS user_original_id, NULL::VARCHAR AS item_original_id,
                   NULL::BIGINT AS timestamp, NULL::VARCHAR AS text LIMIT 0"""
    _copy(con, query, path)


def _write_impressions(
    con: duckdb.DuckDBPyConnection, path: Path, per_batch: int = 200_000
) -> None:
    """Map the impressions' item keys to ids, ``per_batch`` impressions at a time.

    Each list is unnested with its positions, joined with the item ids and gathered again in
    order; batches keep memory bounded for MIND-large's millions of impressions (a key-to-id
    map looked up inside a list lambda grows with news x impressions and ran out of memory).
    """
    keys = con.execute(
        "SELECT impression_key FROM raw_impressions ORDER BY impression_key"
    ).fetchnumpy()
    keys = keys["impression_key"]
    mapped = """
        SELECT m.impression_key, list(i.item_id ORDER BY m.pos) AS ids
        FROM (SELECT impression_key, unnest({col}) AS item_key,
                     generate_subscripts({col}, 1) AS pos
              FROM batch) m
        JOIN item_ids i USING (item_key) GROUP BY m.impression_key"""
    query = f"""
        WITH batch AS (
            SELECT * FROM raw_impressions WHERE impression_key BETWEEN $lo AND $hi),
        h AS ({mapped.format(col="history")}),
        c AS ({mapped.format(col="candidates")})
        SELECT b.impression_key::BIGINT AS impression_id, u.user_id,
               b.timestamp::BIGINT AS timestamp,
               coalesce(h.ids, []::INTEGER[])::INTEGER[] AS history,
               coalesce(c.ids, []::INTEGER[])::INTEGER[] AS candidates,
               b.labels::TINYINT[] AS labels, b.split::VARCHAR AS split
        FROM batch b JOIN user_ids u USING (user_key)
        LEFT JOIN h USING (impression_key) LEFT JOIN c USING (impression_key)
        ORDER BY impression_id"""
    with atomic_path(path) as tmp:
        writer = None
        for lo in range(0, max(len(keys), 1), per_batch):
            chunk = keys[lo : lo + per_batch]
            bounds = (
                {"lo": int(chunk[0]), "hi": int(chunk[-1])} if len(chunk) else {"lo": 0, "hi": -1}
            )
            table = con.execute(query, bounds).fetch_arrow_table()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
        writer.close()

"""Artifacts built from canonical tables: filtered interactions, splits, graph, sequences, text.

Everything runs in duckdb over parquet, so memory stays bounded by duckdb's limit rather than by
the size of the dataset; only the graph is materialised in numpy (two int32 arrays per edge).
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import numpy as np

from ..io import atomic_path
from .canonical import EmptyDatasetError

log = logging.getLogger(__name__)


def connect(memory_limit_mb: int | None = None, threads: int = 1,
            temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A duckdb connection with bounded memory; it spills to ``temp_dir`` beyond the limit.

    ``memory_limit_mb`` is the job's budget (the rule's ``mem_mb``); duckdb gets three quarters
    of it, leaving room for Python and the parquet writers.
    """
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    if memory_limit_mb:
        con.execute(f"SET memory_limit = '{int(memory_limit_mb * 0.75)}MB'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{temp_dir}'")
    con.execute("SET preserve_insertion_order = true")
    return con


def _q(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        con.execute(f"COPY ({query}) TO {_q(tmp)} (FORMAT parquet, COMPRESSION zstd)")


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def filter_interactions(
    con: duckdb.DuckDBPyConnection,
    canonical: dict[str, Path],
    out: dict[str, Path],
    *,
    dataset: str,
    k_core: int = 0,
    min_rating: float | None = None,
    behaviours: list[str] | None = None,
    dedupe: bool = False,
) -> dict:
    """Keep events that pass the rating and behaviour filters, then apply the k-core.

    The k-core removes users and items with fewer than ``k_core`` events, repeatedly, until every
    user and item left has at least ``k_core`` (P5 and OpenP5 use 5). With ``dedupe`` only a
    user's first event per item is kept. Ids are then made contiguous again, in the order of the
    canonical ids; ``original_id`` still holds the source's id.
    """
    where = ["TRUE"]
    if min_rating is not None:
        where.append(f"rating >= {float(min_rating)}")
    if behaviours:
        allowed = ", ".join(_q(b) for b in behaviours)
        where.append(f"behaviour IN ({allowed})")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE kept AS
        SELECT * FROM read_parquet({_q(canonical['interactions'])}) WHERE {' AND '.join(where)}""")
    if dedupe:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE kept AS
            SELECT * FROM kept
            QUALIFY row_number() OVER (PARTITION BY user_id, item_id ORDER BY timestamp) = 1""")
    rounds = 0
    while k_core > 1:
        before = _count(con, "kept")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE kept AS
            WITH u AS (SELECT user_id FROM kept GROUP BY user_id HAVING count(*) >= {k_core}),
                 i AS (SELECT item_id FROM kept GROUP BY item_id HAVING count(*) >= {k_core})
            SELECT * FROM kept SEMI JOIN u USING (user_id) SEMI JOIN i USING (item_id)""")
        rounds += 1
        if _count(con, "kept") == before:
            break
    n = _count(con, "kept")
    if n == 0:
        raise EmptyDatasetError(
            f"{dataset}: no interactions left after filtering (k_core={k_core}, "
            f"min_rating={min_rating}, behaviours={behaviours}); relax datasets.{dataset}.filter"
        )
    con.execute("""
        CREATE OR REPLACE TEMP TABLE new_users AS
        SELECT user_id AS old, (row_number() OVER (ORDER BY user_id) - 1)::INTEGER AS new
        FROM (SELECT DISTINCT user_id FROM kept)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE new_items AS
        SELECT item_id AS old, (row_number() OVER (ORDER BY item_id) - 1)::INTEGER AS new
        FROM (SELECT DISTINCT item_id FROM kept)""")
    _copy(con, """
        SELECT u.new AS user_id, i.new AS item_id, k.timestamp, k.behaviour, k.rating
        FROM kept k JOIN new_users u ON k.user_id = u.old JOIN new_items i ON k.item_id = i.old
        ORDER BY user_id, timestamp, item_id""", out["interactions"])
    _copy(con, f"""
        SELECT n.new AS item_id, t.* EXCLUDE (item_id)
        FROM read_parquet({_q(canonical['items'])}) t JOIN new_items n ON t.item_id = n.old
        ORDER BY item_id""", out["items"])
    _copy(con, f"""
        SELECT n.new AS user_id, t.* EXCLUDE (user_id)
        FROM read_parquet({_q(canonical['users'])}) t JOIN new_users n ON t.user_id = n.old
        ORDER BY user_id""", out["users"])
    stats = {
        "users": _count(con, "new_users"),
        "items": _count(con, "new_items"),
        "interactions": n,
        "k_core_rounds": rounds,
    }
    log.info("%s after filtering: %s", dataset, stats)
    return stats


def split_leave_one_out(con: duckdb.DuckDBPyConnection, interactions: Path, out: Path) -> None:
    """OpenP5's protocol: per user in time order, the last event is test, the one before validation.

    Ties in time are broken by item id. Users with fewer than 3 events keep them all in training.
    """
    _copy(con, f"""
        WITH ranked AS (
            SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY timestamp DESC,
                                                              item_id DESC) AS from_end,
                   count(*) OVER (PARTITION BY user_id) AS n
            FROM read_parquet({_q(interactions)}))
        SELECT user_id, item_id, timestamp, behaviour, rating,
               CASE WHEN n < 3 THEN 'train' WHEN from_end = 1 THEN 'test'
                    WHEN from_end = 2 THEN 'valid' ELSE 'train' END AS split
        FROM ranked ORDER BY user_id, timestamp, item_id""", out)


def split_random(con: duckdb.DuckDBPyConnection, interactions: Path, out: Path, *, seed: int,
                 ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> None:
    """RecBole's "RO" split: each user's events in a seeded random order, cut by ``ratios``.

    The counts follow RecBole's ``split_by_ratio``: ``floor(ratio * n)`` for validation and
    test, the rest for training, and a split whose share is below one event gets one, taken from
    training, while training keeps more than one (test is served first, then validation).
    """
    r_train, r_valid, r_test = (float(r) / sum(ratios) for r in ratios)
    _copy(con, f"""
        WITH counted AS (
            SELECT *, count(*) OVER (PARTITION BY user_id) AS n,
                   row_number() OVER (PARTITION BY user_id
                                      ORDER BY hash({int(seed)}, user_id, item_id, timestamp),
                                               item_id, timestamp) - 1 AS r
            FROM read_parquet({_q(interactions)})),
        base AS (
            SELECT *, floor({r_test} * n)::BIGINT AS t0, floor({r_valid} * n)::BIGINT AS v0,
                   {r_test} * n AS t_share, {r_valid} * n AS v_share
            FROM counted),
        step1 AS (
            SELECT *, (n - t0 - v0) AS tr0,
                   (n - t0 - v0) > 1 AND t_share > 0 AND t_share < 1 AS bump_test
            FROM base),
        step2 AS (
            SELECT *, t0 + bump_test::INT AS n_test, tr0 - bump_test::INT AS tr1
            FROM step1),
        step3 AS (
            SELECT *, tr1 > 1 AND v_share > 0 AND v_share < 1 AS bump_valid FROM step2)
        SELECT user_id, item_id, timestamp, behaviour, rating,
               CASE WHEN r < tr1 - bump_valid::INT THEN 'train'
                    WHEN r < tr1 - bump_valid::INT + v0 + bump_valid::INT THEN 'valid'
                    ELSE 'test' END AS split
        FROM step3 ORDER BY user_id, timestamp, item_id""", out)


def split_news(con: duckdb.DuckDBPyConnection, impressions: Path, out: Path) -> None:
    """MIND's own split: the impressions of its train and dev (and test) releases, as given."""
    _copy(con, f"""
        SELECT impression_id, user_id, timestamp, history, candidates, labels, split
        FROM read_parquet({_q(impressions)}) ORDER BY impression_id""", out)


def build_graph(con: duckdb.DuckDBPyConnection, split: Path, items: Path, users: Path,
                out: Path) -> dict:
    """The user-item bipartite graph of the training events, as CSR arrays (``.npz``).

    Holds ``user_indptr``/``user_items`` (rows: users) and ``item_indptr``/``item_users`` (rows:
    items), each edge once, and for LightGCN the symmetric normalisation
    ``1 / sqrt(deg(u) * deg(i))`` of every edge in both orders (``user_norm``, ``item_norm``).
    """
    n_users = con.execute(f"SELECT count(*) FROM read_parquet({_q(users)})").fetchone()[0]
    n_items = con.execute(f"SELECT count(*) FROM read_parquet({_q(items)})").fetchone()[0]
    edges = con.execute(f"""
        SELECT DISTINCT user_id, item_id FROM read_parquet({_q(split)}) WHERE split = 'train'
        ORDER BY user_id, item_id""").fetchnumpy()
    u = edges["user_id"].astype(np.int64)
    i = edges["item_id"].astype(np.int64)
    deg_u = np.bincount(u, minlength=n_users)
    deg_i = np.bincount(i, minlength=n_items)
    norm = (1.0 / np.sqrt(deg_u[u] * deg_i[i])).astype(np.float32)
    by_item = np.lexsort((u, i))
    arrays = {
        "n_users": np.int64(n_users),
        "n_items": np.int64(n_items),
        "user_indptr": np.concatenate([[0], np.cumsum(deg_u)]).astype(np.int64),
        "user_items": i.astype(np.int32),
        "user_norm": norm,
        "item_indptr": np.concatenate([[0], np.cumsum(deg_i)]).astype(np.int64),
        "item_users": u[by_item].astype(np.int32),
        "item_norm": norm[by_item],
    }
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # uncompressed: zlib took most of the step's time
    return {"edges": int(len(u)), "users_without_edges": int((deg_u == 0).sum()),
            "items_without_edges": int((deg_i == 0).sum())}


def build_sequences(con: duckdb.DuckDBPyConnection, interactions: Path, out: Path) -> None:
    """Per user, the time-ordered items, times and behaviours as list columns."""
    # One ordered aggregate of structs, split afterwards: a third of the sorting of three.
    _copy(con, f"""
        WITH grouped AS (
            SELECT user_id, list({{'i': item_id, 't': timestamp, 'b': behaviour}}
                                 ORDER BY timestamp, item_id) AS events
            FROM read_parquet({_q(interactions)}) GROUP BY user_id)
        SELECT user_id, list_transform(events, e -> e.i) AS items,
               list_transform(events, e -> e.t) AS timestamps,
               list_transform(events, e -> e.b) AS behaviours
        FROM grouped ORDER BY user_id""", out)


def build_item_text(con: duckdb.DuckDBPyConnection, items: Path, out: Path) -> None:
    """One prompt-ready text per item from the fields the source has: title, year, category,
    description, joined with '; ' and with empty fields left out."""
    cols = {row[0] for row in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({_q(items)})").fetchall()}
    parts = ["'Title: ' || title"]
    if "year" in cols:
        parts.append("'Year: ' || year::VARCHAR")
    if "genres" in cols:
        parts.append("'Genres: ' || nullif(array_to_string(genres, ', '), '')")
    else:
        parts.append("'Category: ' || category")
    if "subcategory" in cols:
        parts.append("'Subcategory: ' || subcategory")
    parts.append("'Description: ' || nullif(trim(description), '')")
    _copy(con, f"""
        SELECT item_id, original_id, title,
               concat_ws('; ', {', '.join(parts)}) AS text
        FROM read_parquet({_q(items)}) ORDER BY item_id""", out)


def dataset_statistics(con: duckdb.DuckDBPyConnection, interactions: Path, *, dataset: str,
                       kind: str, synthetic: bool, impressions: Path | None = None) -> dict:
    """Users, items, interactions and density of the table the models read."""
    users, items, n = con.execute(f"""
        SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(*)
        FROM read_parquet({_q(interactions)})""").fetchone()
    behaviours = dict(con.execute(f"""
        SELECT behaviour, count(*) FROM read_parquet({_q(interactions)})
        GROUP BY behaviour ORDER BY behaviour""").fetchall())
    stats = {
        "dataset": dataset,
        "kind": kind,
        "synthetic": synthetic,
        "users": users,
        "items": items,
        "interactions": n,
        "density": n / (users * items) if users and items else 0.0,
        "behaviours": behaviours,
    }
    if impressions is not None:
        stats["impressions"] = dict(con.execute(f"""
            SELECT split, count(*) FROM read_parquet({_q(impressions)})
            GROUP BY split ORDER BY split""").fetchall())
    return stats

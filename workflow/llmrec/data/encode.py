"""Artifacts built from canonical tables: filtered interactions, splits, graph, sequences, text.

Everything runs in duckdb over parquet, so memory stays bounded by duckdb's limit rather than by
the size of the dataset; only the graph is materialised in numpy (two int32 arrays per edge).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..io import atomic_path
from .canonical import EmptyDatasetError

log = logging.getLogger(__name__)

# filter.dedupe: which of a user's events on the same item (and behaviour) stays.
DEDUPE_POLICIES = ("first", "last", "keep")


def connect(
    memory_limit_mb: int | None = None, threads: int = 1, temp_dir: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A duckdb connection with bounded memory; it spills to ``temp_dir`` beyond the limit.

    ``memory_limit_mb`` is the job's budget (the rule's ``mem_mb``); duckdb gets three quarters
    of it, leaving room for Python and the parquet writers.
    """
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    if memory_limit_mb:
        con.execute(f"SET memory_limit = '{int(memory_limit_mb * 0.75)}MB'")
    # Spill under the job's temporary folder (Snakemake's resources.tmpdir), not the cwd.
    spill = Path(temp_dir or tempfile.gettempdir()) / f"duckdb-{os.getpid()}"
    con.execute(f"SET temp_directory = {_q(spill)}")
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
    dedupe: str = "first",
    sample_users: int | None = None,
    seed: int = 0,
) -> dict:
    """Keep events that pass the rating and behaviour filters, remove repeats, apply the k-core.

    ``dedupe`` says which of a user's events on the same item and behaviour stays: ``first``
    (the earliest), ``last`` (the latest) or ``keep`` (all). With ``keep`` a pair can be both in
    training and in a test split, where the model is never credited for it (training items are
    masked in evaluation). Events are ordered by time, then ``source_row``. The k-core then
    removes users and items with fewer than ``k_core`` events, repeatedly, until every user and
    item left has at least ``k_core`` (P5 and OpenP5 use 5). ``sample_users`` then keeps that
    many of the users left, drawn with ``seed``, with all their events (P4R's small subsets); the
    k-core is not applied again, so an item may keep fewer than ``k_core`` events. Ids are then
    made contiguous again,
    in the order of the canonical ids; ``original_id`` still holds the source's id.
    """
    if dedupe not in DEDUPE_POLICIES:
        raise ValueError(
            f"datasets.{dataset}.filter.dedupe is {dedupe!r}; use one of "
            f"{', '.join(DEDUPE_POLICIES)}"
        )
    where = ["TRUE"]
    if min_rating is not None:
        where.append(f"rating >= {float(min_rating)}")
    if behaviours:
        allowed = ", ".join(_q(b) for b in behaviours)
        where.append(f"behaviour IN ({allowed})")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE kept AS
        SELECT * FROM read_parquet({_q(canonical["interactions"])}) WHERE {" AND ".join(where)}""")
    if dedupe != "keep":
        direction = "ASC" if dedupe == "first" else "DESC"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE kept AS
            SELECT * FROM kept
            QUALIFY row_number() OVER (
                PARTITION BY user_id, item_id, behaviour
                ORDER BY timestamp {direction}, source_row {direction}) = 1""")
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
    if sample_users is not None:
        _sample_users(con, sample_users, seed)
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
    _copy(
        con,
        """
        SELECT u.new AS user_id, i.new AS item_id, k.timestamp, k.behaviour, k.rating,
               k.source_row
        FROM kept k JOIN new_users u ON k.user_id = u.old JOIN new_items i ON k.item_id = i.old
        ORDER BY user_id, timestamp, source_row""",
        out["interactions"],
    )
    _copy(
        con,
        f"""
        SELECT n.new AS item_id, t.* EXCLUDE (item_id)
        FROM read_parquet({_q(canonical["items"])}) t JOIN new_items n ON t.item_id = n.old
        ORDER BY item_id""",
        out["items"],
    )
    _copy(
        con,
        f"""
        SELECT n.new AS user_id, t.* EXCLUDE (user_id)
        FROM read_parquet({_q(canonical["users"])}) t JOIN new_users n ON t.user_id = n.old
        ORDER BY user_id""",
        out["users"],
    )
    stats = {
        "users": _count(con, "new_users"),
        "items": _count(con, "new_items"),
        "interactions": n,
        "k_core_rounds": rounds,
    }
    log.info("%s after filtering: %s", dataset, stats)
    return stats


def _sample_users(con: duckdb.DuckDBPyConnection, n: int, seed: int) -> None:
    """Keep the events of ``n`` users of ``kept`` drawn without replacement with ``seed`` (all of
    them when there are no more than ``n``). The draw is over the sorted user ids, so the same
    data, ``n`` and seed keep the same users."""
    users = con.execute("SELECT DISTINCT user_id FROM kept ORDER BY user_id").fetchnumpy()
    users = users["user_id"]
    if len(users) <= n:
        log.info("sample_users: %d users, no more than %d; all kept", len(users), n)
        return
    chosen = pa.table({"user_id": np.sort(np.random.default_rng(seed).choice(users, n, False))})
    con.register("sampled_users", chosen)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE kept AS
        SELECT * FROM kept SEMI JOIN sampled_users USING (user_id)""")
    con.unregister("sampled_users")
    log.info("sample_users: %d of %d users kept (seed %d)", n, len(users), seed)


def events_by_user(interactions: Path) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The events in (user, time, source row) order, each user's first row, and each user's
    count.

    Events of a user in the same second keep the source's order (``source_row``), not item id
    order. The filter step writes events in that order, so this is a check, not a sort; a table
    in another order is sorted here. Splits and sequences then need no database sort at all.
    """
    table = pq.read_table(interactions)
    user = table.column("user_id").to_numpy()
    time = table.column("timestamp").to_numpy()
    row = table.column("source_row").to_numpy()
    key_order = (np.diff(user) > 0) | (
        (np.diff(user) == 0) & ((np.diff(time) > 0) | ((np.diff(time) == 0) & (np.diff(row) > 0)))
    )
    if not key_order.all():
        table = table.take(np.lexsort((row, time, user)))
        user = table.column("user_id").to_numpy()
    starts = np.flatnonzero(np.r_[True, np.diff(user) != 0])
    counts = np.diff(np.r_[starts, len(user)])
    return table, starts, counts


SPLIT_NAMES = np.array(["train", "valid", "test"])


def _write_split(table: pa.Table, code: np.ndarray, out: Path) -> None:
    split = pa.DictionaryArray.from_arrays(pa.array(code, pa.int8()), pa.array(SPLIT_NAMES))
    with atomic_path(out) as tmp:
        pq.write_table(
            table.append_column("split", split.cast(pa.string())), tmp, compression="zstd"
        )


def split_leave_one_out(interactions: Path, out: Path) -> None:
    """OpenP5's protocol: per user in time order, the last event is test, the one before validation.

    Ties in time keep the source's order. Users with fewer than 3 events keep them all in
    training.
    """
    table, starts, counts = events_by_user(interactions)
    code = np.zeros(table.num_rows, np.int8)
    long_enough = counts >= 3
    ends = starts + counts
    code[ends[long_enough] - 1] = 2
    code[ends[long_enough] - 2] = 1
    _write_split(table, code, out)


def random_split_counts(
    n: np.ndarray, ratios: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user (train, valid, test) counts as RecBole's ``split_by_ratio`` computes them.

    ``floor(ratio * n)`` for validation and test, the rest for training; then, test first, a
    split whose share is below one event gets one, taken from training, while training keeps
    more than one.
    """
    r_train, r_valid, r_test = (float(r) / sum(ratios) for r in ratios)
    n = np.asarray(n, np.int64)
    valid = np.floor(r_valid * n).astype(np.int64)
    test = np.floor(r_test * n).astype(np.int64)
    train = n - valid - test
    bump = (train > 1) & (r_test * n > 0) & (r_test * n < 1)
    test, train = test + bump, train - bump
    bump = (train > 1) & (r_valid * n > 0) & (r_valid * n < 1)
    valid, train = valid + bump, train - bump
    return train, valid, test


def split_random(
    interactions: Path,
    out: Path,
    *,
    seed: int,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> None:
    """RecBole's "RO" split: each user's events in a seeded random order, cut by ``ratios``
    (counts as in :func:`random_split_counts`)."""
    table, starts, counts = events_by_user(interactions)
    user_of_row = np.repeat(np.arange(len(counts)), counts)
    shuffled = np.lexsort((np.random.default_rng(seed).random(table.num_rows), user_of_row))
    rank = np.empty(table.num_rows, np.int64)
    rank[shuffled] = np.arange(table.num_rows) - np.repeat(starts, counts)
    train, valid, _ = random_split_counts(counts, ratios)
    n_train, n_valid = np.repeat(train, counts), np.repeat(valid, counts)
    code = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2)).astype(np.int8)
    _write_split(table, code, out)


def split_news(con: duckdb.DuckDBPyConnection, impressions: Path, out: Path) -> None:
    """MIND's own split: the impressions of its train and dev (and test) releases, as given."""
    _copy(
        con,
        f"""
        SELECT impression_id, user_id, timestamp, history, candidates, labels, split
        FROM read_parquet({_q(impressions)}) ORDER BY impression_id""",
        out,
    )


def build_graph(
    con: duckdb.DuckDBPyConnection, split: Path, items: Path, users: Path, out: Path
) -> dict:
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
    return {
        "edges": int(len(u)),
        "users_without_edges": int((deg_u == 0).sum()),
        "items_without_edges": int((deg_i == 0).sum()),
    }


def build_sequences(interactions: Path, out: Path) -> None:
    """Per user, the time-ordered items, times and behaviours as list columns (ties in time in
    the source's order).

    Built from the (user, time, source row)-ordered events by cutting at user boundaries: no
    aggregation, so memory is the table itself whatever the number of users.
    """
    table, starts, counts = events_by_user(interactions)
    offsets = pa.array(np.r_[starts, table.num_rows].astype(np.int32))
    sequences = pa.table(
        {
            "user_id": table.column("user_id").to_numpy()[starts],
            **{
                name: pa.ListArray.from_arrays(offsets, table.column(column).combine_chunks())
                for name, column in (
                    ("items", "item_id"),
                    ("timestamps", "timestamp"),
                    ("behaviours", "behaviour"),
                )
            },
        }
    )
    with atomic_path(out) as tmp:
        pq.write_table(sequences, tmp, compression="zstd")


def build_item_text(con: duckdb.DuckDBPyConnection, items: Path, out: Path) -> None:
    """One prompt-ready text per item from the fields the source has: title, year, category,
    description, joined with '; ' and with empty fields left out."""
    cols = {
        row[0]
        for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_q(items)})").fetchall()
    }
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
    _copy(
        con,
        f"""
        SELECT item_id, original_id, title,
               concat_ws('; ', {", ".join(parts)}) AS text
        FROM read_parquet({_q(items)}) ORDER BY item_id""",
        out,
    )


def dataset_statistics(
    con: duckdb.DuckDBPyConnection,
    interactions: Path,
    *,
    dataset: str,
    kind: str,
    synthetic: bool,
    impressions: Path | None = None,
) -> dict:
    """Users, items, interactions and density of the table the models read."""
    users, items, n = con.execute(f"""
        SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(*)
        FROM read_parquet({_q(interactions)})""").fetchone()
    behaviours = dict(
        con.execute(f"""
        SELECT behaviour, count(*) FROM read_parquet({_q(interactions)})
        GROUP BY behaviour ORDER BY behaviour""").fetchall()
    )
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
        stats["impressions"] = dict(
            con.execute(f"""
            SELECT split, count(*) FROM read_parquet({_q(impressions)})
            GROUP BY split ORDER BY split""").fetchall()
        )
    return stats

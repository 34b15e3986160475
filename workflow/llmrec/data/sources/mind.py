"""MIND (Microsoft News Dataset, Wu et al., ACL 2020; https://msnews.github.io/) into raw tables.

Each split archive unpacks into a folder named after it (``MINDsmall_train``, ``MINDlarge_test``,
``synthetic_dev``); the text after the last ``_`` names the split. Every folder holds two
tab-separated files without a header:

- ``news.tsv``: news id, category, subcategory, title, abstract, url, title entities (JSON),
  abstract entities (JSON). An article shown in several splits is listed in each split's file;
  ``raw_items`` keeps its first listing in the order train, dev, test, and ``ord`` is that order
  of first appearance. Subcategory, url and the two entity columns are kept as extra columns.
- ``behaviors.tsv``: impression id, user id, time (``11/15/2019 8:55:22 AM``, read as UTC),
  history (space-separated news ids, possibly empty) and the impression (``N1-1 N2-0``; the test
  split has bare ids and no labels, so its ``labels`` are null).

Impression ids restart at 1 in every split, so ``impression_key`` is the id plus the largest id
of the splits before it (train, dev, test): with MIND-small's 156,965 training impressions the
first dev impression becomes 156,966, and ``key - offset`` gives the id back.

``raw_interactions`` holds the clicks of the impression logs: one ``click`` per positive
candidate, at the impression's time, numbered (``source_row``) in the order of the impressions
and of the candidates in each. The history clicks carry no timestamp (they happened
before the logging period at unknown times), so they are no interactions; they stay in
``raw_impressions.history``.

Malformed lines (a bad time, a candidate without ``-0``/``-1`` label outside the test split, an
empty impression, a repeated impression id) stop the load with the file and line, or are skipped
and counted with ``skip_malformed: true``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from ..readers import read_delimited, report_malformed

# Every clicked candidate of raw_impressions as a click event; source_row follows the
# impressions' order and the candidates' order within each (the order the source lists them).
CLICK_EVENTS = """
    CREATE OR REPLACE TEMP TABLE raw_interactions AS
    WITH shown AS (
        SELECT impression_key, user_key, timestamp, unnest(candidates) AS item_key,
               unnest(labels) AS label, generate_subscripts(candidates, 1) AS position
        FROM raw_impressions WHERE labels IS NOT NULL)
    SELECT user_key, item_key, timestamp, 'click' AS behaviour, NULL::FLOAT AS rating,
           row_number() OVER (ORDER BY impression_key, position) AS source_row
    FROM shown WHERE label = 1"""

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")

NEWS_COLUMNS = {
    "news_id": "VARCHAR",
    "category": "VARCHAR",
    "subcategory": "VARCHAR",
    "title": "VARCHAR",
    "abstract": "VARCHAR",
    "url": "VARCHAR",
    "title_entities": "VARCHAR",
    "abstract_entities": "VARCHAR",
}

BEHAVIOUR_COLUMNS = {
    "impression_id": "BIGINT",
    "user_id": "VARCHAR",
    "time": "VARCHAR",
    "history": "VARCHAR",
    "impressions": "VARCHAR",
}

TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def split_folders(raw_dir: Path) -> list[tuple[str, Path]]:
    """Return ``(split, folder)`` for every folder below ``raw_dir`` with a behaviors.tsv."""
    found: dict[str, Path] = {}
    for behaviours in sorted(Path(raw_dir).rglob("behaviors.tsv")):
        folder = behaviours.parent
        split = folder.name.rsplit("_", 1)[-1].lower()
        if split not in SPLITS:
            raise ValueError(
                f"{folder}: a MIND folder's name must end in _train, _dev or _test, like "
                f"MINDsmall_train"
            )
        if split in found:
            raise ValueError(
                f"two MIND {split} folders below {raw_dir}: {found[split]} and {folder}"
            )
        if not (folder / "news.tsv").is_file():
            raise FileNotFoundError(f"{folder} has behaviors.tsv but no news.tsv")
        found[split] = folder
    if not found:
        raise FileNotFoundError(
            f"expected MIND split folders (MINDsmall_train/behaviors.tsv, ...) below {raw_dir}, "
            f"found none"
        )
    return [(split, found[split]) for split in SPLITS if split in found]


def _line_of_row(path: Path, row: int, rejected: set[int]) -> int:
    """Return the 1-based line of the ``row``-th (0-based) row that read_delimited kept.

    Row positions are rowids, which follow the file while the connection preserves insertion
    order (duckdb's default, which ``encode.connect`` sets). duckdb drops blank lines and, with
    skip_malformed, rejected lines, so row positions and lines drift apart; this rereads the
    file, which only happens on the way to an error message.
    """
    kept = -1
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip(b"\r\n") or lineno in rejected:
                continue
            kept += 1
            if kept == row:
                return lineno
    raise AssertionError(f"{path} has fewer than {row + 1} rows")


def _rejected_lines(con: duckdb.DuckDBPyConnection) -> set[int]:
    return {row[0] for row in con.execute("SELECT DISTINCT line FROM reject_errors").fetchall()}


def _drop_malformed(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, rejected: set[int], skip: bool
) -> None:
    """Stop at, or drop, the rows of ``table`` whose ``problem`` column is set."""
    bad = con.execute(
        f"SELECT row_index, problem, count(*) OVER () FROM {table} WHERE problem IS NOT NULL "
        f"ORDER BY row_index LIMIT 1"
    ).fetchone()
    if bad is None:
        return
    row, problem, n_bad = bad
    report_malformed(path, _line_of_row(path, row, rejected), problem, n_bad, skip)
    con.execute(f"DELETE FROM {table} WHERE problem IS NOT NULL")


def _load_news(con: duckdb.DuckDBPyConnection, rank: int, path: Path, skip: bool) -> None:
    read_delimited(con, "mind_news_file", path, NEWS_COLUMNS, delim="\t", skip_malformed=skip)
    rejected = _rejected_lines(con)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE mind_news_split AS
        SELECT rowid AS row_index, *,
               CASE WHEN news_id IS NULL THEN 'the news id is empty' END AS problem
        FROM mind_news_file;
        DROP TABLE mind_news_file""")
    _drop_malformed(con, "mind_news_split", path, rejected, skip)
    con.execute(f"""
        INSERT INTO mind_news
        SELECT {rank} AS split_rank, row_index, {", ".join(NEWS_COLUMNS)} FROM mind_news_split;
        DROP TABLE mind_news_split""")


def _load_behaviours(
    con: duckdb.DuckDBPyConnection, split: str, path: Path, skip: bool, offset: int
) -> int:
    """Append one split's impressions to raw_impressions; return the largest impression id."""
    read_delimited(
        con, "mind_behaviours_file", path, BEHAVIOUR_COLUMNS, delim="\t", skip_malformed=skip
    )
    rejected = _rejected_lines(con)
    labelled, bare = "'[^-\\s]+-[01]'", "'[^-\\s]+'"  # news id with and without its label
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE mind_behaviours_split AS
        WITH tokens AS (
            SELECT rowid AS row_index, impression_id, user_id, time,
                   try_strptime(time, '{TIME_FORMAT}') AS parsed_time,
                   list_filter(string_split(coalesce(history, ''), ' '), t -> t <> '') AS history,
                   list_filter(string_split(coalesce(impressions, ''), ' '), t -> t <> '')
                       AS tokens
            FROM mind_behaviours_file
        ), checked AS (
            SELECT *,
                   list_filter(tokens, t -> NOT regexp_full_match(t, {labelled})) AS unlabelled,
                   count(*) OVER (PARTITION BY impression_id ORDER BY row_index) AS id_seen
            FROM tokens
        )
        SELECT row_index, impression_id, user_id, parsed_time, history, tokens,
               len(unlabelled) = 0 AS has_labels,
               CASE
                   WHEN impression_id IS NULL THEN 'the impression id is empty'
                   WHEN impression_id < 1 THEN
                       format('impression id {{}} is not a positive integer', impression_id)
                   WHEN id_seen > 1 THEN format('impression id {{}} appears twice', impression_id)
                   WHEN user_id IS NULL THEN 'the user id is empty'
                   WHEN parsed_time IS NULL THEN
                       format('time "{{}}" is not like "11/15/2019 8:55:22 AM"', coalesce(time, ''))
                   WHEN len(tokens) = 0 THEN 'the impression lists no candidates'
                   WHEN len(unlabelled) > 0 AND NOT ('{split}' = 'test' AND list_bool_and(
                           list_transform(tokens, t -> regexp_full_match(t, {bare}))))
                       THEN format('candidate "{{}}" has no -0/-1 click label', unlabelled[1])
               END AS problem
        FROM checked;
        DROP TABLE mind_behaviours_file""")
    _drop_malformed(con, "mind_behaviours_split", path, rejected, skip)
    con.execute(f"""
        INSERT INTO raw_impressions
        SELECT impression_id + {offset}, user_id, epoch(parsed_time)::BIGINT, history,
               list_transform(tokens, t -> split_part(t, '-', 1)),
               CASE WHEN has_labels THEN list_transform(tokens, t -> t[-1:]::TINYINT) END,
               '{split}'
        FROM mind_behaviours_split""")
    (largest,) = con.execute(
        "SELECT coalesce(max(impression_id), 0) FROM mind_behaviours_split"
    ).fetchone()
    con.execute("DROP TABLE mind_behaviours_split")
    return largest


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    """Fill raw_items, raw_impressions and raw_interactions (clicks) from MIND's split folders."""
    skip = bool(options.get("skip_malformed", False))
    folders = split_folders(raw_dir)
    news_columns = ", ".join(f"{name} {kind}" for name, kind in NEWS_COLUMNS.items())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE mind_news (split_rank INTEGER, row_index BIGINT,
                                                {news_columns});
        CREATE OR REPLACE TEMP TABLE raw_impressions (
            impression_key BIGINT, user_key VARCHAR, timestamp BIGINT, history VARCHAR[],
            candidates VARCHAR[], labels TINYINT[], split VARCHAR)""")
    offset = 0
    for rank, (split, folder) in enumerate(folders):
        _load_news(con, rank, folder / "news.tsv", skip)
        offset += _load_behaviours(con, split, folder / "behaviors.tsv", skip, offset)
        log.info("%s: read MIND %s split", folder, split)

    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT news_id AS item_key,
               (row_number() OVER (ORDER BY split_rank, row_index) - 1)::BIGINT AS ord,
               title, category, abstract AS description, subcategory, url,
               title_entities, abstract_entities
        FROM (SELECT * FROM mind_news QUALIFY row_number() OVER (
                  PARTITION BY news_id ORDER BY split_rank, row_index) = 1)
        ORDER BY ord""")
    con.execute(CLICK_EVENTS)
    con.execute("DROP TABLE mind_news")

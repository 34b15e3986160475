"""Your own data: an interactions file (delimited text or parquet) whose columns the config maps,
and optionally an items file with a mapping of its own.

A dataset named ``csv-<name>`` with ``source: csv`` reads its files from ``path`` (default
``resources/manual/csv-<name>``) as its ``csv:`` block says (every key is described in the config
schema)::

    csv:
      interactions:
        file: ratings.tsv
        delimiter: auto            # auto | tab | comma | semicolon | pipe
        timestamp_format: seconds  # seconds | milliseconds | iso | a strptime format
        columns: {user: user_id, item: item_id, timestamp: ts, rating: stars}
      items:
        file: movies.csv
        columns: {item: item_id, title: name, description: plot}

Decisions:

- A text file starts with a header line, and columns are found by their names there (spaces
  around a name are ignored). ``delimiter: auto`` takes the one of tab, comma, semicolon and pipe
  that splits the header into columns holding every mapped name (the one giving most columns if
  several do). Fields may be quoted as spreadsheets and pandas write them (``"Toy Story, The"``,
  ``""`` for a quote inside one); a quote inside an unquoted field is kept as it is. Text is
  UTF-8 (a byte-order mark is dropped, as for every source); blank lines are skipped.
- A file whose name ends in ``.parquet`` is read as parquet: no header or delimiter to set, a
  date-time timestamp column is read as one, numbers and text as ``timestamp_format`` says.
- Times become Unix seconds: ``seconds`` (decimals floored, as in RecBole's ``timestamp:float``),
  ``milliseconds``, ``iso`` (an ISO 8601 date or date-time; an offset such as ``+02:00`` is
  applied, none means UTC) or a strptime format such as ``%d/%m/%Y %H:%M`` (UTC).
- ``behaviour`` is the mapped column, else ``rating`` where a rating column is mapped, else
  ``interaction``. A rating or behaviour is null where its field is empty.
- A row without a user, an item or a time, or whose time or rating does not read as one, is
  malformed: the error names the file, the line (a parquet file's row) and the column, and
  ``skip_malformed`` drops such rows instead and counts them in the log.
- Items are the items file's rows in file order (``ord``) with the mapped columns only:
  ``title``, ``category`` and ``description``, null where unmapped. Without an items file, the
  items of the interactions have no text. There is no users file.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb

from ..readers import MalformedInputError, open_text, report_malformed, source_encoding

log = logging.getLogger(__name__)

DELIMITERS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# timestamp_format -> the SQL that reads a time value (``{}``) as seconds, and its name for errors.
TIME_FORMATS = {
    "seconds": ("TRY_CAST({} AS DOUBLE)", "a number of seconds"),
    "milliseconds": ("TRY_CAST({} AS DOUBLE) / 1000", "a number of milliseconds"),
    "iso": ("epoch(TRY_CAST({} AS TIMESTAMPTZ))", "an ISO 8601 date or date-time"),
}
TEXT_ROLES = ("user", "item", "behaviour", "title", "category", "description")
ITEM_TEXT = ("title", "category", "description")


class ColumnMappingError(ValueError):
    """The config names a column that the file does not have."""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_columns(path: Path, key: str, columns: Mapping[str, str], names: list[str]) -> None:
    for role, name in columns.items():
        if name not in names:
            raise ColumnMappingError(
                f"{path} has no column {name!r} (csv.{key}.columns.{role}); its columns are "
                f"{', '.join(map(repr, names))}"
            )
        if names.count(name) > 1:
            raise ColumnMappingError(
                f"{path} has {names.count(name)} columns named {name!r} "
                f"(csv.{key}.columns.{role}); rename them so that the mapping names one"
            )


def _header(path: Path, delimiter: str, key: str, columns: Mapping[str, str]) -> tuple[str, list]:
    """The file's delimiter and column names, checked against the mapping."""
    with open_text(path) as fh:
        first = fh.readline().rstrip("\r\n")
    if not first.strip():
        raise ColumnMappingError(f"{path} has no header line: its first line must name its columns")
    candidates = DELIMITERS.values() if delimiter == "auto" else [DELIMITERS[delimiter]]
    splits = [(d, [n.strip() for n in next(csv.reader([first], delimiter=d))]) for d in candidates]
    fitting = [s for s in splits if set(columns.values()) <= set(s[1])] or splits
    delim, names = max(fitting, key=lambda s: len(s[1]))  # the first of equals
    _check_columns(path, key, columns, names)
    return delim, names


def _line_of(path: Path, delimiter: str, row: int) -> int:
    """The line on which data row ``row`` starts (1 is the first after the header; blank lines
    do not count, as duckdb skips them; a quoted field may span lines)."""
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader)
        start, seen = reader.line_num + 1, 0
        for fields in reader:
            seen += bool(fields)
            if seen == row:
                return start
            start = reader.line_num + 1
    raise ValueError(f"{path} has fewer than {row} rows")


def _read(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    key: str,
    block: Mapping,
    skip: bool,
) -> Callable[[int], str]:
    """Load the mapped columns of ``path`` into ``table``: ``source_row`` (1, 2, ... in file
    order) and one column per role, text stripped and null where empty. Return what names a
    row's place in the file (its line, or a parquet file's row)."""
    columns = {role: name for role, name in block["columns"].items() if name is not None}
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (csv.{key}.file names it)")

    if path.name.endswith(".parquet"):
        source = f"read_parquet({_literal(str(path))}, file_row_number=true)"
        names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        _check_columns(path, key, columns, names[:-1])  # the last is file_row_number
        values = {
            role: f"nullif(trim({_ident(name)}::VARCHAR), '')"
            if role in TEXT_ROLES
            else _ident(name)
            for role, name in columns.items()
        }
        select = ", ".join(f"{value} AS {_ident(role)}" for role, value in values.items())
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {table} AS
            SELECT file_row_number + 1 AS source_row, {select} FROM {source}""")
        return lambda row: f"row {row}"

    delim, names = _header(path, block.get("delimiter") or "auto", key, columns)
    encoding = source_encoding(path, "utf-8")  # refuses a UTF-16 or UTF-32 file
    # Columns by position: a header name may need quoting or repeat; only mapped ones are kept.
    types = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names))) + "}"
    select = ", ".join(
        f"nullif(trim(c{names.index(name)}), '') AS {_ident(role)}"
        for role, name in columns.items()
    )
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT row_number() OVER () AS source_row, {select}
        FROM read_csv({_literal(str(path))}, delim={_literal(delim)}, header=true,
                      columns={types}, quote='"', escape='"', encoding={_literal(encoding)},
                      store_rejects=true, auto_detect=false)""")
    rejects = con.execute(
        "SELECT line, error_message FROM reject_errors ORDER BY line LIMIT 1"
    ).fetchall()
    if rejects:
        n_bad = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()[0]
        report_malformed(path, *rejects[0], n_bad, skip)
    return lambda row: f"line {_line_of(path, delim, row)}"


def _find_malformed(
    con: duckdb.DuckDBPyConnection,
    table: str,
    checks: list[tuple[str, str, str]],
    path: Path,
    key: str,
    block: Mapping,
    where: Callable[[int], str],
    skip: bool,
) -> None:
    """Mark each row of ``table`` with the first check it fails in ``problem`` (null: none).

    A check is (SQL condition, role, what is wrong; ``{value}`` and ``{column}`` are the role's
    value and column). The first failing row stops the load, or with ``skip`` only the count of
    such rows is logged (the caller leaves them out).
    """
    cases = " ".join(f"WHEN {cond} THEN {i}" for i, (cond, _, _) in enumerate(checks))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, CASE {cases} END AS problem "
        f"FROM {table}"
    )
    n_bad, first = con.execute(
        f"SELECT count(*), min(source_row) FROM {table} WHERE problem IS NOT NULL"
    ).fetchone()
    if not n_bad:
        return
    row = con.execute(f"SELECT * FROM {table} WHERE source_row = ?", [first]).fetchone()
    record = dict(zip([d[0] for d in con.description], row))
    _, role, text = checks[record["problem"]]
    column = f"column {block['columns'][role]!r} (csv.{key}.columns.{role})"
    message = text.format(value=repr(record[role]), column=column)
    if not skip:
        raise MalformedInputError(
            f"{path}: {where(first)}: {message} ({n_bad} malformed row(s) in all; set "
            f"skip_malformed: true for this dataset to skip them)"
        )
    log.warning("%s: skipped %d malformed row(s); the first: %s", path, n_bad, message)


def _seconds(con: duckdb.DuckDBPyConnection, table: str, time_format: str) -> tuple[str, str]:
    """SQL that reads ``table``'s time as Unix seconds (null where it cannot), and its format's
    name for errors."""
    column_type = con.execute(
        f"SELECT column_type FROM (DESCRIBE {table}) WHERE column_name = 'timestamp'"
    ).fetchone()[0]
    if column_type.startswith(("TIMESTAMP", "DATE")):  # a parquet date-time column
        sql, name = "epoch({})", "a date-time"
    elif time_format in TIME_FORMATS:
        sql, name = TIME_FORMATS[time_format]
    else:
        sql = f"epoch(try_strptime({{}}::VARCHAR, {_literal(time_format)}))"
        name = f"a time in the format {time_format!r}"
    return f"TRY_CAST(floor({sql.format(_ident('timestamp'))}) AS BIGINT)", name


def _events(con: duckdb.DuckDBPyConnection, raw_dir: Path, block: Mapping, skip: bool) -> None:
    path = Path(raw_dir) / block["file"]
    where = _read(con, "csv_events", path, "interactions", block, skip)
    mapped = {role for role, name in block["columns"].items() if name is not None}
    # Without an offset, an ISO time is UTC whatever the machine's time zone.
    zone = con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    con.execute("SET TimeZone = 'UTC'")
    try:
        seconds, time_name = _seconds(con, "csv_events", block.get("timestamp_format") or "seconds")
        rating = 'TRY_CAST("rating" AS FLOAT)' if "rating" in mapped else "NULL::FLOAT"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE csv_events AS
            SELECT *, {seconds} AS seconds, {rating} AS rating_value FROM csv_events""")
    finally:
        con.execute(f"SET TimeZone = {_literal(zone)}")
    checks = [
        ('"user" IS NULL', "user", "no user: {column} is empty"),
        ('"item" IS NULL', "item", "no item: {column} is empty"),
        ('"timestamp" IS NULL', "timestamp", "no time: {column} is empty"),
        ("seconds IS NULL", "timestamp", f"{{value}} in {{column}} is not {time_name}"),
    ]
    if "rating" in mapped:
        rating_check = '"rating" IS NOT NULL AND rating_value IS NULL'
        checks.append((rating_check, "rating", "{value} in {column} is not a number"))
    _find_malformed(con, "csv_events", checks, path, "interactions", block, where, skip)
    if "behaviour" in mapped:
        behaviour = '"behaviour"'
    else:
        behaviour = "'rating'" if "rating" in mapped else "'interaction'"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT "user" AS user_key, "item" AS item_key, seconds AS timestamp,
               {behaviour} AS behaviour, rating_value AS rating, source_row
        FROM csv_events WHERE problem IS NULL""")
    con.execute("DROP TABLE csv_events")


def _items(con: duckdb.DuckDBPyConnection, raw_dir: Path, block: Mapping, skip: bool) -> None:
    path = Path(raw_dir) / block["file"]
    where = _read(con, "csv_items", path, "items", block, skip)
    checks = [('"item" IS NULL', "item", "no item: {column} is empty")]
    _find_malformed(con, "csv_items", checks, path, "items", block, where, skip)
    text = ", ".join(
        f"{_ident(c) if block['columns'].get(c) else 'NULL::VARCHAR'} AS {c}" for c in ITEM_TEXT
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        SELECT "item" AS item_key, source_row AS ord, {text}
        FROM csv_items WHERE problem IS NULL ORDER BY ord""")
    con.execute("DROP TABLE csv_items")


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    mapping, skip = options["csv"], options.get("skip_malformed", False)
    _events(con, raw_dir, mapping["interactions"], skip)
    if mapping.get("items"):
        _items(con, raw_dir, mapping["items"], skip)
    else:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE raw_items (item_key VARCHAR, ord BIGINT, title VARCHAR,
                                                    category VARCHAR, description VARCHAR)""")


def kind(con: duckdb.DuckDBPyConnection, interactions: Path) -> str:
    """What a user's interactions are, for the dataset table: ``ratings`` where they carry a
    rating, ``multi-behaviour`` where they name more than one behaviour, else ``implicit``."""
    rated, behaviours = con.execute(
        f"SELECT bool_or(rating IS NOT NULL), count(DISTINCT behaviour) "
        f"FROM read_parquet({_literal(str(interactions))})"
    ).fetchone()
    return "ratings" if rated else "multi-behaviour" if behaviours > 1 else "implicit"

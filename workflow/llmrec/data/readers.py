"""Reading source files into duckdb, with errors that name the file and the line.

Every source parser goes through these helpers, so malformed input is handled one way: an error
that names the file, the line and what is wrong, or (with ``skip_malformed``) a logged count of the
rows that were skipped. A byte-order mark is handled here too (:func:`source_encoding`).
"""

from __future__ import annotations

import ast
import codecs
import gzip
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


class MalformedInputError(ValueError):
    """A source file has a row that cannot be parsed."""


class SourceEncodingError(ValueError):
    """A source file's byte-order mark names an encoding its bytes or the reader do not follow."""


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_delimited(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    columns: dict[str, str],
    *,
    delim: str,
    header: bool = False,
    encoding: str = "utf-8",
    skip_malformed: bool = False,
) -> int:
    """Load a delimited text file into the temporary table ``table`` and return its row count.

    ``columns`` maps names to duckdb types in file order. Quoting is off: the sources quote
    nothing, and titles such as ``Big "Easy"`` must stay as they are.
    """
    encoding = source_encoding(path, encoding)  # duckdb itself skips a UTF-8 mark
    cols = "{" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in columns.items()) + "}"
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_csv({_sql_str(str(path))}, "
        f"delim={_sql_str(delim)}, header={str(header).lower()}, columns={cols}, quote='', "
        f"escape='', encoding={_sql_str(encoding)}, store_rejects=true, auto_detect=false)"
    )
    rejects = con.execute(
        "SELECT line, error_message FROM reject_errors ORDER BY line LIMIT 1"
    ).fetchall()
    n_bad = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()[0]
    if rejects:
        report_malformed(path, *rejects[0], n_bad, skip_malformed)
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def check_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    rules: Mapping[str, str],
    *,
    header: bool = False,
    skip_malformed: bool = False,
) -> int:
    """Check the rows :func:`read_delimited` loaded from ``path`` into ``table`` against rules the
    CSV reader cannot enforce; stop at the first row that breaks one, with its line, or (with
    ``skip_malformed``) delete such rows and log how many. Return the number deleted.

    Args:
        rules: maps an SQL condition that every good row meets (a null counts as false) to what
            it demands, said in the error, e.g. ``{"action_type BETWEEN 0 AND 3": "action_type
            must be 0, 1, 2 or 3"}``.
        header: ``path`` starts with a header line (as given to :func:`read_delimited`).
        skip_malformed: delete the rows that break a rule instead of stopping.

    Typed columns alone would do for most checks, but duckdb 1.4 reports the line of an
    ENUM cast error one too far when the file has an empty line, and prints the whole ENUM
    in its message; here every line number comes from reading the file itself.
    """
    conditions = list(rules)
    broken = " OR ".join(f"NOT coalesce({c}, false)" for c in conditions)
    n_bad = con.execute(f"SELECT count(*) FROM {table} WHERE {broken}").fetchone()[0]
    if not n_bad:
        return 0
    which = " ".join(f"WHEN NOT coalesce({c}, false) THEN {i}" for i, c in enumerate(conditions))
    row, rule = con.execute(
        f"SELECT rowid, CASE {which} END FROM {table} WHERE {broken} ORDER BY rowid LIMIT 1"
    ).fetchone()
    line, text = _data_line(con, path, row, header)
    report_malformed(path, line, f"{rules[conditions[rule]]}, got {text!r}", n_bad, skip_malformed)
    con.execute(f"DELETE FROM {table} WHERE {broken}")
    return n_bad


def _data_line(
    con: duckdb.DuckDBPyConnection, path: Path, row: int, header: bool
) -> tuple[int, str]:
    """The line number and text of the ``row``-th row (from 0) that duckdb's CSV reader kept
    from ``path``: it skips the header, empty lines and the lines in ``reject_errors``."""
    rejected = {
        line for (line,) in con.execute("SELECT DISTINCT line FROM reject_errors").fetchall()
    }
    index = -1
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if (header and lineno == 1) or not text or lineno in rejected:
                continue
            index += 1
            if index == row:
                return lineno, text
    raise RuntimeError(f"{path} has fewer than {row + 1} data lines")  # the file changed


def report_malformed(path: Path, line: int, message: str, n_bad: int, skip: bool) -> None:
    """Stop at the first malformed line of ``path``, or (``skip``) log how many are skipped."""
    if not skip:
        raise MalformedInputError(
            f"{path}: line {line}: {message} ({n_bad} malformed line(s) in all; set "
            f"skip_malformed: true for this dataset to skip them)"
        )
    log.warning(
        "%s: skipped %d malformed line(s), the first at line %d: %s", path, n_bad, line, message
    )


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def source_encoding(path: Path, declared: str) -> str:
    """The encoding to read ``path`` with: ``declared``, or UTF-8 where the file starts with a
    UTF-8 byte-order mark, which editors on Windows add when they save a file.

    The readers drop that mark (duckdb's CSV reader by itself, :func:`open_text` by reading
    ``utf-8-sig``). A latin-1 file saved with the mark is UTF-8 from then on; if its bytes are
    not, it is refused. So is a file that starts with a UTF-16 or UTF-32 mark.
    """
    with _open_bytes(path) as fh:
        head = fh.read(4)
    # BOM_UTF16_LE also starts the UTF-32 LE mark.
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)):
        raise SourceEncodingError(
            f"{path} starts with a UTF-16 or UTF-32 byte-order mark; save it as UTF-8 and run again"
        )
    if not head.startswith(codecs.BOM_UTF8) or codecs.lookup(declared).name == "utf-8":
        return declared
    with _open_bytes(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                raise SourceEncodingError(
                    f"{path} starts with a UTF-8 byte-order mark, but line {lineno} is not "
                    f"UTF-8; save the file as UTF-8, or as {declared} without the mark"
                ) from None
    log.warning("%s starts with a UTF-8 byte-order mark: read as UTF-8, not %s", path, declared)
    return "utf-8"


def open_text(path: Path, encoding: str = "utf-8"):
    """Open a plain or gzip-compressed text file for line-by-line reading (without the
    byte-order mark, if the file has one)."""
    encoding = source_encoding(path, encoding)
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # drops a leading mark, reads the same as utf-8 without one
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding)
    return open(path, encoding=encoding)


def parse_json_line(line: str) -> Any:
    return json.loads(line)


def parse_python_literal_line(line: str) -> Any:
    """Parse one line of a Python-literal file (McAuley's 2014 metadata) without ``eval``.

    ``ast.literal_eval`` accepts only literals: no names, calls or attribute access.
    """
    return ast.literal_eval(line)


def iter_records(
    path: Path,
    parse_line: Callable[[str], Any],
    *,
    skip_malformed: bool = False,
    encoding: str = "utf-8",
) -> Iterator[dict]:
    """Yield one dict per non-empty line of ``path``; raise with the line number on a bad one."""
    n_bad = 0
    with open_text(path, encoding) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = parse_line(line)
                if not isinstance(record, dict):
                    raise ValueError(f"expected an object, got {type(record).__name__}")
            except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
                if not skip_malformed:
                    raise MalformedInputError(
                        f"{path}: line {lineno}: {err} (set skip_malformed: true for this "
                        f"dataset to skip such lines)"
                    ) from None
                n_bad += 1
                continue
            yield record
    if n_bad:
        log.warning("%s: skipped %d malformed line(s)", path, n_bad)


def records_to_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    records: Iterable[dict],
    schema: pa.Schema,
    scratch: Path,
    batch_size: int = 100_000,
) -> int:
    """Stream dict records through a parquet file into the temporary table ``table``.

    Records are converted in batches, so memory stays bounded by ``batch_size`` rows whatever
    the size of the source. Missing keys become nulls.
    """
    scratch.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with pq.ParquetWriter(scratch, schema) as writer:
        batch: list[dict] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
                batch = []
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    source = _sql_str(str(scratch))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_parquet({source})")
    scratch.unlink()
    return n

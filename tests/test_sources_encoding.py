"""Byte-order marks in source files, for every source format.

A UTF-8 mark (Windows editors add one when they save) must not stick to the first id or
title: the tables come out as without it. A latin-1 file that gains the mark is read as the
UTF-8 it then is, or refused if its bytes are not UTF-8; a UTF-16 mark is refused. Every
variant is built from the fixtures in ``tmp_path``.
"""

from __future__ import annotations

import codecs
import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from llmrec.data.readers import SourceEncodingError
from llmrec.data.sources import parser_module

from .conftest import FIXTURES

# (parser, fixture folder, the files the parser reads as latin-1)
SOURCES = [
    ("movielens", "ml-100k", {"u.item", "u.user"}),
    ("movielens", "ml-1m", {"ratings.dat", "movies.dat", "users.dat"}),
    ("movielens", "ml-100k-recbole", set()),
    ("movielens", "ml-1m-recbole", set()),
    ("amazon", "amazon-beauty", set()),
    ("lastfm", "lastfm", {"tags.dat"}),
    ("yelp", "yelp", set()),
    ("taobao", "taobao", set()),
    ("tmall", "tmall", set()),
    ("retailrocket", "retailrocket", set()),
    ("mind", "mind-small", set()),
]


def raw_tables(parser: str, raw_dir: Path, scratch: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect()
    parser_module(parser).load(con, raw_dir, {}, scratch)
    names = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'raw_%' ORDER BY 1"
    ).fetchall()
    # Sorted: duckdb keeps no row order without ORDER BY (the ord columns keep the file's).
    return {
        name: sorted(con.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for (name,) in names
    }


def rewritten_copy(fixture: str, dest: Path, change: Callable[[Path, bytes], bytes]) -> Path:
    """Copy a fixture folder with every file's (uncompressed) bytes passed through ``change``."""
    shutil.copytree(FIXTURES / fixture, dest)
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(change(path, gzip.decompress(path.read_bytes()))))
        else:
            path.write_bytes(change(path, path.read_bytes()))
    return dest


@pytest.mark.parametrize("parser, fixture, latin1", SOURCES, ids=[s[1] for s in SOURCES])
def test_a_utf8_byte_order_mark_changes_nothing(tmp_path, parser, fixture, latin1):
    def as_utf8_with_mark(path: Path, data: bytes) -> bytes:
        text = data.decode("latin-1" if path.name in latin1 else "utf-8")
        return codecs.BOM_UTF8 + text.encode("utf-8")

    marked = rewritten_copy(fixture, tmp_path / "marked", as_utf8_with_mark)
    expected = raw_tables(parser, FIXTURES / fixture, tmp_path / "scratch-a")
    assert raw_tables(parser, marked, tmp_path / "scratch-b") == expected


@pytest.mark.parametrize(
    "parser, fixture, name",
    [("movielens", "ml-100k", "u.item"), ("lastfm", "lastfm", "tags.dat")],
)
def test_a_latin1_file_behind_a_utf8_mark_is_refused(tmp_path, parser, fixture, name):
    def mark_one(path: Path, data: bytes) -> bytes:
        return codecs.BOM_UTF8 + data if path.name == name else data

    raw = rewritten_copy(fixture, tmp_path / "raw", mark_one)
    assert max((raw / name).read_bytes()[3:]) >= 0x80, "the fixture needs a latin-1 letter"
    with pytest.raises(SourceEncodingError, match=rf"{name} starts with a UTF-8 byte-order mark"):
        raw_tables(parser, raw, tmp_path / "scratch")


@pytest.mark.parametrize(
    "parser, fixture, name",
    [
        ("movielens", "ml-100k", "u.data"),
        ("movielens", "ml-1m", "movies.dat"),
        ("movielens", "ml-100k-recbole", "ml-100k.item"),
        ("amazon", "amazon-beauty", "reviews_Beauty_5.json.gz"),
        ("lastfm", "lastfm", "artists.dat"),
        ("yelp", "yelp", "yelp_academic_dataset_review.json"),
        ("taobao", "taobao", "UserBehavior.csv"),
        ("tmall", "tmall", "user_log_format1.csv"),
        ("retailrocket", "retailrocket", "events.csv"),
        ("mind", "mind-small", "news.tsv"),
    ],
)
def test_a_utf16_file_is_refused_with_its_name(tmp_path, parser, fixture, name):
    def utf16_one(path: Path, data: bytes) -> bytes:
        return data.decode("latin-1").encode("utf-16") if path.name == name else data

    raw = rewritten_copy(fixture, tmp_path / "raw", utf16_one)
    with pytest.raises(SourceEncodingError, match=rf"{name} starts with a UTF-16"):
        raw_tables(parser, raw, tmp_path / "scratch")

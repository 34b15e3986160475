"""Adressa's 1-week release: reads into MIND-shaped impressions, malformed lines named, and the
download route (a loopback server stands in for reclab.idi.ntnu.no)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import duckdb
import pytest

from llmrec.data import steps
from llmrec.data.canonical import write_canonical
from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import adressa

from .test_download import mirror  # noqa: F401 (the loopback server fixture)

FIXTURE = Path(__file__).parent / "fixtures" / "adressa"


def _load(raw_dir: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    adressa.load(con, raw_dir, options, raw_dir / "scratch")
    return con


def _impressions(con) -> list[tuple]:
    return con.execute(
        "SELECT impression_key, user_key, timestamp, history, candidates, labels, split "
        "FROM raw_impressions ORDER BY impression_key"
    ).fetchall()


def test_reads_become_impressions_with_histories_and_unread_live_negatives():
    rows = _impressions(_load(FIXTURE, impressions={"negatives": 2, "seed": 0}))
    # Day 2 (train): u1 a4, u2 a5 (read twice: once), u3 a6, u2 a4, u3 a7; day 3 (dev): 4 reads.
    assert [(r[1], r[6]) for r in rows] == [
        ("cx:u1", "train"),
        ("cx:u2", "train"),
        ("cx:u3", "train"),
        ("cx:u2", "train"),
        ("cx:u3", "train"),
        ("cx:u1", "dev"),
        ("cx:u3", "dev"),
        ("cx:u2", "dev"),
        ("cx:u3", "dev"),
    ]
    clicked = [candidates[labels.index(1)] for *_, candidates, labels, _ in rows]
    assert clicked == ["a4", "a5", "a6", "a4", "a7", "a8", "a9", "a8", "a10"]
    day = {"train": {"a4", "a5", "a6", "a7"}, "dev": {"a8", "a9", "a10"}}
    read = {"cx:u1": {"a1", "a2", "a4", "a8"}, "cx:u2": {"a3", "a5", "a4", "a8"}}
    read["cx:u3"] = {"a6", "a7", "a9", "a10"}
    for _, user, _, _, candidates, labels, split in rows:
        assert sum(labels) == 1
        negatives = {c for c, label in zip(candidates, labels) if label == 0}
        # live that day, never read by the user; as many as there are (at most 2)
        assert negatives <= day[split] - read[user]
        assert len(negatives) == min(2, len(day[split] - read[user]))
    # Histories: the history day's first reads in time order; dev adds the train day's.
    assert rows[0][3] == ["a1", "a2"] and rows[1][3] == ["a3"] and rows[2][3] == []
    assert rows[5][3] == ["a1", "a2", "a4"] and rows[7][3] == ["a3", "a5", "a4"]
    assert rows[0][2] == 1483315200


def test_articles_categories_and_clicks():
    con = _load(FIXTURE)
    items = con.execute(
        "SELECT item_key, ord, title, category, subcategory, description FROM raw_items "
        "ORDER BY ord"
    ).fetchall()
    assert [i[0] for i in items] == [f"a{n}" for n in range(1, 11)]
    assert items[0][2:] == ("Det blir fyrverkeri", "nyheter", "nyheter|trondheim", None)
    assert items[4][2:5] == ("Kulde i hele Trøndelag", "nyheter", "nyheter")
    clicks = con.execute("SELECT count(*), count(DISTINCT behaviour) FROM raw_interactions")
    assert clicks.fetchone() == (9, 1)


def test_canonical_tables_and_the_seed(tmp_path):
    con = _load(FIXTURE)
    out = {n: tmp_path / f"{n}.parquet" for n in ("interactions", "items", "users", "impressions")}
    assert write_canonical(con, out, "adressa") == {
        "users": 3,
        "items": 10,
        "interactions": 9,
        "impressions": 9,
    }
    again = _impressions(_load(FIXTURE))
    assert again == _impressions(con)
    other = _impressions(_load(FIXTURE, impressions={"negatives": 20, "seed": 1}))
    assert [r[4] for r in other] != [r[4] for r in again]


def test_malformed_lines_name_file_and_line(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    day = raw / "one_week" / "20170102"
    lines = day.read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2][:40]  # a truncated JSON object
    day.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(MalformedInputError, match=r"one_week/20170102: line 3: "):
        _load(raw)
    con = _load(raw, skip_malformed=True)
    assert "a6" not in {r[0] for r in con.execute("SELECT item_key FROM raw_items").fetchall()}
    record = json.loads(lines[1])
    record["time"] = "1483316000"  # a string where Unix seconds belong
    lines[1], lines[2] = json.dumps(record), lines[3]
    day.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(MalformedInputError, match=r"20170102: line 2: 'time' is a str"):
        _load(raw)


def test_too_few_day_files_is_one_sentence(tmp_path):
    (tmp_path / "one_week").mkdir()
    shutil.copy(FIXTURE / "one_week" / "20170101", tmp_path / "one_week")
    with pytest.raises(FileNotFoundError, match="at least three are needed"):
        _load(tmp_path)


def test_fetch_from_a_url_unpacks_the_tarball_and_parses(mirror, tmp_path):  # noqa: F811
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for path in sorted((FIXTURE / "one_week").iterdir()):
            tf.add(path, arcname=f"one_week/{path.name}")
    mirror.serve("one_week.tar.gz", buffer.getvalue())
    manifest = tmp_path / "adressa" / "manifest.json"
    steps.fetch_dataset(
        {},
        {"manifest": manifest},
        dataset="adressa",
        options={"source": "url", "base_url": mirror.url},
        progress=False,
    )
    raw_dir = Path(json.loads(manifest.read_text())["raw_dir"])
    assert mirror.count("one_week.tar.gz") == 1
    assert len(adressa.day_files(raw_dir)) == 3
    assert len(_impressions(_load(raw_dir))) == 9

import logging
import shutil
from pathlib import Path

import duckdb
import pytest

from llmrec.data.canonical import _write_impressions, write_canonical
from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import mind

FIXTURE = Path(__file__).parent / "fixtures" / "mind-small"


def _load(raw_dir: Path, **options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    mind.load(con, raw_dir, options, raw_dir / "scratch")
    return con


@pytest.fixture
def raw_copy(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "raw")
    return tmp_path / "raw"


def _rewrite_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[lineno - 1] = text
    path.write_text("\n".join(lines), encoding="utf-8")


def test_items_are_deduplicated_in_split_order():
    con = _load(FIXTURE)
    rows = con.execute("SELECT item_key, ord FROM raw_items ORDER BY ord").fetchall()
    # N104 is listed by train and dev (dev lists it second); the dev folder sorts first by name.
    assert rows == [
        ("N101", 0),
        ("N102", 1),
        ("N103", 2),
        ("N104", 3),
        ("N105", 4),
        ("N201", 5),
        ("N202", 6),
    ]
    title, description, sub, entities = con.execute(
        "SELECT title, description, subcategory, title_entities FROM raw_items "
        "WHERE item_key = 'N101'"
    ).fetchone()
    assert title == 'Bears pull off a "Big Easy" comeback in overtime'
    assert description == "The defence held on the final drive of a wild game."
    assert sub == "football_nfl"
    assert entities.startswith('[{"Label": "Chicago Bears"')
    assert con.execute(
        "SELECT title, description FROM raw_items WHERE item_key = 'N102'"
    ).fetchone() == (
        "Café owner in Zürich wins award — a naïve résumé, 東京 edition",
        "Über-busy baristas cheer the décor.",
    )
    assert con.execute("SELECT description FROM raw_items WHERE item_key = 'N103'").fetchone() == (
        None,
    )


def test_impressions_keep_lists_labels_and_times():
    con = _load(FIXTURE)
    rows = con.execute("SELECT * FROM raw_impressions ORDER BY impression_key").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]  # dev ids 1, 2 follow train's largest id 3
    assert rows[1] == (2, "U10", 1573573201, [], ["N103", "N105", "N101"], [0, 1, 1], "train")
    # 11/15/2019 8:55:22 AM, read as UTC
    assert rows[3] == (4, "U2", 1573808122, ["N101"], ["N201", "N104", "N202"], [0, 1, 0], "dev")
    assert rows[2][2] == 1573603200  # 12:00:00 AM is midnight


def test_clicks_are_the_positive_candidates():
    con = _load(FIXTURE)
    clicks = con.execute(
        "SELECT user_key, item_key, timestamp, behaviour, rating FROM raw_interactions "
        "ORDER BY timestamp, item_key"
    ).fetchall()
    assert clicks == [
        ("U7", "N101", 1573463158, "click", None),
        ("U10", "N101", 1573573201, "click", None),
        ("U10", "N105", 1573573201, "click", None),
        ("U7", "N102", 1573603200, "click", None),
        ("U2", "N104", 1573808122, "click", None),
        ("U10", "N202", 1573821000, "click", None),
    ]


def test_canonical_impressions_map_back_to_news_ids(tmp_path: Path):
    con = _load(FIXTURE)
    out = {
        name: tmp_path / f"{name}.parquet"
        for name in ("interactions", "items", "users", "impressions")
    }
    counts = write_canonical(con, out, "mind")
    assert counts == {"users": 3, "items": 7, "interactions": 6, "impressions": 5}
    check = duckdb.connect()
    items = dict(check.execute(f"SELECT item_id, original_id FROM '{out['items']}'").fetchall())
    assert items == {0: "N101", 1: "N102", 2: "N103", 3: "N104", 4: "N105", 5: "N201", 6: "N202"}
    canonical = check.execute(
        f"SELECT impression_id, history, candidates, labels, split FROM '{out['impressions']}' "
        "ORDER BY impression_id"
    ).fetchall()
    raw = con.execute(
        "SELECT impression_key, history, candidates, labels, split "
        "FROM raw_impressions ORDER BY impression_key"
    ).fetchall()
    assert [
        (i, [items[h] for h in hist], [items[c] for c in cands], labels, split)
        for i, hist, cands, labels, split in canonical
    ] == raw


def test_bad_time_names_file_and_line(raw_copy: Path):
    behaviours = raw_copy / "MINDsmall_train" / "behaviors.tsv"
    _rewrite_line(behaviours, 2, "2\tU10\t11/12/2019 15:40:01 PM\t\tN103-0 N105-1 N101-1")
    with pytest.raises(
        MalformedInputError,
        match=r"MINDsmall_train/behaviors.tsv: line 2: "
        r"time \"11/12/2019 15:40:01 PM\"",
    ):
        _load(raw_copy)


def test_unlabelled_train_candidate_names_the_line_after_a_blank_line(raw_copy: Path):
    behaviours = raw_copy / "MINDsmall_train" / "behaviors.tsv"
    _rewrite_line(behaviours, 3, "\n3\tU7\t11/13/2019 12:00:00 AM\tN104 N105\tN102 N103-0")
    with pytest.raises(
        MalformedInputError, match=r"line 4: candidate \"N102\" has no -0/-1 click label"
    ):
        _load(raw_copy)


def test_skip_malformed_drops_bad_lines(raw_copy: Path, caplog):
    behaviours = raw_copy / "MINDsmall_train" / "behaviors.tsv"
    _rewrite_line(behaviours, 1, "1\tU7\t11/11/2019 9:05:58 AM\tN104 N105\tN101-1 N102-0 N103-2")
    _rewrite_line(behaviours, 2, "2\tU10\tsoon")  # too few columns: read_delimited rejects it
    with caplog.at_level(logging.WARNING):
        con = _load(raw_copy, skip_malformed=True)
    assert con.execute(
        "SELECT list(impression_key ORDER BY impression_key) FROM raw_impressions"
    ).fetchone()[0] == [3, 4, 5]
    assert 'skipped 1 malformed line(s), the first at line 1: candidate "N103-2"' in caplog.text


def test_test_split_has_no_labels_and_no_clicks(raw_copy: Path):
    test_dir = raw_copy / "MINDsmall_test"
    test_dir.mkdir()
    shutil.copy(raw_copy / "MINDsmall_dev" / "news.tsv", test_dir / "news.tsv")
    (test_dir / "behaviors.tsv").write_text("1\tU99\t11/16/2019 1:00:00 PM\tN104\tN201 N202\n")
    con = _load(raw_copy)
    assert con.execute(
        "SELECT impression_key, candidates, labels FROM raw_impressions WHERE split = 'test'"
    ).fetchall() == [(6, ["N201", "N202"], None)]
    assert con.execute(
        "SELECT count(*) FROM raw_interactions WHERE user_key = 'U99'"
    ).fetchone() == (0,)


def test_folder_without_split_suffix_is_refused(raw_copy: Path):
    (raw_copy / "MINDsmall_train").rename(raw_copy / "MINDsmall_training")
    with pytest.raises(ValueError, match="must end in _train, _dev or _test"):
        _load(raw_copy)


@pytest.mark.parametrize("per_batch", [1, 2])
def test_impressions_written_in_batches_equal_one_batch(tmp_path: Path, per_batch: int):
    con = _load(FIXTURE)
    out = {
        name: tmp_path / f"{name}.parquet"
        for name in ("interactions", "items", "users", "impressions")
    }
    write_canonical(con, out, "mind")
    _write_impressions(con, tmp_path / "batched.parquet", per_batch=per_batch)
    check = duckdb.connect()
    whole = check.execute(f"SELECT * FROM '{out['impressions']}'").fetchall()
    assert check.execute(f"SELECT * FROM '{tmp_path / 'batched.parquet'}'").fetchall() == whole
    assert any(row[3] == [] for row in whole)  # an empty history stays an empty list

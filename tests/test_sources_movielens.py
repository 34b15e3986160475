"""MovieLens: GroupLens files and RecBole's atomic files give the same canonical tables."""

from __future__ import annotations

import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from llmrec.data import steps
from llmrec.data.canonical import write_canonical
from llmrec.data.readers import MalformedInputError
from llmrec.data.sources import movielens
from llmrec.io import write_json

from .conftest import FIXTURES


def _canonical(raw_dir, tmp_path, name):
    con = duckdb.connect()
    movielens.load(con, raw_dir, {}, tmp_path)
    out = {
        t: tmp_path / name / f"{t}.parquet"
        for t in ("interactions", "items", "users", "impressions")
    }
    counts = write_canonical(con, out, name)
    return counts, {t: pq.read_table(p).to_pandas() for t, p in out.items()}


@pytest.mark.parametrize(
    "grouplens, recbole", [("ml-100k", "ml-100k-recbole"), ("ml-1m", "ml-1m-recbole")]
)
def test_both_routes_give_identical_tables(tmp_path, grouplens, recbole):
    counts_a, a = _canonical(FIXTURES / grouplens, tmp_path, "a")
    counts_b, b = _canonical(FIXTURES / recbole, tmp_path, "b")
    assert counts_a == counts_b
    assert a["interactions"].equals(b["interactions"])
    fields = ["item_id", "title", "year", "genres", "category"]
    assert a["items"][fields].astype(str).equals(b["items"][fields].astype(str))
    assert (
        a["users"]
        .drop(columns="original_id")
        .astype(str)
        .equals(b["users"].drop(columns="original_id").astype(str))
    )
    assert a["users"]["original_id"].tolist() == b["users"]["original_id"].tolist()


def test_ml100k_values(tmp_path):
    counts, t = _canonical(FIXTURES / "ml-100k", tmp_path, "a")
    data_lines = (FIXTURES / "ml-100k" / "u.data").read_text().splitlines()
    assert counts["interactions"] == len(data_lines)
    first = data_lines[0].split("\t")
    items = t["items"].set_index("original_id")
    users = t["users"].set_index("original_id")
    row = t["interactions"][
        (t["interactions"].user_id == users.loc[first[0], "user_id"])
        & (t["interactions"].timestamp == int(first[3]))
    ]
    assert row.item_id.tolist() == [items.loc[first[1], "item_id"]]
    assert row.rating.tolist() == [float(first[2])]
    # Ids follow the item file: movie "1" is item 0; titles lose the year, keep inner brackets.
    assert items.loc["1", "item_id"] == 0 and items.loc["1", "title"] == "Toy Story"
    assert items.loc["8", "title"] == "Scream of Stone (Schrei aus Stein)"
    assert items.loc["8", "year"] == 1991
    assert items.loc["9", "title"] == "Metisse (Café au Lait)"  # latin-1 decoded
    assert items.loc["11", "title"] == 'Big "Easy", The'  # quotes are not quoting
    # "(V)" is not a year; "unknown" has none.
    assert items.loc["7", "title"].endswith("Great Giving (1995)")
    assert items.loc["7", "year"] != items.loc["7", "year"]  # NaN
    assert items.loc["5", "title"] == "unknown" and list(items.loc["5", "genres"]) == ["unknown"]
    assert list(items.loc["1", "genres"]) == ["Animation", "Children's", "Comedy"]
    assert items.loc["1", "category"] == "Animation"
    assert users.loc["1", "occupation"] == "technician"
    assert t["interactions"].user_id.is_monotonic_increasing
    assert len(t["impressions"]) == 0


def test_ml1m_user_prefix_is_removed(tmp_path):
    _, t = _canonical(FIXTURES / "ml-1m-recbole", tmp_path, "b")
    assert t["users"]["original_id"].tolist() == ["1", "2", "3", "10"]
    assert t["items"]["original_id"].iloc[0] == "Toy Story (1995)"


def test_malformed_line_names_file_and_line(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "ml-100k", raw)
    lines = (raw / "u.data").read_text().splitlines()
    lines[3] = "1\t2\tfive\t881250949"
    (raw / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedInputError, match=r"u\.data: line 4: .*rating"):
        movielens.load(duckdb.connect(), raw, {}, tmp_path)
    con = duckdb.connect()
    movielens.load(con, raw, {"skip_malformed": True}, tmp_path)
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == len(lines) - 1


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="u.data, ratings.dat"):
        movielens.load(duckdb.connect(), tmp_path, {}, tmp_path)


def test_parse_dataset_removes_what_a_killed_run_left_behind(tmp_path):
    manifest = tmp_path / "raw" / "manifest.json"
    write_json(manifest, {"raw_dir": str(FIXTURES / "ml-100k")})
    folder = tmp_path / "canonical"
    (folder / "tmpk1ll3d").mkdir(parents=True)  # the step's scratch folder
    (folder / "tmpk1ll3d" / "meta.parquet").write_bytes(b"")
    (folder / ".items.parquet.x1y2.tmp").write_bytes(b"half a parquet file")
    (folder / "notes.txt").write_text("not the step's")
    names = {"interactions": "interactions", "item_table": "items", "users": "users"}
    output = {key: folder / f"{name}.parquet" for key, name in names.items()}
    output["impressions"] = folder / "impressions.parquet"
    steps.parse_dataset({"manifest": manifest}, output, dataset="ml-100k", options={})
    assert sorted(p.name for p in folder.iterdir()) == [
        "impressions.parquet",
        "interactions.parquet",
        "items.parquet",
        "notes.txt",
        "users.parquet",
    ]

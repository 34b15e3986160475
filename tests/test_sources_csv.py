"""Your own data (source csv) on tests/fixtures/csv: the same 25 ratings of 5 users as a
tab-separated file (RecBole-like names, Unix seconds) and a comma-separated one (Recommenders-like
names in another order, ISO times, a quoted header), and an items file whose fields are quoted
as spreadsheets write them (a comma, doubled quotes, a description over two lines)."""

from __future__ import annotations

import codecs
import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from snakemake.exceptions import WorkflowError

from llmrec.config import validate_config
from llmrec.data import steps
from llmrec.data.canonical import write_canonical
from llmrec.data.readers import MalformedInputError, SourceEncodingError
from llmrec.data.registry import CSV_PREFIX, REGISTRY, get_spec
from llmrec.data.sources import csv_file, movielens

from .conftest import FIXTURES, REPO

FIXTURE = FIXTURES / "csv"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TAB = {
    "file": "interactions.tsv",
    "columns": {"user": "user_id", "item": "item_id", "timestamp": "timestamp", "rating": "rating"},
}
COMMA = {
    "file": "interactions.csv",
    "timestamp_format": "iso",
    "columns": {"user": "userID", "item": "itemID", "timestamp": "timestamp", "rating": "rating"},
}
ITEMS = {
    "file": "items.csv",
    "columns": {"item": "item_id", "title": "name", "category": "genre", "description": "plot"},
}


def load(raw_dir: Path, interactions: dict, items: dict | None = None, **options):
    con = duckdb.connect()
    mapping = {"interactions": interactions} | ({"items": items} if items else {})
    csv_file.load(con, raw_dir, {"csv": mapping, **options}, raw_dir / "scratch")
    return con


def events(con) -> list[tuple]:
    return con.execute(
        "SELECT * EXCLUDE (source_row) FROM raw_interactions ORDER BY ALL"
    ).fetchall()


def changed_copy(tmp_path: Path, name: str, line_no: int, text: str | None) -> Path:
    """The fixtures with line ``line_no`` of ``name`` replaced by ``text`` (None: removed)."""
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    lines = (raw / name).read_text().splitlines()
    lines[line_no - 1 : line_no] = [] if text is None else [text]
    (raw / name).write_text("\n".join(lines) + "\n")
    return raw


def test_tab_and_comma_files_give_the_same_events(tmp_path):
    tab, comma = events(load(FIXTURE, TAB)), events(load(FIXTURE, COMMA))
    assert tab == comma
    assert len(tab) == 25
    assert tab[:3] == [
        ("1", "102", 881252129, "rating", 5.0),
        ("1", "104", 881251949, "rating", 2.0),
        ("1", "104", 881252189, "rating", 1.0),
    ]
    # Line 5 of the tab file reads "881252129.0" (floored); the comma file gives row 8's time
    # as 18:31:09+02:00 (the offset applied).
    assert ("1", "102", 881252129, "rating", 5.0) in tab
    assert ("2", "103", 881253069, "rating", 5.0) in comma
    types = load(FIXTURE, TAB).execute("DESCRIBE raw_interactions").fetchall()
    assert [(t[0], t[1]) for t in types] == [
        ("user_key", "VARCHAR"),
        ("item_key", "VARCHAR"),
        ("timestamp", "BIGINT"),
        ("behaviour", "VARCHAR"),
        ("rating", "FLOAT"),
        ("source_row", "BIGINT"),
    ]


def test_iso_times_without_an_offset_are_utc_whatever_the_time_zone():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    csv_file.load(con, FIXTURE, {"csv": {"interactions": COMMA}}, FIXTURE)
    assert events(con) == events(load(FIXTURE, TAB))
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "America/New_York"


def test_items_keep_the_files_order_quoted_text_and_only_mapped_columns(tmp_path):
    con = load(FIXTURE, TAB, ITEMS)
    items = con.execute("SELECT * FROM raw_items ORDER BY ord").fetchall()
    assert [d[0] for d in con.description] == [
        "item_key",
        "ord",
        "title",
        "category",
        "description",
    ]
    assert items[:3] == [
        (
            "101",
            1,
            "Toy Story, The",
            "Animation",
            'A cowboy doll is "profoundly" threatened by a new toy.',
        ),
        ("102", 2, 'Big "Easy"', "Crime", None),  # a quote inside an unquoted field stays
        (
            "103",
            3,
            "Heat",
            "Crime",
            "A group of professional bank robbers\nstart to feel the heat.",
        ),
    ]
    assert [row[0] for row in items] == ["101", "102", "103", "104", "105", "106", "107", "109"]

    out = {t: tmp_path / f"{t}.parquet" for t in ("interactions", "items", "users", "impressions")}
    counts = write_canonical(con, out, "csv-test")
    assert counts == {"users": 5, "items": 9, "interactions": 25, "impressions": 0}
    canonical = pq.read_table(out["items"]).to_pylist()
    # 109 is listed but never rated; 108 is rated but not listed: it comes last, without text.
    assert [(r["item_id"], r["original_id"], r["title"]) for r in canonical][-3:] == [
        (6, "107", "Clueless"),
        (7, "109", "Nixon"),
        (8, "108", None),
    ]


def test_recboles_atomic_files_read_as_csv_give_the_movielens_parsers_events():
    """A RecBole user's .inter and .item files, mapped by their typed header names."""
    recbole = FIXTURES / "ml-100k-recbole"
    inter = {
        "file": "ml-100k.inter",
        "columns": {
            "user": "user_id:token",
            "item": "item_id:token",
            "timestamp": "timestamp:float",
            "rating": "rating:float",
        },
    }
    items = {
        "file": "ml-100k.item",
        "columns": {"item": "item_id:token", "title": "movie_title:token_seq"},
    }
    con = load(recbole, inter, items)
    reference = duckdb.connect()
    movielens.load(reference, recbole, {}, recbole)
    same = "SELECT user_key, item_key, timestamp, rating FROM raw_interactions ORDER BY ALL"
    assert con.execute(same).fetchall() == reference.execute(same).fetchall()
    order = "SELECT item_key FROM raw_items ORDER BY ord"
    assert con.execute(order).fetchall() == reference.execute(order).fetchall()
    # Titles as the file has them (the movielens parser also mends RecBole's 'unkonwn').
    titles = con.execute("SELECT title FROM raw_items ORDER BY ord LIMIT 5").fetchall()
    assert [t[0] for t in titles] == ["Toy Story", "GoldenEye", "Kolya", "Chasing Amy", "unkonwn"]


def test_behaviour_milliseconds_and_a_strptime_format(tmp_path):
    (tmp_path / "clicks.csv").write_text(
        "visitor;product;when;event\n"
        "a;x;1511539200000;view\n"
        "a;y;1511539260500;buy\n"
        "b;x;1511539320000;\n"
    )
    (tmp_path / "clicks2.csv").write_text(
        "visitor|product|when\na|x|24/11/2017 16:00\na|y|24/11/2017 16:01\n"
    )
    columns = {"user": "visitor", "item": "product", "timestamp": "when"}
    con = load(
        tmp_path,
        {
            "file": "clicks.csv",
            "timestamp_format": "milliseconds",
            "columns": {**columns, "behaviour": "event"},
        },
    )
    assert events(con) == [
        ("a", "x", 1511539200, "view", None),
        ("a", "y", 1511539260, "buy", None),
        ("b", "x", 1511539320, None, None),
    ]
    con = load(
        tmp_path,
        {"file": "clicks2.csv", "timestamp_format": "%d/%m/%Y %H:%M", "columns": columns},
    )
    assert events(con) == [
        ("a", "x", 1511539200, "interaction", None),
        ("a", "y", 1511539260, "interaction", None),
    ]


def test_a_parquet_file_gives_the_same_events(tmp_path):
    rows = events(load(FIXTURE, TAB))
    table = pa.table(
        {
            "uid": pa.array([int(r[0]) for r in rows], pa.int64()),
            "iid": pa.array([int(r[1]) for r in rows], pa.int32()),
            "when": pa.array([r[2] * 1_000_000 for r in rows], pa.timestamp("us", tz="UTC")),
            "stars": pa.array([r[4] for r in rows], pa.float64()),
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    columns = {"user": "uid", "item": "iid", "timestamp": "when", "rating": "stars"}
    parquet = {"file": "events.parquet", "columns": columns}
    assert events(load(tmp_path, parquet)) == rows
    with pytest.raises(csv_file.ColumnMappingError, match=r"events.parquet has no column 'ts'"):
        load(tmp_path, {**parquet, "columns": {**columns, "timestamp": "ts"}})


@pytest.mark.parametrize(
    "interactions, items, file, column",
    [
        (
            {**TAB, "columns": {**TAB["columns"], "timestamp": "time"}},
            None,
            "interactions.tsv",
            "time",
        ),
        (
            {**COMMA, "columns": {**COMMA["columns"], "user": "user"}},
            None,
            "interactions.csv",
            "user",
        ),
        # The delimiter set to comma: a tab-separated header is then one column.
        ({**TAB, "delimiter": "comma"}, None, "interactions.tsv", "user_id"),
        (TAB, {**ITEMS, "columns": {**ITEMS["columns"], "title": "title"}}, "items.csv", "title"),
    ],
)
def test_a_bad_mapping_names_the_missing_column_and_the_file(interactions, items, file, column):
    with pytest.raises(csv_file.ColumnMappingError) as err:
        load(FIXTURE, interactions, items)
    message = str(err.value)
    assert message.startswith(f"{FIXTURE / file} has no column {column!r} (csv.")
    assert "\n" not in message and message.count(". ") == 0


def test_a_missing_file_or_header(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ratings.tsv does not exist \(csv.interactions"):
        load(FIXTURE, {**TAB, "file": "ratings.tsv"})
    (tmp_path / "headless.tsv").write_text("\n1\t2\t3\n")
    with pytest.raises(csv_file.ColumnMappingError, match="headless.tsv has no header line"):
        load(tmp_path, {**TAB, "file": "headless.tsv"})


def test_a_byte_order_mark_is_dropped_and_utf16_refused(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    for name in ("interactions.tsv", "items.csv"):
        (raw / name).write_bytes(codecs.BOM_UTF8 + (raw / name).read_bytes())
    con, plain = load(raw, TAB, ITEMS), load(FIXTURE, TAB, ITEMS)
    assert events(con) == events(plain)
    items = "SELECT * FROM raw_items ORDER BY ord"
    assert con.execute(items).fetchall() == plain.execute(items).fetchall()
    (raw / "interactions.tsv").write_bytes(
        (FIXTURE / "interactions.tsv").read_text().encode("utf-16")
    )
    with pytest.raises(SourceEncodingError, match="interactions.tsv starts with a UTF-16"):
        load(raw, TAB)


@pytest.mark.parametrize(
    "name, line_no, text, mapping, expected",
    [
        (
            "interactions.tsv",
            7,
            "2\t103\t4\tsoon\ts2",
            TAB,
            "interactions.tsv: line 7: 'soon' in column 'timestamp' "
            "(csv.interactions.columns.timestamp) is not a number of seconds",
        ),
        (
            "interactions.tsv",
            7,
            "2\t103\tfour\t881253009\ts2",
            TAB,
            "line 7: 'four' in column 'rating' (csv.interactions.columns.rating) is not a number",
        ),
        (
            "interactions.csv",
            4,
            "1997-12-04 16:14:29,,108,4",
            COMMA,
            "interactions.csv: line 4: no user: column 'userID' "
            "(csv.interactions.columns.user) is empty",
        ),
        (
            "interactions.csv",
            4,
            "yesterday,1,108,4",
            COMMA,
            "line 4: 'yesterday' in column 'timestamp' (csv.interactions.columns.timestamp) is "
            "not an ISO 8601 date or date-time",
        ),
        ("interactions.tsv", 7, "2\t103\t4", TAB, "interactions.tsv: line 7: "),  # a field short
    ],
)
def test_a_malformed_row_names_its_line_and_column(
    tmp_path, name, line_no, text, mapping, expected
):
    raw = changed_copy(tmp_path, name, line_no, text)
    with pytest.raises(MalformedInputError) as err:
        load(raw, mapping)
    assert expected in str(err.value)
    assert "1 malformed" in str(err.value) and "skip_malformed: true" in str(err.value)
    # skip_malformed drops the row and keeps the others.
    assert len(events(load(raw, mapping, skip_malformed=True))) == 24


def test_lines_count_blank_lines_and_fields_over_two_lines(tmp_path):
    raw = changed_copy(tmp_path, "items.csv", 6, ",Fargo,Crime,1996,Snow.")  # after Heat's 2 lines
    lines = (raw / "items.csv").read_text().splitlines()
    (raw / "items.csv").write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")
    with pytest.raises(MalformedInputError, match=r"items.csv: line 7: no item: column 'item_id'"):
        load(raw, TAB, ITEMS)


def test_kind_comes_from_the_events(tmp_path):
    def kind(ratings, behaviours):
        path = tmp_path / "interactions.parquet"
        pq.write_table(
            pa.table(
                {
                    "rating": pa.array(ratings, pa.float32()),
                    "behaviour": pa.array(behaviours, pa.string()),
                }
            ),
            path,
        )
        return csv_file.kind(duckdb.connect(), path)

    assert kind([4.0, None], ["rating", "rating"]) == "ratings"
    assert kind([None, None], ["view", "buy"]) == "multi-behaviour"
    assert kind([None, None], ["interaction", "interaction"]) == "implicit"


# --- naming and config --------------------------------------------------------------------------


def test_csv_names_are_users_datasets_and_other_names_stay_unknown():
    spec = get_spec("csv-shop")
    assert (spec.name, spec.parser, spec.sources, spec.kind) == (
        "csv-shop",
        "csv_file",
        ("csv",),
        "",
    )
    assert not any(name.startswith(CSV_PREFIX) for name in REGISTRY)
    with pytest.raises(KeyError, match="unknown dataset 'ml-10m'.*csv-<name>"):
        get_spec("ml-10m")
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert schema["any_dataset_name"]["if"]["pattern"] == f"^{CSV_PREFIX}"
    assert schema["csv_dataset_name"]["pattern"].startswith(f"^{CSV_PREFIX}")


def csv_config(**shop) -> dict:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["datasets"]["csv-shop"] = {"source": "csv", "csv": {"interactions": copy.deepcopy(TAB)}}
    cfg["datasets"]["csv-shop"].update(shop)
    cfg["build"] = ["csv-shop"]
    cfg["pfr"]["datasets"] = ["csv-shop"]
    return cfg


def test_the_schema_takes_a_csv_dataset_and_fills_its_defaults():
    cfg = csv_config(csv={"interactions": copy.deepcopy(TAB), "items": copy.deepcopy(ITEMS)})
    validate_config(cfg, SCHEMA)
    shop = cfg["datasets"]["csv-shop"]
    assert shop["path"] is None and shop["filter"]["k_core"] == 0
    assert shop["csv"]["interactions"]["delimiter"] == "auto"
    assert shop["csv"]["interactions"]["timestamp_format"] == "seconds"
    assert shop["csv"]["interactions"]["columns"]["behaviour"] is None
    assert shop["csv"]["items"]["columns"]["description"] == "plot"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["datasets"].update(shop=c["datasets"].pop("csv-shop")), "'shop' is not one"),
        (lambda c: c["datasets"]["csv-shop"].pop("csv"), "'csv' is a required property"),
        (lambda c: c["datasets"]["csv-shop"].update(source="local"), "'csv' was expected"),
        (
            lambda c: c["datasets"]["csv-shop"]["csv"]["interactions"]["columns"].pop("item"),
            "config.datasets.csv-shop.csv.interactions.columns: 'item' is a required property",
        ),
        (
            lambda c: c["datasets"]["csv-shop"]["csv"]["interactions"].update(delimiter=" "),
            "' ' is not one of ['auto', 'tab', 'comma', 'semicolon', 'pipe']",
        ),
        (lambda c: c["popk"].update(datasets=["csv-shop"]), "'csv-shop' is not one of"),
    ],
)
def test_the_schema_rejects_a_bad_csv_dataset(change, message):
    cfg = csv_config()
    change(cfg)
    with pytest.raises(WorkflowError) as err:
        validate_config(cfg, SCHEMA)
    assert message in str(err.value)


def test_fetch_records_the_folder_or_says_it_is_missing(tmp_path):
    manifest = tmp_path / "resources" / "raw" / "csv-shop" / "manifest.json"
    options = {"source": "csv", "path": str(tmp_path / "nowhere")}
    with pytest.raises(FileNotFoundError, match=r"datasets.csv-shop.path: there is no folder"):
        steps.fetch_dataset({}, {"manifest": manifest}, dataset="csv-shop", options=options)
    options["path"] = str(FIXTURE)
    digests = {"interactions.tsv": "abc"}
    steps.fetch_dataset(
        {}, {"manifest": manifest}, dataset="csv-shop", options=options, local_files=digests
    )
    record = yaml.safe_load(manifest.read_text())
    assert record["raw_dir"] == str(FIXTURE.resolve()) and record["local_files"] == digests
    assert {"interactions.tsv", "interactions.csv", "items.csv"} <= {
        f["path"] for f in record["files"]
    }


# --- in the workflow ----------------------------------------------------------------------------


def snakemake(work: Path, config: dict, *args: str) -> str:
    configfile = work / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", str(configfile)]
        + ["--directory", str(work), "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"snakemake {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def planned(dry_run: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of the jobs a dry run lists."""
    jobs, rule = set(), ""
    for line in map(str.strip, dry_run.splitlines()):
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^wildcards: (.*)$", line)):
            jobs.add((rule, m.group(1)))
    return jobs


@pytest.mark.workflow
def test_a_dry_run_plans_a_csv_dataset_in_build_and_the_pfr_study(tmp_path):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    shop = {"source": "csv", "path": str(FIXTURE), "csv": {"interactions": TAB, "items": ITEMS}}
    overlay = {
        "datasets": {"csv-shop": shop},
        "build": [*cfg["build"], "csv-shop"],
        "pfr": {"datasets": [*cfg["pfr"]["datasets"], "csv-shop"]},
    }
    jobs = planned(snakemake(tmp_path, overlay, "-n", "data", "results/tables/pfr.csv"))
    shop_jobs = {(rule, w) for rule, w in jobs if "dataset=csv-shop" in w}
    assert {rule for rule, _ in shop_jobs} == {
        "fetch_dataset",
        "parse_dataset",
        "filter_interactions",
        "split",
        "graph",
        "sequences",
        "item_text",
        "dataset_statistics",
        "item_profiles",  # user profiles: their items' mean (pfr.user_profiles)
        "embed_texts",
        "train_pfr",
    }
    trainings = {w for rule, w in shop_jobs if rule == "train_pfr"}
    assert len(trainings) == 3 * len(cfg["pfr"]["seeds"])


@pytest.mark.slow
@pytest.mark.workflow
def test_the_data_target_builds_a_csv_dataset(tmp_path):
    folder = tmp_path / "my files"
    shutil.copytree(FIXTURE, folder)
    config = {
        "build": ["csv-shop"],
        "datasets": {
            "csv-shop": {
                "source": "csv",
                "path": str(folder),
                "csv": {"interactions": COMMA, "items": ITEMS},
                # keep: the fixture repeats pairs, and this test counts the file's lines
                # (the dedupe policies: tests/test_encode.py)
                "filter": {"k_core": 2, "dedupe": "keep"},
            }
        },
        # Only this dataset: the studies' datasets are built by `data` too.
        "pfr": {"datasets": ["csv-shop"]},
        "arithmetic": {"datasets": ["csv-shop"]},
        "popk": {"datasets": []},
        "mbr": {"datasets": []},
    }
    work = tmp_path / "work"
    work.mkdir()
    snakemake(work, config, "data")
    data = work / "results" / "data" / "csv-shop"
    canonical = pq.read_table(data / "canonical" / "interactions.parquet").to_pylist()
    assert len(canonical) == 25
    assert {r["user_id"] for r in canonical} == set(range(5))
    assert canonical[0] == {
        "user_id": 0,
        "item_id": 3,  # "104": the fourth item of items.csv
        "timestamp": 881251949,
        "behaviour": "rating",
        "rating": 2.0,
        "source_row": 1,  # the first line after the header
    }
    items = pq.read_table(data / "canonical" / "items.parquet").to_pylist()
    assert [r["original_id"] for r in items] == [*map(str, range(101, 108)), "109", "108"]
    for protocol in ("loo", "random"):
        split = pq.read_table(data / "split" / f"{protocol}.parquet").to_pylist()
        assert len(split) == 25 and {r["split"] for r in split} == {"train", "valid", "test"}
    loo = pq.read_table(data / "split" / "loo.parquet").to_pylist()
    assert sum(r["split"] == "test" for r in loo) == 5  # one per user: the latest
    stats = yaml.safe_load((data / "stats.json").read_text())
    assert (stats["kind"], stats["users"], stats["interactions"]) == ("ratings", 5, 25)
    table = (work / "results" / "tables" / "datasets.csv").read_text().splitlines()
    assert len(table) == 2 and table[1].startswith("csv-shop,ratings,False,5,8,25,")

"""The multi-behaviour study's data (llmrec.data.multi_behaviour): behaviour mapping, the
leak-free leave-one-out split on the target behaviour, per-behaviour graphs, history text, and
the errors a bad configuration gets."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmrec.data import multi_behaviour as mb
from llmrec.data import steps
from llmrec.data.artifacts import load_behaviour_graphs, load_behaviour_sequences
from llmrec.io import write_json

from .conftest import FIXTURES, REPO, write_entities, write_interactions
from .test_workflow import jobs_of, snakemake

SHOP = {"funnel": ["view", "fav", "cart", "buy"], "target": "buy"}
RATED = {"from_rating": {"dislike": 2, "like": 4}, "funnel": ["dislike", "neutral", "like"]}
RATED["target"] = "like"


def events(rows: list[tuple]) -> pa.Table:
    """(user, item, timestamp, rating, behaviour) rows as an events table."""
    cols = list(zip(*rows))
    return pa.table(
        {
            "timestamp": pa.array(cols[2], pa.int64()),
            "rating": pa.array(cols[3], pa.float32()),
            "behaviour": pa.array(cols[4], pa.string()),
        }
    )


def build(tmp_path, rows, settings=SHOP, dataset="shop", n_items=None):
    """rows (user, item, timestamp, rating, behaviour), in source order -> the mbr artifacts'
    paths (sequences, summary, graphs of both stages)."""
    n_users = max(r[0] for r in rows) + 1
    n_items = n_items or max(r[1] for r in rows) + 1
    interactions = write_interactions(tmp_path / "interactions.parquet", rows)
    paths = {
        "sequences": tmp_path / "mbr" / "sequences.parquet",
        "summary": tmp_path / "mbr" / "behaviours.json",
    }
    steps.mbr_sequences({"interactions": interactions}, paths, dataset=dataset, behaviours=settings)
    users = write_entities(tmp_path / "users.parquet", "user_id", n_users)
    items = write_entities(tmp_path / "items.parquet", "item_id", n_items)
    for stage in ("valid", "test"):
        paths[stage] = tmp_path / "mbr" / f"graphs_{stage}.npz"
        steps.mbr_graphs(
            {"sequences": paths["sequences"], "item_table": items, "users": users},
            {"graphs": paths[stage]},
            stage=stage,
        )
    return paths


def reference_split(rows, funnel, target):
    """The split written plainly, user by user, from the rows in source order: per user
    (t_valid, t_test, valid_item, test_item, history events as (item, behaviour, time))."""
    by_user = defaultdict(list)
    for row_number, (user, item, time, _, behaviour) in enumerate(rows):
        by_user[user].append((time, row_number, item, behaviour))
    out = {}
    for user, evs in by_user.items():
        evs.sort()  # time, then source row: never item id
        seen, candidates = set(), []
        for time, _, item, behaviour in evs:
            if behaviour == target and item not in seen:
                seen.add(item)
                candidates.append((time, item))
        if len(candidates) >= 3 and candidates[0][0] < candidates[-2][0]:
            (t_valid, valid), (t_test, test) = candidates[-2], candidates[-1]
        else:
            t_valid = t_test = float("inf")
            valid = test = -1
        history = [(i, funnel.index(b), t) for t, _, i, b in evs if t < t_test]
        n_train = sum(t < t_valid for _, _, t in history)
        out[user] = (t_valid, t_test, valid, test, history, n_train)
    return out


def random_rows(seed: int, n_users=30, n_items=25, n=1500):
    """Random shop events with many ties in time, repeats and buys, in a shuffled source order."""
    rng = np.random.default_rng(seed)
    behaviours = rng.choice(SHOP["funnel"], n, p=[0.5, 0.1, 0.15, 0.25])
    return [
        (int(u), int(i), int(t), None, str(b))
        for u, i, t, b in zip(
            rng.integers(0, n_users, n),
            rng.integers(0, n_items, n),
            rng.integers(0, 40, n),
            behaviours,
        )
    ]


def assert_leak_free(paths, rows, funnel, target):
    """The artifacts against the plain split: sequences equal it, no training event at or after
    t_valid, no test-time event at or after t_test, held-out items never training targets."""
    seqs = load_behaviour_sequences(paths["sequences"])
    ref = reference_split(rows, funnel, target)
    graphs = {stage: load_behaviour_graphs(paths[stage]) for stage in ("valid", "test")}
    evaluated = 0
    for user, (t_valid, t_test, valid, test, history, n_train) in ref.items():
        items, codes, times = seqs.items[user], seqs.behaviours[user], seqs.timestamps[user]
        assert list(zip(items.tolist(), codes.tolist(), times.tolist())) == history, user
        assert seqs.n_train[user] == n_train
        assert (seqs.valid_item[user], seqs.test_item[user]) == (valid, test)
        assert (times < t_test).all() and (times[: seqs.n_train[user]] < t_valid).all()
        for stage, limit in (("valid", t_valid), ("test", t_test)):
            for code, b in enumerate(funnel):
                row = graphs[stage].matrices[b][user].indices
                # Every edge comes from an event of the user, behaviour b, before the limit.
                allowed = {i for i, c, t in history if c == code and t < limit}
                assert set(row.tolist()) == allowed, (user, stage, b)
        if test >= 0:
            evaluated += 1
            training_targets = graphs["valid"].matrices[target][user].indices
            assert valid not in training_targets and test not in training_targets
            assert test not in graphs["test"].matrices[target][user].indices
    assert evaluated > 0
    return seqs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_training_artifact_holds_an_event_at_or_after_its_users_held_out_time(tmp_path, seed):
    rows = random_rows(seed)
    paths = build(tmp_path, rows)
    seqs = assert_leak_free(paths, rows, SHOP["funnel"], "buy")
    # Repeats are events in sequences and one edge in graphs.
    user = max(range(len(seqs.items)), key=lambda u: len(seqs.items[u]))
    pairs = list(zip(seqs.items[user].tolist(), seqs.behaviours[user].tolist()))
    assert len(set(pairs)) < len(pairs)
    graphs = load_behaviour_graphs(paths["test"])
    assert sum(m[user].nnz for m in graphs.matrices.values()) == len(set(pairs))


def test_the_ml_100k_fixture_is_split_without_leaks(tmp_path):
    """The real MovieLens rows through the data rules' functions."""
    write_json(tmp_path / "manifest.json", {"raw_dir": str(FIXTURES / "ml-100k")})
    canonical = {
        key: tmp_path / "canonical" / f"{key}.parquet"
        for key in ("interactions", "item_table", "users", "impressions", "reviews")
    }
    (tmp_path / "canonical").mkdir()  # Snakemake makes an output's folder
    steps.parse_dataset(
        {"manifest": tmp_path / "manifest.json"}, canonical, dataset="ml-100k", options={}
    )
    filtered = {
        k: tmp_path / "filtered" / f"{k}.parquet" for k in ("interactions", "item_table", "users")
    }
    steps.filter_interactions(
        {k: canonical[k] for k in filtered}, filtered, dataset="ml-100k", filter={}
    )
    paths = {
        "sequences": tmp_path / "mbr" / "sequences.parquet",
        "summary": tmp_path / "mbr" / "behaviours.json",
    }
    steps.mbr_sequences(
        {"interactions": filtered["interactions"]}, paths, dataset="ml-100k", behaviours=RATED
    )
    for stage in ("valid", "test"):
        paths[stage] = tmp_path / "mbr" / f"graphs_{stage}.npz"
        steps.mbr_graphs(
            {
                "sequences": paths["sequences"],
                "item_table": filtered["item_table"],
                "users": filtered["users"],
            },
            {"graphs": paths[stage]},
            stage=stage,
        )
    table = pq.read_table(filtered["interactions"])
    label = {r: "dislike" if r <= 2 else "like" if r >= 4 else "neutral" for r in range(1, 6)}
    rows = [
        (u, i, t, r, label[int(r)])
        for _, u, i, t, r in sorted(
            zip(
                *(
                    table.column(c).to_pylist()
                    for c in ("source_row", "user_id", "item_id", "timestamp", "rating")
                )
            )
        )
    ]
    assert_leak_free(paths, rows, RATED["funnel"], "like")
    summary = json.loads(paths["summary"].read_text())
    counts = {b: sum(r[4] == b for r in rows) for b in RATED["funnel"]}
    assert summary["events"] == counts and sum(counts.values()) == table.num_rows
    # MovieLens rates a movie once: a test item is never met in another behaviour first.
    assert summary["aux_overlap"] == {"any": 0.0, "dislike": 0.0, "neutral": 0.0}
    graphs = load_behaviour_graphs(paths["test"])
    assert (graphs.n_users, graphs.n_items) == (
        pq.read_metadata(filtered["users"]).num_rows,
        pq.read_metadata(filtered["item_table"]).num_rows,
    )


def test_ratings_map_to_dislike_neutral_like_at_the_thresholds():
    table = events([(0, i, i, float(r), "rating") for i, r in enumerate([1, 2, 2.5, 3, 3.5, 4, 5])])
    codes = mb.map_behaviours(table, RATED["from_rating"], RATED["funnel"], "like", dataset="ml")
    names = [RATED["funnel"][c] for c in codes]
    assert names == ["dislike", "dislike", "neutral", "neutral", "neutral", "like", "like"]
    assert codes.dtype == np.int8


def test_ties_in_time_are_broken_by_source_order_not_item_id(tmp_path):
    # User 0 buys 9, 8 and 7 in the same second, then 5 and 2 together in the next one: the
    # source lists 9 8 7 and 5 2; item-id order would make 7 the first and 5 the test item.
    rows = [(0, 9, 10, None, "buy"), (0, 8, 10, None, "buy"), (0, 7, 10, None, "buy")]
    rows += [(0, 5, 20, None, "buy"), (0, 2, 20, None, "buy"), (0, 4, 30, None, "view")]
    paths = build(tmp_path, rows)
    seqs = load_behaviour_sequences(paths["sequences"])
    assert (seqs.valid_item[0], seqs.test_item[0]) == (5, 2)
    # Training is before t_valid = 20; the valid item, in the test's second, is not history.
    assert seqs.items[0].tolist() == [9, 8, 7] and seqs.n_train[0] == 3


def test_a_user_without_a_target_event_before_its_validation_time_is_not_evaluated(tmp_path):
    # User 0's first three purchases share one second: its training part would hold no
    # purchase. User 1 has one purchase before: it is evaluated.
    rows = [(0, 1, 5, None, "view")] + [(0, i, 10, None, "buy") for i in (1, 2, 3)]
    rows += [(1, 1, 5, None, "buy")] + [(1, i, 10, None, "buy") for i in (2, 3)]
    paths = build(tmp_path, rows)
    seqs = load_behaviour_sequences(paths["sequences"])
    assert (seqs.valid_item[0], seqs.test_item[0], seqs.n_train[0]) == (-1, -1, 4)
    assert (seqs.valid_item[1], seqs.test_item[1], seqs.n_train[1]) == (2, 3, 1)


def test_a_repeat_purchase_is_never_held_out(tmp_path):
    rows = [(0, 1, 1, None, "buy"), (0, 2, 2, None, "buy"), (0, 3, 3, None, "buy")]
    rows += [(0, 4, 4, None, "view"), (0, 1, 5, None, "buy"), (1, 4, 1, None, "buy")]
    paths = build(tmp_path, rows)
    seqs = load_behaviour_sequences(paths["sequences"])
    # The re-bought item 1 (time 5) is dropped with the test time's tail, not held out.
    assert (seqs.valid_item[0], seqs.test_item[0]) == (2, 3)
    assert seqs.items[0].tolist() == [1, 2] and seqs.n_train[0] == 1
    # A user with fewer than 3 target items keeps every event in training.
    assert (seqs.test_item[1], seqs.n_train[1], seqs.items[1].tolist()) == (-1, 1, [4])
    summary = json.loads(paths["summary"].read_text())
    assert summary["evaluated_users"] == 1
    assert summary["events"] == {"view": 1, "fav": 0, "cart": 0, "buy": 5}


def test_graphs_equal_a_dense_recount_and_merge_the_behaviours(tmp_path):
    rows = [
        (0, 0, 1, None, "view"),
        (0, 0, 2, None, "view"),  # a repeat: one edge
        (0, 1, 3, None, "cart"),
        (0, 1, 4, None, "buy"),
        (0, 2, 5, None, "buy"),
        (0, 3, 6, None, "fav"),
        (0, 3, 7, None, "buy"),
        (0, 4, 8, None, "view"),
        (0, 0, 9, None, "buy"),
        (2, 3, 1, None, "view"),
    ]
    paths = build(tmp_path, rows, n_items=6)
    for stage, before in (("valid", 7), ("test", 9)):
        graphs = load_behaviour_graphs(paths[stage])
        assert graphs.behaviours == tuple(SHOP["funnel"])
        assert (graphs.n_users, graphs.n_items) == (3, 6)
        dense = {b: np.zeros((3, 6), np.float32) for b in SHOP["funnel"]}
        for user, item, time, _, b in rows:
            if user != 0 or time < before:
                dense[b][user, item] = 1.0
        for b in SHOP["funnel"]:
            assert np.array_equal(graphs.matrices[b].toarray(), dense[b]), (stage, b)
            assert graphs.matrices[b].dtype == np.float32
        merged = np.clip(sum(dense.values()), 0, 1)
        assert np.array_equal(graphs.merged().toarray(), merged)
    with np.load(paths["valid"]) as raw:
        assert raw["buy_indptr"].dtype == np.int64 and raw["buy_indices"].dtype == np.int32
        assert raw["buy_indptr"].tolist() == [0, 2, 2, 2]  # user 0 bought 1, 2 before 7
    with np.load(paths["test"]) as raw:
        assert raw["view_indices"].tolist() == [0, 4, 3]  # user 0: 0 (twice), 4; user 2: 3
        assert raw["behaviours"].tolist() == SHOP["funnel"]


def test_aux_overlap_counts_test_items_met_before_in_each_behaviour(tmp_path):
    rows = [(u, i, i, None, "buy") for u in (0, 1) for i in (1, 2)]
    rows += [(0, 5, 3, None, "view"), (0, 5, 4, None, "cart"), (0, 5, 5, None, "buy")]
    rows += [(1, 6, 6, None, "buy"), (1, 6, 7, None, "view")]  # the view comes after: no help
    summary = json.loads(build(tmp_path, rows)["summary"].read_text())
    assert summary["evaluated_users"] == 2
    assert summary["aux_overlap"] == {"any": 0.5, "view": 0.5, "fav": 0.0, "cart": 0.5}


@pytest.mark.parametrize(
    "settings, rows, message",
    [
        (
            {"funnel": ["view", "buy"], "target": None},
            [(0, 1, 1, None, "buy")],
            "datasets.shop.behaviours names no target",
        ),
        (
            {"funnel": ["buy", "view"], "target": "buy"},
            [(0, 1, 1, None, "buy")],
            "target 'buy' must be the last of its funnel",
        ),
        (
            {"funnel": ["view", "cart"], "target": "buy"},
            [(0, 1, 1, None, "buy")],
            "target 'buy' is not in its funnel",
        ),
        (
            {"funnel": ["view", "buy"], "target": "buy"},
            [(0, 1, 1, None, "buy"), (0, 2, 2, None, "fav"), (0, 3, 3, None, "fav")],
            "behaviours that datasets.shop.behaviours.funnel ['view', 'buy'] does not list: "
            "'fav' (2 events)",
        ),
        (
            {**RATED, "from_rating": {"dislike": 2, "like": 6}},
            [(0, 1, 1, 5.0, "rating"), (0, 2, 2, 1.0, "rating")],
            "the behaviour mapping leaves the target 'like' empty in shop",
        ),
        (
            {**RATED, "from_rating": {"dislike": 4, "like": 4}},
            [(0, 1, 1, 5.0, "rating")],
            "from_rating: dislike (4) must be below like (4)",
        ),
        (
            {**RATED},
            [(0, 1, 1, 5.0, "rating"), (0, 2, 2, None, "rating")],
            "shop has 1 events without a rating",
        ),
        (
            SHOP,
            [(0, i, 7, None, "buy") for i in range(4)],
            "every event of shop has the same timestamp: leave-one-out needs timestamps",
        ),
        (
            SHOP,
            [(0, i, None, None, "buy") for i in range(4)],
            "shop has no timestamps: leave-one-out needs timestamps",
        ),
        (
            SHOP,
            [(0, i, i, None, "buy") for i in range(2)] + [(1, 1, 1, None, "view")],
            "no user of shop has 3 'buy' events on distinct items",
        ),
    ],
)
def test_bad_settings_and_data_stop_with_one_sentence_and_write_nothing(
    tmp_path, settings, rows, message
):
    with pytest.raises(ValueError) as error:
        build(tmp_path, rows, settings)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "mbr").exists() or not list((tmp_path / "mbr").iterdir())


def test_user_text_lists_the_latest_events_with_their_verbs_and_titles(tmp_path):
    rows = [(0, 0, 1, None, "view"), (0, 1, 2, None, "cart"), (0, 1, 3, None, "buy")]
    rows += [(0, 2, 4, None, "fav"), (0, 2, 5, None, "buy"), (0, 0, 6, None, "buy")]
    rows += [(0, 1, 7, None, "view"), (1, 2, 1, None, "view")]
    paths = build(tmp_path, rows)
    item_text = tmp_path / "item_text.parquet"
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array([0, 1, 2], pa.int32()),
                "original_id": ["a7", "b8", "c9"],
                "title": ["Red Kettle", None, " "],
                "text": ["Title: Red Kettle", "", ""],
            }
        ),
        item_text,
    )
    texts = {}
    for stage in ("valid", "test"):
        out = tmp_path / f"user_text_{stage}.parquet"
        steps.mbr_user_text(
            {"sequences": paths["sequences"], "item_text": item_text},
            {"text": out},
            stage=stage,
            text_events=4,
        )
        table = pq.read_table(out)
        assert table.schema.field("user_id").type == pa.int32()
        texts[stage] = table.column("text").to_pylist()
    # User 0: valid = buy 2 at 5, test = buy 0 at 6: training is the 4 events before 5, the
    # test-time history the 5 before 6 (the latest 4 in the text). User 1 is not evaluated.
    assert texts["valid"] == [
        "viewed Red Kettle; added to cart item b8; bought item b8; favourited item c9",
        "viewed item c9",
    ]
    assert texts["test"] == [
        "added to cart item b8; bought item b8; favourited item c9; bought item c9",
        "viewed item c9",
    ]
    assert mb.history_text(["Toy Story", "Heat"], ["like", "dislike"]) == (
        "liked Toy Story; disliked Heat"
    )
    assert mb.history_text(["X"], ["neutral"]) == "rated neutrally X"
    assert mb.history_text(["X"], ["click"]) == "click X"


def test_dataset_table_has_a_column_per_behaviour(tmp_path):
    stats = []
    for name, behaviours in (("taobao", {"buy": 3, "view": 9}), ("ml-100k", {"rating": 5})):
        stats.append(tmp_path / f"{name}.json")
        write_json(
            stats[-1],
            {
                "dataset": name,
                "kind": "k",
                "synthetic": False,
                "users": 1,
                "items": 1,
                "interactions": sum(behaviours.values()),
                "density": 1.0,
                "behaviours": behaviours,
            },
        )
    out = tmp_path / "datasets.csv"
    steps.dataset_table({"stats": stats}, {"table": out}, provenance={"config_sha256": "f00d"})
    header, *rows = [line.split(",") for line in out.read_text().splitlines()]
    assert header[8:11] == ["events_buy", "events_rating", "events_view"]
    assert header[-2:] == ["git_commit", "config_sha256"]
    assert [row[8:11] for row in rows] == [["", "5", ""], ["3", "", "9"]]


@pytest.mark.workflow
def test_a_dry_run_plans_the_multi_behaviour_rules(tmp_path):
    done = snakemake(
        "-n",
        "results/data/ml-100k/mbr/graphs_valid.npz",
        "results/data/ml-100k/mbr/user_text_test.parquet",
        "--directory",
        str(tmp_path),
        "--snakefile",
        str(REPO / "Snakefile"),
    )
    jobs = jobs_of(done.stdout)
    assert {
        ("mbr_sequences", "dataset=ml-100k"),
        ("mbr_graphs", "dataset=ml-100k, stage=valid"),
        ("mbr_user_text", "dataset=ml-100k, stage=test"),
        ("filter_interactions", "dataset=ml-100k"),
        ("item_text", "dataset=ml-100k"),
    } <= jobs


@pytest.mark.workflow
def test_a_dataset_without_behaviours_is_refused_in_one_sentence(tmp_path):
    done = snakemake(
        "-n",
        "results/data/synthetic-news/mbr/graphs_valid.npz",
        "--directory",
        str(tmp_path),
        "--snakefile",
        str(REPO / "Snakefile"),
        check=False,
    )
    assert done.returncode != 0
    assert "datasets.synthetic-news has no behaviours block" in done.stdout + done.stderr

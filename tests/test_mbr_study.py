"""The multi-behaviour study end to end on a planted toy shop: every model trains (or ranks)
and is tested by segment, the table compares each column with its best model, the figure is
drawn; aux-first finds the planted purchases that popularity cannot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmrec.evaluation.segments import SEGMENTS, segment_columns
from llmrec.studies import mbr

from .test_multi_behaviour_data import SHOP, build

GRAPH = {
    "embedding_dim": 8,
    "num_layers": 1,
    "batch_size": 64,
    "lr": 0.01,
    "reg_weight": 0.0001,
    "epochs": 4,
    "eval_every": 2,
    "patience": 2,
    "metric": "ndcg@10",
}
SEQUENCE = {
    "max_len": 8,
    "hidden": 8,
    "num_layers": 1,
    "num_heads": 1,
    "dropout": 0.1,
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.01,
    "weight_decay": 0.0,
    "eval_every": 1,
    "patience": 2,
    "metric": "ndcg@10",
}
SETTINGS = {
    "pop": {},
    "aux_first": {"strength": None},
    "mf": {k: v for k, v in GRAPH.items() if k != "num_layers"},
    "lightgcn": GRAPH,
    "lightgcn_merged": GRAPH,
    "cascading_gcn": GRAPH,
    "cascading_rank": {
        "alpha": [0.0, 0.3],
        "beta": [0.6, 0.9],
        "iterations": 20,
        "tolerance": 1e-4,
        "chunk_size": 16,
        "metric": "ndcg@10",
    },
    "sasrec": SEQUENCE,
    "bsasrec": SEQUENCE,
}
SEGMENT_SETTINGS = {"head_share": 0.2, "strict_tail_share": 0.2, "sparse_max": 5}


def planted_rows(n_users=40, n_items=30, seed=0):
    """Each user views three items, carts one of them and buys it an hour later, five times:
    what a user buys next is the item it just carted."""
    rng = np.random.default_rng(seed)
    rows, t = [], 0
    for user in range(n_users):
        for _ in range(5):
            viewed = rng.choice(n_items, 3, replace=False)
            for item in viewed:
                rows.append((user, int(item), t, None, "view"))
                t += 1
            rows.append((user, int(viewed[0]), t, None, "cart"))
            rows.append((user, int(viewed[0]), t + 3600, None, "buy"))
            t += 7200
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mbr")
    paths = build(tmp, planted_rows(), SHOP, dataset="shop", n_items=30)
    inputs = {
        "sequences": str(paths["sequences"]),
        "graphs_valid": str(paths["valid"]),
        "graphs_test": str(paths["test"]),
    }
    done = {}
    for model in mbr.BASELINES:
        for seed in (0, 1):
            folder = tmp / model / f"seed{seed}"
            out = {n: str(folder / f) for n, f in mbr_outputs().items()}
            mbr.train_mbr(
                inputs,
                out,
                dataset="shop",
                model=model,
                seed=seed,
                settings=SETTINGS[model],
                segments=SEGMENT_SETTINGS,
                ks=[1, 10],
                device="cpu",
                progress=False,
            )
            done[(model, seed)] = out
    return tmp, paths, done


def mbr_outputs():
    return {"per_user": "per_user.parquet", "summary": "summary.json", "weights": "weights.pt"}


def test_every_model_is_tested_on_every_segment(runs):
    _, _, done = runs
    for (model, seed), out in done.items():
        summary = json.loads(open(out["summary"]).read())
        assert (summary["study"], summary["model"], summary["seed"]) == ("mbr", model, seed)
        assert set(summary["test"]) == set(SEGMENTS)
        per_user = pd.read_parquet(out["per_user"])
        assert list(per_user.columns) == ["user_id", *segment_columns([1, 10])]
        assert len(per_user) == 40  # every user has five purchases of distinct items (or not)
        overall = per_user["overall/hit@10"]
        assert overall.between(0, 1).all() and overall.notna().all()
        assert summary["test"]["overall"]["hit@10"] == pytest.approx(overall.mean())
        if model in ("pop", "aux_first"):
            assert summary["history"] == []
        elif model == "cascading_rank":  # the grid: (0, 0.6), (0, 0.9), (0.3, 0.6)
            assert [(r["alpha"], r["beta"]) for r in summary["history"]] == [
                (0.0, 0.6),
                (0.0, 0.9),
                (0.3, 0.6),
            ]
        else:
            assert summary["history"], model


def test_aux_first_finds_the_planted_purchases(runs):
    _, _, done = runs

    def hit1(model):
        return pd.read_parquet(done[(model, 0)]["per_user"])["overall/hit@1"].mean()

    # The carted item is always the next purchase: aux-first ranks it first whenever the user
    # carted it last and not three items ago (always, here).
    assert hit1("aux_first") == 1.0
    assert hit1("pop") < 0.5


def test_training_free_models_repeat_exactly_across_seeds(runs):
    _, _, done = runs
    for model in mbr.TRAINING_FREE:
        a, b = (pd.read_parquet(done[(model, s)]["per_user"]) for s in (0, 1))
        pd.testing.assert_frame_equal(a, b)


def test_table_and_figure(runs):
    tmp, paths, done = runs
    order = [(m, s) for m in mbr.BASELINES for s in (0, 1)]
    out = {
        "table": str(tmp / "mbr.csv"),
        "markdown": str(tmp / "mbr.md"),
        "html": str(tmp / "mbr.html"),
    }
    mbr.mbr_table(
        {
            "summaries": [done[k]["summary"] for k in order],
            "per_user": [done[k]["per_user"] for k in order],
            "behaviours": [str(paths["summary"])],
        },
        out,
        ks=[1, 10],
        masked={"shop": ["view", "buy"]},
    )
    table = pd.read_csv(out["table"])
    assert (table.loc[table["segment"] == "overall", "test_users"] == 40).all()
    tail_users = pd.read_parquet(done[("pop", 0)]["per_user"])["tail/hit@1"].notna().sum()
    assert (table.loc[table["segment"] == "tail", "test_users"] == tail_users).all()
    assert len(table) == len(SEGMENTS) * len(mbr.BASELINES)
    assert list(dict.fromkeys(table["segment"])) == list(SEGMENTS)
    overall = table[table["segment"] == "overall"].set_index("model")
    assert overall.loc["Aux-first", "hit@1"] == 1.0
    # The best of the column is compared with nobody; everyone else with it.
    assert (overall["hit@1_vs"] == "Aux-first").all()
    assert np.isnan(overall.loc["Aux-first", "hit@1_p"])
    assert overall.drop(index="Aux-first")["hit@1_p"].notna().all()
    assert (table["hit@1_p_holm"].dropna() >= table["hit@1_p"].dropna()).all()
    assert "aux_overlap_any" in table.columns
    markdown = open(out["markdown"]).read()
    assert "already met in an auxiliary behaviour" in markdown and "shop: any" in markdown
    assert "shop masks the user's earlier items of every behaviour in view, buy" in markdown
    figure = tmp / "mbr_tail.png"
    mbr.mbr_figure({"table": out["table"]}, {"figure": str(figure)})
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_masked_behaviours_leave_the_ranking(runs):
    from llmrec.data.artifacts import load_behaviour_graphs, load_behaviour_sequences

    _, paths, _ = runs
    seqs = load_behaviour_sequences(paths["sequences"])
    graphs = load_behaviour_graphs(paths["test"])
    only_target = mbr.Stage(seqs, graphs, "test")
    assert (only_target.masked != graphs.matrices["buy"]).nnz == 0
    every = mbr.Stage(seqs, graphs, "test", ["view", "cart"])
    expected = graphs.matrices["buy"] + graphs.matrices["view"] + graphs.matrices["cart"]
    assert set(zip(*every.masked.nonzero())) == set(zip(*expected.nonzero()))
    assert (every.masked.data == 1).all()

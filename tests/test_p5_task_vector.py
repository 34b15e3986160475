"""The task vector's lambda is chosen on validation, never on test, and recorded with the run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from llmrec.p5.arithmetic import apply_task_vector, task_vector
from llmrec.p5.indexing import sequential_indexing, write_index
from llmrec.p5.tokenizer import train_tokenizer
from llmrec.studies import arithmetic
from llmrec.studies.arithmetic import choose_coefficient, evaluate_p5, p5_task_vector

MODEL = {
    "pretrained": None,
    "d_model": 16,
    "d_ff": 32,
    "num_layers": 1,
    "num_heads": 2,
    "d_kv": 8,
    "dropout": 0.0,
    "whole_word": False,
}
PROMPTS = {"max_history": 5, "windows_per_user": 2}
EVALUATION = {"ks": [1, 3], "batch_size": 4}
GRID = [0.1, 0.25, 0.5, 1.0]


def test_the_choice_is_the_argmax_and_ties_go_to_the_smaller_lambda():
    assert choose_coefficient({0.1: 0.2, 0.25: 0.5, 0.5: 0.3, 1.0: 0.1}) == 0.25
    assert choose_coefficient({1.0: 0.4, 0.5: 0.4, 0.1: 0.3}) == 0.5
    with pytest.raises(ValueError, match="no task-vector coefficient"):
        choose_coefficient({})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Sequences, index, tokenizer and three weight sets of a tiny P5 study, as files."""
    root = tmp_path_factory.mktemp("task_vector")
    rng = np.random.default_rng(0)
    sequences = [rng.permutation(12)[:6] for _ in range(8)]
    pq.write_table(
        pa.table({"user_id": np.arange(8), "items": [s.tolist() for s in sequences]}),
        root / "sequences.parquet",
    )
    index = sequential_indexing(sequences, 12)
    write_index(root / "index.parquet", index, "sequential")
    corpus = [f"user_{u} has interacted with items {' , '.join(index)}" for u in range(8)]
    tokenizer = train_tokenizer(corpus, 150, root / "tokenizer")
    base = arithmetic._model(MODEL, tokenizer, 0).state_dict()
    noise = torch.Generator().manual_seed(1)
    recommender = {k: v + 0.1 * torch.randn(v.shape, generator=noise) for k, v in base.items()}
    theta_arith = {k: v + 0.1 * torch.randn(v.shape, generator=noise) for k, v in base.items()}
    for name, state in {
        "base": base,
        "recommender": recommender,
        "arithmetic": theta_arith,
    }.items():
        torch.save(state, root / f"{name}.pt")
    return {
        "files": {
            "recommender": str(root / "recommender.pt"),
            "base": str(root / "base.pt"),
            "arithmetic": str(root / "arithmetic.pt"),
            "tokenizer": str(root / "tokenizer"),
            "index": str(root / "index.parquet"),
            "sequences": str(root / "sequences.parquet"),
        },
        "root": root,
    }


def _select(study, out: str):
    outputs = {
        "weights": str(study["root"] / out / "weights.pt"),
        "selection": str(study["root"] / out / "lambda.json"),
    }
    p5_task_vector(
        study["files"],
        outputs,
        seed=0,
        coefficients=GRID,
        model=MODEL,
        prompts=PROMPTS,
        evaluation=EVALUATION,
        device="cpu",
        progress=False,
    )
    return outputs


def test_lambda_is_the_validation_argmax_and_test_items_are_never_read(study, monkeypatch):
    # A stand-in for the ranking: it reads lambda off the edited weights (tau = 1 on one
    # entry, the recommender 0 there) and scores each lambda by a fixed table, so the argmax
    # is known; it also records every stage it is asked for.
    peak = {0.1: 0.2, 0.25: 0.5, 0.5: 0.3, 1.0: 0.1}
    stages = []
    files = dict(study["files"])
    for name, value in (("recommender", 0.0), ("base", 0.0), ("arithmetic", 1.0)):
        state = torch.load(files[name], weights_only=True)
        for key in state:  # the tied embedding's every name
            if key.endswith(("shared.weight", "embed_tokens.weight", "lm_head.weight")):
                state[key][0, 0] = value
        files[name] = str(study["root"] / f"marked_{name}.pt")
        torch.save(state, files[name])

    def fake_rank(net, tokenizer, index, sequences, *, stage, ks, **_):
        stages.append(stage)
        coefficient = round(float(net.state_dict()["t5.shared.weight"][0, 0]), 4)
        score = peak[coefficient]
        return pd.DataFrame(
            {"user_id": [0], **{f"{m}@{k}": [score] for m in ("hit", "ndcg") for k in ks}}
        )

    monkeypatch.setattr(arithmetic, "rank_p5", fake_rank)
    outputs = _select({**study, "files": files}, "marked")
    selection = json.loads(open(outputs["selection"]).read())
    assert selection["coefficient"] == 0.25
    assert stages == ["valid"] * len(GRID)
    assert [row["coefficient"] for row in selection["validation"]] == GRID
    assert selection["metric"] == "ndcg@3"


def test_the_chosen_lambda_is_applied_and_reaches_the_test_summary(study):
    outputs = _select(study, "real")
    selection = json.loads(open(outputs["selection"]).read())
    scores = {row["coefficient"]: row["ndcg@3"] for row in selection["validation"]}
    assert selection["coefficient"] == choose_coefficient(scores)
    load = lambda name: torch.load(study["files"][name], weights_only=True)  # noqa: E731
    expected = apply_task_vector(
        load("recommender"), task_vector(load("arithmetic"), load("base")), selection["coefficient"]
    )
    weights = torch.load(outputs["weights"], weights_only=True)
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    summary = study["root"] / "real" / "summary.json"
    evaluate_p5(
        {**study["files"], "weights": outputs["weights"], "selection": outputs["selection"]},
        {"per_user": str(study["root"] / "real" / "per_user.parquet"), "summary": str(summary)},
        dataset="tiny",
        method="task_vector",
        seed=0,
        setting="seen",
        model=MODEL,
        prompts=PROMPTS,
        evaluation=EVALUATION,
        device="cpu",
        progress=False,
    )
    assert json.loads(summary.read_text())["coefficient"] == selection["coefficient"]


def test_changing_every_test_item_does_not_change_the_choice(study, tmp_path):
    chosen = json.loads(open(_select(study, "before")["selection"]).read())
    table = pq.read_table(study["files"]["sequences"]).to_pydict()
    table["items"] = [items[:-1] + [(items[-1] + 1) % 12] for items in table["items"]]
    pq.write_table(pa.table(table), tmp_path / "sequences.parquet")
    other = {**study, "files": {**study["files"], "sequences": str(tmp_path / "sequences.parquet")}}
    assert json.loads(open(_select(other, "after")["selection"]).read()) == chosen


def test_the_table_note_lists_each_seeds_lambda(tmp_path):
    from llmrec.studies.arithmetic_report import chosen_coefficients

    runs = [
        {"dataset": "ml-100k", "seed": 1, "model": "task_vector", "coefficient": 0.5},
        {"dataset": "ml-100k", "seed": 0, "model": "task_vector", "coefficient": 0.25},
        {"dataset": "ml-100k", "seed": 0, "model": "p5"},
    ]
    paths = []
    for i, run in enumerate(runs):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(run))
    note = chosen_coefficients([str(p) for p in paths])
    assert "ml-100k: 0.25 (seed 0), 0.5 (seed 1)" in note
    assert chosen_coefficients([str(paths[2])]) == ""

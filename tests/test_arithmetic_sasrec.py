"""The arithmetic study's SASRec rows: SASRec + ordered pre-training is SASRec trained exactly
as the plain row after a pre-training on runs of consecutive item numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from llmrec.p5.indexing import write_index
from llmrec.studies import arithmetic

N_ITEMS = 15
SASREC = dict(
    max_len=6, hidden=16, num_layers=1, num_heads=1, dropout=0.1, epochs=3, batch_size=8,
    lr=0.01, eval_every=1, patience=5,
)  # fmt: skip


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    sequences = [
        (rng.integers(N_ITEMS) + np.arange(rng.integers(5, 9))) % N_ITEMS for _ in range(24)
    ]
    table = pa.table(
        {
            "user_id": np.arange(24),
            "items": pa.array([s.tolist() for s in sequences], pa.list_(pa.int64())),
        }
    )
    pq.write_table(table, tmp_path / "sequences.parquet")
    pq.write_table(pa.table({"item_id": np.arange(N_ITEMS)}), tmp_path / "items.parquet")
    numbers = 1001 + rng.permutation(N_ITEMS)
    write_index(tmp_path / "index.parquet", [str(n) for n in numbers], "random")
    return {
        "sequences": str(tmp_path / "sequences.parquet"),
        "item_table": str(tmp_path / "items.parquet"),
        "index": str(tmp_path / "index.parquet"),
    }


def outputs(folder):
    folder.mkdir()
    names = ("per_user.parquet", "summary.json", "weights.pt", "pretrained.pt")
    return {name.split(".")[0]: str(folder / name) for name in names}


def run(rule, inputs, out, **extra):
    rule(inputs, out, dataset="toy", seed=0, sasrec=SASREC, ks=[1, 5], progress=False, **extra)
    return (
        pd.read_parquet(out["per_user"]),
        json.loads(open(out["summary"]).read()),
        torch.load(out["weights"], weights_only=True),
    )


def test_without_pretraining_it_is_exactly_sasrec(inputs, tmp_path, monkeypatch):
    plain = run(arithmetic.train_sasrec, inputs, outputs(tmp_path / "plain"))
    monkeypatch.setattr(arithmetic, "pretrain_ordered", lambda *args, **kwargs: [])
    ordered = run(
        arithmetic.train_sasrec_ordered,
        inputs,
        outputs(tmp_path / "ordered"),
        ordered={"sequences": 8, "epochs": 2},
    )
    pd.testing.assert_frame_equal(plain[0], ordered[0])
    assert plain[2].keys() == ordered[2].keys()
    assert all(torch.equal(plain[2][k], ordered[2][k]) for k in plain[2])
    assert (plain[1]["model"], ordered[1]["model"]) == ("sasrec", "sasrec_ordered")
    assert plain[1]["variant"] is None and ordered[1]["variant"] is None  # under every setting


def test_pretraining_follows_the_indexs_numbers(inputs, tmp_path, monkeypatch):
    seen = {}
    real = arithmetic.pretrain_ordered

    def spy(model, order, **kwargs):
        seen["order"] = order
        return real(model, order, **kwargs)

    monkeypatch.setattr(arithmetic, "pretrain_ordered", spy)
    out = outputs(tmp_path / "ordered")
    _, summary, weights = run(
        arithmetic.train_sasrec_ordered, inputs, out, ordered={"sequences": 8, "epochs": 2}
    )
    numbers = [int(n) for n in arithmetic.read_index(inputs["index"])]
    assert [numbers[i] for i in seen["order"]] == list(range(1001, 1001 + N_ITEMS))
    assert [row["epoch"] for row in summary["pretraining"]] == [1, 2]
    pretrained = torch.load(out["pretrained"], weights_only=True)
    assert not torch.equal(pretrained["item_embedding.weight"], weights["item_embedding.weight"])

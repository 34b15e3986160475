"""The arithmetic study's table, embedding measures and co-occurrence counts on hand cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.studies.arithmetic_report import (consecutive_pairs, results_table,
                                              similarity_by_distance)


def test_consecutive_pairs_counted_on_training_parts_only():
    # Items 0..3 numbered 1001..1004. Users' last two items are not training data.
    index = ["1001", "1002", "1003", "1004"]
    sequences = [np.array([0, 1, 9, 9]),      # trains on 0, 1: pair (1001, 1002) adjacent
                 np.array([2, 0, 1, 9, 9]),   # trains on 2, 0, 1
                 np.array([3, 9, 2, 1])]      # trains on 3, 9: the 2 and 1 at the end are held out
    stats = consecutive_pairs(sequences, index)
    assert stats["pairs"] == 3  # (1001,1002), (1002,1003), (1003,1004)
    # co-occurring: (0,1) by users 0 and 1; (1,2) by user 1; (2,3) by nobody
    assert stats["cooccur"] == pytest.approx(2 / 3)
    assert stats["users"] == pytest.approx((2 + 1 + 0) / 3)
    # adjacent in a training part: (0,1) yes; (1,2) no (2 then 0 then 1); (2,3) no
    assert stats["adjacent"] == pytest.approx(1 / 3)


def test_similarity_by_distance_falls_for_continuous_embeddings():
    angles = torch.linspace(0, np.pi / 2, 100)
    smooth = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    curve = similarity_by_distance(smooth, list(range(100)), max_distance=10)
    assert np.all(np.diff(curve) < 0) and curve[0] == pytest.approx(np.cos(np.pi / 2 / 99))
    scrambled = smooth[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    assert similarity_by_distance(scrambled, list(range(100)), 10)[0] < curve[0] - 0.1


def _run(tmp_path, method, seed, setting, hits):
    folder = tmp_path / "results" / "arithmetic" / "toy" / method / f"seed{seed}" / setting
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"user_id": range(len(hits)), "hit@1": hits,
                          "ndcg@1": np.asarray(hits, dtype=float)})
    frame.to_parquet(folder / "per_user.parquet")
    summary = {"method": method, "seed": seed}
    if method != "sasrec":
        summary["setting"] = setting
    (folder / "summary.json").write_text(json.dumps(summary))
    return str(folder / "summary.json"), str(folder / "per_user.parquet")


def test_table_changes_and_tests_against_p5_in_the_same_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [_run(tmp_path, "p5", s, "seen", [1, 0, 0, 0, 1, 0, 0, 0]) for s in (0, 1)]
    runs += [_run(tmp_path, "precondition", s, "seen", [1, 1, 0, 0, 1, 1, 0, 0])
             for s in (0, 1)]
    runs += [_run(tmp_path, "sasrec", s, "", [1, 1, 1, 1, 0, 0, 0, 0]) for s in (0, 1)]
    relative = [tuple(str(p).replace(str(tmp_path) + "/", "") for p in r) for r in runs]
    output = {"table": str(tmp_path / "t.csv"), "markdown": str(tmp_path / "t.md")}
    results_table({"summaries": [r[0] for r in relative], "per_user": [r[1] for r in relative]},
                  output, ks=[1], settings=["seen"])
    table = pd.read_csv(output["table"]).set_index("method")
    assert list(table.index) == ["P5", "pre-conditioning", "SASRec"]
    assert table.loc["P5", "hit@1"] == pytest.approx(0.25)
    assert table.loc["pre-conditioning", "hit@1"] == pytest.approx(0.5)
    assert table.loc["pre-conditioning", "hit@1_change_%"] == pytest.approx(100.0)
    assert table.loc["SASRec", "hit@1_change_%"] == pytest.approx(100.0)
    assert np.isnan(table.loc["P5", "hit@1_p"])
    assert 0 < table.loc["pre-conditioning", "hit@1_p"] < 1
    assert "(+100.0%" in (tmp_path / "t.md").read_text()

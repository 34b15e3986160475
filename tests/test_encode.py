"""Filtering, splits, graph, sequences and text on hand-made canonical tables."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmrec.data import encode
from llmrec.data.canonical import EmptyDatasetError

from .conftest import write_interactions


def _out(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    return {t: d / f"{t}.parquet" for t in ("interactions", "items", "users")}


def _rows(path):
    t = pq.read_table(path).to_pydict()
    return list(zip(t["user_id"], t["item_id"]))


# u0 rates items 2 and 0; u1 and u2 rate items 0 and 1. With k = 2, item 2 falls in the first
# round, which leaves u0 with one event: only a second round removes u0.
CHAIN = [(0, 2, 1), (0, 0, 2), (1, 0, 3), (1, 1, 4), (2, 0, 5), (2, 1, 6)]


def test_k_core_repeats_until_every_user_and_item_has_k(tmp_path, canonical):
    paths = canonical(CHAIN, 3, 3)
    out = _out(tmp_path, "f")
    stats = encode.filter_interactions(encode.connect(), paths, out, dataset="t", k_core=2)
    assert stats["users"] == 2 and stats["items"] == 2 and stats["interactions"] == 4
    assert stats["k_core_rounds"] >= 2
    # Ids are contiguous again: old users 1, 2 -> 0, 1; original ids follow.
    assert _rows(out["interactions"]) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert pq.read_table(out["users"]).to_pydict() == {
        "user_id": [0, 1],
        "original_id": ["u1", "u2"],
    }
    assert pq.read_table(out["items"]).column("original_id").to_pylist() == ["i0", "i1"]


def test_k_core_that_empties_the_dataset_stops_with_the_key_to_change(tmp_path, canonical):
    paths = canonical(CHAIN, 3, 3)
    with pytest.raises(EmptyDatasetError, match=r"datasets\.tiny\.filter"):
        encode.filter_interactions(
            encode.connect(), paths, _out(tmp_path, "f"), dataset="tiny", k_core=3
        )


def test_min_rating_behaviours_and_dedupe_per_behaviour(tmp_path):
    rows = [
        (0, 0, 1, 5.0, "view"),
        (0, 0, 2, 5.0, "buy"),
        (0, 1, 3, 2.0, "view"),
        (1, 1, 4, 4.0, "view"),
    ]
    paths = {"interactions": write_interactions(tmp_path / "i.parquet", rows)}
    for key, n in (("items", 2), ("users", 2)):
        col = "item_id" if key == "items" else "user_id"
        pq.write_table(
            pa.table(
                {col: pa.array(range(n), pa.int32()), "original_id": [str(i) for i in range(n)]}
            ),
            tmp_path / f"{key}.parquet",
        )
        paths[key] = tmp_path / f"{key}.parquet"
    con = encode.connect()
    s = encode.filter_interactions(con, paths, _out(tmp_path, "a"), dataset="t", min_rating=4)
    assert s["interactions"] == 3
    s = encode.filter_interactions(con, paths, _out(tmp_path, "b"), dataset="t", behaviours=["buy"])
    assert (s["users"], s["items"], s["interactions"]) == (1, 1, 1)
    # A view and a buy of the same item are two behaviours: dedupe keeps both.
    for policy in ("first", "last", "keep"):
        s = encode.filter_interactions(
            con, paths, _out(tmp_path, policy), dataset="t", dedupe=policy
        )
        assert s["interactions"] == 4


def test_leave_one_out_by_time(tmp_path):
    rows = [
        (0, 5, 40),
        (0, 3, 10),
        (0, 4, 30),
        (0, 9, 20),  # test 5, valid 4
        (1, 1, 7),
        (1, 2, 7),
        (1, 0, 1),  # tie at t=7: larger id is later
        (2, 0, 1),
        (2, 1, 2),
    ]  # too short: all train
    src = write_interactions(tmp_path / "i.parquet", rows)
    encode.split_leave_one_out(src, tmp_path / "loo.parquet")
    t = pq.read_table(tmp_path / "loo.parquet").to_pydict()
    split = {(u, i): s for u, i, s in zip(t["user_id"], t["item_id"], t["split"])}
    assert split[(0, 5)] == "test" and split[(0, 4)] == "valid"
    assert split[(0, 3)] == split[(0, 9)] == "train"
    assert split[(1, 2)] == "test" and split[(1, 1)] == "valid" and split[(1, 0)] == "train"
    assert split[(2, 0)] == split[(2, 1)] == "train"


# (n, train, valid, test) following RecBole's split_by_ratio with ratios 0.8/0.1/0.1, by hand:
# floor(0.1 n) each for valid and test; a split whose share is below one event gets one from
# training, test first, while training keeps more than one.
RANDOM_COUNTS = [
    (1, 1, 0, 0),
    (2, 1, 0, 1),
    (3, 1, 1, 1),
    (5, 3, 1, 1),
    (10, 8, 1, 1),
    (15, 13, 1, 1),
    (20, 16, 2, 2),
]


def _random_split(tmp_path, seed, name="r.parquet"):
    rows = [(u, i, i) for u, (n, *_) in enumerate(RANDOM_COUNTS) for i in range(n)]
    src = write_interactions(tmp_path / "i.parquet", rows)
    encode.split_random(src, tmp_path / name, seed=seed)
    t = pq.read_table(tmp_path / name).to_pydict()
    return list(zip(t["user_id"], t["item_id"], t["split"]))


def test_random_split_counts_follow_recbole(tmp_path):
    got = Counter((u, s) for u, _, s in _random_split(tmp_path, seed=3))
    for user, (_, n_train, n_valid, n_test) in enumerate(RANDOM_COUNTS):
        assert (got[(user, "train")], got[(user, "valid")], got[(user, "test")]) == (
            n_train,
            n_valid,
            n_test,
        ), f"user with {RANDOM_COUNTS[user][0]} events"


def test_random_split_is_seeded(tmp_path):
    a = _random_split(tmp_path, seed=3, name="a.parquet")
    assert a == _random_split(tmp_path, seed=3, name="b.parquet")
    assert a != _random_split(tmp_path, seed=4, name="c.parquet")


def test_graph_is_the_training_bipartite_graph_with_symmetric_norm(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items = 7, 9
    dense = rng.random((n_users, n_items)) < 0.4
    dense[6] = False  # a user without training edges
    rows = [(u, i, 1, None, "rating") for u, i in zip(*np.nonzero(dense))]
    rows += [(0, 8, 2, None, "rating")]  # a validation event: not an edge
    t = write_interactions(tmp_path / "i.parquet", rows)
    split = pq.read_table(t).append_column(
        "split", pa.array(["train"] * (len(rows) - 1) + ["valid"])
    )
    pq.write_table(split, tmp_path / "s.parquet")
    for key, n in (("items", n_items), ("users", n_users)):
        pq.write_table(pa.table({"x": range(n)}), tmp_path / f"{key}.parquet")
    info = encode.build_graph(
        encode.connect(),
        tmp_path / "s.parquet",
        tmp_path / "items.parquet",
        tmp_path / "users.parquet",
        tmp_path / "g.npz",
    )
    g = np.load(tmp_path / "g.npz")
    assert info["edges"] == dense.sum() and info["users_without_edges"] == 1
    assert g["n_users"] == n_users and g["n_items"] == n_items
    rebuilt = np.zeros_like(dense)
    for u in range(n_users):
        rebuilt[u, g["user_items"][g["user_indptr"][u] : g["user_indptr"][u + 1]]] = True
    if not dense[0, 8]:
        assert not rebuilt[0, 8]
    np.testing.assert_array_equal(rebuilt, dense)
    transposed = np.zeros_like(dense.T)
    for i in range(n_items):
        transposed[i, g["item_users"][g["item_indptr"][i] : g["item_indptr"][i + 1]]] = True
    np.testing.assert_array_equal(transposed, dense.T)
    du, di = dense.sum(1), dense.sum(0)
    u0_items = g["user_items"][g["user_indptr"][0] : g["user_indptr"][1]]
    np.testing.assert_allclose(
        g["user_norm"][: len(u0_items)], 1 / np.sqrt(du[0] * di[u0_items]), rtol=1e-6
    )
    # Same values in item order: the normalised adjacency is symmetric.
    assert np.isclose(np.sort(g["user_norm"]), np.sort(g["item_norm"])).all()


def test_sequences_are_time_ordered(tmp_path):
    # Deliberately not in (user, time) order: the encoder must sort what the filter did not.
    rows = [(0, 2, 30), (0, 1, 10), (0, 7, 20), (3, 1, 2), (1, 4, 5), (3, 0, 1)]
    src = write_interactions(tmp_path / "i.parquet", rows, behaviour="view")
    encode.build_sequences(src, tmp_path / "seq.parquet")
    t = pq.read_table(tmp_path / "seq.parquet")
    assert t.to_pydict()["user_id"] == [0, 1, 3]
    assert t.to_pydict()["items"] == [[1, 7, 2], [4], [0, 1]]
    assert t.to_pydict()["timestamps"] == [[10, 20, 30], [5], [1, 2]]
    assert pa.types.is_list(t.schema.field("items").type)


def test_item_text_keeps_the_fields_the_source_has(tmp_path):
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array([0, 1], pa.int32()),
                "original_id": ["a", "b"],
                "title": ["Heat", "Emma"],
                "category": ["Action", None],
                "description": [None, "  A novel.  "],
                "year": pa.array([1995, None], pa.int32()),
                "genres": [["Action", "Crime"], []],
            }
        ),
        tmp_path / "items.parquet",
    )
    encode.build_item_text(encode.connect(), tmp_path / "items.parquet", tmp_path / "t.parquet")
    text = pq.read_table(tmp_path / "t.parquet").column("text").to_pylist()
    assert text == [
        "Title: Heat; Year: 1995; Genres: Action, Crime",
        "Title: Emma; Description: A novel.",
    ]


def test_statistics(tmp_path):
    src = write_interactions(tmp_path / "i.parquet", [(0, 0, 1), (0, 1, 2), (1, 1, 3)])
    s = encode.dataset_statistics(
        encode.connect(), src, dataset="d", kind="ratings", synthetic=False
    )
    assert (s["users"], s["items"], s["interactions"]) == (2, 2, 3)
    assert s["density"] == pytest.approx(0.75)

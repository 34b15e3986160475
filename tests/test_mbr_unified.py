"""The unified multi-behaviour model on the planted toy shop: every variant trains and writes
train_mbr's outputs and its vectors, each ablation really drops its part, the shop is learned,
runs repeat, and nothing at or after the test target reaches the test scores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from llmrec.models.lightgcn import sparse_adjacency
from llmrec.models.unified import UnifiedMBR
from llmrec.studies import mbr, mbr_unified

from .test_mbr_study import SEGMENT_SETTINGS, planted_rows
from .test_multi_behaviour_data import SHOP, build

N_USERS, N_ITEMS, TEXT_DIM, DIM = 40, 30, 12, 8
SETTINGS = {
    "embedding_dim": DIM,
    "num_layers": 1,
    "max_len": 16,
    "num_heads": 1,
    "dropout": 0.1,
    "holdout": 0.5,
    "align_weight": 0.1,
    "temperature": 0.2,
    "epochs": 20,
    "batch_size": 16,
    "lr": 0.01,
    "weight_decay": 0.0,
    "eval_every": 5,
    "patience": 5,
    "metric": "ndcg@10",
}
OUTPUTS = {
    "per_user": "per_user.parquet",
    "summary": "summary.json",
    "weights": "weights.pt",
    "vectors": "vectors.npz",
}


def shop(tmp, rows, name="shop"):
    """The shop's artifacts from ``rows`` and random LLM item embeddings: train_unified's input."""
    (tmp / name).mkdir()
    paths = build(tmp / name, rows, SHOP, dataset="shop", n_items=N_ITEMS)
    embeddings = tmp / name / "item_embeddings.npy"
    np.save(embeddings, np.random.default_rng(0).normal(size=(N_ITEMS, TEXT_DIM)).astype("f4"))
    return {
        "sequences": str(paths["sequences"]),
        "graphs_valid": str(paths["valid"]),
        "graphs_test": str(paths["test"]),
        "item_embeddings": str(embeddings),
    }


def train(tmp, inputs, model, folder, seed=0):
    out = {n: str(tmp / folder / f) for n, f in OUTPUTS.items()}
    if model not in mbr_unified.VARIANTS or not mbr_unified.VARIANTS[model].llm:
        inputs = {k: v for k, v in inputs.items() if k != "item_embeddings"}
    train_fn = mbr_unified.train_unified if model in mbr_unified.VARIANTS else mbr.train_mbr
    train_fn(
        inputs,
        out,
        dataset="shop",
        model=model,
        seed=seed,
        settings=SETTINGS if model in mbr_unified.VARIANTS else {},
        segments=SEGMENT_SETTINGS,
        ks=[1, 10],
        device="cpu",
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unified")
    inputs = shop(tmp, planted_rows())
    done = {m: train(tmp, inputs, m, m) for m in (*mbr_unified.MODELS, "pop")}
    return tmp, inputs, done


def per_user(out):
    return pd.read_parquet(out["per_user"])


def summary(out):
    return json.loads(open(out["summary"]).read())


def test_every_variant_writes_train_mbrs_outputs_and_its_vectors(runs):
    _, _, done = runs
    columns = list(per_user(done["pop"]).columns)
    for model in mbr_unified.MODELS:
        run = summary(done[model])
        assert (run["study"], run["model"], run["seed"]) == ("mbr", model, 0)
        table = per_user(done[model])
        assert list(table.columns) == columns and len(table) == N_USERS
        assert run["test"]["overall"]["hit@10"] == pytest.approx(table["overall/hit@10"].mean())
        assert [row["epoch"] for row in run["history"]] == [5, 10, 15, 20]
        with np.load(done[model]["vectors"]) as vectors:
            shapes = {k: (v.shape, v.dtype) for k, v in vectors.items()}
            assert shapes == {
                "items": ((N_ITEMS, DIM), np.float32),
                "items_test": ((N_ITEMS, DIM), np.float32),
                "users_valid": ((N_USERS, DIM), np.float32),
                "users_test": ((N_USERS, DIM), np.float32),
            }
            assert all(np.isfinite(v).all() for v in vectors.values())
            assert (np.abs(vectors["users_test"]).sum(1) > 0).all()  # every user has a history


def test_the_mbr_table_reads_the_unified_runs(runs):
    _, _, done = runs
    order = ["pop", *mbr_unified.MODELS]
    runs_read = mbr.segment_runs(
        [done[m]["summary"] for m in order], [done[m]["per_user"] for m in order]
    )
    assert {r.model for r in runs_read} == set(order)


def weight_names(out):
    return set(torch.load(out["weights"], weights_only=True))


def test_the_ablations_drop_their_part(runs):
    _, _, done = runs
    full = weight_names(done["unified"])
    assert any(k.startswith("gnn.") for k in full) and any(k.startswith("seq.") for k in full)
    assert any(k.startswith("adapter.") for k in full) and any(
        k.startswith("fusion.") for k in full
    )
    assert "item_text" not in full  # the frozen LLM view is an input, not a weight
    assert not any(k.startswith(("gnn.", "fusion.")) for k in weight_names(done["unified_no_gnn"]))
    assert not any(k.startswith(("seq.", "fusion.")) for k in weight_names(done["unified_no_seq"]))
    assert not any(k.startswith("adapter.") for k in weight_names(done["unified_no_llm"]))
    # No auxiliary behaviours: one graph in the cascade and no behaviour embedding.
    no_aux = weight_names(done["unified_no_aux"])
    assert not any("behaviour_embedding" in k for k in no_aux)
    assert any("behaviour_embedding" in k for k in full)
    # The alignment term is there with the LLM view and zero without it.
    assert all(row["align"] > 0 for row in summary(done["unified"])["history"])
    assert all(row["align"] == 0 for row in summary(done["unified_no_llm"])["history"])


def test_a_variant_needing_the_llm_view_without_it_is_an_error(runs, tmp_path):
    _, inputs, _ = runs
    without = {k: v for k, v in inputs.items() if k != "item_embeddings"}
    out = {n: str(tmp_path / f) for n, f in OUTPUTS.items()}
    kwargs = dict(
        dataset="shop", model="unified", seed=0, settings=SETTINGS, segments=SEGMENT_SETTINGS
    )
    with pytest.raises(ValueError, match="needs the LLM item embeddings"):
        mbr_unified.train_unified(without, out, ks=[10], **kwargs)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((N_ITEMS + 1, TEXT_DIM), np.float32))
    with pytest.raises(ValueError, match="has 30 items"):
        mbr_unified.train_unified(without | {"item_embeddings": str(wrong)}, out, ks=[10], **kwargs)
    assert not (tmp_path / "summary.json").exists()


def test_the_planted_purchases_are_learned(runs):
    _, _, done = runs

    def hit1(model):
        return per_user(done[model])["overall/hit@1"].mean()

    # The next purchase is the item just carted: the Transformer reads that, popularity cannot.
    assert hit1("pop") < 0.1
    assert hit1("unified") > hit1("pop") + 0.2
    assert hit1("unified_no_gnn") > hit1("pop") + 0.2


def test_same_seed_same_run(runs):
    tmp, inputs, done = runs
    again = train(tmp, inputs, "unified", "unified_again")

    def comparable(out):
        run = summary(out)
        history = [{k: v for k, v in r.items() if "seconds" not in k} for r in run["history"]]
        return run["test"], history

    assert comparable(again) == comparable(done["unified"])
    with np.load(again["vectors"]) as a, np.load(done["unified"]["vectors"]) as b:
        assert all(np.array_equal(a[k], b[k]) for k in a)


def other_views(rows, seed=1):
    """The same shop with every auxiliary view of an item that is not carted moved to another
    item: the target events, their times and every user's funnel are unchanged."""
    rng = np.random.default_rng(seed)
    carted = {(u, i) for u, i, _, _, b in rows if b == "cart"}
    return [
        (u, int(rng.integers(N_ITEMS)), t, r, b)
        if b == "view" and (u, i) not in carted
        else (u, i, t, r, b)
        for u, i, t, r, b in rows
    ]


def test_without_auxiliary_behaviours_a_change_to_them_is_not_seen(runs):
    tmp, _, done = runs
    changed = shop(tmp, other_views(planted_rows()), name="other_views")
    no_aux = train(tmp, changed, "unified_no_aux", "no_aux_other_views")
    pd.testing.assert_frame_equal(per_user(no_aux), per_user(done["unified_no_aux"]))
    assert (
        summary(no_aux)["history"][-1]["loss"]
        == summary(done["unified_no_aux"])["history"][-1]["loss"]
    )
    # The full model reads them (so the comparison above could fail).
    full = train(tmp, changed, "unified", "unified_other_views")
    assert summary(full)["history"] != summary(done["unified"])["history"]


def test_events_at_or_after_the_test_target_never_reach_the_test(runs):
    tmp, _, done = runs
    rows = planted_rows()
    last = {}
    for u, i, t, _, b in rows:
        if b == "buy":
            last[u] = (i, t)  # the user's last purchase: its test target
    later = [
        (u, int(j), t + dt, None, behaviour)
        for u, (i, t) in last.items()
        for j, dt, behaviour in ((i, 0, "view"), ((i + 1) % N_ITEMS, 5, "cart"), (i, 9, "buy"))
    ]
    changed = shop(tmp, rows + later, name="later_events")
    out = train(tmp, changed, "unified", "unified_later_events")
    pd.testing.assert_frame_equal(per_user(out), per_user(done["unified"]))
    with np.load(out["vectors"]) as a, np.load(done["unified"]["vectors"]) as b:
        assert np.array_equal(a["users_test"], b["users_test"])


@pytest.mark.parametrize(
    ("use_gnn", "use_seq", "text_dim"),
    [(True, True, 5), (True, False, None), (False, True, 5)],
)
def test_model_shapes(use_gnn, use_seq, text_dim):
    torch.manual_seed(0)
    n_users, n_items = 6, 9
    net = UnifiedMBR(
        n_users, n_items, 2, 4, 1, 5, text_dim=text_dim, use_gnn=use_gnn, use_seq=use_seq
    )
    if text_dim:
        net.set_item_text(torch.randn(n_items, text_dim))
    adj = sparse_adjacency(sp.eye(n_users + n_items, format="csr"))
    user_graph, collaborative, items = net.propagate([adj, adj] if use_gnn else None)
    assert items.shape == collaborative.shape == (n_items, 4)
    seqs = torch.tensor([[-1, 0, 3], [2, 1, 8]])
    states = net(
        torch.tensor([0, 5]), seqs, torch.tensor([[-1, 0, 1], [0, 1, 1]]), user_graph, items
    )
    assert states.shape == (2, 3, 4)
    assert net.scores(states[:, -1], items).shape == (2, n_items)
    alignment = net.alignment_loss(torch.tensor([0, 3, 3]), collaborative, 0.2)
    assert (alignment > 0) if text_dim else (alignment == 0)


def test_model_rejects_bad_text_and_no_encoder():
    with pytest.raises(ValueError, match="GNN, the Transformer or both"):
        UnifiedMBR(3, 4, 2, use_gnn=False, use_seq=False)
    with pytest.raises(ValueError, match="shape"):
        UnifiedMBR(3, 4, 2, 8, text_dim=5).set_item_text(torch.zeros(4, 6))


def test_the_held_out_graph_drops_its_share_of_target_edges_only():
    from llmrec.models.lightgcn import normalized_bipartite
    from llmrec.training.unified import _held_out_graph

    rng = np.random.default_rng(0)
    target = sp.random(50, 40, density=0.2, format="csr", random_state=1)
    target.data[:] = 1
    aux = sparse_adjacency(normalized_bipartite(sp.eye(50, 40, format="csr")))
    adjs, kept = _held_out_graph([aux, None], target, 0.5, rng, "cpu")
    assert adjs[0] is aux  # auxiliary graphs untouched
    assert 0.4 < len(kept) / target.nnz < 0.6
    coo = target.tocoo()
    every = np.sort(coo.row.astype(np.int64) * 40 + coo.col)
    assert np.isin(kept, every).all()  # kept edges are target edges
    users = adjs[1].to_dense()[:50, 50:] > 0
    rebuilt = set(np.flatnonzero(users.numpy().ravel()).tolist())
    assert rebuilt == set(kept.tolist())  # the epoch's graph is exactly the kept edges


def test_fuse_false_gives_the_transformer_state_alone():
    torch.manual_seed(0)
    net = UnifiedMBR(6, 9, 2, 4, 1, 5, use_gnn=True, use_seq=True).eval()
    adj = sparse_adjacency(sp.eye(15, format="csr"))
    user_graph, _, items = net.propagate([adj, adj])
    users, seqs = torch.tensor([0, 5]), torch.tensor([[-1, 0, 3], [2, 1, 8]])
    behs = torch.tensor([[-1, 0, 1], [0, 1, 1]])
    fuse = torch.tensor([[True, False, True], [False, False, True]])
    mixed = net(users, seqs, behs, user_graph, items, fuse)
    fused = net(users, seqs, behs, user_graph, items)
    alone = net._sequence_states(seqs, behs, items)
    assert torch.allclose(mixed[~fuse], alone[~fuse]) and torch.allclose(mixed[fuse], fused[fuse])
    assert not torch.allclose(fused[~fuse], alone[~fuse])

"""Graph baselines of the multi-behaviour study: MF-BPR (LightGCN without layers), the cascading
GNN and CascadingRank, on small random and planted graphs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from llmrec.data.artifacts import Graph
from llmrec.models.cascading_gcn import CascadingGCN
from llmrec.models.cascading_rank import CascadingRank
from llmrec.models.lightgcn import LightGCN, normalized_bipartite, sparse_adjacency
from llmrec.training.loop import train_bpr
from llmrec.training.seed import init_seed


def random_behaviours(n_users: int, n_items: int, densities, seed: int) -> list[sp.csr_matrix]:
    """One binary user x item matrix per density, in funnel order."""
    rng = np.random.default_rng(seed)
    return [
        sp.csr_matrix((rng.random((n_users, n_items)) < d).astype(np.float32)) for d in densities
    ]


def planted_funnel(n_users: int = 60, n_groups: int = 5, group_items: int = 12, seed: int = 0):
    """Users view items of their own group and buy some of what they viewed.

    Returns ``(view, buy_train, buy_valid)``: each user holds one viewed, unbought item out as
    its validation purchase, so the views point at it and nothing else does.
    """
    rng = np.random.default_rng(seed)
    n_items = n_groups * group_items
    view, buy, valid = (np.zeros((n_users, n_items), np.float32) for _ in range(3))
    for u in range(n_users):
        group = u % n_groups
        seen = group * group_items + rng.choice(group_items, size=6, replace=False)
        view[u, seen] = 1
        buy[u, seen[:3]] = 1
        valid[u, seen[3]] = 1
    return sp.csr_matrix(view), sp.csr_matrix(buy), sp.csr_matrix(valid)


# ------------------------------------------------------------------------------- helpers


def test_normalized_bipartite_equals_the_data_stage_adjacency():
    (r,) = random_behaviours(7, 9, [0.4], seed=1)
    r = sp.csr_matrix(r.multiply(np.arange(7)[:, None] != 2))  # user 2 without edges
    r.eliminate_zeros()
    deg_u, deg_i = np.diff(r.indptr), np.bincount(r.indices, minlength=r.shape[1])
    rows = np.repeat(np.arange(r.shape[0]), deg_u)
    norm = (1 / np.sqrt(deg_u[rows] * deg_i[r.indices])).astype(np.float32)
    stored = Graph(7, 9, r.indptr, r.indices, norm).normalized_adjacency()
    ours = normalized_bipartite(r)
    np.testing.assert_allclose(ours.toarray(), stored.toarray(), rtol=1e-6)
    assert ours[2].nnz == 0 and np.isfinite(ours.data).all()


# --------------------------------------------------------------------------------- MF-BPR


def test_mf_bpr_is_lightgcn_without_layers():
    (r,) = random_behaviours(6, 8, [0.4], seed=2)
    torch.manual_seed(0)
    model = LightGCN(6, 8, embedding_dim=4, num_layers=0)
    user_final, item_final = model.propagate(sparse_adjacency(normalized_bipartite(r)))
    users = torch.tensor([0, 3, 5])
    expected = model.user_embedding.weight[users] @ model.item_embedding.weight.T
    torch.testing.assert_close(model.scores(users, user_final, item_final), expected)


def test_mf_bpr_trains_with_train_bpr():
    view, buy, valid = planted_funnel()
    init_seed(0)
    model = LightGCN(*buy.shape, embedding_dim=8, num_layers=0)
    before = model.user_embedding.weight.detach().clone()
    _, history = train_bpr(
        model, normalized_bipartite(buy), buy, valid, epochs=2, eval_every=1, progress=False
    )
    assert len(history) == 2 and np.isfinite(history[-1]["loss"])
    assert not torch.equal(model.user_embedding.weight, before)


# ------------------------------------------------------------------------- cascading GNN


def adjacencies(matrices) -> list[torch.Tensor]:
    return [sparse_adjacency(normalized_bipartite(m)) for m in matrices]


@pytest.mark.parametrize("feature_transform", [False, True])
def test_cascading_gcn_shapes_and_finite_values(feature_transform):
    mats = random_behaviours(9, 11, [0.5, 0.3, 0.1], seed=3)
    torch.manual_seed(0)
    model = CascadingGCN(9, 11, 3, embedding_dim=6, feature_transform=feature_transform)
    user_final, item_final = model.propagate(adjacencies(mats))
    assert user_final.shape == (9, 6) and item_final.shape == (11, 6)
    scores = model.scores(torch.arange(4), user_final, item_final)
    assert scores.shape == (4, 11) and torch.isfinite(scores).all()
    bpr, reg = model.bpr_loss(
        torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]), user_final, item_final
    )
    assert bpr.ndim == reg.ndim == 0 and bpr > 0 and reg > 0


def test_cascading_gcn_refuses_the_wrong_number_of_graphs():
    mats = random_behaviours(5, 6, [0.5, 0.5], seed=4)
    model = CascadingGCN(5, 6, 3, embedding_dim=4)
    with pytest.raises(ValueError, match="3 behaviours, got 2"):
        model.propagate(adjacencies(mats))


@pytest.mark.parametrize("residual", [True, False])
def test_gradient_reaches_the_ego_embeddings_through_every_behaviour(residual):
    # User 0 meets item k only in behaviour k; item 3 is met by nobody.
    n_users, n_items = 2, 4
    mats = [
        sp.csr_matrix(([1.0, 1.0], ([0, 1], [k, k])), shape=(n_users, n_items)) for k in range(3)
    ]
    torch.manual_seed(0)
    model = CascadingGCN(n_users, n_items, 3, embedding_dim=5, num_layers=1, residual=residual)
    user_final, _ = model.propagate(adjacencies(mats))
    user_final[0].square().sum().backward()
    grad = model.item_embedding.weight.grad.abs().sum(1)
    assert (grad[:3] > 0).all(), "some behaviour's graph does not reach the target output"
    assert grad[3] == 0


def test_one_behaviour_without_residual_or_normalisation_is_lightgcn():
    (r,) = random_behaviours(7, 9, [0.4], seed=5)
    adj = sparse_adjacency(normalized_bipartite(r))
    torch.manual_seed(0)
    cascade = CascadingGCN(7, 9, 1, embedding_dim=5, num_layers=3, residual=False, normalize=False)
    light = LightGCN(7, 9, embedding_dim=5, num_layers=3)
    light.load_state_dict(cascade.state_dict())
    for ours, reference in zip(cascade.propagate([adj]), light.propagate(adj)):
        torch.testing.assert_close(ours, reference)


def test_a_later_behaviour_changes_the_target_output():
    mats = random_behaviours(8, 10, [0.5, 0.3], seed=6)
    torch.manual_seed(0)
    model = CascadingGCN(8, 10, 2, embedding_dim=4)
    adjs = adjacencies(mats)
    empty = sparse_adjacency(normalized_bipartite(sp.csr_matrix(mats[0].shape, dtype=np.float32)))
    full = model.propagate(adjs)[0]
    assert not torch.allclose(full, model.propagate([empty, adjs[1]])[0])
    assert not torch.allclose(full, model.propagate([adjs[0], empty])[0])


def test_cascading_gcn_learns_the_planted_funnel_with_train_bpr():
    view, buy, valid = planted_funnel()
    init_seed(0)
    model = CascadingGCN(*buy.shape, 2, embedding_dim=16, num_layers=2)
    _, history = train_bpr(
        model,
        [normalized_bipartite(view), normalized_bipartite(buy)],
        buy,
        valid,
        exclude=buy,
        epochs=10,
        lr=0.01,
        eval_every=5,
        metric="hit@10",
        progress=False,
    )
    random_hit = 10 / (buy.shape[1] - 3)  # 10 of the 57 unbought items
    assert max(row["hit@10"] for row in history) > 3 * random_hit


def test_train_bpr_masks_exclude_not_train_in_validation():
    view, buy, valid = planted_funnel()
    init_seed(0)
    model = LightGCN(*buy.shape, embedding_dim=8, num_layers=1)
    adj = normalized_bipartite(buy)
    # Masking every item but the held-out one leaves it first in every ranking.
    everything_else = sp.csr_matrix(np.ones(buy.shape, np.float32) - valid.toarray())
    _, history = train_bpr(
        model, adj, buy, valid, exclude=everything_else, epochs=1, metric="hit@1", progress=False
    )
    assert history[-1]["hit@1"] == 1.0


# -------------------------------------------------------------------------- CascadingRank


def test_cascading_rank_shapes_and_finite_values():
    mats = random_behaviours(12, 15, [0.4, 0.2, 0.1], seed=7)
    model = CascadingRank(mats, alpha=0.3, beta=0.6)
    scores = model.scores(torch.arange(5))
    assert scores.shape == (5, 15) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all() and (scores >= 0).all()


def test_cascading_rank_puts_own_and_neighbour_items_above_unrelated_ones():
    # User 0 viewed item 0; user 1 viewed and bought items 0 and 1; item 2 belongs to user 2.
    view = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]], np.float32))
    buy = sp.csr_matrix(np.array([[0, 0, 0], [1, 1, 0], [0, 0, 1]], np.float32))
    scores = CascadingRank([view, buy], alpha=0.3, beta=0.6).scores(torch.tensor([0]))[0]
    assert scores[0] > scores[2], "the user's own viewed item is not above an unrelated one"
    assert scores[1] > scores[2], "a co-viewer's item is not above an unrelated one"


@pytest.mark.parametrize("tolerance", [0.0, 1e-4])
def test_cascading_rank_is_batch_invariant_and_deterministic(tolerance):
    mats = random_behaviours(20, 25, [0.4, 0.2, 0.1], seed=8)
    model = CascadingRank(mats, alpha=0.2, beta=0.5, iterations=30, tolerance=tolerance)
    users = torch.tensor([0, 1, 2, 7, 19])
    together = model.scores(users)
    one_by_one = torch.cat([model.scores(u.view(1)) for u in users])
    torch.testing.assert_close(together, one_by_one, rtol=1e-5, atol=1e-7)
    assert torch.equal(model.scores(users), together)
    chunked = CascadingRank(
        mats, alpha=0.2, beta=0.5, iterations=30, tolerance=tolerance, chunk_size=2
    ).scores(users)
    torch.testing.assert_close(chunked, together, rtol=1e-5, atol=1e-7)


def test_cascading_rank_with_one_step_and_no_smoothing_is_the_cascade_of_queries():
    # gamma = 0: every step is alpha q_b + beta r^(b-1), a closed form to check the equations.
    mats = random_behaviours(6, 7, [0.5, 0.4], seed=9)
    alpha, beta = 0.4, 0.6
    model = CascadingRank(mats, alpha=alpha, beta=beta, iterations=1)
    q = [np.asarray(m.toarray() / np.maximum(m.sum(1), 1)) for m in mats]
    expected = alpha * q[1] + beta * (alpha * q[0] + beta * q[0])
    torch.testing.assert_close(
        model.scores(torch.arange(6)), torch.tensor(expected, dtype=torch.float32)
    )


def test_cascading_rank_refuses_bad_weights_and_shapes():
    mats = random_behaviours(4, 5, [0.5, 0.5], seed=10)
    with pytest.raises(ValueError, match="alpha \\+ beta <= 1"):
        CascadingRank(mats, alpha=0.6, beta=0.6)
    with pytest.raises(ValueError, match="all of one user x item shape"):
        CascadingRank([mats[0], sp.csr_matrix((4, 6), dtype=np.float32)])

"""LightGCN against a dense reference, the shared negative sampler, and the BPR training loop."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from llmrec.data.artifacts import Graph
from llmrec.evaluation.ranking import evaluate, summarize
from llmrec.models.lightgcn import LightGCN, SymmetricSpmm, sparse_adjacency
from llmrec.training import loop
from llmrec.training.sampler import NegativeSampler, bpr_batches, sample_negatives
from llmrec.training.seed import init_seed


def random_interactions(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))
    m.sort_indices()
    return m


def normalized(r: sp.csr_matrix) -> sp.csr_matrix:
    """The data stage's LightGCN adjacency of ``r`` (as ``encode.build_graph`` stores it)."""
    deg_u, deg_i = np.diff(r.indptr), np.bincount(r.indices, minlength=r.shape[1])
    rows = np.repeat(np.arange(r.shape[0]), deg_u)
    norm = (1 / np.sqrt(deg_u[rows] * deg_i[r.indices])).astype(np.float32)
    return Graph(r.shape[0], r.shape[1], r.indptr, r.indices, norm).normalized_adjacency()


def dense_reference(
    ego: torch.Tensor, adj: torch.Tensor, n_users: int, layers: int, users, pos, neg
):
    """LightGCN written out with dense matrices: final embeddings, BPR and L2 term."""
    x, total = ego, ego
    for _ in range(layers):
        x = adj @ x
        total = total + x
    final = total / (layers + 1)
    u, i = final[:n_users], final[n_users:]
    diff = (u[users] * i[pos]).sum(-1) - (u[users] * i[neg]).sum(-1)
    bpr = -F.logsigmoid(diff).mean()
    reg = (
        0.5
        * (
            ego[users].pow(2).sum()
            + ego[n_users + pos].pow(2).sum()
            + ego[n_users + neg].pow(2).sum()
        )
        / len(users)
    )
    return u, i, bpr, reg


# ---------------------------------------------------------------------------------- model


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_propagation_loss_and_gradients_match_dense_reference(layers):
    n_users, n_items = 7, 9
    r = random_interactions(n_users, n_items, 0.4, seed=layers)
    adj = normalized(r)
    torch.manual_seed(0)
    model = LightGCN(n_users, n_items, embedding_dim=5, num_layers=layers)
    users, pos, neg = (torch.tensor(t) for t in ([0, 3, 3, 6], [1, 2, 8, 0], [4, 4, 5, 7]))

    user_final, item_final = model.propagate(sparse_adjacency(adj))
    bpr, reg = model.bpr_loss(users, pos, neg, user_final, item_final)
    (bpr + 0.3 * reg).backward()

    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    ego = ego.double().requires_grad_()
    u, i, bpr_ref, reg_ref = dense_reference(
        ego, torch.tensor(adj.toarray(), dtype=torch.float64), n_users, layers, users, pos, neg
    )
    (bpr_ref + 0.3 * reg_ref).backward()

    assert user_final.shape == (n_users, 5) and item_final.shape == (n_items, 5)
    torch.testing.assert_close(user_final.double(), u, atol=1e-6, rtol=0)
    torch.testing.assert_close(item_final.double(), i, atol=1e-6, rtol=0)
    torch.testing.assert_close(bpr.double(), bpr_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(reg.double(), reg_ref, atol=1e-6, rtol=0)
    grad = torch.cat([model.user_embedding.weight.grad, model.item_embedding.weight.grad])
    torch.testing.assert_close(grad.double(), ego.grad, atol=1e-6, rtol=0)
    scores = model.scores(users, user_final, item_final)
    torch.testing.assert_close(scores.double(), u[users] @ i.T, atol=1e-6, rtol=0)


def test_symmetric_backward_equals_transpose_product():
    adj = normalized(random_interactions(6, 8, 0.5, seed=1))
    grad_out = torch.randn(14, 3, dtype=torch.float64)
    x = torch.randn(14, 3, requires_grad=True)
    SymmetricSpmm.apply(sparse_adjacency(adj), x).backward(grad_out.float())
    dense = torch.tensor(adj.toarray(), dtype=torch.float64)
    # d(A x)/dx applied to G is A^T G, built here with an explicit transpose.
    torch.testing.assert_close(x.grad.double(), dense.T @ grad_out, atol=1e-6, rtol=0)
    # And torch's own sparse backward (which builds the transpose) agrees.
    x2 = x.detach().clone().requires_grad_()
    torch.sparse.mm(sparse_adjacency(adj), x2).backward(grad_out.float())
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-6, rtol=0)


def test_non_symmetric_adjacency_is_refused():
    with pytest.raises(ValueError, match="symmetric"):
        sparse_adjacency(sp.csr_matrix(np.triu(np.ones((4, 4), np.float32))))


# -------------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("density", [0.0, 0.3, 0.9])
def test_positive_lookup_matches_dense(density):
    m = random_interactions(20, 15, density, seed=2)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 20, 500), rng.integers(0, 15, 500)
    found = NegativeSampler(15, m)._is_positive(rows, cols)
    np.testing.assert_array_equal(found, m.toarray()[rows, cols] > 0)


def test_positive_lookup_accepts_unsorted_duplicated_rows():
    # Row 0 holds items 4, 1, 4 (unsorted, one duplicate); row 1 holds nothing.
    m = sp.csr_matrix((np.ones(3), np.array([4, 1, 4]), np.array([0, 3, 3])), shape=(2, 6))
    found = NegativeSampler(6, m)._is_positive(np.array([0, 0, 0, 1]), np.array([1, 4, 2, 4]))
    np.testing.assert_array_equal(found, [True, True, False, False])


@pytest.mark.parametrize("n_neg", [1, 4])
def test_negatives_avoid_positives_with_shape_and_range(n_neg):
    dense = random_interactions(30, 12, 0.7, seed=3).toarray()
    dense[5], dense[5, 11] = 1, 0  # one item left for user 5: many redraws
    positives = sp.csr_matrix(dense)
    users = np.random.default_rng(1).integers(0, 30, 400)
    users[:50] = 5
    neg = sample_negatives(users, 12, positives, n_neg, rng=np.random.default_rng(2))
    assert neg.shape == (400, n_neg) and np.issubdtype(neg.dtype, np.integer)
    assert neg.min() >= 0 and neg.max() < 12
    assert not (positives.toarray()[users[:, None], neg] > 0).any()
    assert (neg[:50] == 11).all()


def test_negatives_are_seeded():
    positives = random_interactions(10, 50, 0.2, seed=4)
    users = np.arange(10).repeat(20)

    def draw(seed):
        return sample_negatives(users, 50, positives, 3, rng=np.random.default_rng(seed))

    np.testing.assert_array_equal(draw(7), draw(7))
    assert (draw(7) != draw(8)).any()


def test_negatives_may_hit_positives_when_not_excluded():
    positives = sp.csr_matrix(np.ones((2, 5), np.float32))
    neg = sample_negatives(
        np.array([0, 1]), 5, positives, 10, rng=np.random.default_rng(0), exclude_positives=False
    )
    assert neg.shape == (2, 10)


def test_weighted_negatives_follow_the_weights():
    positives = sp.csr_matrix(([1.0], ([0], [1])), shape=(3, 6))
    weights = np.array([0, 1, 1, 8, 0, 2], dtype=float)
    neg = sample_negatives(
        np.zeros(20000, np.int64), 6, positives, rng=np.random.default_rng(0), item_weights=weights
    )
    counts = np.bincount(neg.ravel(), minlength=6)
    assert counts[[0, 1, 4]].sum() == 0  # zero weight, or a positive of user 0
    np.testing.assert_allclose(counts[[2, 3, 5]] / 20000, [1 / 11, 8 / 11, 2 / 11], atol=0.02)


def test_user_without_drawable_item_is_an_error():
    positives = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], np.float32))
    with pytest.raises(ValueError, match=r"users \[0\]"):
        sample_negatives(np.array([1, 0]), 3, positives, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"users \[1\]"):
        sample_negatives(
            np.array([1]),
            3,
            positives,
            rng=np.random.default_rng(0),
            item_weights=np.array([1.0, 0.0, 0.0]),
        )


def test_an_epoch_visits_every_training_pair_once():
    train = random_interactions(25, 40, 0.3, seed=5)
    batches = list(bpr_batches(train, 16, np.random.default_rng(0)))
    assert all(len(u) == 16 for u, _, _ in batches[:-1]) and 0 < len(batches[-1][0]) <= 16
    users, pos, neg = (torch.cat(part).numpy() for part in zip(*batches))
    assert all(t.dtype == torch.int64 for t in batches[0])
    seen = sp.csr_matrix((np.ones(len(users)), (users, pos)), shape=train.shape)
    assert len(users) == train.nnz and seen.max() == 1 and (seen != train).nnz == 0
    assert not (train.toarray()[users, neg] > 0).any()
    # Seeded: the same order and negatives again; another seed gives another order.
    again = torch.cat([u for u, _, _ in bpr_batches(train, 16, np.random.default_rng(0))])
    other = torch.cat([u for u, _, _ in bpr_batches(train, 16, np.random.default_rng(1))])
    assert torch.equal(again, torch.from_numpy(users)) and not torch.equal(other, again)


# ----------------------------------------------------------------------------------- loop


def planted(
    n_clusters: int = 4, users_per: int = 10, items_per: int = 12, per_user: int = 8, seed: int = 0
):
    """Users interact only with items of their own cluster: 5 train, 1 valid, 2 test each."""
    rng = np.random.default_rng(seed)
    n_users, n_items = n_clusters * users_per, n_clusters * items_per
    parts = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        c = u // users_per
        items = c * items_per + rng.choice(items_per, per_user, replace=False)
        for name, chosen in zip(parts, np.split(items, [5, 6])):
            parts[name] += [(u, i) for i in chosen]

    def csr(pairs):
        u, i = np.array(pairs).T
        return sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(n_users, n_items))

    return {name: csr(pairs) for name, pairs in parts.items()}


def fit(data, seed=0, **kwargs):
    init_seed(seed)
    train = data["train"]
    model = LightGCN(*train.shape, embedding_dim=16, num_layers=2)
    options = (
        dict(
            epochs=30,
            batch_size=64,
            lr=0.02,
            eval_every=2,
            patience=5,
            metric="recall@6",
            seed=seed,
            progress=False,
        )
        | kwargs
    )
    best, history = loop.train_bpr(model, normalized(train), train, data["valid"], **options)
    return model, best, history


def test_training_is_deterministic():
    data = planted()
    model_a, best_a, history_a = fit(data, epochs=6)
    model_b, best_b, history_b = fit(data, epochs=6)
    strip = [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in history_a]
    assert strip == [
        {k: v for k, v in row.items() if not k.endswith("seconds")} for row in history_b
    ]
    assert [row["epoch"] for row in history_a] == [2, 4, 6]
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)


def held_out_recall(model, data) -> float:
    with torch.no_grad():
        user_final, item_final = model.propagate(sparse_adjacency(normalized(data["train"])))
    per_user = evaluate(
        lambda u: model.scores(u, user_final, item_final),
        data["test"],
        data["train"] + data["valid"],
        ks=[6],
    )
    return summarize(per_user)["recall@6"]


def test_training_finds_planted_clusters():
    data = planted()
    init_seed(0)
    untrained = held_out_recall(LightGCN(40, 48, embedding_dim=16, num_layers=2), data)
    model, _, history = fit(data)
    # 42 candidates per user, 2 relevant: a random ranking has recall@6 = 6/42 = 0.14 (the
    # untrained model, from the same seed, is near it); the six unseen items of the user's
    # cluster hold both test items.
    assert untrained < 6 / 42 + 0.1
    assert held_out_recall(model, data) > 6 / 42 + 0.6
    assert history[0]["loss"] > history[-1]["loss"]


@pytest.mark.parametrize("progress", [False, True])
def test_training_logs_epochs_and_the_batches_within_an_epoch(monkeypatch, caplog, progress):
    """Every epoch and batch counts as long with a 0 s interval: the log gets batches done
    within each epoch, then epochs done with the last validation, bar or no bar."""
    from llmrec import progress as progress_module

    monkeypatch.setattr(progress_module, "INTERVAL_S", 0.0)
    caplog.set_level("INFO")
    data = planted()
    fit(data, epochs=2, eval_every=1, progress=progress)
    lines = [r.getMessage() for r in caplog.records if r.name == "llmrec.progress"]
    n_batches = -(-data["train"].nnz // 64)
    heads = [line.split(" in ")[0] for line in lines]
    assert heads[: n_batches + 1] == [
        *(
            f"epoch 1: {b}/{n_batches} batches ({100 * b / n_batches:.0f}%)"
            for b in range(1, n_batches + 1)
        ),
        "LightGCN: 1/2 epochs (50%)",
    ]
    assert heads[-1] == "LightGCN: 2/2 epochs (100%)" and "recall@6" in lines[-1]


def test_early_stopping_keeps_the_best_state(monkeypatch):
    scripted = iter([0.1, 0.2, 0.3, 0.3, 0.25, 0.29, 0.9, 0.9])
    states = []

    def fake_validate(model, adj, exclude, truth, metric):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(loop, "validate", fake_validate)
    model, best, history = fit(planted(), epochs=50, eval_every=1, patience=3)
    # Best at the third validation; the next three do not beat it strictly, so training stops.
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert all(torch.equal(best[k], states[2][k]) for k in best)
    assert all(torch.equal(model.state_dict()[k], states[2][k]) for k in best)


def test_bad_metric_is_refused():
    with pytest.raises(ValueError, match="recall@20"):
        fit(planted(), metric="auc")

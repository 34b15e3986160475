"""Multi-behaviour sequence baselines: behaviour-aware SASRec, its training, pop, aux-first."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from llmrec.evaluation.ranking import ranking_metrics, summarize, topk
from llmrec.models.aux_first import AuxFirst
from llmrec.models.bsasrec import BehaviourSASRec
from llmrec.models.popularity import Popularity
from llmrec.models.sasrec import PAD, SASRec
from llmrec.training.next_target import (
    evaluate_next_target,
    fit_next_target,
    history_scores,
    next_target_labels,
    rank_histories,
    target_history,
    target_only,
    training_examples,
)
from llmrec.training.seed import init_seed
from llmrec.training.sequential import fit_sasrec

VIEW, BUY = 0, 1


def planted(n_users: int = 150, n_items: int = 60, episodes: int = 6, seed: int = 0):
    """Users view 0-2 random items, then item v, then buy v + 1 (mod n_items), each user a
    different item per episode. The buy is a function of the last view that a model must
    learn (an untrained SASRec copies the last item; aux-first and pop are at chance).

    Returns items, behaviours (the test-time histories), n_train, valid_item, test_item.
    """
    rng = np.random.default_rng(seed)
    items, kinds, n_train, valid, test = [], [], [], [], []
    for _ in range(n_users):
        its: list[int] = []
        ks: list[int] = []
        for bought in rng.choice(n_items, episodes, replace=False):
            distractors = rng.choice(n_items, rng.integers(0, 3)).tolist()
            its += [*distractors, (bought - 1) % n_items, bought]
            ks += [VIEW] * len(distractors) + [VIEW, BUY]
        buys = np.flatnonzero(np.array(ks) == BUY)
        items.append(np.array(its[: buys[-1]]))
        kinds.append(np.array(ks[: buys[-1]], dtype=np.int8))
        n_train.append(buys[-2])
        valid.append(its[buys[-2]])
        test.append(its[buys[-1]])
    return items, kinds, np.array(n_train), np.array(valid), np.array(test)


def fit(model, data, **kwargs):
    items, kinds, n_train, valid, _ = data
    options = dict(target=BUY, epochs=2, batch_size=32, lr=0.01, progress=False) | kwargs
    return fit_next_target(model, items, kinds, n_train, valid, **options)


def bsasrec(n_behaviours: int, n_items: int = 60, **kwargs) -> BehaviourSASRec:
    init_seed(0)
    return BehaviourSASRec(n_items, n_behaviours, max_len=20, hidden=32, dropout=0.1, **kwargs)


# ---------------------------------------------------------------------------------- model


def test_zero_behaviours_is_exactly_sasrec():
    init_seed(0)
    plain = SASRec(12, max_len=8, hidden=16).eval()
    init_seed(0)
    typed = BehaviourSASRec(12, 0, max_len=8, hidden=16).eval()
    assert typed.state_dict().keys() == plain.state_dict().keys()
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(typed.state_dict()[name], value, rtol=0, atol=0)
    seqs = torch.tensor([[PAD, PAD, 3, 4, 5], [0, 1, 2, 11, 7]])
    behaviours = torch.tensor([[PAD, PAD, 0, 1, 2], [2, 2, 0, 0, 1]])
    with torch.no_grad():
        expected = plain(seqs)
        torch.testing.assert_close(typed(seqs), expected, rtol=0, atol=0)
        torch.testing.assert_close(typed(seqs, behaviours), expected, rtol=0, atol=0)


def test_behaviour_embedding_changes_outputs_causally():
    m = bsasrec(3, n_items=12).eval()
    init_seed(0)
    plain = SASRec(12, max_len=20, hidden=32, dropout=0.1)
    # SASRec's parameters are drawn first, as SASRec draws them.
    torch.testing.assert_close(m.item_embedding.weight, plain.item_embedding.weight)
    assert m.behaviour_embedding.weight[0].abs().sum() == 0  # padding row
    seqs = torch.tensor([[PAD, 1, 2, 3, 4, 5]])
    views = torch.tensor([[PAD, 0, 0, 0, 0, 0]])
    later_cart = views.clone()
    later_cart[0, 3] = 2
    with torch.no_grad():
        a, b = m(seqs, views), m(seqs, later_cart)
        padded_differently = m(seqs, torch.tensor([[2, 0, 0, 0, 0, 0]]))
    torch.testing.assert_close(a[:, :3], b[:, :3])  # earlier positions do not see it
    assert not torch.allclose(a[:, 3:], b[:, 3:], atol=1e-3)
    # A padded position's behaviour is never read: items decide what is padding.
    torch.testing.assert_close(a[:, 1:], padded_differently[:, 1:])


def test_bad_behaviours_are_refused():
    m = bsasrec(2, n_items=12)
    seqs = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="needs behaviours"):
        m(seqs)
    with pytest.raises(ValueError, match="0..1"):
        m(seqs, torch.tensor([[0, 1, 2]]))


# ---------------------------------------------------------------------------------- labels


def test_next_target_labels_on_a_hand_example():
    # view v1, view v2, buy b1, view v3, buy b2 (items 11, 12, 21, 13, 22)
    items = np.array([11, 12, 21, 13, 22])
    kinds = np.array([VIEW, VIEW, BUY, VIEW, BUY], dtype=np.int8)
    np.testing.assert_array_equal(next_target_labels(items, kinds, BUY), [21, 21, 22, 22, PAD])
    # Target-only sequences: plain next-item labels.
    np.testing.assert_array_equal(next_target_labels(items, np.ones(5), 1), [12, 21, 13, 22, PAD])
    # The training part stops at its last buy; a part with no buy after its start has nothing.
    seqs, behs, labels = training_examples(
        [items, items, items], [kinds, kinds, kinds], np.array([5, 4, 2]), BUY
    )
    assert len(seqs) == 2
    np.testing.assert_array_equal(seqs[0], [11, 12, 21, 13])
    np.testing.assert_array_equal(behs[0], [VIEW, VIEW, BUY, VIEW])
    np.testing.assert_array_equal(labels[0], [21, 21, 22, 22])
    np.testing.assert_array_equal(seqs[1], [11, 12])  # n_train=4 cuts b2 off: b1 is last
    np.testing.assert_array_equal(labels[1], [21, 21])


def test_target_history_masks_target_items_only():
    items = [np.array([3, 1, 3, 2, 0])]
    kinds = [np.array([BUY, VIEW, BUY, BUY, BUY])]
    masked = target_history(items, kinds, np.array([4]), BUY, 5)
    np.testing.assert_array_equal(masked.toarray(), [[0, 0, 1, 1, 0]])


# ---------------------------------------------------------------------------------- training


def test_training_reads_nothing_after_n_train():
    data = planted(n_users=40)
    items, kinds, n_train, valid, test = data
    state, history = fit(bsasrec(2), data)
    rng = np.random.default_rng(1)
    poisoned_items = [
        np.r_[i[:n], rng.integers(60, size=len(i) - n)] for i, n in zip(items, n_train)
    ]
    poisoned_kinds = [
        np.r_[k[:n], rng.integers(2, size=len(k) - n)] for k, n in zip(kinds, n_train)
    ]
    assert any((p != i).any() for p, i in zip(poisoned_items, items))
    again, again_history = fit(bsasrec(2), (poisoned_items, poisoned_kinds, n_train, valid, test))
    for name, value in state.items():
        torch.testing.assert_close(again[name], value, rtol=0, atol=0)
    drop = ("train_seconds", "eval_seconds")
    assert [{k: v for k, v in row.items() if k not in drop} for row in history] == [
        {k: v for k, v in row.items() if k not in drop} for row in again_history
    ]


def test_plain_sasrec_on_target_only_sequences_is_next_item_training():
    items, kinds, n_train, valid, test = planted(n_users=40)
    hand = target_only([np.array([11, 12, 21, 13, 22])], [np.array([0, 0, 1, 0, 1])], [4], BUY)
    assert [a.tolist() for a in hand[0]] == [[21, 22]] and hand[2].tolist() == [1]
    only_items, only_kinds, only_n_train = target_only(items, kinds, n_train, BUY)
    np.testing.assert_array_equal([i[n] for i, n in zip(only_items, only_n_train)], valid)
    options = dict(epochs=3, batch_size=16, lr=0.01, patience=3, progress=False)
    _, typed = fit_next_target(
        bsasrec(0), only_items, only_kinds, only_n_train, valid, target=BUY, **options
    )
    init_seed(0)
    plain = SASRec(60, max_len=20, hidden=32, dropout=0.1)
    # fit_sasrec holds out each sequence's last two items: the validation and test buys.
    sequences = [np.r_[i, t] for i, t in zip(only_items, test)]
    _, reference = fit_sasrec(plain, sequences, **options)
    # The same batches, dropout masks and steps; only validation differs (masked buys).
    assert [row["loss"] for row in typed] == [row["loss"] for row in reference]


def test_fit_learns_the_planted_rule_and_beats_popularity():
    items, kinds, n_train, valid, test = data = planted()
    model = bsasrec(2)
    lengths = np.array([len(i) for i in items])
    untrained = summarize(
        evaluate_next_target(model, items, kinds, lengths, test, BUY, [10], "cpu")
    )
    _, history = fit(model, data, epochs=12, patience=12)
    assert [row["epoch"] for row in history] == list(range(1, 13))
    trained = summarize(evaluate_next_target(model, items, kinds, lengths, test, BUY, [10], "cpu"))

    users = np.arange(len(items))
    truth = sp.csr_matrix((np.ones(len(users)), (users, test)), shape=(len(users), 60))
    pop = Popularity(target_history(items, kinds, n_train, BUY, 60))
    masked = target_history(items, kinds, lengths, BUY, 60)
    pop_hit = summarize(ranking_metrics(topk(pop.scores, users, masked, 10), truth, users, [10]))
    assert untrained["hit@10"] < 0.4
    assert pop_hit["hit@10"] < 0.4
    assert trained["hit@10"] > 0.8


def test_history_scores_are_batch_invariant_and_rank_histories_agrees():
    items, kinds, n_train, *_ = planted(n_users=20)
    model = bsasrec(2)
    scores = history_scores(model, items, kinds, n_train, "cpu")
    users = torch.arange(20)
    together = scores(users)
    one_by_one = torch.cat([scores(users[i : i + 1]) for i in range(20)])
    torch.testing.assert_close(together, one_by_one)
    exclude = target_history(items, kinds, n_train, BUY, 60)
    histories = [i[:n] for i, n in zip(items, n_train)], [k[:n] for k, n in zip(kinds, n_train)]
    top = rank_histories(model, *histories, exclude, 10, "cpu", batch_size=7)
    np.testing.assert_array_equal(top, topk(scores, np.arange(20), exclude, 10))
    with pytest.raises(ValueError, match="no events"):
        history_scores(model, items, kinds, np.zeros(20, int), "cpu")(users[:1])


# ---------------------------------------------------------------------------------- pop


def test_popularity_counts_users_and_ties_go_to_the_smaller_id():
    # Item 2: three users; items 0 and 3: two each (user 0 stored 3 twice: one user).
    rows, cols = [0, 0, 0, 1, 2, 1, 2, 0, 1], [3, 3, 2, 2, 2, 0, 0, 1, 3]
    graph = sp.coo_matrix((np.ones(9), (rows, cols)), shape=(3, 5)).tocsr()
    pop = Popularity(graph)
    np.testing.assert_array_equal(pop.counts.numpy(), [2, 1, 3, 2, 0])
    top = topk(pop.scores, np.arange(3), sp.csr_matrix((3, 5)), 5)
    np.testing.assert_array_equal(top, [[2, 0, 3, 1, 4]] * 3)


# ---------------------------------------------------------------------------------- aux-first

FUNNEL = {"view": 0, "fav": 1, "cart": 2, "buy": 3}
POPULARITY = np.array([0, 5, 3, 3, 1, 0, 2, 4, 9, 1])


def aux_user():
    """One user: view 5, cart 2, view 7, buy 7, fav 4, view 2, view 9 | cart 8 (after the cut)."""
    f = FUNNEL
    items = [np.array([5, 2, 7, 7, 4, 2, 9, 8])]
    kinds = [np.array([f["view"], f["cart"], f["view"], f["buy"], f["fav"], f["view"], f["view"],
                       f["cart"]])]  # fmt: skip
    return items, kinds, np.array([7])


def ranking(model, n_items=10):
    return topk(model.scores, np.array([0]), sp.csr_matrix((1, n_items)), n_items)[0].tolist()


def test_aux_first_orders_by_strength_then_recency_then_popularity():
    items, kinds, cut = aux_user()
    model = AuxFirst(items, kinds, cut, FUNNEL["buy"], POPULARITY)
    # cart 2, fav 4, then views by recency: 9 (latest), 5; 7 was bought, 8 is after the cut:
    # both go with the rest, by popularity (ties by id).
    assert ranking(model) == [2, 4, 9, 5, 8, 1, 7, 3, 6, 0]
    assert model.strength == [2, 1, 0]
    views_only = AuxFirst(items, kinds, cut, FUNNEL["buy"], POPULARITY, strength=[FUNNEL["view"]])
    # Item 2 was also viewed (position 5): with views only, it is among them by that view.
    assert ranking(views_only) == [9, 2, 5, 8, 1, 7, 3, 6, 4, 0]
    views_first = AuxFirst(items, kinds, cut, FUNNEL["buy"], POPULARITY, strength=[0, 1, 2])
    assert ranking(views_first) == [9, 2, 5, 4, 8, 1, 7, 3, 6, 0]


def test_aux_first_reads_only_up_to_the_cut_and_movielens_order_is_configurable():
    items, kinds, _ = aux_user()
    at_test = AuxFirst(items, kinds, np.array([8]), FUNNEL["buy"], POPULARITY)
    assert ranking(at_test)[:5] == [8, 2, 4, 9, 5]  # the cart of 8 counts once before the cut
    # MovieLens funnel [dislike, neutral, like], like the target: neutral before dislike.
    ml_items = [np.array([1, 2, 3, 4])]
    ml_kinds = [np.array([1, 0, 2, 1])]
    ml = AuxFirst(ml_items, ml_kinds, np.array([4]), 2, np.arange(5), strength=[1, 0])
    assert ranking(ml, 5) == [4, 1, 2, 3, 0]
    neutral_only = AuxFirst(ml_items, ml_kinds, np.array([4]), 2, np.arange(5), strength=[1])
    assert ranking(neutral_only, 5) == [4, 1, 3, 2, 0]
    with pytest.raises(ValueError, match="not the target"):
        AuxFirst(ml_items, ml_kinds, np.array([4]), 2, np.arange(5), strength=[2, 1])


def test_training_free_scores_are_batch_invariant():
    items, kinds, n_train, *_ = planted(n_users=30)
    counts = Popularity(target_history(items, kinds, n_train, BUY, 60)).counts
    for model in (Popularity(target_history(items, kinds, n_train, BUY, 60)),
                  AuxFirst(items, kinds, n_train, BUY, counts.numpy())):  # fmt: skip
        users = torch.tensor([4, 0, 29, 4, 11])
        together = model.scores(users)
        one_by_one = torch.cat([model.scores(users[i : i + 1]) for i in range(len(users))])
        torch.testing.assert_close(together, one_by_one, rtol=0, atol=0)
        assert together.shape == (5, 60)

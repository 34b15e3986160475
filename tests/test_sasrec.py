"""SASRec's masking, the leave-one-out batches and evaluation, and a small learning run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.evaluation.ranking import summarize
from llmrec.models.sasrec import PAD, SASRec
from llmrec.training import sequential
from llmrec.training.seed import init_seed
from llmrec.training.sequential import (
    evaluate_sasrec,
    fit_sasrec,
    left_pad,
    rank_next,
    training_batches,
)


def model(n_items: int = 12, max_len: int = 8, **kwargs) -> SASRec:
    init_seed(0)
    m = SASRec(n_items, max_len=max_len, hidden=16, **kwargs)
    return m.eval()


def successor_sequences(n_users: int, n_items: int, seed: int) -> list[np.ndarray]:
    """Each user walks ``i -> i + 1 (mod n_items)`` from a random start: the next item is a
    function of the last one, which a sequential model must learn from order alone."""
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(n_items) + np.arange(rng.integers(5, 12))) % n_items for _ in range(n_users)
    ]


# ---------------------------------------------------------------------------------- model


def test_shapes_and_padding_row():
    m = model(n_items=12, max_len=8)
    seqs = torch.tensor([[PAD, PAD, 3, 4, 5], [0, 1, 2, 11, 7]])
    hidden = m(seqs)
    assert hidden.shape == (2, 5, 16)
    assert m.scores(hidden[:, -1]).shape == (2, 12)
    assert torch.isfinite(hidden).all()
    assert m.item_embedding.weight[0].abs().sum() == 0  # padding row
    with pytest.raises(ValueError, match="max_len"):
        m(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("num_heads", [1, 2])
def test_later_items_do_not_change_earlier_outputs(num_heads):
    m = model(num_layers=2, num_heads=num_heads)
    seqs = torch.tensor([[PAD, 1, 2, 3, 4, 5, 6, 7]])
    changed = seqs.clone()
    changed[0, 5] = 11
    with torch.no_grad():
        a, b = m(seqs), m(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)


@pytest.mark.parametrize("num_heads", [1, 2])
def test_left_padding_does_not_change_real_positions(num_heads):
    m = model(num_heads=num_heads)
    short, long = [3, 4, 5], [0, 9, 1, 2, 3, 4, 5, 6]
    batch = left_pad([np.array(short), np.array(long)], 8)
    with torch.no_grad():
        padded = m(batch)
        alone = m(torch.tensor([short]))  # the same items with no padding at all
        long_alone = m(torch.tensor([long]))
    torch.testing.assert_close(padded[0, -3:], alone[0])
    torch.testing.assert_close(padded[1], long_alone[0])


# ---------------------------------------------------------------------------------- batches


def test_training_batches_hold_out_the_last_two_items():
    # Item ids unique across users, so every item identifies its user and position.
    lengths = [2, 3, 4, 7, 15]
    starts = np.cumsum([0, *lengths[:-1]])
    sequences = [np.arange(s, s + n) for s, n in zip(starts, lengths)]
    held_out = {int(i) for seq in sequences for i in seq[-2:]}
    batches = list(
        training_batches(sequences, max_len=5, batch_size=2, rng=np.random.default_rng(0))
    )
    inputs = torch.cat([b[0] for b in batches])
    targets = torch.cat([b[1] for b in batches])
    assert inputs.shape == targets.shape == (3, 5)  # users with < 4 items have no transition
    seen = {int(i) for i in torch.cat([inputs, targets]).flatten() if i != PAD}
    assert not seen & held_out
    real = targets != PAD
    assert torch.equal(real, inputs != PAD)
    assert torch.equal(targets[real], inputs[real] + 1)  # target = next item
    rows = {tuple(r[r != PAD].tolist()) for r in targets}
    # 15 items -> training part 13 items, 12 transitions, of which the last 5 are kept.
    assert rows == {
        (starts[2] + 1,),
        tuple(range(starts[3] + 1, starts[3] + 5)),
        tuple(range(starts[4] + 8, starts[4] + 13)),
    }


# ---------------------------------------------------------------------------------- ranking


def test_rank_next_returns_the_models_best_items():
    m = model(n_items=12)
    histories = [np.array([1, 2, 3]), np.arange(12), np.array([5])]
    top = rank_next(m, histories, k=4, device="cpu")
    assert top.shape == (3, 4) and top.dtype == np.int64
    assert ((top >= 0) & (top < 12)).all()
    assert all(len(set(row)) == 4 for row in top)
    with torch.no_grad():
        scores = m.scores(m(left_pad(histories, 8))[:, -1])
    assert np.array_equal(top[:, 0], scores.argmax(1).numpy())
    np.testing.assert_array_equal(rank_next(m, histories, 4, "cpu", batch_size=1), top)
    assert (rank_next(m, histories, 15, "cpu")[:, 12:] == -1).all()


def test_evaluate_uses_second_last_item_for_valid_and_last_for_test(monkeypatch):
    seen = {}

    def predict_successor(model, histories, k, device, batch_size=1024):
        seen["histories"] = [h.tolist() for h in histories]
        return np.array([[(h[-1] + 1) % 10, (h[-1] + 2) % 10] for h in histories])

    monkeypatch.setattr(sequential, "rank_next", predict_successor)
    sequences = [np.array([0, 1, 2, 3]), np.array([5, 6]), np.array([7, 8, 4])]
    m = SASRec(10)
    valid = evaluate_sasrec(m, sequences, "valid", [1, 2], "cpu")
    assert seen["histories"] == [[0, 1], [7]]  # user 1 has too few items
    assert valid["user_id"].tolist() == [0, 2]
    assert valid["hit@1"].tolist() == [1.0, 1.0]  # targets 2 and 8
    test = evaluate_sasrec(m, sequences, "test", [1, 2], "cpu")
    assert seen["histories"] == [[0, 1, 2], [7, 8]]
    assert test["hit@1"].tolist() == [1.0, 0.0]  # targets 3 and 4; 9 was predicted for user 2
    assert test["hit@2"].tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------------- training


def train(sequences, seed=0, epochs=6):
    init_seed(seed)
    m = SASRec(30, max_len=10, hidden=32, num_layers=1, dropout=0.1)
    state, history = fit_sasrec(
        m,
        sequences,
        epochs=epochs,
        batch_size=16,
        lr=1e-2,
        patience=10,
        metric="hit@5",
        ks=(1, 5),
        seed=seed,
        progress=False,
    )
    return m, state, history


def test_training_learns_the_successor_pattern():
    sequences = successor_sequences(64, 30, seed=0)
    m, _, history = train(sequences)
    assert [row["epoch"] for row in history] == list(range(1, 7))
    assert history[-1]["loss"] < history[0]["loss"]
    best = max(row["hit@5"] for row in history)
    assert best >= 0.9  # chance is 5 / 30
    test = summarize(evaluate_sasrec(m, sequences, "test", [5], "cpu"))
    assert test["hit@5"] >= 0.9


def test_training_logs_batches_within_an_epoch_and_epochs(monkeypatch, caplog):
    from llmrec import progress

    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # every epoch and batch counts as long
    caplog.set_level("INFO")
    train(successor_sequences(32, 30, seed=1), epochs=2)  # 32 users, batches of 16
    heads = [r.getMessage().split(" in ")[0] for r in caplog.records if r.name == "llmrec.progress"]
    assert heads == [
        "epoch 1: 1/2 batches (50%)",
        "epoch 1: 2/2 batches (100%)",
        "SASRec: 1/2 epochs (50%)",
        "epoch 2: 1/2 batches (50%)",
        "epoch 2: 2/2 batches (100%)",
        "SASRec: 2/2 epochs (100%)",
    ]


def test_same_seed_same_model_and_metrics():
    sequences = successor_sequences(32, 30, seed=1)
    _, state_a, history_a = train(sequences, epochs=2)
    _, state_b, history_b = train(sequences, epochs=2)
    _, state_c, _ = train(sequences, seed=1, epochs=2)
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)

    def drop_times(history):
        return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in history]

    assert drop_times(history_a) == drop_times(history_b)


# ------------------------------------------------------------------- ordered pre-training


def test_consecutive_sequences_are_runs_of_the_order():
    order = np.array([4, 0, 3, 1, 2])  # items in the order of their numbers
    runs = sequential.consecutive_sequences(order, 50, 3, np.random.default_rng(0))
    assert len(runs) == 50
    windows = {tuple(order[s : s + 3]) for s in range(3)}
    assert {tuple(r) for r in runs} == windows  # every start drawn, nothing else
    whole = sequential.consecutive_sequences(order, 2, 9, np.random.default_rng(0))
    assert [r.tolist() for r in whole] == [order.tolist()] * 2  # shorter than asked: all of it


def pretrain(order, seed=0, epochs=30):
    init_seed(seed)
    m = SASRec(len(order), max_len=6, hidden=32, num_layers=1, dropout=0.0)
    history = sequential.pretrain_ordered(
        m, order, sequences=32, epochs=epochs, batch_size=16, lr=1e-2, seed=seed, progress=False
    )
    return m, history


def test_ordered_pretraining_learns_the_next_number():
    order = np.random.default_rng(0).permutation(20)
    m, history = pretrain(order)
    assert [row["epoch"] for row in history] == list(range(1, 31))
    assert history[-1]["loss"] < history[0]["loss"] / 3
    # Given a run of numbers, the model ranks the next number's item first.
    runs = [order[s : s + 4] for s in range(len(order) - 4)]
    top = rank_next(m, runs, 1, "cpu")[:, 0]
    assert np.mean(top == order[4:]) >= 0.75  # chance is 1 / 20


def test_ordered_pretraining_repeats_given_a_seed():
    order = np.arange(20)
    a, history_a = pretrain(order, epochs=2)
    b, history_b = pretrain(order, epochs=2)
    c, _ = pretrain(order, seed=1, epochs=2)
    assert [r["loss"] for r in history_a] == [r["loss"] for r in history_b]
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.item_embedding.weight, c.item_embedding.weight)

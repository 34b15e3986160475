"""The P5 training loop: the schedule, learning, and a killed run that resumes exactly."""

from __future__ import annotations

import zipfile

import pytest
import torch

from llmrec.p5 import train as train_module
from llmrec.p5.model import P5, build_t5
from llmrec.p5.tokenizer import train_tokenizer
from llmrec.p5.train import linear_schedule, train_seq2seq

PAIRS = [
    (f"user_{u} has watched {1001 + u} , {1002 + u} . next ?", f"{1003 + u}") for u in range(40)
]


def examples(epoch: int) -> list[tuple[str, str]]:
    return PAIRS[epoch % 2 :: 1]  # a different list per epoch, like fresh windows


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = [text for pair in PAIRS for text in pair]
    return train_tokenizer(corpus, 300, tmp_path_factory.mktemp("tok") / "tokenizer")


def tiny(tokenizer, seed: int = 0) -> P5:
    torch.manual_seed(seed)
    return P5(
        build_t5(
            len(tokenizer), d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, dropout=0.1
        )
    )


def test_schedule_warms_up_then_decays_to_zero():
    factor = linear_schedule(100, 0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(55) == pytest.approx(0.5)
    assert factor(100) == 0.0
    assert all(factor(s) >= factor(s + 1) for s in range(10, 100))


def test_training_lowers_the_loss(tokenizer):
    history = train_seq2seq(
        tiny(tokenizer), tokenizer, examples, epochs=6, batch_size=8, lr=1e-2, progress=False
    )
    assert [row["epoch"] for row in history] == list(range(1, 7))
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]


def test_training_logs_steps_of_the_whole_run_with_the_epoch(tokenizer, monkeypatch, caplog):
    from llmrec import progress

    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # a line at every step
    caplog.set_level("INFO")
    train_seq2seq(tiny(tokenizer), tokenizer, examples, epochs=2, batch_size=20, lr=1e-2)
    lines = [r.getMessage() for r in caplog.records if r.name == "llmrec.progress"]
    assert [line.split(" in ")[0] for line in lines] == [
        f"train: {step}/4 steps ({25 * step}%)" for step in (1, 2, 3, 4)
    ]
    assert lines[0].endswith("epoch 1/2") and lines[2].endswith("epoch 2/2")


def test_a_killed_run_resumes_to_the_same_weights(tokenizer, tmp_path, monkeypatch):
    options = dict(
        epochs=3, batch_size=8, lr=1e-2, checkpoint_every=2, fingerprint="a", progress=False
    )
    uninterrupted = tiny(tokenizer)
    train_seq2seq(uninterrupted, tokenizer, examples, **options)

    checkpoint = tmp_path / "run.ckpt"
    real_collate, calls = train_module.collate, []

    def dies_at_step_8(*args, **kwargs):  # in epoch 2: a checkpoint at step 2 of it exists
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real_collate(*args, **kwargs)

    monkeypatch.setattr(train_module, "collate", dies_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train_seq2seq(tiny(tokenizer), tokenizer, examples, checkpoint=checkpoint, **options)
    assert checkpoint.exists()
    saved = torch.load(checkpoint, weights_only=True)
    assert (saved["epoch"], saved["batch"]) == (1, 2)
    # Records named "archive/...", not after the random temporary: same state, same bytes.
    assert all(name.startswith("archive/") for name in zipfile.ZipFile(checkpoint).namelist())

    monkeypatch.setattr(train_module, "collate", real_collate)
    resumed = tiny(tokenizer, seed=123)  # other starting weights: the checkpoint must win
    history = train_seq2seq(resumed, tokenizer, examples, checkpoint=checkpoint, **options)
    assert not checkpoint.exists()  # removed once the run is complete
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for name, value in uninterrupted.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_a_checkpoint_of_other_settings_is_not_resumed(tokenizer, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    model = tiny(tokenizer)
    torch.save({"fingerprint": "other", "model": model.state_dict()}, checkpoint)
    history = train_seq2seq(
        model,
        tokenizer,
        examples,
        epochs=1,
        batch_size=8,
        lr=1e-3,
        checkpoint=checkpoint,
        fingerprint="mine",
        progress=False,
    )
    assert len(history) == 1 and not checkpoint.exists()

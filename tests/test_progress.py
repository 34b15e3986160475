"""The progress helper: log lines at the interval, with done/total, rate and ETA, bar or not."""

from __future__ import annotations

import logging

import pytest

from llmrec.progress import Progress, duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "llmrec.progress"]


@pytest.mark.parametrize("bar", [False, True])
def test_logs_done_total_rate_and_eta_every_interval(caplog, bar):
    clock = FakeClock()
    caplog.set_level(logging.INFO)
    with Progress(100, "generate", "prompts", bar=bar, interval=30, clock=clock) as done:
        for _ in range(10):
            clock.now += 10  # one update every 10 s: a line every third update
            done.update(10)
    assert lines(caplog) == [
        "generate: 30/100 prompts (30%) in 30 s, 1 prompts/s, ETA 1 min 10 s",
        "generate: 60/100 prompts (60%) in 1 min 00 s, 1 prompts/s, ETA 40 s",
        "generate: 90/100 prompts (90%) in 1 min 30 s, 1 prompts/s, ETA 10 s",
        "generate: 100/100 prompts (100%) in 1 min 40 s, 1 prompts/s",  # the end
    ]


def test_the_last_line_is_not_repeated_at_the_end(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO)
    with Progress(2, "work", bar=False, interval=30, clock=clock) as done:
        for _ in range(2):
            clock.now += 40
            done.update()
    assert [line.split(" in ")[0] for line in lines(caplog)] == [
        "work: 1/2 steps (50%)",
        "work: 2/2 steps (100%)",
    ]


def test_a_loop_shorter_than_the_interval_logs_nothing(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO)
    with Progress(5, "epoch 1", "batches", bar=False, clock=clock) as done:
        for _ in range(5):
            clock.now += 1
            done.update()
    assert lines(caplog) == []


def test_a_resumed_loop_rates_only_its_own_work_and_shows_the_postfix(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO)
    with Progress(1000, "train", "steps", bar=False, initial=400, clock=clock) as done:
        done.set_postfix(epoch="3/5")
        clock.now += 60
        done.update(120)
        assert lines(caplog) == [
            "train: 520/1000 steps (52%) in 1 min 00 s, 2 steps/s, ETA 4 min 00 s, epoch 3/5"
        ]


def test_a_stalled_loop_has_no_eta(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO)
    with Progress(3, "work", bar=False, clock=clock) as done:
        clock.now += 45
        done.update(0)
    assert lines(caplog)[0] == "work: 0/3 steps (0%) in 45 s, 0 steps/s, ETA unknown"


def test_other_records_go_above_the_bar_and_the_handlers_come_back(capsys):
    """While the bar shows, console records go through tqdm.write; the log file's handler and
    the original console handler are left as they were."""
    root = logging.getLogger()
    console = logging.StreamHandler()  # stderr
    before = root.handlers[:]
    root.addHandler(console)
    try:
        with Progress(2, "work", bar=True):
            assert console not in root.handlers
            logging.getLogger("llmrec.test").warning("in the middle")
        assert root.handlers == [*before, console]
    finally:
        root.removeHandler(console)
    assert "in the middle" in capsys.readouterr().err


@pytest.mark.parametrize(
    "seconds, text", [(4.4, "4 s"), (65, "1 min 05 s"), (3600 * 2 + 300, "2 h 05 min")]
)
def test_duration(seconds, text):
    assert duration(seconds) == text

"""P5 prompts: templates, training windows from training parts only, leave-one-out prompts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from llmrec.p5.prompts import (
    SEEN,
    STRAIGHTFORWARD,
    UNSEEN,
    Template,
    evaluation_examples,
    format_history,
    templates,
    training_examples,
    user_text,
)

INDEX = [str(1001 + i) for i in range(100)]


def item_of(text: str) -> int:
    return INDEX.index(text)


def random_sequences(n_users: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(100)[: rng.integers(1, 30)] for _ in range(n_users)]


def history_of(source: str) -> list[int]:
    """Item ids of a rendered prompt, read back from its whole words."""
    return [item_of(word) for word in source.split() if word in INDEX]


def test_seen_and_unseen_are_disjoint():
    assert not {t.id for t in SEEN} & {t.id for t in UNSEEN}
    assert not {t.source for t in SEEN} & {t.source for t in UNSEEN}
    assert len({t.id for t in SEEN + UNSEEN}) == len(SEEN + UNSEEN)
    assert templates("seen") == SEEN and templates("unseen") == UNSEEN
    with pytest.raises(ValueError, match="unknown prompt setting"):
        templates("all")


@pytest.mark.parametrize("template", SEEN + UNSEEN, ids=lambda t: t.id)
def test_templates_keep_item_texts_whole_words(template):
    assert template.target == "{target}"
    # The history is followed by a space (then punctuation or a word), never glued to it.
    assert re.search(r"\{history\} \S", template.source)
    assert re.search(r"\{user\}( |$)", template.source)
    source, target = template.render(user_text(7), format_history([3, 1, 4], INDEX), "1010")
    assert history_of(source) == [3, 1, 4]
    assert "user_7" in source.split() and target == "1010"


def test_format_history_and_user_text():
    assert format_history([2, 0], INDEX) == "1003 , 1001"
    assert format_history([1], ["<c0><c1>", "<c1><c0>"]) == "<c1><c0>"
    assert user_text(12) == "user_12"


def parse_training(sequences, examples):
    """(user, history ids, target id) of every training example."""
    parsed = []
    for source, target in examples:
        user = int(re.search(r"user_(\d+)", source).group(1))
        parsed.append((user, history_of(source), item_of(target)))
    return parsed


def test_training_examples_use_training_parts_only():
    sequences = random_sequences(25, seed=0)  # items distinct within a user
    examples = training_examples(
        sequences, INDEX, max_history=5, windows_per_user=None, rng=np.random.default_rng(0)
    )
    parsed = parse_training(sequences, examples)
    expected = sum(max(len(s) - 3, 0) for s in sequences)  # m - 1 windows for m = len - 2
    assert len(parsed) == expected
    for user, history, target in parsed:
        held_out = set(sequences[user][-2:].tolist())
        assert target not in held_out and not held_out & set(history)
        train = sequences[user][:-2].tolist()
        j = train.index(target)
        assert j >= 1 and history == train[max(0, j - 5) : j]
    sources = {source for source, _ in examples}
    assert {t.id for t in SEEN if any(_matches(t, s) for s in sources)} == {t.id for t in SEEN}
    assert not any(_matches(t, s) for t in UNSEEN for s in sources)


def _matches(template: Template, source: str) -> bool:
    pattern = re.escape(template.source).replace(r"\{user\}", r"user_\d+")
    return re.fullmatch(pattern.replace(r"\{history\}", r"[\d ,]+"), source) is not None


def test_windows_per_user_is_honoured_and_deterministic():
    sequences = random_sequences(25, seed=1)

    def run(seed: int) -> list[tuple[str, str]]:
        return training_examples(
            sequences, INDEX, windows_per_user=3, rng=np.random.default_rng(seed)
        )

    first = run(4)
    assert first == run(4)
    assert first != run(5)
    per_user = np.bincount([u for u, _, _ in parse_training(sequences, first)], minlength=25)
    for user, seq in enumerate(sequences):
        assert per_user[user] == min(3, max(len(seq) - 3, 0))
    targets = [(u, t) for u, _, t in parse_training(sequences, first)]
    assert len(set(targets)) == len(targets)  # distinct windows


def test_straightforward_task_and_prompts_per_window_as_openp5():
    sequences = random_sequences(10, seed=3)
    examples = training_examples(
        sequences,
        INDEX,
        max_history=5,
        windows_per_user=None,
        rng=np.random.default_rng(0),
        tasks=("sequential", "straightforward"),
        prompts_per_window=3,
    )
    windows = sum(max(len(s) - 3, 0) for s in sequences)
    assert len(examples) == 6 * windows
    for w in range(windows):  # per window: 3 sequential prompts, then 3 straightforward ones
        block = examples[6 * w : 6 * w + 6]
        assert len({target for _, target in block}) == 1
        assert all(any(_matches(t, s) for t in SEEN) for s, _ in block[:3])
        assert all(any(_matches(t, s) for t in STRAIGHTFORWARD) for s, _ in block[3:])
        assert all(not re.search(r"\d{4}", s) for s, _ in block[3:])  # no history shown
    with pytest.raises(ValueError, match="unknown or no training tasks"):
        training_examples(
            sequences, INDEX, windows_per_user=1, rng=np.random.default_rng(), tasks=["rating"]
        )


def test_training_examples_reject_bad_sizes():
    with pytest.raises(ValueError, match="windows_per_user must be at least 1"):
        training_examples([np.arange(5)], INDEX, windows_per_user=0, rng=np.random.default_rng())


@pytest.mark.parametrize("stage,position", [("valid", -2), ("test", -1)])
def test_evaluation_targets_and_histories(stage, position):
    sequences = random_sequences(30, seed=2)
    users, sources, targets = evaluation_examples(
        sequences, INDEX, stage=stage, template=UNSEEN[0], max_history=4
    )
    eligible = [u for u, s in enumerate(sequences) if len(s) >= 3]
    assert users.tolist() == eligible and targets.dtype == np.int64
    for user, source, target in zip(users, sources, targets):
        seq = sequences[user].tolist()
        assert target == seq[position]
        assert history_of(source) == seq[:position][-4:]
        assert f"user_{user}" in source.split()


def test_evaluation_rejects_unknown_stage():
    with pytest.raises(ValueError, match="unknown evaluation stage"):
        evaluation_examples([np.arange(4)], INDEX, stage="train", template=SEEN[0])

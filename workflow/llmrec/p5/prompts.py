"""OpenP5-style prompts for sequential recommendation: (source, target) text pairs.

The templates paraphrase OpenP5's sequential-recommendation prompts (Xu et al. 2023,
https://arxiv.org/abs/2306.11134), shortened for a small model on CPU. ``SEEN`` templates are
used for training and for "seen" evaluation; ``UNSEEN`` ones never appear in training and test
whether the model follows instructions it was not trained on.

Item texts (numbers or collaborative codes) are written as whole words, separated from
punctuation by spaces, so the tokenizer never glues a digit to a comma or a question mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Template:
    """One prompt template.

    Args:
        id: a short unique name, e.g. ``"seq-1"``.
        source: the input text, with placeholders ``{user}`` and ``{history}``.
        target: the output text, with placeholder ``{target}``.
    """

    id: str
    source: str
    target: str = "{target}"

    def render(self, user: str, history: str, target: str) -> tuple[str, str]:
        """The (source, target) pair for a user text, a history text and a target item text."""
        return self.source.format(user=user, history=history), self.target.format(target=target)


SEEN: tuple[Template, ...] = (
    Template(
        "seq-1",
        "Considering {user} has interacted with items {history} . "
        "What is the next recommendation for the user ?",
    ),
    Template(
        "seq-2",
        "Here is the history of {user} : items {history} . What is the next item for the user ?",
    ),
    Template(
        "seq-3",
        "{user} has interacted with items {history} , "
        "predict the next item the user will interact with .",
    ),
    Template(
        "seq-4",
        "Given the items {history} that {user} has interacted with , recommend the next item .",
    ),
    Template("seq-5", "What would {user} be likely to choose next after items {history} ?"),
    Template(
        "seq-6",
        "According to items {history} of {user} , can you recommend another item to the user ?",
    ),
    Template(
        "seq-7", "By analyzing the items {history} of {user} , what is the next item expected ?"
    ),
)

UNSEEN: tuple[Template, ...] = (
    Template(
        "unseen-1",
        "Based on the items {history} chosen by {user} , what is the next item to recommend ?",
    ),
    Template(
        "unseen-2",
        "{user} recently engaged with items {history} . "
        "Which item should come next for this user ?",
    ),
)


STRAIGHTFORWARD: tuple[Template, ...] = (
    Template("direct-1", "What should we recommend for {user} ?"),
    Template("direct-2", "{user} is looking for an item . Do you have a recommendation ?"),
    Template("direct-3", "Which item would you suggest to {user} ?"),
    Template("direct-4", "Can you recommend an item for {user} ?"),
    Template("direct-5", "What would be a good recommendation for {user} ?"),
)
"""OpenP5's "straightforward" task, paraphrased: the user alone, no history; a training task
only (the table evaluates the sequential prompts)."""

TASKS = {"sequential": SEEN, "straightforward": STRAIGHTFORWARD}
"""The training tasks and their templates."""


def templates(setting: Literal["seen", "unseen"]) -> tuple[Template, ...]:
    """The templates of an evaluation setting, ``"seen"`` or ``"unseen"``."""
    if setting == "seen":
        return SEEN
    if setting == "unseen":
        return UNSEEN
    raise ValueError(f"unknown prompt setting {setting!r}; choose 'seen' or 'unseen'")


def format_history(items: Sequence[int], index: list[str]) -> str:
    """The texts of ``items`` (in order) joined by ``" , "``.

    Args:
        items: item ids, oldest first.
        index: ``index[item_id]``, the item's text (see :mod:`llmrec.p5.indexing`).
    """
    return " , ".join(index[int(item)] for item in items)


def user_text(user_id: int) -> str:
    """A user as the model reads it: ``"user_{user_id}"``."""
    return f"user_{int(user_id)}"


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def training_examples(
    sequences: Sequence[np.ndarray],
    index: list[str],
    *,
    max_history: int = 20,
    windows_per_user: int | None,
    rng: np.random.Generator,
    tasks: Sequence[str] = ("sequential",),
    prompts_per_window: int = 1,
) -> list[tuple[str, str]]:
    """(source, target) pairs from every user's training part (sequence without its last two).

    For a training part ``t_0 .. t_{m-1}`` the windows are the targets ``t_j``, ``j >= 1``, each
    with history ``t_{max(0, j-max_history)} .. t_{j-1}``. Each window gives
    ``prompts_per_window`` examples per task, each with a template drawn uniformly (with
    replacement) from the task's templates (:data:`TASKS`: :data:`SEEN` for ``"sequential"``,
    :data:`STRAIGHTFORWARD`, which shows no history, for ``"straightforward"``); OpenP5 trains
    on both tasks with 3 prompts per window.

    Args:
        sequences: one 1-D int array per user (index = user id), item ids in time order.
        index: ``index[item_id]``, the item's text.
        max_history: most history items in a prompt, the latest kept. (default: :obj:`20`)
        windows_per_user: ``None`` for every window (as OpenP5), or how many distinct windows
            to draw uniformly per user (all of them where a user has fewer).
        rng: the generator for windows and templates; the result depends only on its state.
        tasks: the training tasks, names of :data:`TASKS`. (default: ``("sequential",)``)
        prompts_per_window: examples per window and task. (default: :obj:`1`)

    Returns:
        The pairs, user by user, windows in time order, then task by task.
    """
    _check_positive(
        max_history=max_history,
        windows_per_user=windows_per_user,
        prompts_per_window=prompts_per_window,
    )
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"unknown or no training tasks {list(tasks)}; choose from {list(TASKS)}")
    examples = []
    for user, seq in enumerate(sequences):
        train = np.asarray(seq)[:-2]
        targets = np.arange(1, len(train))
        if windows_per_user is not None and len(targets) > windows_per_user:
            targets = np.sort(rng.choice(targets, size=windows_per_user, replace=False))
        for j in targets:
            history = format_history(train[max(0, j - max_history) : j], index)
            for task in tasks:
                pool = TASKS[task]
                for _ in range(prompts_per_window):
                    template = pool[rng.integers(len(pool))]
                    examples.append(template.render(user_text(user), history, index[int(train[j])]))
    return examples


def evaluation_examples(
    sequences: Sequence[np.ndarray],
    index: list[str],
    *,
    stage: Literal["valid", "test"],
    template: Template,
    max_history: int = 20,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One prompt per user with at least three items, for leave-one-out evaluation.

    For ``"valid"`` the target is the second-last item and the history the items before it; for
    ``"test"`` the target is the last item and the history everything before it (the validation
    item included). Histories keep their latest ``max_history`` items.

    Args:
        sequences: one 1-D int array per user (index = user id), item ids in time order.
        index: ``index[item_id]``, the item's text.
        stage: ``"valid"`` or ``"test"``.
        template: the prompt template.
        max_history: most history items in a prompt. (default: :obj:`20`)

    Returns:
        ``(users, sources, targets)``: user ids (int64), prompt texts, and target item ids
        (int64), aligned.
    """
    if stage not in ("valid", "test"):
        raise ValueError(f"unknown evaluation stage {stage!r}; choose 'valid' or 'test'")
    _check_positive(max_history=max_history)
    end = -2 if stage == "valid" else -1  # the target's position
    users, sources, targets = [], [], []
    for user, seq in enumerate(sequences):
        seq = np.asarray(seq)
        if len(seq) < 3:
            continue
        history = seq[:end][-max_history:]
        users.append(user)
        sources.append(
            template.source.format(user=user_text(user), history=format_history(history, index))
        )
        targets.append(int(seq[end]))
    return np.array(users, dtype=np.int64), sources, np.array(targets, dtype=np.int64)

"""The two text tasks' requests as token ids and soft vectors, from the study's artifacts.

A :class:`Requests` knows the items' short titles, the funnel, the tokenizer and, for the
unified rows, the vectors (items, and users of one stage) and the placeholder token; it turns
a user's history and candidates into a chat request, and an item into a description request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.multi_behaviour import history_text, item_names
from ..evaluation.candidates import letters
from . import prompts


class Requests:
    """Chat and description requests of one dataset.

    Args:
        tokenizer: the LLM's tokenizer (with a chat template).
        item_text: the items' text parquet (their names are the titles).
        funnel: the behaviours' names (index = code), the target last.
        title_words: words kept of each title (default 6).
        history: latest events shown in a chat request (default 10).
        items: item vectors ``[n_items, d]`` (None: no soft tokens).
        users: user vectors ``[n_users, d]`` (None: no user token).
        placeholder: the soft tokens' (string, id), needed with vectors.
    """

    def __init__(
        self,
        tokenizer,
        item_text: str,
        funnel: Sequence[str],
        *,
        title_words: int = 6,
        history: int = 10,
        items: np.ndarray | None = None,
        users: np.ndarray | None = None,
        placeholder: tuple[str, int] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.names = item_names(item_text)
        self.titles = np.array([prompts.short_title(n, title_words) for n in self.names], object)
        self.funnel = np.array(list(funnel), dtype=object)
        self.history = history
        self.items, self.users = items, users
        self.token = placeholder[0] if placeholder and items is not None else None
        self.dim = items.shape[1] if items is not None else 0

    def chat(
        self, user: int, items: np.ndarray, behaviours: np.ndarray, candidates: Sequence[int]
    ) -> tuple[list[int], np.ndarray | None]:
        """The chat request of ``user`` whose history is ``items``/``behaviours`` (the latest
        ``history`` shown) among ``candidates``: token ids and soft vectors (user first, then
        each candidate's, in order) or None without vectors."""
        seen = slice(max(0, len(items) - self.history), len(items))
        words = history_text(self.titles[items[seen]], self.funnel[behaviours[seen]])
        labels = letters(len(candidates))
        user_token = self.token if self.users is not None else None
        message = prompts.chat_prompt(
            words,
            list(self.titles[list(candidates)]),
            labels,
            target=str(self.funnel[-1]),
            user_token=user_token,
            item_token=self.token,
        )
        soft = None
        if self.token is not None:
            rows = [self.users[user]] if user_token else []
            soft = np.stack(rows + [self.items[i] for i in candidates]).astype(np.float32)
        return prompts.encode_chat(self.tokenizer, message), soft

    def chat_answer(self, candidates: Sequence[int], position: int) -> list[int]:
        """The answer "<letter>. <title>" of the candidate at ``position``, as token ids."""
        letter = letters(len(candidates))[position]
        text = prompts.chat_answer(letter, self.titles[candidates[position]])
        return prompts.encode_answer(self.tokenizer, text)

    def describe(self, item: int, by_title: bool = False) -> tuple[list[int], np.ndarray | None]:
        """The description request of ``item``: by its soft token, or by its title when
        ``by_title`` or without vectors."""
        if by_title or self.token is None:
            return prompts.encode_chat(
                self.tokenizer, prompts.describe_prompt(str(self.names[item]))
            ), None
        message = prompts.describe_prompt(self.token)
        return prompts.encode_chat(self.tokenizer, message), self.items[[item]].astype(np.float32)


def never_met(rng: np.random.Generator, met: np.ndarray, n_items: int, count: int) -> np.ndarray:
    """``count`` distinct items outside ``met``, drawn with ``rng``.

    Raises:
        ValueError: fewer than ``count`` items are left.
    """
    free = np.setdiff1d(np.arange(n_items), met)
    if len(free) < count:
        raise ValueError(
            f"a user met {n_items - len(free)} of the {n_items} items, leaving {len(free)} for "
            f"{count} negative candidates; lower the candidate count"
        )
    return rng.choice(free, count, replace=False)

"""The prompts of the two text tasks, in words, and their token ids in the LLM's chat template.

- **Chat recommendation** (LLaRA style): the user's latest history in words ("liked X;
  disliked Y", :func:`llmrec.data.multi_behaviour.history_text`), then the candidates as
  "A. <title> <soft token>" lines, and a request for one letter; the answer is
  "<letter>. <title>".
- **Item description**: an item given by its soft token alone (or by its title, for the
  zero-shot reference); the answer is the item's text.

Titles are cut to a few words so that a prompt of 20 candidates stays short on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence


def short_title(title: str, words: int) -> str:
    """The first ``words`` words of ``title`` (all of them when it has no more)."""
    return " ".join(title.split()[:words])


def chat_prompt(
    history_text: str,
    candidate_titles: Sequence[str],
    letters: Sequence[str],
    *,
    target: str,
    user_token: str | None = None,
    item_token: str | None = None,
) -> str:
    """The chat recommendation request (the user's message).

    Args:
        history_text: the user's latest events in words, oldest first ("" when it has none).
        candidate_titles: the candidates' (short) titles, in presentation order.
        letters: their labels (A, B, ...).
        target: the behaviour recommended ("like", "buy"), as the question's verb.
        user_token: the placeholder of the user's soft token (None: no user token).
        item_token: the placeholder after each candidate's title (None: titles only).
    """
    user = f" (user {user_token})" if user_token else ""
    history = f"The user's latest history{user}, oldest first: {history_text or 'nothing yet'}."
    lines = [
        f"{letter}. {title}" + (f" {item_token}" if item_token else "")
        for letter, title in zip(letters, candidate_titles, strict=True)
    ]
    return (
        f"{history}\nCandidates:\n" + "\n".join(lines) + f"\nWhich candidate will the user "
        f"{target} next? Answer with its letter and title."
    )


def chat_answer(letter: str, title: str) -> str:
    """The answer a chat prompt is trained towards."""
    return f"{letter}. {title}"


def describe_prompt(item: str) -> str:
    """The description request for an item given by its soft token (or its title)."""
    return f"Describe the item {item} in one line: its title, year and genres."


def encode_chat(tokenizer, message: str) -> list[int]:
    """Token ids of ``message`` as the user's turn of the chat template, ready for the answer."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], add_generation_prompt=True, return_dict=False
    )


def encode_answer(tokenizer, answer: str) -> list[int]:
    """Token ids of ``answer`` ended by the end-of-sequence token (the end of the turn)."""
    return tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]


def letter_ids(tokenizer, letters: Sequence[str]) -> list[int]:
    """The first token of each ``"<letter>."`` answer: what a letter's logit is read at.

    Raises:
        ValueError: two letters share their first token.
    """
    ids = [tokenizer.encode(f"{letter}.", add_special_tokens=False)[0] for letter in letters]
    if len(set(ids)) != len(ids):
        raise ValueError("the tokenizer starts two letter answers with the same token")
    return ids

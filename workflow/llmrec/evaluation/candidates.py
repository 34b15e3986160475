"""Chat-based recommendation on fixed candidate lists (the LLaRA / LlamaRec protocol).

Every test user of the chat task has one list of candidates (``mbr_text_split``): the held-out
target and items the user never met, in a fixed presentation order, labelled A, B, C, ... .
Every scorer answers on the same lists:

- a ranking scorer gives one score per candidate (an LLM: the logit of each candidate's letter
  after the prompt; an ID model: its score of the candidate item, :func:`candidate_scores`);
  :func:`chat_metrics` ranks the target within the list;
- a free generation is matched to exactly one candidate (:func:`match_answer`), by its letter or
  its title; :func:`generation_metrics` gives ValidRatio and HR@1.

**Ties** in a ranking scorer are broken uniformly at random, in expectation: a target tied with
``t`` other candidates below ``b`` better ones lies at each of the ranks ``b+1 .. b+t+1`` with
probability ``1/(t+1)``, and its metrics are the mean over those ranks (its ``rank`` the mean
rank). Pessimistic ties (the target last among its ties) would score a scorer that cannot tell
the candidates apart (a constant, popularity over never-met items that all have 0 events) below
the random row, and the ID order of the full-ranking protocol has no meaning on a shuffled list;
the expectation puts such a scorer exactly at the random row, and depends on the scores only.

**Random expectation** (:data:`RANDOM`), the target at a uniform rank among ``n``: HR@k = k/n;
NDCG@k = (1/n) sum_{i<=k} 1/log2(i+1) (one relevant item, so the ideal DCG is 1); with n = 20,
HR@1 = 0.05, HR@5 = 0.25, NDCG@5 = 0.1474, NDCG@10 = 0.2272; a random pick among the candidates
is always valid and hits with 1/n.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

# As llmrec.evaluation.ranking.ScoresFn; not imported from there, so that the LLM steps, which
# use this module's letters, do not depend on the ranking code.
ScoresFn = Callable[[torch.Tensor], torch.Tensor]


CHAT_KS = (1, 5, 10)
CHAT_METRICS = ("hit@1", "hit@5", "ndcg@5", "ndcg@10")
GENERATION_METRICS = ("valid", "gen_hit@1", "gen_hit@1_valid")


def letters(n: int) -> list[str]:
    """The labels of ``n`` candidates: A, B, C, ... (at most 26)."""
    if not 1 <= n <= len(string.ascii_uppercase):
        raise ValueError(f"{n} candidates cannot be labelled with single letters A-Z")
    return list(string.ascii_uppercase[:n])


def random_expectation(n: int) -> dict[str, float]:
    """Every chat metric of a scorer that ranks (and a generator that picks) uniformly at
    random among ``n`` candidates (module docstring)."""
    gains = 1 / np.log2(np.arange(2, n + 2))
    expected = {"rank": (n + 1) / 2}
    for k in CHAT_KS:
        expected[f"hit@{k}"] = min(k, n) / n
        expected[f"ndcg@{k}"] = float(gains[:k].sum() / n)
    return expected | {"valid": 1.0, "gen_hit@1": 1 / n, "gen_hit@1_valid": 1 / n}


RANDOM = random_expectation(20)


def read_candidates(candidates: pa.Table | str | Path) -> pa.Table:
    """The candidates table (user_id, items, target_position), read where given as a path."""
    return candidates if isinstance(candidates, pa.Table) else pq.read_table(candidates)


def candidate_items(candidates: pa.Table) -> np.ndarray:
    """The candidate lists as an int64 array ``[users, n]``."""
    lists = candidates.column("items").combine_chunks()
    n = len(lists[0]) if len(lists) else 0
    return lists.flatten().to_numpy().astype(np.int64).reshape(len(lists), n)


def candidate_scores(
    scores_fn: ScoresFn, candidates: pa.Table | str | Path, batch_size: int = 256
) -> pa.Table:
    """An ID model's score of each user's candidates, so it answers on the LLM's lists.

    Args:
        scores_fn: user ids (CPU LongTensor ``[batch]``) -> scores ``[batch, n_items]``
            (:data:`llmrec.evaluation.ranking.ScoresFn`), the test-time scorer; no masking is
            needed, the candidates are the target and never-met items.
        candidates: the ``candidates`` table of ``mbr_text_split``, or its path.
        batch_size: users scored at once (default 256).

    Returns:
        ``user_id`` (int32) and ``letter_scores`` (list<float32>: the score of each candidate in
        presentation order), in the candidates' row order.
    """
    table = read_candidates(candidates)
    users = table.column("user_id").to_numpy().astype(np.int64)
    items = candidate_items(table)
    out = np.empty(items.shape, np.float32)
    with torch.no_grad():
        for lo in range(0, len(users), batch_size):
            scores = scores_fn(torch.as_tensor(users[lo : lo + batch_size]))
            columns = torch.as_tensor(items[lo : lo + batch_size], device=scores.device)
            out[lo : lo + batch_size] = torch.gather(scores, 1, columns).float().cpu().numpy()
    return scores_table(users, out)


def scores_table(users: np.ndarray, scores: np.ndarray) -> pa.Table:
    """``user_id`` and ``letter_scores`` columns from ids and a ``[users, n]`` score array."""
    n = scores.shape[1]
    offsets = pa.array(np.arange(0, scores.size + 1, n, dtype=np.int32))
    values = pa.array(np.ascontiguousarray(scores, np.float32).ravel(), pa.float32())
    return pa.table(
        {
            "user_id": pa.array(users, pa.int32()),
            "letter_scores": pa.ListArray.from_arrays(offsets, values),
        }
    )


def chat_metrics(scores: np.ndarray, target_position: np.ndarray) -> pd.DataFrame:
    """Per user, the target's rank within its list and HR@1, HR@5, NDCG@5, NDCG@10, with ties
    broken at random in expectation (module docstring).

    Args:
        scores: ``[users, n]`` scores of the candidates in presentation order (higher first).
        target_position: ``[users]`` the target's index in each list.

    Returns:
        ``rank`` (1 = first; the mean over tied ranks) and :data:`CHAT_METRICS` per user.

    Raises:
        ValueError: a NaN score (a scorer that failed).
    """
    scores = np.asarray(scores, np.float64)
    if np.isnan(scores).any():
        raise ValueError(
            f"{int(np.isnan(scores).any(1).sum())} users have NaN candidate scores: the scorer "
            f"failed"
        )
    rows = np.arange(len(scores))
    target = scores[rows, np.asarray(target_position, np.int64)][:, None]
    better = (scores > target).sum(1)
    tied = (scores == target).sum(1) - 1
    # The target's possible ranks better+1 .. better+tied+1, each with weight 1/(tied+1).
    n = scores.shape[1]
    ranks = np.arange(1, n + 1)
    possible = (ranks >= better[:, None] + 1) & (ranks <= (better + tied)[:, None] + 1)
    weight = possible / (tied + 1)[:, None]
    gains = 1 / np.log2(ranks + 1)
    out = {"rank": (weight * ranks).sum(1)}
    for k in CHAT_KS:
        within = ranks <= k
        out[f"hit@{k}"] = (weight * within).sum(1)
        out[f"ndcg@{k}"] = (weight * within * gains).sum(1)
    return pd.DataFrame({c: out[c] for c in ("rank", *CHAT_METRICS)})


# --- matching a free answer to one candidate --------------------------------------------------

# A title's leading or trailing article ("Godfather, The"; "The Godfather") is left out, so
# either way of writing it matches.
ARTICLES = ("the", "a", "an", "les", "la", "le", "il", "el", "das", "der", "die")


def normalise(text: str) -> str:
    """Lower case, accents and punctuation gone, words separated by one space."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"'s\b|'", "", text.lower())
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def normalise_title(title: str) -> str:
    """:func:`normalise`, without a year in brackets and a leading or trailing article."""
    words = normalise(re.sub(r"\(\s*\d{4}\s*\)", " ", title)).split()
    if len(words) > 1 and words[-1] in ARTICLES:
        words = words[:-1]
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words)


def _spans(needle: str, haystack: str) -> list[tuple[int, int]]:
    """Where ``needle`` occurs in ``haystack`` as whole words (both normalised)."""
    if not needle:
        return []
    padded = f" {haystack} "
    return [
        (m.start(), m.start() + len(needle))
        for m in re.finditer(f"(?= {re.escape(needle)} )", padded)
    ]


def _titles_named(answer: str, titles: Sequence[str]) -> set[int]:
    """Candidates whose title occurs in the answer; a title found only inside a longer named
    title ("Godfather" in "Godfather: Part II") does not count."""
    text = normalise(answer)
    spans = {i: _spans(normalise_title(t), text) for i, t in enumerate(titles)}
    spans = {i: s for i, s in spans.items() if s}

    def inside_longer(i: int, span: tuple[int, int]) -> bool:
        return any(
            j != i and a <= span[0] and span[1] <= b and b - a > span[1] - span[0]
            for j, other in spans.items()
            for a, b in other
        )

    return {i for i, s in spans.items() if not all(inside_longer(i, span) for span in s)}


def _letters_named(answer: str, titles: Sequence[str], labels: Sequence[str]) -> set[int]:
    """Candidates named by a capital letter label standing alone: followed by ".", ")", ":"
    or "]", or the last thing in the answer ("C", "C.", "(C)", "Answer: C"). Titles are blanked
    first, so that "E.T." names no letter E or T."""
    for title in sorted(titles, key=len, reverse=True):
        if title.strip():
            answer = re.sub(re.escape(title.strip()), " ", answer, flags=re.IGNORECASE)
    found = set()
    for i, label in enumerate(labels):
        pattern = rf"(?<![A-Za-z0-9]){re.escape(label)}(?:[.):\]]|\s*$)"
        if re.search(pattern, answer):
            found.add(i)
    return found


def match_answer(answer: str, titles: Sequence[str], labels: Sequence[str]) -> int:
    """The index of the one candidate a free answer names, by its letter label or its title.

    Args:
        answer: the generated text.
        titles: each candidate's title, in presentation order.
        labels: each candidate's letter (:func:`letters`), in the same order.

    Returns:
        The candidate's index, or -1 where the answer names none or several (a letter and
        another candidate's title count as several).

    A title matches as a normalised whole-word substring (case, accents, punctuation, a year in
    brackets and a leading or trailing article ignored); a letter as described in
    :func:`_letters_named`.
    """
    named = _titles_named(answer, titles) | _letters_named(answer, titles, labels)
    return named.pop() if len(named) == 1 else -1


def generation_metrics(
    answers: Sequence[str], titles: Sequence[Sequence[str]], target_position: np.ndarray
) -> pd.DataFrame:
    """Per prompt, whether the answer names exactly one candidate (``valid``), whether that is
    the target (``gen_hit@1``, a miss when invalid: HR@1 over all prompts) and the same over
    valid answers only (``gen_hit@1_valid``, NaN when invalid: LLaRA's HR@1)."""
    picked = np.array(
        [match_answer(a, t, letters(len(t))) for a, t in zip(answers, titles, strict=True)]
    )
    valid = picked >= 0
    hit = (picked == np.asarray(target_position)).astype(float)
    return pd.DataFrame(
        {
            "picked": picked,
            "valid": valid.astype(float),
            "gen_hit@1": hit,
            "gen_hit@1_valid": np.where(valid, hit, np.nan),
        }
    )

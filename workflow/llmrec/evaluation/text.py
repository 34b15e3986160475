"""How close a generated item description is to a reference text: ROUGE, embedding cosine, and
the F1 of the genres (categories) it names.

- ROUGE-1/2/L F1 (Lin 2004) with Google's ``rouge_score`` (pure Python, offline; Porter
  stemming on, as the summarisation papers report it).
- Cosine of the sentence embeddings (all-MiniLM-L6-v2 by default, :mod:`llmrec.text.embed`) of
  the description and the reference: meaning rather than shared words.
- Genre F1: the item's genres (``Genres: A, B`` or ``Category: X`` in its text) against the
  genres of the dataset's vocabulary the description names as words; NaN for an item without a
  genre (nothing to name), 0 where the description names none of its genres.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from rouge_score import rouge_scorer

from ..text.embed import encode, normalise

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# "unknown" is MovieLens' genre for a movie without one: naming it is not naming a genre.
NOT_GENRES = frozenset({"unknown", "none", ""})
GENRE_FIELDS = re.compile(r"(?:^|;\s*)(?:Genres|Category):\s*([^;]*)")


def rouge(descriptions: Sequence[str], references: Sequence[str]) -> pd.DataFrame:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of each description against its reference (columns
    :data:`ROUGE_TYPES`); NaN where the reference is missing or empty."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    rows = []
    for description, reference in zip(descriptions, references, strict=True):
        if not isinstance(reference, str) or not reference.strip():
            rows.append(dict.fromkeys(ROUGE_TYPES, np.nan))
            continue
        scores = scorer.score(reference, description or "")
        rows.append({t: scores[t].fmeasure for t in ROUGE_TYPES})
    return pd.DataFrame(rows, columns=list(ROUGE_TYPES))


def embedding_cosine(
    descriptions: Sequence[str],
    references: Sequence[str],
    encoder,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Cosine of each description's and its reference's sentence embeddings; NaN where the
    reference is missing or empty.

    Args:
        descriptions, references: the texts, pairwise.
        encoder: a sentence-transformers model (:func:`llmrec.text.embed.load_encoder`) or
            anything with its ``encode`` and ``get_embedding_dimension``.
        batch_size: texts per forward pass (default 64).
        progress: show the encoder's progress bar (default False).
    """
    present = np.array([isinstance(r, str) and bool(r.strip()) for r in references], dtype=bool)
    out = np.full(len(references), np.nan)
    if not present.any():
        return out
    pick = np.flatnonzero(present)
    texts = [descriptions[i] or "" for i in pick] + [references[i] for i in pick]
    vectors = normalise(encode(encoder, texts, batch_size, progress))
    out[pick] = (vectors[: len(pick)] * vectors[len(pick) :]).sum(1)
    return out


def item_genres(text: str | None) -> list[str]:
    """The genres an item text lists (``Genres: Comedy, Drama``; ``Category: Shoes``)."""
    if not text:
        return []
    genres = []
    for field in GENRE_FIELDS.findall(text):
        genres += [g.strip() for g in field.split(",") if g.strip().lower() not in NOT_GENRES]
    return genres


def _words(text: str) -> str:
    """Lower case, possessives and apostrophes gone, other punctuation a space: "Children's"
    -> "children", "Sci-Fi" -> "sci fi"."""
    text = re.sub(r"'s\b|'", "", text.lower())
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def genres_named(description: str, vocabulary: Iterable[str]) -> set[str]:
    """The genres of ``vocabulary`` that occur in the description as whole words (case and
    punctuation ignored; a plural "s" allowed: "thrillers" names Thriller)."""
    text = f" {_words(description or '')} "
    named = set()
    for genre in vocabulary:
        words = _words(genre)
        if words and re.search(rf" {re.escape(words)}s? ", text):
            named.add(genre)
    return named


def genre_f1(description: str, genres: Sequence[str], vocabulary: Iterable[str]) -> float:
    """F1 of the genres the description names (:func:`genres_named`) against the item's
    ``genres``: 2 |named & true| / (|named| + |true|); NaN for an item without genres."""
    true = set(genres)
    if not true:
        return np.nan
    named = genres_named(description, vocabulary)
    return 2 * len(named & true) / (len(named) + len(true))

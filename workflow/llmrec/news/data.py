"""News inputs for the neural news recommenders: vocabulary, article features, batches.

The vocabulary is built from the titles and abstracts of the articles that appear in *training*
impressions (candidates and histories), as the MIND reference implementations do; words of dev
articles outside it map to the unknown token. Index 0 is padding and 1 the unknown word;
categories and subcategories are numbered the same way (0 unknown).

A training batch (:func:`train_batch`) holds each sample's history and its candidates (the
click first, then the ``k`` negatives) as indices into the batch's *unique* articles, whose
features are gathered once: the news encoder runs over each article once per batch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from .sampling import Impressions

PAD, UNK = 0, 1
TOKEN = re.compile(r"[\w]+|[.,!?;|]")  # Microsoft Recommenders' word_tokenize


def tokenize(text: str | None) -> list[str]:
    return TOKEN.findall((text or "").lower())


@dataclass
class NewsFeatures:
    """Per-article model inputs, indexed by article id."""

    title: np.ndarray  # [n_items, title_len] word ids, 0-padded
    abstract: np.ndarray  # [n_items, abstract_len]
    category: np.ndarray  # [n_items]
    subcategory: np.ndarray  # [n_items]
    vocab: list[str]  # word of each id (0 "<pad>", 1 "<unk>")
    categories: list[str]
    vectors: np.ndarray | None = None  # [n_items, d] frozen sentence embeddings, if used

    def select(self, ids: np.ndarray) -> dict[str, torch.Tensor]:
        """The features of articles ``ids`` as the models' ``news`` dict.

        Word columns that are padding in every selected article are cut off: the encoders
        mask padding, so this changes no vector, and short titles (MIND's average about 11 of
        30 words) no longer pay for the full length.
        """
        news = {
            "title": torch.from_numpy(_trim(self.title[ids])),
            "abstract": torch.from_numpy(_trim(self.abstract[ids])),
            "category": torch.from_numpy(self.category[ids]),
            "subcategory": torch.from_numpy(self.subcategory[ids]),
        }
        if self.vectors is not None:
            news["vectors"] = torch.from_numpy(self.vectors[ids])
        return news


def _trim(words: np.ndarray) -> np.ndarray:
    """``words`` without the trailing columns that are padding in every row (at least one)."""
    used = np.flatnonzero((words != PAD).any(axis=0))
    return words[:, : max(int(used[-1]) + 1 if len(used) else 1, 1)]


def _ids(tokens: list[str], index: Mapping[str, int], length: int) -> list[int]:
    ids = [index.get(t, UNK) for t in tokens[:length]]
    return ids + [PAD] * (length - len(ids))


def _numbering(values: Iterable[str]) -> dict[str, int]:
    return {v: i for i, v in enumerate(sorted(set(values)), start=1)}


def build_features(
    items: pa.Table,
    train_articles: np.ndarray,
    *,
    title_len: int = 30,
    abstract_len: int = 50,
    min_word_count: int = 1,
) -> NewsFeatures:
    """Word, category and subcategory ids of every article of ``items`` (canonical items).

    Args:
        items: ``item_id`` (0..n-1 in order), ``title``, ``description`` (the abstract),
            ``category`` and ``subcategory`` columns.
        train_articles: ids of the articles in training impressions; the vocabulary and the
            category numbering come from them only.
        title_len, abstract_len: words kept (default 30 and 50, as in the reference code).
        min_word_count: words seen fewer times in training articles are unknown (default 1).
    """
    ids = items.column("item_id").to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError("items must be ordered by item_id 0..n-1")
    titles = [tokenize(t) for t in items.column("title").to_pylist()]
    abstracts = [tokenize(t) for t in items.column("description").to_pylist()]
    cats = [c or "" for c in items.column("category").to_pylist()]
    subcats = (
        [c or "" for c in items.column("subcategory").to_pylist()]
        if "subcategory" in items.column_names
        else [""] * len(ids)
    )
    train = np.unique(train_articles)
    counts = Counter(w for i in train for w in titles[i] + abstracts[i])
    vocab = ["<pad>", "<unk>"] + sorted(w for w, c in counts.items() if c >= min_word_count)
    index = {w: i for i, w in enumerate(vocab)}
    cat_index = _numbering(cats[i] for i in train if cats[i])
    sub_index = _numbering(subcats[i] for i in train if subcats[i])
    return NewsFeatures(
        title=np.array([_ids(t, index, title_len) for t in titles], dtype=np.int64),
        abstract=np.array([_ids(a, index, abstract_len) for a in abstracts], dtype=np.int64),
        category=np.array([cat_index.get(c, 0) for c in cats], dtype=np.int64),
        subcategory=np.array([sub_index.get(c, 0) for c in subcats], dtype=np.int64),
        vocab=vocab,
        categories=["<unk>"] + sorted(cat_index, key=cat_index.get),
    )


def training_articles(imps: Impressions) -> np.ndarray:
    return np.unique(np.concatenate([imps.candidates, imps.history]))


def histories(imps: Impressions, rows: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The latest ``length`` history articles of impressions ``rows``, left-aligned, and their
    mask (False on padding)."""
    starts, ends = imps.h_offsets[rows], imps.h_offsets[rows + 1]
    take = np.minimum(ends - starts, length)
    pos = np.arange(length)[None, :]
    mask = pos < take[:, None]
    index = np.where(mask, (ends - take)[:, None] + pos, 0)
    hist = np.where(mask, imps.history[index] if len(imps.history) else 0, 0)
    return hist.astype(np.int64), mask


def train_batch(
    features: NewsFeatures,
    imps: Impressions,
    rows: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    users: np.ndarray,
    history_len: int,
) -> dict:
    """One training batch: candidates are ``[positive, *negatives]`` (the click in column 0)."""
    hist, mask = histories(imps, rows, history_len)
    cands = np.concatenate([positives[:, None], negatives], axis=1)
    unique, inverse = np.unique(np.concatenate([hist.ravel(), cands.ravel()]), return_inverse=True)
    return {
        "news": features.select(unique),
        "history": torch.from_numpy(inverse[: hist.size].reshape(hist.shape)),
        "history_mask": torch.from_numpy(mask),
        "candidates": torch.from_numpy(inverse[hist.size :].reshape(cands.shape)),
        "users": torch.from_numpy(users.astype(np.int64)),
    }


def user_numbering(train_users: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Model user ids: 1.. for users with training impressions, 0 for the others (LSTUR's
    long-term embedding exists only for users seen in training)."""
    known = np.unique(train_users)
    pos = np.searchsorted(known, users).clip(max=len(known) - 1)
    return np.where(known[pos] == users, pos + 1, 0) if len(known) else np.zeros_like(users)

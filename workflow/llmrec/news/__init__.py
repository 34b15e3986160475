"""Neural news recommenders of the MIND literature (NRMS, NAML, LSTUR), one per file, sharing
the :class:`~llmrec.news.base.NewsRecommender` interface, and :func:`build_model` to make one
from a config's hyper-parameters."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .base import NewsRecommender
from .layers import AdditiveAttention, MultiHeadSelfAttention, SentenceNewsEncoder
from .lstur import LSTUR
from .naml import NAML
from .nrms import NRMS

MODELS: dict[str, type[NewsRecommender]] = {"nrms": NRMS, "naml": NAML, "lstur": LSTUR}


def _model_class(name: str) -> type[NewsRecommender]:
    if name not in MODELS:
        raise ValueError(f"unknown news model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def default_settings(name: str) -> dict[str, Any]:
    """The hyper-parameters of model ``name`` with their defaults (those of its paper), read
    from its constructor so that they cannot drift from the docstring."""
    params = inspect.signature(_model_class(name)).parameters.values()
    return {
        p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name != "word_vectors"
    }


def build_model(
    name: str,
    *,
    vocab_size: int,
    num_categories: int,
    num_subcategories: int,
    num_users: int,
    settings: Mapping[str, Any],
    word_vectors: Tensor | None = None,
) -> NewsRecommender:
    """The news recommender ``name`` (``"nrms"``, ``"naml"`` or ``"lstur"``).

    Args:
        name (str): Model name.
        vocab_size (int): Number of word tokens, padding (0) included.
        num_categories (int): Number of categories.
        num_subcategories (int): Number of subcategories.
        num_users (int): Number of user ids, 0 the unknown user.
        settings (Mapping): Hyper-parameters; keys missing take :func:`default_settings`, an
            unknown key is an error.
        word_vectors (Tensor, optional): ``[vocab_size, word_dim]`` initial word vectors.
            (default: :obj:`None`)
    """
    cls = _model_class(name)
    unknown = sorted(set(settings) - set(default_settings(name)))
    if unknown:
        raise ValueError(
            f"unknown settings {unknown} for news model {name!r}; "
            f"it takes {sorted(default_settings(name))}"
        )
    sizes = {
        "vocab_size": vocab_size,
        "num_categories": num_categories,
        "num_subcategories": num_subcategories,
        "num_users": num_users,
    }
    params = inspect.signature(cls).parameters
    return cls(
        **{k: v for k, v in sizes.items() if k in params}, **settings, word_vectors=word_vectors
    )


__all__ = [
    "LSTUR",
    "MODELS",
    "NAML",
    "NRMS",
    "AdditiveAttention",
    "MultiHeadSelfAttention",
    "NewsRecommender",
    "SentenceNewsEncoder",
    "build_model",
    "default_settings",
]

"""The interface every news recommender shares: encode news once, encode users, score by dot
product."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import SentenceNewsEncoder

NEWS_ENCODERS = ("words", "sentence")


def select_news_encoder(
    kind: str, words: Callable[[], nn.Module], *, sentence_dim: int, news_dim: int, dropout: float
) -> nn.Module:
    """The model's own word-level news encoder (``kind="words"``, built by ``words()``) or a
    :class:`~llmrec.news.layers.SentenceNewsEncoder` over precomputed article embeddings
    (``kind="sentence"``)."""
    if kind == "words":
        return words()
    if kind == "sentence":
        return SentenceNewsEncoder(sentence_dim, news_dim, dropout)
    raise ValueError(f"news_encoder must be one of {NEWS_ENCODERS}, got {kind!r}")


class NewsRecommender(nn.Module):
    """Base class of the two-tower news recommenders of the MIND literature.

    A subclass sets ``self.news_encoder`` (a module mapping the news dict to ``[N, news_dim]``)
    and implements :meth:`encode_user`. A batch holds the features of its ``N`` unique articles
    once (``batch["news"]``: ``"title"`` ``[N, Lt]`` and ``"abstract"`` ``[N, La]`` token ids with
    0 as padding, ``"category"`` and ``"subcategory"`` ``[N]``, or ``"vectors"`` ``[N, d]`` for the
    sentence encoder) and refers to them by index: ``"history"`` ``[B, H]`` with
    ``"history_mask"`` ``[B, H]`` (True = a real click), ``"candidates"`` ``[B, C]`` and
    ``"users"`` ``[B]`` (0 = unknown user).

    Args:
        news_dim (int): Size of the news and user vectors.
    """

    news_encoder: nn.Module

    def __init__(self, news_dim: int) -> None:
        super().__init__()
        self.news_dim = news_dim

    def encode_news(self, news: dict[str, Tensor]) -> Tensor:
        """``[N, news_dim]`` vectors of the ``N`` articles described by ``news``."""
        return self.news_encoder(news)

    def encode_user(self, history: Tensor, mask: Tensor, users: Tensor) -> Tensor:
        """``[B, news_dim]`` user vectors from the vectors ``[B, H, news_dim]`` of their clicked
        news, ``mask`` ``[B, H]`` (True = a real click) and user ids ``users`` ``[B]``. A user
        with no click gets a finite vector."""
        raise NotImplementedError

    @staticmethod
    def score(users: Tensor, candidates: Tensor) -> Tensor:
        """Dot products ``[B, C]`` of user vectors ``[B, D]`` with candidates ``[B, C, D]``."""
        return (candidates @ users.unsqueeze(-1)).squeeze(-1)

    def forward(self, batch: dict) -> Tensor:
        """Scores ``[B, C]`` of the batch's candidates; the news encoder runs once over the
        batch's unique articles and their vectors are gathered by index."""
        vectors = self.encode_news(batch["news"])
        users = self.encode_user(vectors[batch["history"]], batch["history_mask"], batch["users"])
        return self.score(users, vectors[batch["candidates"]])

    @staticmethod
    def loss(scores: Tensor) -> Tensor:
        """Mean cross-entropy of ``scores`` ``[B, 1 + k]`` with the clicked candidate in column 0
        and ``k`` sampled negatives after it (the MIND training objective)."""
        return F.cross_entropy(scores, scores.new_zeros(len(scores), dtype=torch.long))

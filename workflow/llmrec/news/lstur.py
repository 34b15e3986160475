"""LSTUR: a GRU over clicked news started from a long-term user embedding (the 'ini' variant)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .base import NewsRecommender, select_news_encoder
from .layers import CNNTextEncoder, word_embedding


class LSTURNewsEncoder(nn.Module):
    """Title by CNN + additive attention, concatenated with category and subcategory embeddings.

    Args:
        embedding (nn.Embedding): Word embedding (token 0 = padding).
        num_categories (int): Number of categories.
        num_subcategories (int): Number of subcategories (0 = unknown, a learned row).
        filters (int): CNN filters.
        window (int): CNN window.
        query_dim (int): Query size of the additive attention.
        category_dim (int): Size of the category and subcategory embeddings.
        dropout (float): Dropout rate in the title encoder.
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        num_categories: int,
        num_subcategories: int,
        filters: int,
        window: int,
        query_dim: int,
        category_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.title = CNNTextEncoder(embedding.embedding_dim, filters, window, query_dim, dropout)
        self.category = nn.Embedding(num_categories, category_dim)
        self.subcategory = nn.Embedding(num_subcategories, category_dim)

    def forward(self, news: dict[str, Tensor]) -> Tensor:
        title = news["title"]
        return torch.cat(
            [
                self.title(self.embedding(title), title != 0),
                self.category(news["category"]),
                self.subcategory(news["subcategory"]),
            ],
            dim=-1,
        )


class LSTUR(NewsRecommender):
    r"""LSTUR-ini from `"Neural News Recommendation with Long- and Short-term User
    Representations" <https://aclanthology.org/P19-1033/>`_ (An et al., ACL 2019).

    The user vector is the last state of a GRU run over the user's clicked news in order, started
    from the user's long-term embedding. Row 0 of that embedding is the unknown user and stays
    zero; in training each user's long-term embedding is replaced by zeros with probability
    ``user_mask_prob``, so the model also learns to serve users it has not seen. News vectors
    (and so the GRU state) have ``filters + 2 * category_dim`` dimensions.

    Args:
        vocab_size (int): Number of word tokens, padding (0) included.
        num_categories (int): Number of categories.
        num_subcategories (int): Number of subcategories.
        num_users (int): Rows of the long-term user embedding, row 0 the unknown user.
        word_dim (int, optional): Size of the word vectors. (default: :obj:`300`)
        filters (int, optional): CNN filters. (default: :obj:`300`)
        window (int, optional): CNN window. (default: :obj:`3`)
        query_dim (int, optional): Query size of the title attention. (default: :obj:`200`)
        category_dim (int, optional): Size of the category and subcategory embeddings.
            (default: :obj:`100`)
        dropout (float, optional): Dropout rate in the news encoder. (default: :obj:`0.2`)
        user_mask_prob (float, optional): Probability of masking a user's long-term embedding in
            training. (default: :obj:`0.5`)
        freeze_words (bool, optional): Keep the word vectors fixed. (default: :obj:`False`)
        news_encoder (str, optional): ``"words"`` (title and topics) or ``"sentence"`` (a
            linear projection of ``news["vectors"]`` replaces them). (default: :obj:`"words"`)
        sentence_dim (int, optional): Size of ``news["vectors"]``. (default: :obj:`384`)
        word_vectors (Tensor, optional): ``[vocab_size, word_dim]`` initial word vectors.
            (default: :obj:`None`)
    """

    def __init__(
        self,
        vocab_size: int,
        num_categories: int,
        num_subcategories: int,
        num_users: int,
        *,
        word_dim: int = 300,
        filters: int = 300,
        window: int = 3,
        query_dim: int = 200,
        category_dim: int = 100,
        dropout: float = 0.2,
        user_mask_prob: float = 0.5,
        freeze_words: bool = False,
        news_encoder: str = "words",
        sentence_dim: int = 384,
        word_vectors: Tensor | None = None,
    ) -> None:
        super().__init__(filters + 2 * category_dim)
        self.news_encoder = select_news_encoder(
            news_encoder,
            lambda: LSTURNewsEncoder(
                word_embedding(vocab_size, word_dim, word_vectors, freeze_words),
                num_categories,
                num_subcategories,
                filters,
                window,
                query_dim,
                category_dim,
                dropout,
            ),
            sentence_dim=sentence_dim,
            news_dim=self.news_dim,
            dropout=dropout,
        )
        self.user_mask_prob = user_mask_prob
        self.user_embedding = nn.Embedding(num_users, self.news_dim, padding_idx=0)
        # Zeros, as Microsoft Recommenders' LSTUR: every user starts as the unknown user.
        nn.init.zeros_(self.user_embedding.weight)
        self.gru = nn.GRU(self.news_dim, self.news_dim, batch_first=True)

    def encode_user(self, history: Tensor, mask: Tensor, users: Tensor) -> Tensor:
        long_term = self.user_embedding(users)
        if self.training and self.user_mask_prob > 0:
            keep = torch.rand(len(users), 1, device=users.device) >= self.user_mask_prob
            long_term = long_term * keep
        # Move the real clicks to the front in their order, wherever the padding was.
        order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
        history = history.gather(1, order.unsqueeze(-1).expand_as(history))
        lengths = mask.sum(1)
        packed = pack_padded_sequence(
            history, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        _, last = self.gru(packed, long_term.unsqueeze(0).contiguous())
        # A user with no click is their long-term embedding (zeros if unknown or masked).
        return torch.where((lengths > 0).unsqueeze(-1), last[0], long_term)

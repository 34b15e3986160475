"""NAML: attentive multi-view news encoder (title, abstract, category, subcategory)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import NewsRecommender, select_news_encoder
from .layers import AdditiveAttention, CNNTextEncoder, word_embedding


class NAMLNewsEncoder(nn.Module):
    """Four views of an article, each a ``filters``-d vector, pooled by view-level attention:
    title and abstract by CNN + additive attention over a shared word embedding, category and
    subcategory by an embedding and a dense ReLU layer.

    Args:
        embedding (nn.Embedding): Word embedding (token 0 = padding).
        num_categories (int): Number of categories.
        num_subcategories (int): Number of subcategories (0 = unknown, a learned row).
        filters (int): CNN filters, the size of every view.
        window (int): CNN window.
        query_dim (int): Query size of the additive attentions.
        category_dim (int): Size of the category and subcategory embeddings.
        dropout (float): Dropout rate in the text views.
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
        word_dim = embedding.embedding_dim
        self.title = CNNTextEncoder(word_dim, filters, window, query_dim, dropout)
        self.abstract = CNNTextEncoder(word_dim, filters, window, query_dim, dropout)
        self.category = nn.Sequential(
            nn.Embedding(num_categories, category_dim), nn.Linear(category_dim, filters), nn.ReLU()
        )
        self.subcategory = nn.Sequential(
            nn.Embedding(num_subcategories, category_dim),
            nn.Linear(category_dim, filters),
            nn.ReLU(),
        )
        self.view_attention = AdditiveAttention(filters, query_dim)

    def forward(self, news: dict[str, Tensor]) -> Tensor:
        title, abstract = news["title"], news["abstract"]
        views = torch.stack(
            [
                self.title(self.embedding(title), title != 0),
                self.abstract(self.embedding(abstract), abstract != 0),
                self.category(news["category"]),
                self.subcategory(news["subcategory"]),
            ],
            dim=1,
        )
        return self.view_attention(views)


class NAML(NewsRecommender):
    r"""NAML from `"Neural News Recommendation with Attentive Multi-View Learning"
    <https://www.ijcai.org/proceedings/2019/536>`_ (Wu et al., IJCAI 2019).

    See :class:`NAMLNewsEncoder` for the news encoder; a user is the additive-attention pooling
    of their clicked news.

    Args:
        vocab_size (int): Number of word tokens, padding (0) included.
        num_categories (int): Number of categories.
        num_subcategories (int): Number of subcategories.
        word_dim (int, optional): Size of the word vectors. (default: :obj:`300`)
        filters (int, optional): CNN filters; news vectors have this size. (default: :obj:`400`)
        window (int, optional): CNN window. (default: :obj:`3`)
        query_dim (int, optional): Query size of the additive attentions. (default: :obj:`200`)
        category_dim (int, optional): Size of the category and subcategory embeddings.
            (default: :obj:`100`)
        dropout (float, optional): Dropout rate in the news encoder. (default: :obj:`0.2`)
        freeze_words (bool, optional): Keep the word vectors fixed. (default: :obj:`False`)
        news_encoder (str, optional): ``"words"`` (the four views) or ``"sentence"`` (a linear
            projection of ``news["vectors"]`` replaces them). (default: :obj:`"words"`)
        sentence_dim (int, optional): Size of ``news["vectors"]``. (default: :obj:`384`)
        word_vectors (Tensor, optional): ``[vocab_size, word_dim]`` initial word vectors.
            (default: :obj:`None`)
    """

    def __init__(
        self,
        vocab_size: int,
        num_categories: int,
        num_subcategories: int,
        *,
        word_dim: int = 300,
        filters: int = 400,
        window: int = 3,
        query_dim: int = 200,
        category_dim: int = 100,
        dropout: float = 0.2,
        freeze_words: bool = False,
        news_encoder: str = "words",
        sentence_dim: int = 384,
        word_vectors: Tensor | None = None,
    ) -> None:
        super().__init__(filters)
        self.news_encoder = select_news_encoder(
            news_encoder,
            lambda: NAMLNewsEncoder(
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
        self.user_attention = AdditiveAttention(self.news_dim, query_dim)

    def encode_user(self, history: Tensor, mask: Tensor, users: Tensor) -> Tensor:
        return self.user_attention(history, mask)

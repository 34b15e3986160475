"""NRMS: multi-head self-attention over title words and over clicked news."""

from __future__ import annotations

from torch import Tensor, nn

from .base import NewsRecommender, select_news_encoder
from .layers import AdditiveAttention, MultiHeadSelfAttention, word_embedding


class NRMSNewsEncoder(nn.Module):
    """Title words -> dropout -> multi-head self-attention -> dropout -> additive attention.

    Args:
        embedding (nn.Embedding): Word embedding (token 0 = padding).
        heads (int): Attention heads.
        head_dim (int): Size of each head.
        query_dim (int): Query size of the additive attention.
        dropout (float): Dropout rate on the word vectors and on the attention output.
    """

    def __init__(
        self, embedding: nn.Embedding, heads: int, head_dim: int, query_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.dropout = nn.Dropout(dropout)
        self.self_attention = MultiHeadSelfAttention(embedding.embedding_dim, heads, head_dim)
        self.attention = AdditiveAttention(heads * head_dim, query_dim)

    def forward(self, news: dict[str, Tensor]) -> Tensor:
        title = news["title"]
        mask = title != 0
        x = self.self_attention(self.dropout(self.embedding(title)), mask)
        return self.attention(self.dropout(x), mask)


class NRMS(NewsRecommender):
    r"""NRMS from `"Neural News Recommendation with Multi-Head Self-Attention"
    <https://aclanthology.org/D19-1671/>`_ (Wu et al., EMNLP 2019).

    News are encoded from their titles by word-level multi-head self-attention and additive
    attention; users by news-level multi-head self-attention over their clicked news and
    additive attention. The paper uses 16 heads of 16 dimensions; the defaults are the 20 x 20 of
    the MIND benchmark (Wu et al., ACL 2020) and Microsoft Recommenders' ``nrms.yaml``.

    Args:
        vocab_size (int): Number of word tokens, padding (0) included.
        word_dim (int, optional): Size of the word vectors. (default: :obj:`300`)
        heads (int, optional): Attention heads of both self-attentions. (default: :obj:`20`)
        head_dim (int, optional): Size of each head; news vectors have ``heads * head_dim``
            dimensions. (default: :obj:`20`)
        query_dim (int, optional): Query size of the additive attentions. (default: :obj:`200`)
        dropout (float, optional): Dropout rate in the news encoder. (default: :obj:`0.2`)
        freeze_words (bool, optional): Keep the word vectors fixed. (default: :obj:`False`)
        news_encoder (str, optional): ``"words"`` (titles, as in the paper) or ``"sentence"``
            (a linear projection of the precomputed ``news["vectors"]``). (default: :obj:`"words"`)
        sentence_dim (int, optional): Size of ``news["vectors"]`` with the sentence encoder;
            384 is MiniLM-L6's. (default: :obj:`384`)
        word_vectors (Tensor, optional): ``[vocab_size, word_dim]`` initial word vectors.
            (default: :obj:`None`)
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        word_dim: int = 300,
        heads: int = 20,
        head_dim: int = 20,
        query_dim: int = 200,
        dropout: float = 0.2,
        freeze_words: bool = False,
        news_encoder: str = "words",
        sentence_dim: int = 384,
        word_vectors: Tensor | None = None,
    ) -> None:
        super().__init__(heads * head_dim)
        self.news_encoder = select_news_encoder(
            news_encoder,
            lambda: NRMSNewsEncoder(
                word_embedding(vocab_size, word_dim, word_vectors, freeze_words),
                heads,
                head_dim,
                query_dim,
                dropout,
            ),
            sentence_dim=sentence_dim,
            news_dim=self.news_dim,
            dropout=dropout,
        )
        self.user_self_attention = MultiHeadSelfAttention(self.news_dim, heads, head_dim)
        self.user_attention = AdditiveAttention(self.news_dim, query_dim)

    def encode_user(self, history: Tensor, mask: Tensor, users: Tensor) -> Tensor:
        return self.user_attention(self.user_self_attention(history, mask), mask)

"""Building blocks shared by the news recommenders: attention pooling, self-attention, text CNN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def word_embedding(
    vocab_size: int, word_dim: int, word_vectors: Tensor | None = None, freeze: bool = False
) -> nn.Embedding:
    """A word embedding with token 0 as padding, optionally initialised from ``word_vectors``.

    Args:
        vocab_size (int): Number of tokens, padding (0) included.
        word_dim (int): Size of a word vector.
        word_vectors (Tensor, optional): ``[vocab_size, word_dim]`` initial vectors. Row 0 is
            replaced by zeros: a pretrained model's padding vector would otherwise leak into the
            convolution windows at the end of every title. (default: :obj:`None`)
        freeze (bool, optional): Keep the vectors fixed during training. (default: :obj:`False`)
    """
    embedding = nn.Embedding(vocab_size, word_dim, padding_idx=0)
    if word_vectors is not None:
        if tuple(word_vectors.shape) != (vocab_size, word_dim):
            raise ValueError(
                f"word_vectors has shape {tuple(word_vectors.shape)}, the model "
                f"expects (vocab_size, word_dim) = ({vocab_size}, {word_dim})"
            )
        with torch.no_grad():
            embedding.weight.copy_(word_vectors)
            embedding.weight[0].zero_()
    embedding.weight.requires_grad_(not freeze)
    return embedding


class AdditiveAttention(nn.Module):
    r"""Attention pooling with a learned query vector (Wu et al., NAML/NRMS):
    :math:`a_i = \mathbf{q}^\top \tanh(\mathbf{W} \mathbf{x}_i + \mathbf{b})`,
    :math:`\alpha = \mathrm{softmax}(a)`, output :math:`\sum_i \alpha_i \mathbf{x}_i`.

    Masked positions get weight 0; a row with no real position pools to the zero vector, not NaN.

    Args:
        in_dim (int): Size of the pooled vectors.
        query_dim (int, optional): Size of the query vector. (default: :obj:`200`)
    """

    def __init__(self, in_dim: int, query_dim: int = 200) -> None:
        super().__init__()
        self.projection = nn.Linear(in_dim, query_dim)
        self.query = nn.Linear(query_dim, 1, bias=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Pool ``x`` ``[..., L, in_dim]`` over ``L`` with ``mask`` ``[..., L]`` (True = real)."""
        scores = self.query(torch.tanh(self.projection(x))).squeeze(-1)
        if mask is None:
            weights = scores.softmax(-1)
        else:
            # A finite fill instead of -inf: a fully masked row gets uniform weights, which the
            # multiplication by the mask turns into zeros, and no NaN reaches the gradient.
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            weights = scores.softmax(-1) * mask
        return (weights.unsqueeze(-2) @ x).squeeze(-2)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention as in NRMS (Wu et al., EMNLP 2019).

    As in the paper, ``heads`` projections of size ``head_dim`` are concatenated with no output
    projection, so the input size (e.g. 300-d words) and the output size ``heads * head_dim``
    (e.g. 400) may differ, which ``torch.nn.MultiheadAttention`` does not allow.

    Args:
        in_dim (int): Size of the input vectors.
        heads (int): Number of attention heads.
        head_dim (int): Output size of each head.
    """

    def __init__(self, in_dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        self.qkv = nn.Linear(in_dim, 3 * heads * head_dim, bias=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend over ``x`` ``[B, L, in_dim]``, keys limited to ``mask`` ``[B, L]`` (True =
        real); returns ``[B, L, heads * head_dim]``. Rows at masked positions are not
        meaningful and are left to the caller's pooling to ignore."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn_mask = None
        if mask is not None:
            # A row with no real key gives NaN or zeros depending on torch version and kernel;
            # let it attend to all positions instead, as the pooling that follows drops it.
            keys = mask | ~mask.any(-1, keepdim=True)
            attn_mask = keys[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return out.transpose(1, 2).reshape(batch, length, self.heads * self.head_dim)


class CNNTextEncoder(nn.Module):
    """A text view of NAML and LSTUR: dropout on the word vectors, a 1-d convolution with ReLU,
    dropout, then additive attention over the real (unpadded) positions.

    Args:
        word_dim (int): Size of the input word vectors.
        filters (int): Number of convolution filters (the output size).
        window (int): Width of the convolution window, padded to keep the length.
        query_dim (int): Query size of the additive attention.
        dropout (float): Dropout rate on the word vectors and on the convolution output.
    """

    def __init__(
        self, word_dim: int, filters: int, window: int, query_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(word_dim, filters, window, padding="same")
        self.attention = AdditiveAttention(filters, query_dim)

    def forward(self, words: Tensor, mask: Tensor) -> Tensor:
        """Encode ``words`` ``[N, L, word_dim]`` with ``mask`` ``[N, L]`` into ``[N, filters]``."""
        x = self.conv(self.dropout(words).transpose(1, 2)).relu().transpose(1, 2)
        return self.attention(self.dropout(x), mask)


class SentenceNewsEncoder(nn.Module):
    """The PLM-style news encoder: a fixed sentence embedding of each article (``news["vectors"]``,
    e.g. from MiniLM), dropout, and a linear projection to the model's news dimension.

    Args:
        sentence_dim (int): Size of the sentence embeddings.
        news_dim (int): Size of the news vectors the recommender works with.
        dropout (float): Dropout rate on the sentence embeddings.
    """

    def __init__(self, sentence_dim: int, news_dim: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(sentence_dim, news_dim)

    def forward(self, news: dict[str, Tensor]) -> Tensor:
        """``[N, news_dim]`` vectors of the ``N`` articles in ``news["vectors"]``."""
        return self.projection(self.dropout(news["vectors"]))

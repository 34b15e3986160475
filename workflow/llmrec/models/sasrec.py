"""SASRec: next-item prediction with causal self-attention over a user's recent items."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

PAD = -1
"""Item id that fills a sequence on the left (the same ``-1`` as ranking lists' padding)."""


class SASRec(nn.Module):
    r"""SASRec from `"Self-Attentive Sequential Recommendation"
    <https://arxiv.org/abs/1808.09781>`_ (Kang & McAuley, ICDM 2018).

    The hidden state at position :math:`t` of a left-padded item sequence attends to positions
    :math:`\le t` only; its dot product with every item embedding scores the item at
    :math:`t + 1`. The input and output item embeddings are one table, as in the paper.

    As in the paper and its reference code: item embeddings scaled by :math:`\sqrt{d}` plus
    learned positional embeddings, dropout on their sum, pre-LayerNorm blocks
    :math:`x + \mathrm{Dropout}(g(\mathrm{LN}(x)))` with a :math:`d \to d \to d` ReLU
    feed-forward layer, dropout on the attention weights, a final LayerNorm, Xavier-initialised
    embeddings. Deviations:

    * The blocks are ``torch.nn.TransformerEncoderLayer``: their queries, keys and values all
      come from the normalised input (the reference code normalises the queries only).
    * Positions are counted from the right end of the ``max_len`` window, so the most recent
      item always has position ``max_len - 1`` whatever the batch's length ``L <= max_len``.
      With the paper's inputs (always ``max_len`` long, left-padded) this is the same thing.
    * Padding is masked out of the keys, so a real position attends to real positions only and
      outputs do not depend on how much padding precedes them (each padding position attends to
      itself alone, which keeps its softmax finite; its output is meaningless and unused).

    Item ids are ``0 .. n_items - 1`` and padding is :data:`PAD` (``-1``). Internally ids are
    shifted by one, so row 0 of :attr:`item_embedding` is the (zero, never trained) padding row.

    Args:
        n_items (int): Number of items.
        max_len (int, optional): Longest sequence, and the number of positional embeddings;
            callers keep each user's last ``max_len`` items. (default: :obj:`50`)
        hidden (int, optional): Size of embeddings and hidden states :math:`d`.
            (default: :obj:`64`)
        num_layers (int, optional): Number of self-attention blocks. (default: :obj:`2`)
        num_heads (int, optional): Attention heads per block; must divide ``hidden``.
            (default: :obj:`1`)
        dropout (float, optional): Dropout on the embeddings, attention weights and block
            outputs. (default: :obj:`0.2`)
    """

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        hidden: int = 64,
        num_layers: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide hidden ({hidden})")
        self.n_items = n_items
        self.max_len = max_len
        self.hidden = hidden
        self.num_heads = num_heads
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                hidden,
                num_heads,
                dim_feedforward=hidden,
                dropout=dropout,
                activation="relu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.item_embedding.weight)
        nn.init.xavier_normal_(self.position_embedding.weight)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, seqs: Tensor) -> Tensor:
        """Hidden states ``[B, L, hidden]`` of left-padded item ids ``seqs`` ``[B, L]``,
        ``L <= max_len``; the state at position t summarises items ``<= t``."""
        return self.encode(self.embed(seqs), seqs == PAD)

    def embed(self, seqs: Tensor) -> Tensor:
        """Input embeddings ``[B, L, hidden]``: scaled item embeddings plus positions."""
        length = seqs.shape[1]
        if length > self.max_len:
            raise ValueError(
                f"sequences of length {length} exceed max_len={self.max_len}; "
                f"keep each user's last {self.max_len} items"
            )
        positions = torch.arange(self.max_len - length, self.max_len, device=seqs.device)
        return self.item_embedding(seqs + 1) * math.sqrt(self.hidden) + self.position_embedding(
            positions
        )

    def encode(self, x: Tensor, padding: Tensor) -> Tensor:
        """Hidden states ``[B, L, hidden]`` of input embeddings ``x``; ``padding`` ``[B, L]`` is
        True at padded positions. Subclasses add their own terms to ``embed``'s output."""
        length = x.shape[1]
        x = self.dropout(x)
        # True = may not attend: the future, and padding keys except a position's own.
        future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        own = torch.eye(length, dtype=torch.bool, device=x.device)
        mask = future | (padding[:, None, :] & ~own)
        mask = mask.repeat_interleave(self.num_heads, dim=0)  # [B * heads, L, L]
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.final_norm(x)

    def scores(self, hidden_last: Tensor) -> Tensor:
        """Scores ``[B, n_items]``: each hidden state ``[B, hidden]`` dotted with every item."""
        return hidden_last @ self.item_embedding.weight[1:].T

    def extra_repr(self) -> str:
        return f"{self.n_items}, max_len={self.max_len}, hidden={self.hidden}"

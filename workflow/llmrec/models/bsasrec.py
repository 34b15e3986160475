"""Behaviour-aware SASRec: SASRec over a behaviour-typed sequence (view, cart, ..., buy)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmrec.models.sasrec import PAD, SASRec


class BehaviourSASRec(SASRec):
    r"""SASRec with a learned behaviour embedding added at every position.

    Position :math:`t` of a user's sequence holds an item and the behaviour it was met in (an
    index into the funnel, ``0`` the first stage such as a view, ``n_behaviours - 1`` the target
    such as a buy). Its input embedding is SASRec's (scaled item embedding plus position) plus
    the embedding of its behaviour, the input layer of MB-STR (`"Multi-Behavior Sequential
    Transformer Recommender" <https://doi.org/10.1145/3477495.3532023>`_, Yuan et al.,
    SIGIR 2022), whose behaviour-specific attention and prediction heads are left out: the
    blocks, the causal mask and the scoring against every item are SASRec's. Trained to predict
    the next *target* item (``llmrec.training.next_target``).

    Behaviours are ``0 .. n_behaviours - 1`` and padding is :data:`PAD` (``-1``), shifted by one
    as items are, so row 0 of :attr:`behaviour_embedding` is the (zero, never trained) padding
    row. With ``n_behaviours=0`` there is no behaviour embedding, the behaviours are ignored and
    the model is exactly :class:`SASRec` (same parameters, drawn in the same order from the same
    seed): plain SASRec on the target-only sequence runs through the same code.

    Args:
        n_items (int): Number of items.
        n_behaviours (int): Number of behaviours, the target included; ``0`` for plain SASRec.
        max_len (int, optional): Longest sequence, and the number of positional embeddings.
            (default: :obj:`50`)
        hidden (int, optional): Size of embeddings and hidden states. (default: :obj:`64`)
        num_layers (int, optional): Number of self-attention blocks. (default: :obj:`2`)
        num_heads (int, optional): Attention heads per block; must divide ``hidden``.
            (default: :obj:`1`)
        dropout (float, optional): Dropout on the embeddings, attention weights and block
            outputs. (default: :obj:`0.2`)
    """

    def __init__(
        self,
        n_items: int,
        n_behaviours: int,
        max_len: int = 50,
        hidden: int = 64,
        num_layers: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
    ) -> None:
        if n_behaviours < 0:
            raise ValueError(f"n_behaviours must be 0 (plain SASRec) or more, got {n_behaviours}")
        super().__init__(n_items, max_len, hidden, num_layers, num_heads, dropout)
        self.n_behaviours = n_behaviours
        # Created after SASRec's parameters so that those are drawn exactly as SASRec draws them.
        self.behaviour_embedding = (
            nn.Embedding(n_behaviours + 1, hidden, padding_idx=0) if n_behaviours else None
        )
        self._reset_behaviours()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self._reset_behaviours()

    def _reset_behaviours(self) -> None:
        # SASRec.__init__ calls reset_parameters before the behaviour table exists.
        table = getattr(self, "behaviour_embedding", None)
        if table is not None:
            nn.init.xavier_normal_(table.weight)
            with torch.no_grad():
                table.weight[0].zero_()

    def forward(self, seqs: Tensor, behaviours: Tensor | None = None) -> Tensor:
        """Hidden states ``[B, L, hidden]`` of left-padded item ids ``seqs`` ``[B, L]`` and their
        behaviours ``[B, L]`` (``PAD`` where ``seqs`` is); ``behaviours`` may be ``None`` only
        when ``n_behaviours == 0``, and is ignored then."""
        x = self.embed(seqs)
        if self.behaviour_embedding is not None:
            if behaviours is None or behaviours.shape != seqs.shape:
                raise ValueError(
                    f"a model of {self.n_behaviours} behaviours needs behaviours of the items' "
                    f"shape {tuple(seqs.shape)}, got "
                    f"{None if behaviours is None else tuple(behaviours.shape)}"
                )
            if int(behaviours.max()) >= self.n_behaviours or int(behaviours.min()) < PAD:
                raise ValueError(
                    f"behaviours must lie in 0..{self.n_behaviours - 1} (or {PAD} for padding), "
                    f"got values from {int(behaviours.min())} to {int(behaviours.max())}"
                )
            x = x + self.behaviour_embedding(behaviours + 1)
        return self.encode(x, seqs == PAD)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, n_behaviours={self.n_behaviours}"

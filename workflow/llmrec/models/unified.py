"""The unified multi-behaviour recommender: a cascading GNN and a behaviour-aware Transformer
over ID items with a frozen LLM view."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from llmrec.models.bsasrec import BehaviourSASRec
from llmrec.models.cascading_gcn import CascadingGCN
from llmrec.models.pfr import info_nce
from llmrec.models.sasrec import PAD


class UnifiedMBR(nn.Module):
    r"""A user's next target item from its behaviour graphs and its behaviour-typed sequence,
    with every item seen through its ID and its LLM text.

    **Items, two views** (LLM-ESR, Liu et al., `"LLM-ESR: Large Language Models Enhancement for
    Long-tailed Sequential Recommendation" <https://arxiv.org/abs/2405.20646>`_, NeurIPS 2024):
    the collaborative view :math:`\mathbf{c}_i` is the cascading GNN's item output over the
    item's ID embedding (without the GNN, the ID embedding itself); the semantic view is the
    item's frozen LLM text embedding :math:`\mathbf{t}_i` (a non-persistent buffer, set by
    :meth:`set_item_text`) through a small MLP adapter :math:`g`. An item's vector is

    .. math::
        \mathbf{v}_i = \mathbf{c}_i + g(\mathbf{t}_i).

    A sum, not a learned gate: the adapter is one network shared by every item, so what it
    learns from the head's many events carries to a tail item through its text, whereas a
    per-item gate would have to be learned from the item's own few events, which is exactly
    what a tail item lacks. (LLM-ESR concatenates its two views' user and item vectors, whose
    dot product is likewise a sum of the views' scores.) The Transformer reads the same
    :math:`\mathbf{v}_i` at its input that the scores use at the output, tied as SASRec ties
    its tables (untied, the fused model had test HR@1 0.18 on the tests' planted shop after 30
    epochs, tied 0.55); so with the GNN the Transformer's own item table is dropped and each
    item has one ID embedding.

    **Users, two encoders and a fusion**: the GNN is :class:`CascadingGCN` (CRGCN's residual
    cascade, Yan et al. TOIS 2023) over the per-behaviour graphs in funnel order, the target
    last; its user output is the user's graph state :math:`\mathbf{h}^g_u`. The Transformer is
    :class:`BehaviourSASRec` (MB-STR's behaviour embedding on SASRec, Yuan et al. SIGIR 2022;
    the BSASRec of part 1) over the behaviour-typed sequence; its state at position :math:`t`
    is :math:`\mathbf{h}^s_{u,t}`. A gate fuses them,

    .. math::
        \mathbf{z} = \sigma(\mathbf{W}[\mathbf{h}^g_u; \mathbf{h}^s_{u,t}] + \mathbf{b}), \qquad
        \mathbf{u}_t = \mathbf{z} \odot \mathbf{h}^g_u + (1 - \mathbf{z}) \odot
        \mathbf{h}^s_{u,t},

    and the next target item is scored :math:`\mathbf{u}_t^\top \mathbf{v}_i` against every
    item (cross-entropy, :func:`llmrec.training.unified.fit_unified`). Without one encoder the
    other's state is the user state and there is no gate.

    **Alignment** (RLMRec, Ren et al. WWW 2024, through the PFR study's
    :func:`~llmrec.models.pfr.info_nce`): :meth:`alignment_loss` pulls a batch's collaborative
    item vectors towards their own adapted text vectors and away from the other items' of the
    batch.

    **What the GNN state sees.** The graphs are built once per stage, not per time step. In
    training they hold the whole training part, so the graph state fused at a mid-sequence
    position would have seen the edge to that position's own answer, which no test case's
    graph holds (the validation and test targets are never in their stage's graphs); the gate
    then learns to trust a shortcut that is gone at test time (on ml-100k the fused model fell
    below its own Transformer). Training therefore leaves a share of the target edges out of the
    graph each epoch (``holdout`` of :func:`~llmrec.training.unified.fit_unified`): the
    positions they answer train the fused state (``fuse``), the others the Transformer's state
    alone. At evaluation, as for part 1's models (``studies/mbr.py``'s ``Stage``), validation
    propagates over the validation-stage graphs and reads the training part, and test
    propagates over the test-stage graphs and reads the whole test-time history.

    Args:
        n_users (int): Number of users (rows ``0 .. n_users - 1`` of every adjacency).
        n_items (int): Number of items.
        n_behaviours (int): Behaviours in the graphs and the sequence, the target included and
            last; ``1`` for the target alone, where the Transformer is plain SASRec (a behaviour
            embedding of one kind would be a constant).
        embedding_dim (int, optional): Size of every embedding and state. (default: :obj:`64`)
        num_layers (int, optional): LightGCN layers per behaviour block, and Transformer
            blocks. (default: :obj:`2`)
        max_len (int, optional): Most recent events the Transformer reads. (default: :obj:`50`)
        num_heads (int, optional): Attention heads; must divide ``embedding_dim``.
            (default: :obj:`1`)
        dropout (float, optional): The Transformer's dropout. (default: :obj:`0.2`)
        text_dim (int, optional): Size of the LLM item embeddings; ``None`` for no LLM view.
            (default: :obj:`None`)
        use_gnn (bool, optional): Build the cascading GNN. (default: :obj:`True`)
        use_seq (bool, optional): Build the Transformer. (default: :obj:`True`)
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_behaviours: int,
        embedding_dim: int = 64,
        num_layers: int = 2,
        max_len: int = 50,
        num_heads: int = 1,
        dropout: float = 0.2,
        text_dim: int | None = None,
        use_gnn: bool = True,
        use_seq: bool = True,
    ) -> None:
        super().__init__()
        if not (use_gnn or use_seq):
            raise ValueError("UnifiedMBR needs the GNN, the Transformer or both")
        if n_behaviours < 1:
            raise ValueError(f"UnifiedMBR needs at least the target behaviour, got {n_behaviours}")
        self.n_users, self.n_items, self.n_behaviours = n_users, n_items, n_behaviours
        self.embedding_dim, self.max_len, self.text_dim = embedding_dim, max_len, text_dim
        self.gnn = (
            CascadingGCN(n_users, n_items, n_behaviours, embedding_dim, num_layers)
            if use_gnn
            else None
        )
        self.seq = (
            BehaviourSASRec(
                n_items,
                n_behaviours if n_behaviours > 1 else 0,
                max_len,
                embedding_dim,
                num_layers,
                num_heads,
                dropout,
            )
            if use_seq
            else None
        )
        if self.gnn is not None and self.seq is not None:
            self.seq.item_embedding = None  # the GNN's ID table is the items' one
        self.fusion = nn.Linear(2 * embedding_dim, embedding_dim) if use_gnn and use_seq else None
        if text_dim is not None:
            # Frozen and an input, not a weight: left out of the state dict (the weights file).
            self.register_buffer("item_text", torch.zeros(n_items, text_dim), persistent=False)
            self.adapter = nn.Sequential(
                nn.Linear(text_dim, 2 * embedding_dim),
                nn.GELU(),
                nn.Linear(2 * embedding_dim, embedding_dim),
            )
        else:
            self.item_text, self.adapter = None, None

    def set_item_text(self, embeddings: Tensor) -> None:
        """Load the frozen LLM item embeddings ``[n_items, text_dim]``."""
        if self.item_text is None or embeddings.shape != self.item_text.shape:
            raise ValueError(
                f"the model takes LLM item embeddings of shape "
                f"{None if self.item_text is None else tuple(self.item_text.shape)}, got "
                f"{tuple(embeddings.shape)}"
            )
        self.item_text.copy_(embeddings)

    def propagate(self, adjs: Sequence[Tensor] | None) -> tuple[Tensor | None, Tensor, Tensor]:
        """The graph user states ``[n_users, d]`` (``None`` without the GNN), the collaborative
        item vectors and the scoring item vectors (both ``[n_items, d]``), given one normalised
        adjacency per behaviour in funnel order (ignored without the GNN)."""
        if self.gnn is not None:
            user_graph, collaborative = self.gnn.propagate(adjs)
        else:
            user_graph, collaborative = None, self.seq.item_embedding.weight[1:]
        items = collaborative
        if self.adapter is not None:
            items = collaborative + self.adapter(self.item_text)
        return user_graph, collaborative, items

    def forward(
        self,
        users: Tensor,
        seqs: Tensor,
        behaviours: Tensor,
        user_graph: Tensor | None,
        items: Tensor,
        fuse: Tensor | None = None,
    ) -> Tensor:
        """User states ``[B, L, d]`` at every position of left-padded sequences ``seqs`` and
        their ``behaviours`` ``[B, L]`` of ``users`` ``[B]``, given :meth:`propagate`'s graph
        states and scoring item vectors ``items``. Without the Transformer every position
        holds the graph state. ``fuse`` (``[B, L]`` bool, default all): where False, the
        Transformer's state alone (training: the positions whose answer is an edge of the
        graph the states were propagated over, :func:`llmrec.training.unified.fit_unified`)."""
        if self.seq is None:
            return user_graph[users][:, None, :].expand(-1, seqs.shape[1], -1)
        sequential = self._sequence_states(seqs, behaviours, items)
        if self.gnn is None:
            return sequential
        graph = user_graph[users][:, None, :].expand_as(sequential)
        gate = torch.sigmoid(self.fusion(torch.cat([graph, sequential], -1)))
        if fuse is not None:
            gate = gate * fuse[..., None]
        return gate * graph + (1 - gate) * sequential

    def _sequence_states(self, seqs: Tensor, behaviours: Tensor, items: Tensor) -> Tensor:
        """:class:`BehaviourSASRec`'s states with the item vectors ``items`` at its input in
        place of its own table (its ``embed``: scaled items plus positions, plus behaviours)."""
        seq = self.seq
        if seqs.shape[1] > seq.max_len:
            raise ValueError(
                f"sequences of length {seqs.shape[1]} exceed max_len={seq.max_len}; "
                f"keep each user's last {seq.max_len} events"
            )
        padded = torch.cat([items.new_zeros(1, items.shape[1]), items])  # PAD + 1 = row 0
        positions = torch.arange(seq.max_len - seqs.shape[1], seq.max_len, device=seqs.device)
        x = padded[seqs + 1] * math.sqrt(seq.hidden) + seq.position_embedding(positions)
        if seq.behaviour_embedding is not None:
            x = x + seq.behaviour_embedding(behaviours + 1)
        return seq.encode(x, seqs == PAD)

    def scores(self, states: Tensor, items: Tensor) -> Tensor:
        """Scores ``[..., n_items]`` of user states ``[..., d]`` against scoring item vectors."""
        return states @ items.T

    def alignment_loss(self, items: Tensor, collaborative: Tensor, temperature: float) -> Tensor:
        """InfoNCE between the collaborative vectors of the distinct ``items`` and their adapted
        LLM vectors (the other items of the batch the negatives); zero without an LLM view."""
        if self.adapter is None:
            return collaborative.new_zeros(())
        items = items.unique()
        return info_nce(collaborative[items], self.adapter(self.item_text[items]), temperature)

    def extra_repr(self) -> str:
        return (
            f"{self.n_users}, {self.n_items}, n_behaviours={self.n_behaviours}, "
            f"embedding_dim={self.embedding_dim}, text_dim={self.text_dim}"
        )

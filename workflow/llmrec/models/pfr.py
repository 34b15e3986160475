"""PFR: LightGCN whose embeddings are aligned with text embeddings of LLM-written profiles.

The collaborative side is :class:`~llmrec.models.lightgcn.LightGCN`. The semantic side is a
fixed matrix of text embeddings per user and per item (a BERT-type sentence encoder applied to
LLM-written profiles). A small MLP projects the semantic vectors into the collaborative space and
an InfoNCE loss pulls each node's collaborative embedding towards its own projected profile and
away from the others', as in RLMRec's contrastive variant (Ren et al., "Representation Learning
with Large Language Models for Recommendation", WWW 2024, arXiv:2310.15950): a batch's users
against the projected profiles of *all* users, its items against those of the batch's items
(RLMRec's ``LightGCN_plus.cal_loss``). RLMRec sums over the batch's rows, repeats included;
here each distinct node counts once.

The same class is the SGE baseline when its semantic vectors embed the raw item text instead of
an LLM profile (users: the mean embedding of their training items' texts): the graph model with
text embeddings and no LLM. Only the inputs differ, so the comparison isolates the profiles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .lightgcn import LightGCN


def info_nce(
    anchor: Tensor, candidates: Tensor, temperature: float, targets: Tensor | None = None
) -> Tensor:
    """Mean InfoNCE (cosine similarities): row ``i`` of ``anchor`` against every row of
    ``candidates``, row ``targets[i]`` the positive and the others negatives. Without
    ``targets`` row ``i`` matches row ``i`` (in-batch negatives)."""
    logits = F.normalize(anchor, dim=-1) @ F.normalize(candidates, dim=-1).T / temperature
    if targets is None:
        targets = torch.arange(len(anchor), device=anchor.device)
    return F.cross_entropy(logits, targets)


class PFR(LightGCN):
    r"""LightGCN aligned with semantic (text) embeddings of users and items.

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        user_semantic (Tensor): ``[num_users, d_s]`` fixed text embeddings of user profiles.
        item_semantic (Tensor): ``[num_items, d_s]`` fixed text embeddings of item profiles.
        embedding_dim (int, optional): Size of the collaborative embeddings. (default: :obj:`64`)
        num_layers (int, optional): LightGCN layers. (default: :obj:`3`)
        hidden_dim (int, optional): Hidden size of the projection MLP. (default: :obj:`256`)
        temperature (float, optional): InfoNCE temperature :math:`\tau`. (default: :obj:`0.2`)
        max_nodes (int, optional): Most users (and most items) of a batch aligned per step, a
            random subset of its distinct ones; ``None`` (or 0) aligns them all, as RLMRec
            does. The cost grows with this number (docs/pfr.md measures it).
            (default: :obj:`None`)
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        user_semantic: Tensor,
        item_semantic: Tensor,
        embedding_dim: int = 64,
        num_layers: int = 3,
        hidden_dim: int = 256,
        temperature: float = 0.2,
        max_nodes: int | None = None,
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers)
        if user_semantic.shape[0] != num_users or item_semantic.shape[0] != num_items:
            raise ValueError(
                f"semantic embeddings cover {user_semantic.shape[0]} users and "
                f"{item_semantic.shape[0]} items; the graph has {num_users} and {num_items}"
            )
        self.register_buffer("user_semantic", user_semantic.float())
        self.register_buffer("item_semantic", item_semantic.float())
        self.temperature = temperature
        self.max_nodes = max_nodes
        self.project = nn.Sequential(
            nn.Linear(item_semantic.shape[1], hidden_dim),
            nn.LeakyReLU(),
            nn.Linear(hidden_dim, embedding_dim),
        )

    def alignment_loss(
        self, users: Tensor, items: Tensor, user_final: Tensor, item_final: Tensor
    ) -> Tensor:
        """InfoNCE between collaborative and projected semantic embeddings of the batch's
        distinct users (against every user's profile) and items (against the batch's items')."""
        users, items = self._some(users.unique()), self._some(items.unique())
        user_loss = info_nce(
            user_final[users], self.project(self.user_semantic), self.temperature, targets=users
        )
        item_loss = info_nce(
            item_final[items], self.project(self.item_semantic[items]), self.temperature
        )
        return user_loss + item_loss

    def _some(self, nodes: Tensor) -> Tensor:
        """At most ``max_nodes`` of ``nodes``, drawn with torch's generator (seeded by the run)."""
        if not self.max_nodes or len(nodes) <= self.max_nodes:
            return nodes
        return nodes[torch.randperm(len(nodes), device=nodes.device)[: self.max_nodes]]

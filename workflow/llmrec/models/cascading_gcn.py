"""A cascading multi-behaviour GNN: one LightGCN block per behaviour in funnel order."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmrec.models.lightgcn import LightGCN, lightgcn_layers


class CascadingGCN(LightGCN):
    r"""A cascading multi-behaviour graph network in the style of CRGCN (Yan et al., `"Cascading
    Residual Graph Convolutional Network for Multi-Behavior Recommendation"
    <https://arxiv.org/abs/2205.13128>`_, TOIS 2023) and MB-CGCN (Cheng et al., `"Multi-Behavior
    Recommendation with Cascading Graph Convolution Networks"
    <https://arxiv.org/abs/2303.15720>`_, WWW 2023).

    Behaviours come in funnel order (e.g. view, fav, cart, buy), the target last. With
    :math:`\mathbf{X}_{-1} = [\mathbf{E}_U; \mathbf{E}_I]` the ego embeddings and
    :math:`\hat{\mathbf{A}}_k` behaviour :math:`k`'s normalised bipartite graph
    (:func:`llmrec.models.lightgcn.normalized_bipartite`), block :math:`k` computes

    .. math::
        \mathbf{H}_k = \mathbf{X}_{k-1} \mathbf{W}_k \quad (\text{or } \mathbf{X}_{k-1}),
        \qquad
        \mathbf{X}_k = \mathbf{H}_k + \operatorname{norm}\Big(\tfrac{1}{L+1}
        \sum_{l=0}^{L} \hat{\mathbf{A}}_k^l \mathbf{H}_k\Big),

    and the target behaviour's :math:`\mathbf{X}_{K-1}` gives the scores
    :math:`\mathbf{x}_u^\top \mathbf{x}_i`. ``norm`` is CRGCN's row-wise L2 normalisation; the
    residual :math:`\mathbf{H}_k + \dots` is CRGCN's; the optional :math:`\mathbf{W}_k` (one for
    users, one for items, before every block but the first) is MB-CGCN's feature transformation.
    Losses, L2 term and scores are :class:`LightGCN`'s (BPR on target pairs, L2 on the batch's ego
    embeddings), so :func:`llmrec.training.loop.train_bpr` trains it with one adjacency per
    behaviour.

    Where it differs from the reference code (github.com/MingshiYan/CRGCN,
    github.com/SS-00-SS/MBCGCN):

    - CRGCN's block output is the last layer :math:`\hat{\mathbf{A}}^L \mathbf{H}` plus a zero-
      initialised bias per layer; ours is LightGCN's layer mean without bias (MB-CGCN's block), so
      that one behaviour without residual and normalisation is exactly LightGCN.
    - CRGCN adds a BPR loss on every behaviour's output with that behaviour's pairs (multi-task);
      ours trains on target pairs only (``train_bpr``'s one pair set).
    - CRGCN initialises the ego embeddings with Xavier and regularises the whole tables; ours
      follows :class:`LightGCN` (:math:`\mathcal{N}(0, 0.1^2)`, L2 on the batch's rows).
    - MB-CGCN sums the blocks' outputs and keeps a separate embedding table per behaviour
      (pre-trained by MF); ours has one table, and the residual already carries every block's
      output to the last. Its :math:`\mathbf{W}_k` start as :math:`\mathcal{N}(0, 0.01^2)`;
      ours start as the identity, so that ``feature_transform`` starts from the plain cascade.
    - Neither node nor message dropout.

    Args:
        n_users (int): Number of users (rows ``0 .. n_users-1`` of every adjacency).
        n_items (int): Number of items (the following rows).
        n_behaviours (int): Number of behaviours, i.e. of adjacencies ``propagate`` takes.
        embedding_dim (int, optional): Size of every embedding. (default: :obj:`64`)
        num_layers (int, optional): LightGCN layers :math:`L` in every block. (default: :obj:`2`)
        residual (bool, optional): Add each block's input to its output (CRGCN).
            (default: :obj:`True`)
        normalize (bool, optional): L2-normalise each block's propagation per row (CRGCN).
            (default: :obj:`True`)
        feature_transform (bool, optional): Learn the linear maps :math:`\mathbf{W}_k` between
            behaviours (MB-CGCN). (default: :obj:`False`)
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_behaviours: int,
        embedding_dim: int = 64,
        num_layers: int = 2,
        residual: bool = True,
        normalize: bool = True,
        feature_transform: bool = False,
    ) -> None:
        if n_behaviours < 1:
            raise ValueError(f"CascadingGCN needs at least one behaviour, got {n_behaviours}")
        super().__init__(n_users, n_items, embedding_dim, num_layers)
        self.n_behaviours = n_behaviours
        self.residual = residual
        self.normalize = normalize
        self.feature_transform = feature_transform
        n_maps = n_behaviours - 1 if feature_transform else 0
        self.user_transforms = nn.ParameterList(
            [nn.Parameter(torch.eye(embedding_dim)) for _ in range(n_maps)]
        )
        self.item_transforms = nn.ParameterList(
            [nn.Parameter(torch.eye(embedding_dim)) for _ in range(n_maps)]
        )

    def reset_parameters(self) -> None:
        super().reset_parameters()
        # LightGCN.__init__ calls this before the maps exist; they are built as the identity.
        for w in [*getattr(self, "user_transforms", []), *getattr(self, "item_transforms", [])]:
            nn.init.eye_(w)

    def behaviour_outputs(self, adjs: Sequence[Tensor]) -> list[Tensor]:
        """Every block's output ``X_k`` (``[(U+I), dim]``, users first), in funnel order."""
        if len(adjs) != self.n_behaviours:
            raise ValueError(
                f"CascadingGCN was built for {self.n_behaviours} behaviours, got "
                f"{len(adjs)} adjacencies"
            )
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        outputs = []
        for k, adj in enumerate(adjs):
            if k > 0 and self.feature_transform:
                w_u, w_i = self.user_transforms[k - 1], self.item_transforms[k - 1]
                x = torch.cat([x[: self.num_users] @ w_u, x[self.num_users :] @ w_i])
            h = lightgcn_layers(adj, x, self.num_layers)
            if self.normalize:
                h = F.normalize(h, dim=-1)
            x = x + h if self.residual else h
            outputs.append(x)
        return outputs

    def propagate(self, adjs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """Final ``(user, item)`` embeddings: the target (last) behaviour's block output."""
        final = self.behaviour_outputs(adjs)[-1]
        return final[: self.num_users], final[self.num_users :]

    def extra_repr(self) -> str:
        return (
            f"{self.num_users}, {self.num_items}, n_behaviours={self.n_behaviours}, "
            f"embedding_dim={self.embedding_dim}, num_layers={self.num_layers}, "
            f"residual={self.residual}, normalize={self.normalize}, "
            f"feature_transform={self.feature_transform}"
        )

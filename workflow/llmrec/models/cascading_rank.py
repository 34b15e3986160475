"""CascadingRank: training-free personalised ranking on cascading behaviour graphs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from llmrec.models.lightgcn import csr_matmul, csr_tensor, normalized_bipartite


class CascadingRank:
    r"""CascadingRank from `"Personalized Ranking on Cascading Behavior Graphs for Accurate
    Multi-Behavior Recommendation" <https://arxiv.org/abs/2502.11335>`_ (Ko, Jeon and Jung,
    2025; code github.com/geonwooko/CascadingRank). No training: a user's item scores come from
    a personalised ranking iteration on each behaviour's bipartite graph in funnel order, each
    behaviour's ranking starting from and pulled towards the previous one's.

    For behaviour :math:`b = 1..B` (funnel order, the target last) with user x item matrix
    :math:`\mathbf{A}_b`, degrees :math:`\mathbf{D}_{U,b}, \mathbf{D}_{I,b}` and
    :math:`\tilde{\mathbf{A}}_b = \mathbf{D}_{U,b}^{-1/2} \mathbf{A}_b \mathbf{D}_{I,b}^{-1/2}`,
    the queries of user :math:`u` are :math:`\mathbf{q}_U = \mathbf{e}_u` (the user itself) and
    :math:`\mathbf{q}_{I,b} = \mathbf{A}_b^\top \mathbf{D}_{U,b}^{-1} \mathbf{e}_u` (the user's
    items in behaviour :math:`b`, each :math:`1/\deg_b(u)`). Starting from
    :math:`\mathbf{r}^{(b,0)} = \mathbf{q}_b`, the iteration (Jacobi: both sides use step
    :math:`t`) is

    .. math::
        \mathbf{r}_U^{(b,t+1)} &= \gamma\, \tilde{\mathbf{A}}_b \mathbf{r}_I^{(b,t)}
            + \alpha\, \mathbf{q}_U + \beta\, \mathbf{r}_U^{(b-1)} \\
        \mathbf{r}_I^{(b,t+1)} &= \gamma\, \tilde{\mathbf{A}}_b^\top \mathbf{r}_U^{(b,t)}
            + \alpha\, \mathbf{q}_{I,b} + \beta\, \mathbf{r}_I^{(b-1)}

    with :math:`\gamma = 1 - \alpha - \beta` the smoothing weight, :math:`\alpha` the query
    fitting weight, :math:`\beta` the cascading alignment weight, and
    :math:`\mathbf{r}^{(0)} = \mathbf{q}_1` before the first behaviour. Behaviour :math:`b`
    stops when :math:`\lVert \mathbf{r}^{(b,t+1)} - \mathbf{r}^{(b,t)} \rVert_1 \le \epsilon`
    (users and items together) or after ``iterations`` steps; its last iterate is
    :math:`\mathbf{r}^{(b)}`. The scores are the target behaviour's :math:`\mathbf{r}_I^{(B)}`.

    These are the equations of the official code (``src/cascadingrank.py``); the paper's own
    method section could not be read here (only its abstract and introduction), so the names
    follow the code's README (:math:`\alpha` query fitting, :math:`\beta` cascading alignment,
    :math:`\gamma = 1-\alpha-\beta` smoothing). Differences from that code:

    - The stopping test is per user (column): a user's ranking is frozen at its first step under
      ``tolerance``. The code stops a whole batch when the batch's *mean* per-user residual is
      under it, so a user's scores depended on which batch it was in; here they do not.
    - A user or item without edges in a behaviour has a zero row in :math:`\tilde{\mathbf{A}}_b`
      and a zero query; the code gives it degree :math:`10^{-4}`, which gives the same zeros.

    Memory: per chunk of ``chunk_size`` users, about ``4 * chunk_size * (4 U + 5 I)`` bytes of
    dense float32 (ranking, next iterate, cascade and a difference for users; the same and the
    query for items), plus the graphs in CSR; nothing is ``U x I``. Chunk 256 on Taobao's 1M
    users and 4M items needs about 20 GiB; lower it for less.

    Args:
        matrices (Sequence[scipy.sparse matrix]): One user x item matrix per behaviour in funnel
            order, the target behaviour last, all of one shape (the same id space).
        alpha (float, optional): Query fitting weight :math:`\alpha`. (default: :obj:`0.0`, the
            code's default and the paper's best for HR@10 on Taobao; Tmall 0.7, Tenrec 0.3)
        beta (float, optional): Cascading alignment weight :math:`\beta`; ``alpha + beta <= 1``.
            (default: :obj:`0.9`, Taobao; Tmall 0.2, Tenrec 0.6)
        iterations (int, optional): Most iterations per behaviour. (default: :obj:`100`)
        tolerance (float, optional): :math:`\epsilon`, the L1 change of a user's ranking under
            which its iteration stops. (default: :obj:`1e-4`)
        chunk_size (int, optional): Users ranked together inside :meth:`scores`; only memory
            and speed depend on it. (default: :obj:`256`)
        device (str or torch.device, optional): Where the graphs and the iteration live.
            (default: :obj:`"cpu"`)
    """

    def __init__(
        self,
        matrices: Sequence[sp.spmatrix],
        alpha: float = 0.0,
        beta: float = 0.9,
        iterations: int = 100,
        tolerance: float = 1e-4,
        chunk_size: int = 256,
        device: str | torch.device = "cpu",
    ) -> None:
        if not matrices or len({m.shape for m in matrices}) != 1:
            raise ValueError(
                "CascadingRank needs at least one behaviour matrix, all of one user x item shape, "
                f"got shapes {[m.shape for m in matrices]}"
            )
        if alpha < 0 or beta < 0 or alpha + beta > 1:
            raise ValueError(
                f"CascadingRank needs alpha, beta >= 0 and alpha + beta <= 1, got {alpha}, {beta}"
            )
        if iterations < 1 or chunk_size < 1:
            raise ValueError(
                f"iterations and chunk_size must be at least 1, got {iterations}, {chunk_size}"
            )
        self.n_users, self.n_items = matrices[0].shape
        self.alpha, self.beta, self.gamma = alpha, beta, 1.0 - alpha - beta
        self.iterations, self.tolerance, self.chunk_size = iterations, tolerance, chunk_size
        self.device = torch.device(device)
        self.queries: list[sp.csr_matrix] = []
        self.user_item: list[Tensor] = []
        self.item_user: list[Tensor] = []
        for m in matrices:
            m = sp.csr_matrix(m, dtype=np.float32)
            deg = np.asarray(m.sum(axis=1)).ravel()
            inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
            # Row u is q_{I,b} of user u: the user's items, each 1/deg(u).
            self.queries.append(sp.csr_matrix(sp.diags(inv) @ m))
            adj = normalized_bipartite(m)
            self.user_item.append(csr_tensor(adj[: self.n_users, self.n_users :], self.device))
            self.item_user.append(csr_tensor(adj[self.n_users :, : self.n_users], self.device))

    @torch.no_grad()
    def scores(self, users: Tensor) -> Tensor:
        """Scores ``[len(users), n_items]`` (float32, on ``device``) of every item for ``users``."""
        ids = users.cpu().numpy().astype(np.int64)
        chunks = [
            self._rank(ids[start : start + self.chunk_size])
            for start in range(0, len(ids), self.chunk_size)
        ]
        if not chunks:
            return torch.empty(0, self.n_items, device=self.device)
        return torch.cat(chunks)

    def _rank(self, users: np.ndarray) -> Tensor:
        """The cascade for a chunk of users; rankings are ``[nodes, chunk]`` (one column a user)."""
        columns = torch.arange(len(users), device=self.device)
        rows = torch.from_numpy(users).to(self.device)
        query_user = torch.zeros(self.n_users, len(users), device=self.device)
        query_user[rows, columns] = 1.0
        cascade_user = cascade_item = None
        for k, (user_item, item_user) in enumerate(zip(self.user_item, self.item_user)):
            query_item = torch.from_numpy(self.queries[k][users].T.toarray()).to(self.device)
            if cascade_user is None:
                cascade_user, cascade_item = query_user, query_item
            rank_user, rank_item = query_user.clone(), query_item.clone()
            active = torch.ones(len(users), dtype=torch.bool, device=self.device)
            for _ in range(self.iterations):
                next_user = self.gamma * csr_matmul(user_item, rank_item)
                next_user += self.beta * cascade_user
                next_user[rows, columns] += self.alpha
                next_item = self.gamma * csr_matmul(item_user, rank_user)
                next_item += self.alpha * query_item + self.beta * cascade_item
                change = (next_user - rank_user).abs_().sum(0)
                change += (next_item - rank_item).abs_().sum(0)
                # A user already under the tolerance keeps its ranking: its stop must not
                # depend on the other users of the chunk.
                frozen = ~active
                next_user[:, frozen] = rank_user[:, frozen]
                next_item[:, frozen] = rank_item[:, frozen]
                rank_user, rank_item = next_user, next_item
                active &= change > self.tolerance
                if not active.any():
                    break
            cascade_user, cascade_item = rank_user, rank_item
        return rank_item.T.contiguous()

    def __repr__(self) -> str:
        return (
            f"CascadingRank({self.n_users}, {self.n_items}, behaviours={len(self.user_item)}, "
            f"alpha={self.alpha}, beta={self.beta}, iterations={self.iterations}, "
            f"tolerance={self.tolerance})"
        )

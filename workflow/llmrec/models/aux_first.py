"""Aux-first: recommend what the user already viewed, carted or favourited, then what is popular."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


class AuxFirst:
    """A training-free ranking: the user's own auxiliary items first, then popular items.

    For each user, the items met in an auxiliary behaviour among the user's first ``cut[u]``
    events and not met in the target behaviour there (not yet bought) come first, ordered by
    the strongest behaviour they were met in (its place in ``strength``), then by recency (the
    latest event of a behaviour in ``strength`` with that item, whatever its behaviour), most
    recent first. Every other item follows, by ``popularity``. On e-commerce data a large share
    of purchases was carted or viewed before, which makes this a hard baseline to beat.

    The order is encoded as scores: the i-th (from 0) of a user's ``m`` auxiliary items scores
    ``1 + m - i`` (at least 2), every other item ``popularity / (max(popularity) + 1)``
    (below 1); equal popularities are left to the ranking, which breaks ties by item id.
    Nothing at or after a user's cut is read, so the same object serves validation
    (``cut = n_train``) and test (``cut`` = the history length) when built once per stage.

    Args:
        items: per user (index = user id), item ids in time order.
        behaviours: per user, each event's behaviour index (``0`` the first funnel stage).
        cut: per user, how many leading events are the history.
        target: the target behaviour's index; its events are never in the auxiliary tier.
        popularity: ``[n_items]`` non-negative popularity (training target counts, e.g.
            ``Popularity(target_train).counts.numpy()``); its length is the catalogue size.
        strength: auxiliary behaviour indices, strongest first; behaviours left out are ignored
            (not in the tier). For e-commerce funnels ``[view, fav, cart, buy]`` the default, every
            non-target behaviour from the highest index down, gives cart > fav > view; for
            MovieLens ``[dislike, neutral, like]``, ``[1]`` keeps neutral and drops dislike, and
            ``[1, 0]`` puts neutral before dislike. (default None)
    """

    def __init__(
        self,
        items: Sequence[np.ndarray],
        behaviours: Sequence[np.ndarray],
        cut: np.ndarray,
        target: int,
        popularity: np.ndarray,
        strength: Sequence[int] | None = None,
    ) -> None:
        cut = np.asarray(cut, dtype=np.int64)
        popularity = np.asarray(popularity, dtype=np.float64)
        n_users, n_items = len(items), len(popularity)
        if len(behaviours) != n_users or len(cut) != n_users:
            raise ValueError(
                f"items, behaviours and cut must have one entry per user, got {n_users}, "
                f"{len(behaviours)} and {len(cut)}"
            )
        if len(popularity) and popularity.min() < 0:
            raise ValueError("popularity must be non-negative: it is a count of target events")
        seen_items = np.concatenate([np.asarray(items[u][:c], np.int64) for u, c in enumerate(cut)])
        seen_kinds = np.concatenate(
            [np.asarray(behaviours[u][:c], np.int64) for u, c in enumerate(cut)]
        )
        top = max(target, int(seen_kinds.max(initial=0)))
        if strength is None:
            strength = [b for b in range(top, -1, -1) if b != target]
        strength = [int(b) for b in strength]
        if target in strength or len(set(strength)) < len(strength) or min(strength, default=0) < 0:
            raise ValueError(
                f"strength must list distinct auxiliary behaviour indices (not the target "
                f"{target}), strongest first, got {strength}"
            )
        self.strength = strength
        rank_of = np.full(max([top, *strength]) + 1, -1, dtype=np.int64)
        rank_of[strength] = np.arange(len(strength))

        owner = np.repeat(np.arange(n_users, dtype=np.int64), cut)
        position = np.arange(len(owner)) - np.repeat(np.cumsum(cut) - cut, cut)
        key = owner * n_items + seen_items  # one key per (user, item) pair
        rank = rank_of[seen_kinds]
        aux = (rank >= 0) & ~np.isin(key, key[seen_kinds == target])
        key, rank, position = key[aux], rank[aux], position[aux]

        # Per (user, item): strongest behaviour and latest position.
        order = np.argsort(key, kind="stable")
        pairs, starts = np.unique(key[order], return_index=True)
        best = np.minimum.reduceat(rank[order], starts) if len(pairs) else rank[:0]
        latest = np.maximum.reduceat(position[order], starts) if len(pairs) else position[:0]
        user, item = pairs // n_items, pairs % n_items
        # Within each user: strongest first, then most recent.
        order = np.lexsort((-latest, best, user))
        user, item = user[order], item[order]
        per_user = np.bincount(user, minlength=n_users)
        first = np.cumsum(per_user) - per_user
        place = np.arange(len(user)) - first[user]
        score = 1.0 + per_user[user] - place
        self.tier = sp.csr_matrix(
            (score.astype(np.float32), (user, item)), shape=(n_users, n_items)
        )
        """``n_users x n_items``: each user's auxiliary items and their scores (at least 2)."""
        self.base = torch.from_numpy(
            (popularity / (popularity.max(initial=0.0) + 1.0)).astype(np.float32)
        )
        """``[n_items]`` scores of the items outside a user's tier, in ``[0, 1)``."""

    def scores(self, users: Tensor) -> Tensor:
        """Scores ``[len(users), n_items]`` on the CPU (see the class docstring)."""
        out = self.base.repeat(len(users), 1)
        rows = self.tier[users.cpu().numpy()]
        row_of = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
        out[torch.from_numpy(row_of), torch.from_numpy(rows.indices.astype(np.int64))] = (
            torch.from_numpy(rows.data)
        )
        return out

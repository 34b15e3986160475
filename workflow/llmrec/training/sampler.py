"""The negative sampler and BPR mini-batches shared by every study."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch


class NegativeSampler:
    """Draws negative items for users; built once per matrix of positives, called per batch.

    Items are drawn uniformly, or proportionally to ``item_weights`` (e.g. item counts for a
    popularity-based sampler). A draw that falls among the user's positives is drawn again,
    only for the colliding entries, until none is left (rejection sampling, vectorised over the
    batch); draws are independent, so one user's negatives may repeat.

    Args:
        n_items (int): Number of items to draw from.
        positives (scipy.sparse matrix, optional): ``n_users x n_items``; the stored entries of a
            row are the items never drawn for that user. :obj:`None` allows every item.
            (default: :obj:`None`)
        item_weights (numpy.ndarray, optional): ``[n_items]`` non-negative weights; :obj:`None`
            draws uniformly. (default: :obj:`None`)
    """

    def __init__(
        self,
        n_items: int,
        positives: sp.spmatrix | None = None,
        *,
        item_weights: np.ndarray | None = None,
    ) -> None:
        self.n_items = n_items
        self.probs = None
        drawable = np.ones(n_items, dtype=bool)
        if item_weights is not None:
            weights = np.asarray(item_weights, dtype=np.float64)
            self.probs = weights / weights.sum()
            drawable = weights > 0
        self.keys = None
        if positives is not None:
            positives = sp.csr_matrix(positives)
            if positives.shape[1] != n_items:
                raise ValueError(f"positives has {positives.shape[1]} items, expected {n_items}")
            if not positives.has_canonical_format:
                positives = positives.copy()
                positives.sum_duplicates()  # and sorts the indices of each row
            rows = np.repeat(
                np.arange(positives.shape[0], dtype=np.int64), np.diff(positives.indptr)
            )
            # Row-major keys of a CSR with sorted indices are sorted: one searchsorted per
            # batch tests every (user, item) draw, without touching the matrix again.
            self.keys = rows * n_items + positives.indices
            self.n_free = drawable.sum() - np.bincount(
                rows, weights=drawable[positives.indices], minlength=positives.shape[0]
            )

    def __call__(self, users: np.ndarray, n_neg: int, rng: np.random.Generator) -> np.ndarray:
        """``n_neg`` negatives per entry of ``users``: an int64 array ``[len(users), n_neg]``."""
        users = np.asarray(users, dtype=np.int64)
        negatives = self._draw((len(users), n_neg), rng)
        if self.keys is None:
            return negatives
        stuck = self.n_free[users] <= 0
        if stuck.any():
            raise ValueError(
                f"users {np.unique(users[stuck])[:5].tolist()} have every drawable "
                f"item among their positives, so no negative can be sampled"
            )
        rows = np.repeat(users, n_neg)
        flat = negatives.reshape(-1)
        todo = np.flatnonzero(self._is_positive(rows, flat))
        while len(todo):
            flat[todo] = self._draw(len(todo), rng)
            todo = todo[self._is_positive(rows[todo], flat[todo])]
        return negatives

    def _draw(self, size: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        if self.probs is None:
            return rng.integers(0, self.n_items, size=size)
        return rng.choice(self.n_items, size=size, p=self.probs)

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0:
            return np.zeros(len(users), dtype=bool)
        query = users * self.n_items + items
        found = np.searchsorted(self.keys, query)
        return self.keys[np.minimum(found, len(self.keys) - 1)] == query


def sample_negatives(
    users: np.ndarray,
    n_items: int,
    positives: sp.spmatrix,
    n_neg: int = 1,
    *,
    rng: np.random.Generator,
    exclude_positives: bool = True,
    item_weights: np.ndarray | None = None,
) -> np.ndarray:
    """``n_neg`` negatives per entry of ``users``, shape ``[len(users), n_neg]``, in one call.

    See :class:`NegativeSampler`; ``exclude_positives=False`` lets positives be drawn. Build a
    ``NegativeSampler`` instead when drawing for many batches of the same positives.
    """
    sampler = NegativeSampler(
        n_items, positives if exclude_positives else None, item_weights=item_weights
    )
    return sampler(users, n_neg, rng)


def bpr_batches(
    train: sp.spmatrix,
    batch_size: int,
    rng: np.random.Generator,
    *,
    item_weights: np.ndarray | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One epoch of ``(users, pos, neg)`` LongTensor batches: every training pair once.

    The pairs come in a random order drawn from ``rng``, each with one negative that is not a
    training item of the user (:class:`NegativeSampler`, weighted by ``item_weights`` if given).
    The reference LightGCN instead draws as many users uniformly, then one positive of each;
    visiting every interaction once gives the same number of steps, lets no pair go unseen in
    an epoch, and weights users by activity as the BPR objective over pairs does (PyG's example
    and RecBole do the same).
    """
    train = sp.csr_matrix(train)
    sampler = NegativeSampler(train.shape[1], train, item_weights=item_weights)
    users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    items = train.indices.astype(np.int64)
    order = rng.permutation(len(users))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        neg = sampler(users[idx], 1, rng)[:, 0]
        yield torch.from_numpy(users[idx]), torch.from_numpy(items[idx]), torch.from_numpy(neg)

"""Popularity: every user gets the items most often met in the target behaviour in training."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


class Popularity:
    """Scores each item by the number of users with it in the training target graph.

    The sanity floor of a study: no personalisation. Ties (equal counts) are left to the
    ranking, which breaks them by item id (``llmrec.evaluation.ranking.topk``).

    Args:
        target_train: ``n_users x n_items`` training graph of the target behaviour; a stored
            nonzero entry is one (user, item) pair, whatever its value (repeated purchases by
            one user count once).
    """

    def __init__(self, target_train: sp.csr_matrix) -> None:
        graph = sp.csr_matrix(target_train, copy=True)
        graph.sum_duplicates()
        graph.eliminate_zeros()
        self.counts: Tensor = torch.from_numpy(
            np.bincount(graph.indices, minlength=graph.shape[1]).astype(np.float32)
        )
        """Users per item, ``[n_items]`` float32."""

    def scores(self, users: Tensor) -> Tensor:
        """Scores ``[len(users), n_items]`` (the same row for every user), a new CPU tensor."""
        return self.counts.repeat(len(users), 1)

"""Reading the data stage's artifacts back as the models use them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """One split protocol as user x item CSR matrices (1 where the user interacted)."""

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix


def load_split(path: str | Path, n_users: int, n_items: int) -> Interactions:
    """Read ``split/{loo,random}.parquet`` into train/valid/test CSR matrices (duplicates once)."""
    t = pq.read_table(path, columns=["user_id", "item_id", "split"])
    users = t.column("user_id").to_numpy()
    items = t.column("item_id").to_numpy()
    split = np.asarray(t.column("split").to_pylist(), dtype=object)

    def csr(mask: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix(
            (np.ones(mask.sum(), np.float32), (users[mask], items[mask])), shape=(n_users, n_items)
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    return Interactions(csr(split == "train"), csr(split == "valid"), csr(split == "test"))


@dataclass(frozen=True)
class Graph:
    """The training bipartite graph (see ``encode.build_graph``)."""

    n_users: int
    n_items: int
    user_indptr: np.ndarray
    user_items: np.ndarray
    user_norm: np.ndarray

    def normalized_adjacency(self) -> sp.csr_matrix:
        """The symmetric ``(U+I) x (U+I)`` matrix D^-1/2 A D^-1/2 of LightGCN."""
        r = sp.csr_matrix(
            (self.user_norm, self.user_items, self.user_indptr), shape=(self.n_users, self.n_items)
        )
        return sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)


def load_graph(path: str | Path) -> Graph:
    g = np.load(path)
    return Graph(
        int(g["n_users"]), int(g["n_items"]), g["user_indptr"], g["user_items"], g["user_norm"]
    )

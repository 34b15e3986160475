"""Reading the data stage's artifacts back as the models use them."""

from __future__ import annotations

import json
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


# The parquet metadata key of mbr/sequences.parquet that holds its dataset, funnel and target.
SEQUENCES_METADATA = b"llmrec.mbr"


def read_sequences_metadata(path: str | Path) -> dict:
    """The dataset, funnel and target stored in ``mbr/sequences.parquet``."""
    meta = pq.read_schema(path).metadata or {}
    if SEQUENCES_METADATA not in meta:
        raise ValueError(f"{path} has no multi-behaviour metadata; rebuild it (rule mbr_sequences)")
    return json.loads(meta[SEQUENCES_METADATA])


@dataclass(frozen=True)
class BehaviourGraphs:
    """One user x item graph per behaviour of the multi-behaviour study, same id space
    (``multi_behaviour.build_graphs``): ``matrices[b]`` is 1.0 where the user had behaviour
    ``b`` on the item, once however often."""

    n_users: int
    n_items: int
    behaviours: tuple[str, ...]
    matrices: dict[str, sp.csr_matrix]

    def merged(self) -> sp.csr_matrix:
        """Every behaviour's edges in one graph (an edge once, whatever its behaviours)."""
        union = sum(self.matrices.values(), sp.csr_matrix((self.n_users, self.n_items)))
        union = sp.csr_matrix(union, dtype=np.float32)
        union.data[:] = 1.0
        return union


def load_behaviour_graphs(path: str | Path) -> BehaviourGraphs:
    """Read ``mbr/graphs_{valid,test}.npz``."""
    g = np.load(path)
    n_users, n_items = int(g["n_users"]), int(g["n_items"])
    behaviours = tuple(str(b) for b in g["behaviours"])
    matrices = {
        b: sp.csr_matrix(
            (
                np.ones(len(g[f"{b}_indices"]), np.float32),
                g[f"{b}_indices"],
                g[f"{b}_indptr"],
            ),
            shape=(n_users, n_items),
        )
        for b in behaviours
    }
    return BehaviourGraphs(n_users, n_items, behaviours, matrices)


@dataclass(frozen=True)
class BehaviourSequences:
    """Per user (indexed by user id) the test-time history of ``mbr/sequences.parquet``.

    ``items``, ``behaviours`` (index into ``funnel``) and ``timestamps`` hold one array per user
    in time order, repeats kept; its first ``n_train[u]`` events are the training part (before
    the validation time). ``valid_item``/``test_item`` are -1 for users not evaluated;
    ``target`` is the target's index in ``funnel`` (its last).
    """

    items: list[np.ndarray]
    behaviours: list[np.ndarray]
    timestamps: list[np.ndarray]
    n_train: np.ndarray
    valid_item: np.ndarray
    test_item: np.ndarray
    funnel: tuple[str, ...]
    target: int


def load_behaviour_sequences(path: str | Path) -> BehaviourSequences:
    """Read ``mbr/sequences.parquet`` (its funnel and target from the file's metadata)."""
    meta = read_sequences_metadata(path)
    t = pq.read_table(path)

    def per_user(column: str) -> list[np.ndarray]:
        lists = t.column(column).combine_chunks()
        offsets = lists.offsets.to_numpy()
        # Views of one flat array: no per-user copies.
        return np.split(lists.flatten().to_numpy(), offsets[1:-1] - offsets[0])

    def ids(column: str) -> np.ndarray:
        return t.column(column).to_numpy().astype(np.int64)

    return BehaviourSequences(
        items=per_user("items"),
        behaviours=per_user("behaviours"),
        timestamps=per_user("timestamps"),
        n_train=ids("n_train"),
        valid_item=ids("valid_item"),
        test_item=ids("test_item"),
        funnel=tuple(meta["funnel"]),
        target=meta["funnel"].index(meta["target"]),
    )

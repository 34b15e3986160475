"""Item indexing for P5: the text by which the model reads and writes each item.

Three methods from OpenP5 ("How to Index Item IDs for Recommendation Foundation Models",
Hua et al. 2023, https://arxiv.org/abs/2305.06569):

- **sequential**: consecutive numbers in order of first appearance, so items that users meet
  together share number prefixes (and T5 word pieces). Numbering the training parts first avoids
  the leak of the original P5, where numbering each user's whole sequence in order made a user's
  test item, very often, the number right after their last training item.
- **random**: a seeded permutation of the same numbers: same vocabulary, no structure.
- **collaborative**: recursive spectral clustering of the item co-occurrence graph; an item's
  code is its path of cluster tokens plus its position within the leaf, e.g. ``"<c3><c17><c5>"``.

Every index is a ``list[str]`` with ``index[item_id]`` the item's text.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

from llmrec.io import atomic_path

log = logging.getLogger(__name__)

FIRST_ID = 1001
"""The first item number, as in OpenP5 (so every ID has four digits on small datasets)."""

METHODS = ("sequential", "random", "collaborative")

# Graphs up to this many items are decomposed densely: exact, deterministic and fast enough;
# ARPACK is reserved for large top-level graphs.
_DENSE_LIMIT = 1500
_KMEANS_ITERATIONS = 100
_TOKEN = re.compile(r"<[^<>]*>|[^<>]+")


def _check_items(sequences: Sequence[np.ndarray], n_items: int) -> list[np.ndarray]:
    """The sequences as int64 arrays; raise if an item id falls outside ``0 .. n_items-1``."""
    arrays = [np.asarray(s, dtype=np.int64).ravel() for s in sequences]
    for user, seq in enumerate(arrays):
        if seq.size and (seq.min() < 0 or seq.max() >= n_items):
            raise ValueError(
                f"user {user} has item ids outside 0..{n_items - 1} "
                f"(min {seq.min()}, max {seq.max()}); is n_items right?"
            )
    return arrays


def _as_text(numbers: np.ndarray) -> list[str]:
    return [str(int(x)) for x in numbers]


def sequential_indexing(
    sequences: Sequence[np.ndarray], n_items: int, start: int = FIRST_ID
) -> list[str]:
    """OpenP5's sequential indexing, numbered without leaking validation and test items.

    Items are numbered ``start, start+1, ...`` in order of first appearance: first across every
    user's training part (the sequence without its last two items) in user order, then across
    the remaining last-two items, then items never seen, in id order.

    Args:
        sequences: one 1-D int array per user (index = user id), item ids in time order.
        n_items: number of items; ids are ``0 .. n_items-1``.
        start: the first number. (default: :obj:`FIRST_ID`)

    Returns:
        ``index[item_id]``, the decimal text of a permutation of ``start .. start+n_items-1``.
    """
    arrays = _check_items(sequences, n_items)
    # Training parts of all users before any held-out item, so no held-out item's number
    # depends on where it sits in its own user's sequence.
    order = [s[:-2] for s in arrays] + [s[-2:] for s in arrays] + [np.arange(n_items)]
    stream = np.concatenate(order)
    _, first = np.unique(stream, return_index=True)  # position of each item's first appearance
    items_in_order = stream[np.sort(first)]
    numbers = np.empty(n_items, dtype=np.int64)
    numbers[items_in_order] = np.arange(start, start + n_items)
    return _as_text(numbers)


def random_indexing(n_items: int, seed: int, start: int = FIRST_ID) -> list[str]:
    """A seeded random assignment of the numbers ``start .. start+n_items-1`` to items.

    Args:
        n_items: number of items.
        seed: seed of ``numpy.random.default_rng``.
        start: the first number. (default: :obj:`FIRST_ID`)
    """
    rng = np.random.default_rng(seed)
    return _as_text(start + rng.permutation(n_items))


def training_cooccurrence(sequences: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Item-item graph: the weight of ``(i, j)`` is the number of users whose training part
    (sequence without its last two items) holds both ``i`` and ``j``; the diagonal is zero.

    Whole training parts, not windows: P5's collaborative indexing groups items that the same
    users like, whatever the distance between them in time.

    Args:
        sequences: one 1-D int array per user, item ids in time order.
        n_items: number of items.
    """
    arrays = _check_items(sequences, n_items)
    rows, cols = [], []
    for user, seq in enumerate(arrays):
        items = np.unique(seq[:-2])
        rows.append(np.full(items.size, user))
        cols.append(items)
    rows_all = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols_all = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    users_items = sp.csr_matrix(
        (np.ones(rows_all.size), (rows_all, cols_all)), shape=(len(arrays), n_items)
    )
    graph = (users_items.T @ users_items).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    return graph


def _spectral_embedding(graph: sp.csr_matrix, k: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of the top-``k`` eigenvectors of ``D^-1/2 A D^-1/2``, scaled to unit length (Ng,
    Jordan and Weiss 2001). Nodes without edges get a zero row. Raises ``ArpackError`` or
    ``ArpackNoConvergence`` if ARPACK fails on a large graph."""
    n = graph.shape[0]
    degree = np.asarray(graph.sum(axis=1)).ravel()
    inv_sqrt = np.zeros(n)
    inv_sqrt[degree > 0] = 1 / np.sqrt(degree[degree > 0])
    normalized = sp.diags(inv_sqrt) @ graph @ sp.diags(inv_sqrt)
    if n <= _DENSE_LIMIT or k >= n - 1:
        _, vectors = np.linalg.eigh(normalized.toarray())
        vectors = vectors[:, -k:]
    else:
        # A seeded start vector: ARPACK's own is random and would break determinism.
        _, vectors = eigsh(normalized, k=k, which="LA", v0=rng.uniform(-1, 1, n))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 1e-12)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; labels of the non-empty clusters only.

    Fewer than ``k`` clusters come back when points coincide (k-means++ stops once every point
    is a centre) or a cluster empties during the iterations.
    """
    centres = [points[rng.integers(len(points))]]
    for _ in range(k - 1):
        dist = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        if dist.sum() <= 1e-12:
            break
        centres.append(points[rng.choice(len(points), p=dist / dist.sum())])
    centres_arr = np.array(centres)
    labels = np.full(len(points), -1)
    for _ in range(_KMEANS_ITERATIONS):
        dist = ((points[:, None, :] - centres_arr[None, :, :]) ** 2).sum(axis=2)
        new_labels = dist.argmin(axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        # An empty cluster keeps its old centre; it is dropped when labels are read.
        for c in range(len(centres_arr)):
            if (labels == c).any():
                centres_arr[c] = points[labels == c].mean(axis=0)
    return labels


def _in_order(group: np.ndarray, n_clusters: int, cluster_size: int) -> list[np.ndarray]:
    """Fallback split: ``group`` cut in id order into nearly equal parts, as few as fill leaves
    of ``cluster_size`` (at most ``n_clusters``), so codes stay short."""
    return np.array_split(group, min(n_clusters, -(-len(group) // cluster_size)))


def _split(
    graph: sp.csr_matrix,
    group: np.ndarray,
    n_clusters: int,
    cluster_size: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Spectral clustering of ``group`` (sorted item ids) on its induced subgraph.

    Children are ordered by their smallest item id, so the codes do not depend on k-means's
    arbitrary label numbers. Whenever clustering cannot make progress (ARPACK fails, or all
    items land in one cluster, e.g. a subgraph without edges) the group is cut in id order,
    which guarantees that every child is smaller than its parent.
    """
    k = min(n_clusters, len(group))
    sub = graph[group][:, group]
    if sub.nnz == 0:
        return _in_order(group, n_clusters, cluster_size)
    try:
        embedding = _spectral_embedding(sub, k, rng)
    except (ArpackError, ArpackNoConvergence) as err:
        log.warning(
            "spectral clustering of %d items failed (%s); splitting them in id order",
            len(group),
            err,
        )
        return _in_order(group, n_clusters, cluster_size)
    labels = _kmeans(embedding, k, rng)
    _, first = np.unique(labels, return_index=True)
    children = [group[labels == labels[i]] for i in np.sort(first)]
    if len(children) < 2:
        return _in_order(group, n_clusters, cluster_size)
    return children


def collaborative_indexing(
    sequences: Sequence[np.ndarray],
    n_items: int,
    *,
    n_clusters: int = 20,
    cluster_size: int = 100,
    seed: int = 0,
) -> list[str]:
    """OpenP5's collaborative indexing by recursive spectral clustering.

    The graph is :func:`training_cooccurrence` (training parts only, so validation and test
    items do not shape the codes). Items are split into ``n_clusters`` groups by spectral
    clustering, and every group larger than ``cluster_size`` again, until each leaf holds at
    most ``cluster_size`` items. An item's code is the cluster number at each level followed by
    its position (in id order) within its leaf, every number written as a token ``<c{n}>``:
    ``"<c3><c17><c5>"`` is the 6th item of the 18th sub-cluster of cluster 3. One token family
    serves every level (fewer new tokens for the model); the depth tells the levels apart.

    Items without any co-occurrence in training (cold items, and items only ever alone in a
    training part) carry no collaborative signal; they form one more top-level cluster, after
    the ``n_clusters`` of the graph, cut in id order like any other group.

    Codes are unique and prefix-free (a leaf has no sub-clusters, so no code continues
    another), which constrained decoding over a token trie relies on. Codes may differ in
    depth where the clustering is uneven. At most ``max(n_clusters + 1, cluster_size)``
    distinct tokens ``<c0>, <c1>, ...`` occur.

    Args:
        sequences: one 1-D int array per user (index = user id), item ids in time order.
        n_items: number of items; ids are ``0 .. n_items-1``.
        n_clusters: clusters per split, at least 2. (default: :obj:`20`)
        cluster_size: most items in a leaf, at least 1. (default: :obj:`100`)
        seed: seed of the eigensolver's start vector and of k-means. (default: :obj:`0`)

    Returns:
        ``index[item_id]``, the item's code.
    """
    if n_clusters < 2 or cluster_size < 1:
        raise ValueError(
            f"collaborative indexing needs n_clusters >= 2 and cluster_size >= 1, "
            f"got n_clusters={n_clusters}, cluster_size={cluster_size}"
        )
    graph = training_cooccurrence(sequences, n_items)
    rng = np.random.default_rng(seed)
    degree = np.diff(graph.indptr)
    connected, alone = np.flatnonzero(degree > 0), np.flatnonzero(degree == 0)
    codes: list[str] = [""] * n_items

    def assign(group: np.ndarray, prefix: str, children: list[np.ndarray] | None = None) -> None:
        if children is None:
            if len(group) <= cluster_size:
                for position, item in enumerate(group):
                    codes[item] = f"{prefix}<c{position}>"
                return
            children = _split(graph, group, n_clusters, cluster_size, rng)
        for number, child in enumerate(children):
            assign(child, f"{prefix}<c{number}>")

    if n_items <= cluster_size or connected.size == 0 or alone.size == 0:
        assign(np.arange(n_items), "")
    else:
        if len(connected) <= cluster_size:
            top = [connected]
        else:
            top = _split(graph, connected, n_clusters, cluster_size, rng)
        assign(np.arange(n_items), "", [*top, alone])
    return codes


def index_tokens(code: str) -> list[str]:
    """The tokens of an item's text: ``"<c3><c17><c5>"`` -> ``["<c3>", "<c17>", "<c5>"]``;
    a number stays one string, ``"1001"`` -> ``["1001"]``.

    Args:
        code: an item's text from any indexing method.
    """
    tokens = _TOKEN.findall(code)
    if not tokens or "".join(tokens) != code:
        raise ValueError(f"{code!r} is not an item code (a number or a run of <...> tokens)")
    return tokens


def build_index(
    method: str,
    sequences: Sequence[np.ndarray],
    n_items: int,
    *,
    seed: int,
    n_clusters: int = 20,
    cluster_size: int = 100,
) -> list[str]:
    """Dispatch to one indexing method.

    Args:
        method: ``"sequential"``, ``"random"`` or ``"collaborative"``.
        sequences: one 1-D int array per user, item ids in time order.
        n_items: number of items.
        seed: used by ``"random"`` and ``"collaborative"``.
        n_clusters: used by ``"collaborative"`` (default 20, OpenP5's).
        cluster_size: used by ``"collaborative"`` (default 100, OpenP5's).
    """
    if method == "sequential":
        return sequential_indexing(sequences, n_items)
    if method == "random":
        return random_indexing(n_items, seed)
    if method == "collaborative":
        return collaborative_indexing(
            sequences, n_items, n_clusters=n_clusters, cluster_size=cluster_size, seed=seed
        )
    raise ValueError(f"unknown item indexing method {method!r}; choose one of {list(METHODS)}")


def write_index(path: str | os.PathLike, index: list[str], method: str) -> None:
    """Write ``index`` as parquet (``item_id`` int32, ``index`` string), atomically.

    Args:
        path: the output file.
        index: ``index[item_id]``, the item's text.
        method: the indexing method, kept in the file's metadata for provenance.
    """
    if len(set(index)) != len(index):
        raise ValueError(f"refusing to write an index with duplicate item texts to {path}")
    table = pa.table(
        {
            "item_id": pa.array(np.arange(len(index)), pa.int32()),
            "index": pa.array(index, pa.string()),
        }
    )
    table = table.replace_schema_metadata({"method": method})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_index(path: str | os.PathLike) -> list[str]:
    """Read an index written by :func:`write_index`; ``result[item_id]`` is the item's text."""
    table = pq.read_table(path, columns=["item_id", "index"])
    item_ids = table.column("item_id").to_numpy()
    order = np.argsort(item_ids, kind="stable")
    if not np.array_equal(item_ids[order], np.arange(len(item_ids))):
        raise ValueError(f"{path}: item_id must be exactly 0..n_items-1, once each")
    texts = table.column("index").to_pylist()
    return [texts[i] for i in order]

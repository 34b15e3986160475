"""P5 item indexing: sequential without leak, random, collaborative codes, parquet round trip."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.sparse.linalg import ArpackError

from llmrec.p5 import indexing
from llmrec.p5.indexing import (
    FIRST_ID,
    build_index,
    collaborative_indexing,
    index_tokens,
    random_indexing,
    read_index,
    sequential_indexing,
    write_index,
)


def random_sequences(n_users: int, n_items: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_items, size=rng.integers(1, 12)) for _ in range(n_users)]


def leaky_indexing(sequences: list[np.ndarray]) -> dict[int, int]:
    """The original P5 numbering: each user's whole sequence in order, users one by one."""
    numbers: dict[int, int] = {}
    for seq in sequences:
        for item in seq:
            numbers.setdefault(int(item), FIRST_ID + len(numbers))
    return numbers


def assert_permutation(index: list[str], n_items: int) -> None:
    assert sorted(int(x) for x in index) == list(range(FIRST_ID, FIRST_ID + n_items))


@pytest.mark.parametrize("seed", [0, 1])
def test_sequential_is_a_permutation(seed):
    sequences = random_sequences(30, 50, seed)
    assert_permutation(sequential_indexing(sequences, 50), 50)


def test_sequential_numbers_training_parts_first():
    # Each user's test item would be numbered right after their own items under leaky P5.
    sequences = [np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7, 8, 9]), np.array([2, 6, 10, 11])]
    leaky = leaky_indexing(sequences)
    for seq in sequences:
        assert leaky[seq[-1]] == max(leaky[i] for i in seq[:-1]) + 1

    index = [int(x) for x in sequential_indexing(sequences, 13)]
    # By hand: training parts [0,1,2], [5,6,7], [2,6] -> 1001..1006; then the last two of each
    # user [3,4], [8,9], [10,11] -> 1007..1012; item 12 is never seen -> 1013.
    assert index == [1001, 1002, 1003, 1007, 1008, 1004, 1005, 1006, 1009, 1010, 1011, 1012, 1013]
    training = {int(i) for seq in sequences for i in seq[:-2]}
    held_out = {int(i) for seq in sequences for i in seq[-2:]} - training
    assert min(index[i] for i in held_out) > max(index[i] for i in training)
    # A test item is no longer "largest own training id + 1" (user 0: 1008 vs 1003 + 1).
    gaps = [index[seq[-1]] - max(index[i] for i in seq[:-2]) for seq in sequences]
    assert gaps != [1, 1, 1] and len(set(gaps)) > 1


def test_sequential_rejects_items_out_of_range():
    with pytest.raises(ValueError, match="outside 0..4"):
        sequential_indexing([np.array([0, 5])], 5)


def test_random_is_a_seeded_permutation():
    a, b, c = random_indexing(100, seed=3), random_indexing(100, seed=3), random_indexing(100, 4)
    assert_permutation(a, 100)
    assert a == b
    assert a != c


def assert_prefix_free(codes: list[str]) -> None:
    token_lists = [tuple(index_tokens(c)) for c in codes]
    full = set(token_lists)
    assert len(full) == len(codes)
    for tokens in token_lists:
        for cut in range(1, len(tokens)):
            assert tokens[:cut] not in full, f"{tokens[:cut]} is a prefix of {tokens}"


@pytest.mark.parametrize("n_clusters,cluster_size", [(2, 3), (4, 5), (20, 100)])
def test_collaborative_codes_are_unique_and_prefix_free(n_clusters, cluster_size):
    sequences = random_sequences(40, 60, seed=n_clusters)
    codes = collaborative_indexing(
        sequences, 70, n_clusters=n_clusters, cluster_size=cluster_size, seed=0
    )
    assert len(codes) == 70  # items 60..69 never occur: cold
    assert all(c.startswith("<c") and c.endswith(">") for c in codes)
    assert_prefix_free(codes)
    # Leaves hold at most cluster_size items: positions (last tokens) stay below it.
    assert max(int(index_tokens(c)[-1][2:-1]) for c in codes) < cluster_size


def test_collaborative_is_deterministic_given_seed():
    sequences = random_sequences(80, 120, seed=5)
    first = collaborative_indexing(sequences, 120, n_clusters=3, cluster_size=10, seed=7)
    assert first == collaborative_indexing(sequences, 120, n_clusters=3, cluster_size=10, seed=7)


def two_blocks(n_users: int = 20) -> list[np.ndarray]:
    """Users 0..9 train on even items 0..14, users 10..19 on odd items 1..15 (interleaved, so
    cutting in id order would not find the blocks); the last two items of every user come from
    16..19, held out of the graph."""
    rng = np.random.default_rng(0)
    sequences = []
    for user in range(n_users):
        parity = 0 if user < n_users // 2 else 1
        train = 2 * rng.permutation(8)[:5] + parity
        sequences.append(np.concatenate([train, 16 + rng.choice(4, size=2, replace=False)]))
    return sequences


def test_collaborative_separates_disconnected_blocks():
    codes = collaborative_indexing(two_blocks(), 22, n_clusters=2, cluster_size=4, seed=0)
    top = [index_tokens(c)[0] for c in codes]
    assert len(set(top[0:16:2])) == 1 and len(set(top[1:16:2])) == 1
    assert top[0] != top[1]
    # Items 16..21 never occur in training parts: their own top-level cluster, after the graph's.
    assert len(set(top[16:])) == 1 and top[16] not in (top[0], top[8])
    assert_prefix_free(codes)


def test_collaborative_sparse_eigensolver_path(monkeypatch):
    # Large graphs go through ARPACK instead of a dense eigh; exercise that path on a small one.
    monkeypatch.setattr(indexing, "_DENSE_LIMIT", 4)
    codes = collaborative_indexing(two_blocks(), 22, n_clusters=2, cluster_size=4, seed=0)
    top = [index_tokens(c)[0] for c in codes]
    assert len(set(top[0:16:2])) == 1 and len(set(top[1:16:2])) == 1 and top[0] != top[1]
    assert codes == collaborative_indexing(two_blocks(), 22, n_clusters=2, cluster_size=4, seed=0)


def test_collaborative_falls_back_when_arpack_fails(monkeypatch):
    def fail(*args, **kwargs):
        raise ArpackError(-9999)

    monkeypatch.setattr(indexing, "_spectral_embedding", fail)
    codes = collaborative_indexing(two_blocks(), 22, n_clusters=2, cluster_size=8, seed=0)
    # Graph items 0..15 are cut in id order into two leaves; 16..21 are the cold cluster.
    assert codes[:16] == [f"<c{i // 8}><c{i % 8}>" for i in range(16)]
    assert codes[16:] == [f"<c2><c{i}>" for i in range(6)]


def test_collaborative_without_any_cooccurrence_splits_in_order():
    sequences = [np.array([i, 50, 51]) for i in range(30)]  # one training item per user
    codes = collaborative_indexing(sequences, 60, n_clusters=3, cluster_size=20, seed=0)
    # No graph to cluster: 60 items in id order fill three leaves of 20.
    assert codes == [f"<c{i // 20}><c{i % 20}>" for i in range(60)]


def test_collaborative_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_clusters >= 2"):
        collaborative_indexing([np.array([0, 1, 2])], 3, n_clusters=1)


def test_index_tokens():
    assert index_tokens("<c3><c17><c5>") == ["<c3>", "<c17>", "<c5>"]
    assert index_tokens("1001") == ["1001"]
    with pytest.raises(ValueError, match="not an item code"):
        index_tokens("<c3")


def test_build_index_dispatches_and_rejects_unknown():
    sequences = random_sequences(10, 20, seed=1)
    kwargs = dict(seed=2, n_clusters=2, cluster_size=5)
    assert build_index("sequential", sequences, 20, **kwargs) == sequential_indexing(sequences, 20)
    assert build_index("random", sequences, 20, **kwargs) == random_indexing(20, seed=2)
    assert build_index("collaborative", sequences, 20, **kwargs) == collaborative_indexing(
        sequences, 20, n_clusters=2, cluster_size=5, seed=2
    )
    with pytest.raises(ValueError, match="unknown item indexing method 'semantic'"):
        build_index("semantic", sequences, 20, **kwargs)


@pytest.mark.parametrize("method", ["random", "collaborative"])
def test_write_read_round_trip(tmp_path, method):
    index = build_index(
        method, random_sequences(10, 20, 0), 20, seed=0, n_clusters=2, cluster_size=5
    )
    path = tmp_path / "index.parquet"
    write_index(path, index, method)
    assert read_index(path) == index
    table = pq.read_table(path)
    assert str(table.schema.field("item_id").type) == "int32"
    assert str(table.schema.field("index").type) == "string"
    assert table.schema.metadata[b"method"] == method.encode()
    assert [p.name for p in tmp_path.iterdir()] == ["index.parquet"]  # no temporary left


def test_write_refuses_duplicates(tmp_path):
    with pytest.raises(ValueError, match="duplicate"):
        write_index(tmp_path / "index.parquet", ["1001", "1001"], "random")
    assert not (tmp_path / "index.parquet").exists()

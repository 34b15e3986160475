"""POPK's negative sampler: counts, exclusions, no future leakage, popk = 0 is the plain one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from llmrec.news.sampling import Impressions, Popularity, plain_negatives, sample_negatives

HOUR = 3600


def impressions(rows: list[dict]) -> Impressions:
    table = pa.table(
        {
            "impression_id": pa.array([i + 1 for i in range(len(rows))], pa.int64()),
            "user_id": pa.array([r["user"] for r in rows], pa.int32()),
            "timestamp": pa.array([r["time"] for r in rows], pa.int64()),
            "history": pa.array([r.get("history", []) for r in rows], pa.list_(pa.int32())),
            "candidates": pa.array([r["candidates"] for r in rows], pa.list_(pa.int32())),
            "labels": pa.array([r["labels"] for r in rows], pa.list_(pa.int8())),
        }
    )
    return Impressions.from_table(table)


def random_log(seed: int = 0, n: int = 300, n_items: int = 60) -> Impressions:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        size = int(rng.integers(2, 12))
        cands = rng.choice(n_items, size, replace=False).tolist()
        labels = [0] * size
        for j in rng.choice(size, int(rng.integers(1, 3)), replace=False):
            labels[j] = 1
        history = rng.choice(n_items, int(rng.integers(0, 5)), replace=False).tolist()
        rows.append(
            {
                "user": int(rng.integers(0, 30)),
                "time": i * 600,
                "history": history,
                "candidates": cands,
                "labels": labels,
            }
        )
    return impressions(rows)


def test_plain_sampler_counts_and_sources():
    imps = random_log()
    rows, pos, neg, dropped = plain_negatives(imps, 4, np.random.default_rng(1))
    assert (
        dropped
        == sum(  # clicks of impressions where everything shown was clicked
            int(imps.labels[a:b].sum())
            for a, b in zip(imps.offsets[:-1], imps.offsets[1:])
            if imps.labels[a:b].all()
        )
    )
    assert len(rows) == int((imps.labels > 0).sum()) - dropped and neg.shape == (len(rows), 4)
    for r, p, ns in zip(rows, pos, neg):
        cands = imps.candidates[imps.offsets[r] : imps.offsets[r + 1]]
        labels = imps.labels[imps.offsets[r] : imps.offsets[r + 1]]
        assert p in cands[labels > 0]
        assert set(ns) <= set(cands[labels == 0])
        if (labels == 0).sum() >= 4:
            assert len(set(ns)) == 4  # without replacement when there are enough


def test_short_impressions_are_sampled_with_replacement():
    imps = impressions([{"user": 0, "time": 0, "candidates": [5, 6, 7], "labels": [1, 0, 0]}])
    _, pos, neg, _ = plain_negatives(imps, 4, np.random.default_rng(0))
    assert pos.tolist() == [5] and set(neg[0]) <= {6, 7} and neg.shape == (1, 4)


def test_popk_zero_is_the_plain_sampler_and_popk_replaces_its_last_negatives():
    imps = random_log()
    ct, ci = imps.clicks()
    popularity = Popularity(ct, ci, 60, window=24 * HOUR, pool_size=20)
    plain = plain_negatives(imps, 4, np.random.default_rng(3))
    zero = sample_negatives(imps, 4, 0, np.random.default_rng(3), popularity)
    for a, b in zip(plain[:3], zero[:3]):
        np.testing.assert_array_equal(a, b)
    rows, pos, neg, _ = sample_negatives(imps, 4, 2, np.random.default_rng(3), popularity)
    np.testing.assert_array_equal(rows, plain[0])
    enough = (
        np.diff(imps.offsets)[rows] - np.add.reduceat(imps.labels, imps.offsets[:-1])[rows] >= 4
    )
    assert enough.sum() > 50
    np.testing.assert_array_equal(neg[enough, :2], plain[2][enough, :2])


def test_popular_negatives_exclude_clicked_history_and_shown_articles():
    imps = random_log(seed=4)
    ct, ci = imps.clicks()
    popularity = Popularity(ct, ci, 60, pool_size=30)
    rows, _, neg, _ = sample_negatives(imps, 4, 3, np.random.default_rng(0), popularity)
    pool, _ = popularity.pools(imps.times[rows])
    n_popular = 0
    for r, ns, p in zip(rows, neg, pool):
        shown = set(imps.candidates[imps.offsets[r] : imps.offsets[r + 1]])
        history = set(imps.history[imps.h_offsets[r] : imps.h_offsets[r + 1]])
        for n in ns[1:]:
            if n in shown:  # filled from the impression: only when the pool ran out
                allowed = set(p[p >= 0]) - shown - history
                assert len(allowed) < 3
            else:
                assert n in set(p) and n not in history
                n_popular += 1
    assert n_popular > 100


def test_no_future_leakage():
    # Article 9 gets all its clicks at hour 10 and after; before that it cannot be popular.
    rows = []
    for h in range(20):
        rows.append(
            {
                "user": 1,
                "time": h * HOUR + 60,
                "candidates": [1, 2, 3, 4, 5],
                "labels": [1, 0, 0, 0, 0],
            }
        )
        if h >= 10:
            for _ in range(5):
                rows.append(
                    {"user": 2, "time": h * HOUR + 120, "candidates": [9, 8], "labels": [1, 0]}
                )
    imps = impressions(rows)
    ct, ci = imps.clicks()
    popularity = Popularity(ct, ci, 10, window=None, pool_size=1)
    r, _, neg, _ = sample_negatives(imps, 2, 1, np.random.default_rng(0), popularity)
    times = imps.times[r]
    user1 = imps.users[r] == 1
    # Up to and including hour 10 the most-clicked earlier article is 1 (user 1's clicks) ...
    assert not (neg[(times < 11 * HOUR) & user1, 1] == 9).any()
    # ... from hour 13 on, article 9 (15 clicks in hours 10-12, against 13) leads.
    assert (neg[(times >= 13 * HOUR) & user1, 1] == 9).all()
    # The pool at a time uses only clicks of earlier buckets.
    counts = popularity.counts_before(int(popularity.bucket_start(np.array([10 * HOUR + 60]))[0]))
    assert counts[9] == 0 and counts[1] == 10


def test_window_forgets_old_clicks():
    ct = np.array([0, 0, 0, 5 * HOUR])
    ci = np.array([1, 1, 1, 2])
    popularity = Popularity(ct, ci, 3, window=2 * HOUR, pool_size=1)
    pool, weight = popularity.pools(np.array([HOUR + 5, 6 * HOUR + 5]))
    assert pool[:, 0].tolist() == [1, 2] and weight[:, 0].tolist() == [3, 1]
    assert Popularity(ct, ci, 3, pool_size=1).pools(np.array([6 * HOUR]))[0][0, 0] == 1


def test_bad_arguments():
    imps = random_log(n=5)
    with pytest.raises(ValueError, match="popk"):
        sample_negatives(imps, 2, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Popularity"):
        sample_negatives(imps, 4, 1, np.random.default_rng(0))

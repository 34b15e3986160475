"""POPK's negative sampler: both modes, counts, exclusions, no future leakage, popularity logics
and measures, popk = 0 is the plain one."""

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
    for mode in ("add", "replace"):
        zero = sample_negatives(imps, 4, 0, np.random.default_rng(3), popularity, mode=mode)
        for a, b in zip(plain[:3], zero[:3]):
            np.testing.assert_array_equal(a, b)
    rows, pos, neg, _ = sample_negatives(
        imps, 4, 2, np.random.default_rng(3), popularity, mode="replace"
    )
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
    rows, _, neg, _ = sample_negatives(
        imps, 4, 3, np.random.default_rng(0), popularity, mode="replace"
    )
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
    r, _, neg, _ = sample_negatives(
        imps, 2, 1, np.random.default_rng(0), popularity, mode="replace"
    )
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
        sample_negatives(imps, 2, 3, np.random.default_rng(0), mode="replace")
    with pytest.raises(ValueError, match="mode"):
        sample_negatives(imps, 2, 1, np.random.default_rng(0), mode="swap")
    with pytest.raises(ValueError, match="Popularity"):
        sample_negatives(imps, 4, 1, np.random.default_rng(0))


def test_add_mode_keeps_every_impression_negative_and_appends_popular_ones():
    imps = random_log(seed=2)
    ct, ci = imps.clicks()
    popularity = Popularity(ct, ci, 60, pool_size=30)
    plain = plain_negatives(imps, 4, np.random.default_rng(5))
    rows, pos, neg, dropped = sample_negatives(imps, 4, 3, np.random.default_rng(5), popularity)
    assert neg.shape == (len(rows), 4 + 3) and dropped == plain[3]
    np.testing.assert_array_equal(rows, plain[0])
    np.testing.assert_array_equal(neg[:, :4], plain[2])  # the k real negatives, all of them
    outside = 0
    for r, ns in zip(rows, neg[:, 4:]):
        shown = set(imps.candidates[imps.offsets[r] : imps.offsets[r + 1]])
        outside += sum(n not in shown for n in ns)
    assert outside > 0.9 * neg[:, 4:].size  # popular negatives come from outside the impression


def test_popular_negatives_are_never_earlier_clicks_of_the_user():
    # User 1 clicks article 9 at hour 0; from hour 2 on article 9 is the most clicked article.
    rows = [{"user": 1, "time": 60, "candidates": [9, 2, 3], "labels": [1, 0, 0]}]
    for h in range(1, 6):
        rows += [{"user": 2, "time": h * HOUR, "candidates": [9, 4], "labels": [1, 0]}] * 3
        rows.append(
            {"user": 1, "time": h * HOUR + 60, "candidates": [5, 6, 7], "labels": [1, 0, 0]}
        )
        rows.append(
            {"user": 3, "time": h * HOUR + 60, "candidates": [5, 6, 7], "labels": [1, 0, 0]}
        )
    imps = impressions(rows)
    popularity = Popularity(*imps.clicks(), 10, pool_size=1)
    for mode in ("add", "replace"):
        r, _, neg, _ = sample_negatives(
            imps, 2, 1, np.random.default_rng(0), popularity, mode=mode, selection="top"
        )
        late = imps.times[r] >= 2 * HOUR
        user = imps.users[r]
        # Article 9 is the pool's top: user 3 gets it, user 1 (who clicked it) never does.
        assert (neg[late & (user == 3), -1] == 9).all()
        assert not (neg[user == 1, -1] == 9).any()


def test_no_popular_negative_was_clicked_by_the_user_on_a_random_log():
    imps = random_log(seed=7, n=400, n_items=40)
    popularity = Popularity(*imps.clicks(), 40, pool_size=40)
    rows, _, neg, _ = sample_negatives(imps, 4, 3, np.random.default_rng(0), popularity)
    click_row = np.repeat(np.arange(len(imps)), imps.sizes())[imps.labels > 0]
    clicked = imps.candidates[imps.labels > 0]
    checked = 0
    for r, ns in zip(rows, neg[:, 4:]):
        shown = set(imps.candidates[imps.offsets[r] : imps.offsets[r + 1]])
        earlier = (imps.users[click_row] == imps.users[r]) & (
            imps.times[click_row] <= imps.times[r]
        )
        for n in ns:
            if n not in shown:
                assert n not in set(clicked[earlier])
                checked += 1
    assert checked > 200


def test_ptb_counts_only_the_previous_time_bin():
    ct = np.array([0, 0, 0, HOUR + 5, 2 * HOUR + 5])
    ci = np.array([1, 1, 1, 2, 3])
    ptb = Popularity(ct, ci, 4, logic="ptb", pool_size=2)
    pool, weight = ptb.pools(np.array([HOUR + 10, 2 * HOUR + 10, 3 * HOUR + 10]))
    assert pool[:, 0].tolist() == [1, 2, 3] and weight[:, 0].tolist() == [3, 1, 1]
    assert pool[2, 1] == -1  # only article 3 was clicked in hour 2
    acc = Popularity(ct, ci, 4, logic="acc", pool_size=3)
    assert acc.pools(np.array([3 * HOUR + 10]))[0][0].tolist() == [1, 2, 3]


def test_click_ratio_ranks_by_clicks_over_showings():
    # Article 1: 10 clicks of 100 showings; article 2: 5 of 10; article 3: 1 of 1 (too rare).
    shown_items = np.array([1] * 100 + [2] * 10 + [3])
    ci = np.array([1] * 10 + [2] * 5 + [3])
    ratio = Popularity(
        np.zeros(len(ci)),
        ci,
        4,
        measure="ratio",
        shown_times=np.zeros(len(shown_items)),
        shown_items=shown_items,
        min_impressions=5,
        pool_size=3,
    )
    pool, weight = ratio.pools(np.array([HOUR]))
    assert pool[0].tolist() == [2, 1, -1] and weight[0, :2].tolist() == [0.5, 0.1]
    clicks = Popularity(np.zeros(len(ci)), ci, 4, pool_size=3)
    assert clicks.pools(np.array([HOUR]))[0][0].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="shown"):
        Popularity(ct := np.zeros(1), ct.astype(int), 2, measure="ratio")


def test_top_selection_takes_the_most_popular_allowed_articles():
    imps = random_log(seed=3)
    popularity = Popularity(*imps.clicks(), 60, pool_size=30)
    rows, _, neg, _ = sample_negatives(
        imps, 4, 2, np.random.default_rng(0), popularity, selection="top"
    )
    pool, _ = popularity.pools(imps.times[rows])
    for r, ns, p in zip(rows, neg[:, 4:], pool):
        shown = set(imps.candidates[imps.offsets[r] : imps.offsets[r + 1]])
        if not set(ns) & shown:  # not filled from the impression
            ranks = [int(np.flatnonzero(p == n)[0]) for n in ns]
            assert ranks == sorted(ranks)
            # every better-ranked article was excluded for this user
            skipped = [a for a in p[: ranks[-1]] if a >= 0 and a not in ns]
            history = set(imps.history[imps.h_offsets[r] : imps.h_offsets[r + 1]])
            user_clicks = set(
                imps.candidates[imps.labels > 0][
                    (imps.users[np.repeat(np.arange(len(imps)), imps.sizes())[imps.labels > 0]])
                    == imps.users[r]
                ]
            )
            assert set(skipped) <= shown | history | user_clicks

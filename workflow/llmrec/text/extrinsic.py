"""The extrinsic part of an item's prompt (P4R): what its users said and how they rated it,
from training interactions only.

P4R (Chen and Suzumura 2024, arXiv:2409.16674) prompts an LLM with an item's intrinsic
attributes (name, category, location) and extrinsic ones (its users' reviews and ratings). The
extrinsic part must not tell the LLM about a validation or test interaction, or the profile,
and so the model trained on it, would have seen the held-out data. So it is built from the
split's ``train`` events alone:

- ratings: the mean training rating and the number of training events (sources without
  ratings: the number of training events only);
- reviews: up to ``per_item`` review snippets, the latest first, from (user, item) pairs that
  have a training event and no validation or test event; a pair with both is left out whole,
  since a review cannot be told apart from its held-out twin. MovieLens has no review text:
  its items get the rating summary alone.
"""

from __future__ import annotations

import os

import duckdb


def _q(path: str | os.PathLike) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def snippet(text: str, words: int) -> str:
    """The first ``words`` words of ``text``, with "..." when it had more."""
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def item_extrinsic(
    split: str | os.PathLike,
    reviews: str | os.PathLike,
    items: str | os.PathLike,
    users: str | os.PathLike,
    *,
    per_item: int = 2,
    words: int = 25,
) -> list[str]:
    """One line per row of ``items``, in its order, e.g. ``rated 4.2/5 on average by 37 users;
    reviews: "Great pho." | "Slow service."``.

    Args:
        split: the split table (``user_id, item_id, timestamp, rating, split``).
        reviews: the canonical reviews (``user_original_id, item_original_id, timestamp,
            text``), keyed by the source's ids.
        items: a table with ``item_id`` and ``original_id`` (the filtered items or item text).
        users: the filtered users (``user_id``, ``original_id``).
        per_item: most review snippets per item (default 2; 0: ratings only).
        words: words kept of each review (default 25).
    """
    con = duckdb.connect()
    ids = con.execute(f"SELECT item_id FROM read_parquet({_q(items)})").fetchnumpy()["item_id"]
    row_of = {int(item): row for row, item in enumerate(ids)}
    stats = con.execute(f"""
        SELECT item_id, count(*) AS n, avg(rating) AS mean
        FROM read_parquet({_q(split)}) WHERE split = 'train' GROUP BY item_id""").fetchall()
    picked = con.execute(f"""
        WITH s AS (SELECT user_id, item_id, split FROM read_parquet({_q(split)})),
        train AS (SELECT DISTINCT user_id, item_id FROM s WHERE split = 'train'),
        held AS (SELECT DISTINCT user_id, item_id FROM s WHERE split <> 'train'),
        r AS (
            SELECT u.user_id, i.item_id, v.timestamp, v.text
            FROM read_parquet({_q(reviews)}) v
            JOIN read_parquet({_q(users)}) u ON u.original_id::VARCHAR = v.user_original_id
            JOIN read_parquet({_q(items)}) i ON i.original_id::VARCHAR = v.item_original_id)
        SELECT item_id, text FROM r
        SEMI JOIN train USING (user_id, item_id) ANTI JOIN held USING (user_id, item_id)
        QUALIFY row_number() OVER (
            PARTITION BY item_id ORDER BY timestamp DESC, user_id, text) <= {int(per_item)}
        ORDER BY item_id, timestamp DESC, user_id, text""").fetchall()
    con.close()
    ratings = ["no ratings yet"] * len(ids)
    for item, n, mean in stats:
        if item not in row_of:
            continue
        users_word = "user" if n == 1 else "users"
        ratings[row_of[item]] = (
            f"rated {mean:.1f}/5 on average by {n} {users_word}"
            if mean is not None
            else f"chosen by {n} {users_word}"
        )
    quotes: list[list[str]] = [[] for _ in ids]
    for item, text in picked:
        if item in row_of:
            quotes[row_of[item]].append(f'"{snippet(text, words)}"')
    return [r + (f"; reviews: {' | '.join(q)}" if q else "") for r, q in zip(ratings, quotes)]

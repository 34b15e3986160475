"""The multi-behaviour study's view of a dataset: behaviour-typed events, a leak-free
leave-one-out split on the target behaviour, and three encodings of it (docs/mbr.md).

A dataset's ``behaviours`` settings name a **funnel**, its behaviours in cascade order with the
**target** (what is recommended: buy, like) last; the others are auxiliary. MovieLens has
ratings, not behaviours: ``from_rating`` turns them into dislike / neutral / like as the
multi-behaviour papers on MovieLens do (KHGT, MATN on ML10M).

The split, per user, in (time, source row) order, never by item id:

- The held-out candidates are the user's first target event on each item: a repeat purchase of
  an item bought before is never held out, since the item is already a training target (and
  training target items are masked in evaluation).
- A user with at least 3 candidates, the first strictly before the second-last, is evaluated:
  the last is the test item (at ``t_test``), the one before the validation item (at
  ``t_valid``); its training part so holds a target event. Others keep all their events in
  training.
- Training = the user's events strictly before ``t_valid``; the test-time history = events
  strictly before ``t_test``; events at or after ``t_test`` are dropped. "Strictly": an event in
  the same second as a held-out target may come after it, so it is never used to predict it
  (a view after the purchase it would predict is a leak).

Artifacts (``results/data/{dataset}/mbr/``): ``sequences.parquet`` (one row per user: the
test-time history as list columns and how many leading events are training), ``behaviours.json``
(counts and the auxiliary-overlap shares), ``graphs_{valid,test}.npz`` (one deduplicated CSR
user x item graph per behaviour) and ``user_text_{valid,test}.parquet`` (the latest events as
"viewed X; bought Y"). No torch here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io import atomic_path, write_json
from .artifacts import SEQUENCES_METADATA, read_sequences_metadata
from .encode import events_by_user

log = logging.getLogger(__name__)

# The behaviours ``from_rating`` makes: rating <= dislike, in between, rating >= like.
RATING_BEHAVIOURS = ("dislike", "neutral", "like")

# How a behaviour reads in a user's history text; a behaviour not listed reads as its name.
VERBS = {
    "view": "viewed",
    "fav": "favourited",
    "cart": "added to cart",
    "buy": "bought",
    "like": "liked",
    "neutral": "rated neutrally",
    "dislike": "disliked",
}

# Not evaluated (valid_item, test_item) and "no held-out time" (t_valid, t_test).
NO_ITEM = -1
NEVER = np.iinfo(np.int64).max


def check_funnel(funnel: Sequence[str] | None, target: str | None, dataset: str) -> None:
    """Stop with one sentence where the funnel or target of ``datasets.<dataset>.behaviours`` is
    unusable: no target, an empty funnel, repeated names, a target not last in the funnel."""
    key = f"datasets.{dataset}.behaviours"
    if not target:
        raise ValueError(
            f"{key} names no target: set target to the behaviour to recommend (buy, like), "
            f"the last of its funnel"
        )
    if not funnel:
        raise ValueError(
            f"{key}.funnel is empty: list the behaviours in cascade order, the target last"
        )
    if len(set(funnel)) != len(funnel):
        raise ValueError(f"{key}.funnel {list(funnel)} names a behaviour twice; list each once")
    if target not in funnel:
        raise ValueError(
            f"{key}.target {target!r} is not in its funnel {list(funnel)}; list it there, last"
        )
    if funnel[-1] != target:
        raise ValueError(
            f"{key}.target {target!r} must be the last of its funnel {list(funnel)} (the cascade "
            f"ends with the behaviour recommended)"
        )


def map_behaviours(
    events: pa.Table,
    from_rating: Mapping[str, float] | None,
    funnel: Sequence[str],
    target: str,
    *,
    dataset: str,
) -> np.ndarray:
    """Each event's behaviour as its index in ``funnel`` (int8; the target is ``len(funnel)-1``).

    Args:
        events: the events, with a ``behaviour`` column, and ``rating`` where ``from_rating``
            is given.
        from_rating: ``{"dislike": d, "like": l}``: rating <= d is dislike, >= l like, in
            between neutral (the ``behaviour`` column is then ignored). None: the
            ``behaviour`` column as it is.
        funnel: the behaviours in cascade order, the target last.
        target: the behaviour recommended.
        dataset: the dataset's name, for the errors.

    Raises:
        ValueError: no target, target not last in the funnel, a behaviour of the data the
            funnel does not list (named, with its count), a mapping that leaves the target
            without events, or events without a rating (``from_rating``) or behaviour.
    """
    check_funnel(funnel, target, dataset)
    key = f"datasets.{dataset}.behaviours"
    if from_rating is not None:
        dislike, like = float(from_rating["dislike"]), float(from_rating["like"])
        if dislike >= like:
            raise ValueError(
                f"{key}.from_rating: dislike ({dislike:g}) must be below like ({like:g})"
            )
        rating = events.column("rating")
        if rating.null_count:
            raise ValueError(
                f"{dataset} has {rating.null_count:,} events without a rating, which "
                f"{key}.from_rating maps; drop from_rating to use the behaviour column"
            )
        rating = rating.to_numpy()
        names = np.array(RATING_BEHAVIOURS)
        index = np.where(rating <= dislike, 0, np.where(rating >= like, 2, 1)).astype(np.int32)
    else:
        column = events.column("behaviour")
        if column.null_count:
            raise ValueError(
                f"{dataset} has {column.null_count:,} events without a behaviour; the "
                f"multi-behaviour view needs one per event"
            )
        encoded = pc.dictionary_encode(column).combine_chunks()
        names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
        index = encoded.indices.to_numpy().astype(np.int32)
    counts = np.bincount(index, minlength=len(names))
    unlisted = [f"{n!r} ({c:,} events)" for n, c in zip(names, counts) if c and n not in funnel]
    if unlisted:
        raise ValueError(
            f"{dataset} has behaviours that {key}.funnel {list(funnel)} does not list: "
            f"{', '.join(unlisted)}; add them to the funnel, or drop them with "
            f"datasets.{dataset}.filter"
        )
    lookup = np.array([funnel.index(n) if n in funnel else -1 for n in names], np.int8)
    codes = lookup[index]
    if not (codes == len(funnel) - 1).any():
        raise ValueError(
            f"the behaviour mapping leaves the target {target!r} empty in {dataset}; check "
            f"{key} (funnel, target, from_rating)"
        )
    return codes


def check_timestamps(timestamp: pa.ChunkedArray | pa.Array, dataset: str) -> None:
    """Stop where the events cannot be ordered in time: missing or all equal timestamps."""
    if len(timestamp) and timestamp.null_count == len(timestamp):
        raise ValueError(f"{dataset} has no timestamps: leave-one-out needs timestamps")
    if timestamp.null_count:
        raise ValueError(
            f"{dataset} has {timestamp.null_count:,} events without a timestamp: leave-one-out "
            f"needs timestamps"
        )
    low, high = pc.min_max(timestamp).values()
    if low.as_py() == high.as_py():
        raise ValueError(
            f"every event of {dataset} has the same timestamp: leave-one-out needs timestamps"
        )


def leave_one_out_target(
    user: np.ndarray, item: np.ndarray, time: np.ndarray, codes: np.ndarray, target: int
) -> dict[str, np.ndarray]:
    """The leave-one-out split on the target behaviour (module docstring), per user.

    Args:
        user, item, time, codes: the events, ordered by (user, time, source row); ``codes``
            the behaviour indices of :func:`map_behaviours`.
        target: the target's code.

    Returns:
        ``valid_item``, ``test_item`` (int64 per user, -1 where not evaluated), ``t_valid``,
        ``t_test`` (int64 per user; :data:`NEVER` where not evaluated), ``history`` (bool per
        event: before ``t_test``) and ``train`` (bool per event: before ``t_valid``).
    """
    n_users = int(user.max()) + 1 if len(user) else 0
    n_items = int(item.max()) + 1 if len(item) else 0
    targets = np.flatnonzero(codes == target)
    pair = user[targets].astype(np.int64) * n_items + item[targets]
    # np.unique's index is each pair's first position: the earliest event, as rows are in order.
    _, first = np.unique(pair, return_index=True)
    candidates = np.sort(targets[first])
    per_user = np.bincount(user[candidates], minlength=n_users)
    ends = np.cumsum(per_user)
    evaluated = per_user >= 3
    # The training part must hold a target event (one strictly before the validation case's
    # time): a user whose first three purchases share one second has none to learn from, and a
    # target-only history would be empty.
    idx = np.flatnonzero(evaluated)
    evaluated[idx] = time[candidates[ends[idx] - per_user[idx]]] < time[candidates[ends[idx] - 2]]
    test_row = candidates[ends[evaluated] - 1]
    valid_row = candidates[ends[evaluated] - 2]
    split = {
        "valid_item": np.full(n_users, NO_ITEM, np.int64),
        "test_item": np.full(n_users, NO_ITEM, np.int64),
        "t_valid": np.full(n_users, NEVER, np.int64),
        "t_test": np.full(n_users, NEVER, np.int64),
    }
    split["valid_item"][evaluated] = item[valid_row]
    split["test_item"][evaluated] = item[test_row]
    split["t_valid"][evaluated] = time[valid_row]
    split["t_test"][evaluated] = time[test_row]
    split["history"] = time < split["t_test"][user]
    split["train"] = time < split["t_valid"][user]
    return split


def build_sequences(
    interactions: Path,
    out: Path,
    summary: Path,
    *,
    dataset: str,
    funnel: Sequence[str],
    target: str,
    from_rating: Mapping[str, float] | None = None,
) -> dict:
    """Write ``sequences.parquet`` and ``behaviours.json`` from the filtered interactions.

    Args:
        interactions: the filtered interactions (user, item, timestamp, behaviour, rating,
            source_row).
        out: sequences.parquet: per user id (every user of the table, in id order) ``items``
            (list<int32>, the test-time history in time order, repeats kept), ``behaviours``
            (list<int8>, index into ``funnel``), ``timestamps`` (list<int64>), ``n_train``
            (int32: leading events that are training), ``valid_item``/``test_item`` (int32, -1
            where the user is not evaluated). Its parquet metadata holds dataset, funnel and
            target (:func:`read_sequences_metadata`).
        summary: behaviours.json: dataset, funnel, target, events per behaviour (all filtered
            events), evaluated users and ``aux_overlap``, the share of test items the user met in
            each auxiliary behaviour ("any": in any) before the test time.
        dataset, funnel, target, from_rating: see :func:`map_behaviours`.

    Returns:
        The summary written.
    """
    funnel = list(funnel)
    table, _, _ = events_by_user(interactions)
    codes = map_behaviours(table, from_rating, funnel, target, dataset=dataset)
    check_timestamps(table.column("timestamp"), dataset)
    user = table.column("user_id").to_numpy().astype(np.int64)
    item = table.column("item_id").to_numpy().astype(np.int64)
    time = table.column("timestamp").to_numpy().astype(np.int64)
    target_code = len(funnel) - 1
    split = leave_one_out_target(user, item, time, codes, target_code)
    n_users = len(split["test_item"])
    evaluated = split["test_item"] >= 0
    if not evaluated.any():
        raise ValueError(
            f"no user of {dataset} has 3 {target!r} events on distinct items, so leave-one-out "
            f"evaluates nobody; check datasets.{dataset}.behaviours and filter"
        )
    history = split["history"]
    h_user, h_item, h_codes = user[history], item[history], codes[history]
    lengths = np.bincount(h_user, minlength=n_users)
    n_train = np.bincount(user[split["train"]], minlength=n_users)
    offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
    sequences = pa.table(
        {
            "user_id": pa.array(np.arange(n_users), pa.int32()),
            "items": pa.ListArray.from_arrays(offsets, pa.array(h_item, pa.int32())),
            "behaviours": pa.ListArray.from_arrays(offsets, pa.array(h_codes, pa.int8())),
            "timestamps": pa.ListArray.from_arrays(offsets, pa.array(time[history], pa.int64())),
            "n_train": pa.array(n_train, pa.int32()),
            "valid_item": pa.array(split["valid_item"], pa.int32()),
            "test_item": pa.array(split["test_item"], pa.int32()),
        }
    )
    meta = {"dataset": dataset, "funnel": funnel, "target": target}
    sequences = sequences.replace_schema_metadata({SEQUENCES_METADATA: json.dumps(meta)})
    # The test item met before the test time in an auxiliary behaviour: simple heuristics'
    # share of the answers (10-22% for cart/fav on the public Taobao and Tmall splits).
    met = (h_item == split["test_item"][h_user]) & (h_codes != target_code)
    n_evaluated = int(evaluated.sum())

    def share(mask: np.ndarray) -> float:
        return len(np.unique(h_user[mask])) / n_evaluated

    overlap = {"any": share(met)}
    overlap |= {b: share(met & (h_codes == c)) for c, b in enumerate(funnel[:-1])}
    events = np.bincount(codes, minlength=len(funnel))
    record = {
        **meta,
        "events": {b: int(events[c]) for c, b in enumerate(funnel)},
        "evaluated_users": n_evaluated,
        "aux_overlap": overlap,
    }
    with atomic_path(out) as tmp:
        pq.write_table(sequences, tmp, compression="zstd")
    write_json(summary, record)
    log.info(
        "%s: %d of %d users evaluated, %d of %d events before their test time; %s",
        dataset,
        n_evaluated,
        n_users,
        int(history.sum()),
        len(history),
        record,
    )
    return record


def stage_events(sequences: pa.Table, stage: str) -> dict[str, np.ndarray]:
    """The events of a stage, flat: ``user``, ``item``, ``behaviour`` and ``position`` (in its
    user's sequence). ``valid``: the training part (the first ``n_train`` events of each user);
    ``test``: the whole test-time history."""
    if stage not in ("valid", "test"):
        raise ValueError(f"unknown stage {stage!r}; use valid or test")
    items = sequences.column("items").combine_chunks()
    offsets = items.offsets.to_numpy()
    lengths = np.diff(offsets)
    user = np.repeat(sequences.column("user_id").to_numpy().astype(np.int64), lengths)
    position = np.arange(offsets[-1] - offsets[0]) - np.repeat(offsets[:-1] - offsets[0], lengths)
    events = {
        "user": user,
        "item": items.flatten().to_numpy().astype(np.int64),
        "behaviour": sequences.column("behaviours").combine_chunks().flatten().to_numpy(),
        "position": position,
    }
    if stage == "valid":
        n_train = np.repeat(sequences.column("n_train").to_numpy(), lengths)
        keep = position < n_train
        events = {k: v[keep] for k, v in events.items()}
    return events


def build_graphs(sequences: Path, n_users: int, n_items: int, out: Path, *, stage: str) -> dict:
    """One user x item graph per behaviour of a stage's events (:func:`stage_events`), as CSR
    arrays in an ``.npz``: ``n_users``, ``n_items``, ``behaviours`` (the funnel's names) and per
    behaviour ``b`` ``{b}_indptr`` (int64, n_users + 1) and ``{b}_indices`` (int32: each user's
    distinct items, sorted; repeated events are one edge). Returns the edges per behaviour."""
    table = pq.read_table(sequences)
    funnel = read_sequences_metadata(sequences)["funnel"]
    events = stage_events(table, stage)
    arrays: dict[str, np.ndarray] = {
        "n_users": np.int64(n_users),
        "n_items": np.int64(n_items),
        "behaviours": np.array(funnel, dtype=str),
    }
    edges = {}
    for code, name in enumerate(funnel):
        of = events["behaviour"] == code
        pair = np.unique(events["user"][of] * n_items + events["item"][of])
        users = pair // n_items
        arrays[f"{name}_indptr"] = np.r_[0, np.cumsum(np.bincount(users, minlength=n_users))]
        arrays[f"{name}_indices"] = (pair % n_items).astype(np.int32)
        edges[name] = len(pair)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # uncompressed, as encode.build_graph: zlib is the slow part
    return edges


def history_text(names: Sequence[str], behaviours: Sequence[str]) -> str:
    """Events as "viewed X; added to cart Y; bought Z", in the order given, with :data:`VERBS`."""
    return "; ".join(f"{VERBS.get(b, b)} {n}" for n, b in zip(names, behaviours))


def item_names(item_text: Path) -> np.ndarray:
    """Each item's name, by item id: its title, or "item <original id>" where it has none (as
    Taobao's items)."""
    table = pq.read_table(item_text, columns=["item_id", "original_id", "title"])
    names = np.empty(table.num_rows, dtype=object)
    for item, original, title in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        names[item] = title.strip() if title and title.strip() else f"item {original}"
    return names


def build_user_text(
    sequences: Path, item_text: Path, out: Path, *, stage: str, max_events: int = 20
) -> None:
    """Per user, the latest ``max_events`` events of a stage's history as text (oldest first;
    "" for a user with none), written as ``user_id``, ``text``."""
    table = pq.read_table(sequences)
    funnel = np.array(read_sequences_metadata(sequences)["funnel"], dtype=object)
    names = item_names(item_text)
    events = stage_events(table, stage)
    n_users = table.num_rows
    lengths = np.bincount(events["user"], minlength=n_users)
    ends = np.cumsum(lengths)
    texts = []
    for user in range(n_users):
        last = slice(max(ends[user] - lengths[user], ends[user] - max_events), ends[user])
        texts.append(history_text(names[events["item"][last]], funnel[events["behaviour"][last]]))
    frame = pa.table(
        {"user_id": pa.array(np.arange(n_users), pa.int32()), "text": pa.array(texts, pa.string())}
    )
    with atomic_path(out) as tmp:
        pq.write_table(frame, tmp, compression="zstd")

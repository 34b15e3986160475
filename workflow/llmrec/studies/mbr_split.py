"""The multi-behaviour study's text tasks, their split: the chat task's candidate lists (the
same for every model), the users the LLM is asked, and the items whose descriptions are held
out; and how a text-task file records the run that wrote it.

Kept apart from the tables (:mod:`llmrec.studies.mbr_text`) so that the LLM steps, which read
these files, do not depend on the tables' code: editing a table reruns no LLM job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from ..data.artifacts import load_behaviour_sequences
from ..io import atomic_path, read_json
from .keys import run_keys

log = logging.getLogger(__name__)

STUDY = "mbr_text"
RUN_METADATA = b"llmrec.run"


# --- the split -------------------------------------------------------------------------------


def _met_items(interactions: str | Path, sequences, n_users: int, n_items: int) -> sp.csr_matrix:
    """Users x items, 1 where the user met the item in any behaviour at any time: every event
    of the log (events after the test time are not in the sequences), the sequences too."""
    log_events = pq.read_table(interactions, columns=["user_id", "item_id"])
    users = [log_events.column("user_id").to_numpy().astype(np.int64)]
    items = [log_events.column("item_id").to_numpy().astype(np.int64)]
    users.append(np.repeat(np.arange(n_users), [len(s) for s in sequences.items]))
    items.append(np.concatenate([*sequences.items, np.empty(0, np.int64)]).astype(np.int64))
    users.append(np.arange(n_users))  # the held-out items (-1: none) are met too
    items.append(sequences.test_item)
    users, items = np.concatenate(users), np.concatenate(items)
    keep = items >= 0
    met = sp.csr_matrix(
        (np.ones(keep.sum(), np.float32), (users[keep], items[keep])), shape=(n_users, n_items)
    )
    met.sum_duplicates()
    return met


def _never_met(rng: np.random.Generator, met: np.ndarray, n_items: int, count: int) -> np.ndarray:
    """``count`` distinct items drawn uniformly from those not in ``met``."""
    if len(met) > n_items // 2:  # rejection would waste most draws
        return rng.choice(np.setdiff1d(np.arange(n_items), met), count, replace=False)
    drawn: list[int] = []
    seen = set(met.tolist())
    while len(drawn) < count:
        for item in rng.integers(0, n_items, 2 * count).tolist():
            if item not in seen:
                seen.add(item)
                drawn.append(item)
    return np.array(drawn[:count], np.int64)


def mbr_candidates(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    candidates: int = 20,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> None:
    """The chat task's candidate lists, one per test user, the same for every model.

    Every test user gets one, so that the ID models score them all while they train
    (``chat.parquet``) and the users the LLM is asked (:func:`mbr_text_subsets`) can change
    without retraining them.

    Args:
        input: ``sequences`` (mbr/sequences.parquet), ``item_text`` (its rows are the
            catalogue) and ``interactions`` (the filtered log: what a user met after its test
            time is in no sequence).
        output: ``candidates`` (parquet: ``user_id`` int32, ``items`` list<int32> of
            ``candidates`` items in presentation order, ``target_position`` int8).
        candidates: the list length (default 20): the test target and ``candidates - 1`` items
            the user never met in any behaviour at any time, shuffled.
        seed: the draws' seed (default 0). A user's list depends on the seed and the user only
            (its own generator).
        threads, progress: unused (a quick step); the rules' common arguments.

    Raises:
        ValueError: a list longer than the catalogue less a user's met items, or fewer than 2
            or more than 26 candidates (one letter each).
    """
    del threads, progress
    if not 2 <= candidates <= 26:
        raise ValueError(f"candidates must be 2 to 26 (one letter each), got {candidates}")
    seqs = load_behaviour_sequences(input["sequences"])
    n_items = pq.read_metadata(input["item_text"]).num_rows
    n_users = len(seqs.test_item)
    tested = np.flatnonzero(seqs.test_item >= 0)
    met = _met_items(input["interactions"], seqs, n_users, n_items)
    free = n_items - np.diff(met.indptr)[tested]
    if len(tested) and free.min() < candidates - 1:
        worst = tested[int(np.argmin(free))]
        raise ValueError(
            f"user {worst} met {n_items - free.min()} of the {n_items} items, leaving "
            f"{free.min()} never-met items for {candidates - 1} negatives; lower candidates"
        )
    lists, positions = [], []
    for user in tested:
        own = np.random.default_rng([seed, int(user)])
        negatives = _never_met(
            own, met.indices[met.indptr[user] : met.indptr[user + 1]], n_items, candidates - 1
        )
        order = own.permutation(candidates)
        items = np.r_[seqs.test_item[user], negatives][order]
        lists.append(items)
        positions.append(int(np.flatnonzero(order == 0)[0]))
    offsets = pa.array(np.arange(0, candidates * len(lists) + 1, candidates, dtype=np.int32))
    flat = np.concatenate(lists) if lists else np.empty(0, np.int64)
    table = pa.table(
        {
            "user_id": pa.array(tested, pa.int32()),
            "items": pa.ListArray.from_arrays(offsets, pa.array(flat, pa.int32())),
            "target_position": pa.array(positions, pa.int8()),
        }
    )
    with atomic_path(output["candidates"]) as tmp:
        pq.write_table(table, tmp)
    log.info("%d candidate lists of %d", len(lists), candidates)


def mbr_text_subsets(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    users: int | None,
    describe_items: int,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> None:
    """The test users the LLM is asked (of those with a candidate list) and the held-out items
    whose descriptions are never trained on.

    Args:
        input: ``candidates`` (:func:`mbr_candidates`) and ``item_text``.
        output: ``chat_users`` (parquet: ``user_id`` int32, sorted) and ``describe_items``
            (parquet: ``item_id`` int32, sorted).
        users: test users drawn with the seed; all of them when None, 0 or more than there are.
        describe_items: items with a non-empty text drawn with the seed.
        seed: the draws' seed (default 0).
        threads, progress: unused (a quick step); the rules' common arguments.

    Raises:
        ValueError: ``describe_items`` that would leave no item to train descriptions on.
    """
    del threads, progress
    rng = np.random.default_rng(seed)
    tested = pq.read_table(input["candidates"], columns=["user_id"]).column(0).to_numpy()
    tested = np.sort(tested.astype(np.int64))
    if users and users < len(tested):
        tested = np.sort(rng.choice(tested, users, replace=False))
    texts = pq.read_table(input["item_text"], columns=["text"]).column("text").to_pylist()
    described = np.array([i for i, t in enumerate(texts) if t and t.strip()], np.int64)
    if describe_items >= len(described):
        raise ValueError(
            f"describe_items {describe_items} leaves none of the {len(described)} items with a "
            f"text to train descriptions on; hold out fewer"
        )
    held_out = np.sort(rng.choice(described, describe_items, replace=False))
    with atomic_path(output["chat_users"]) as tmp:
        pq.write_table(pa.table({"user_id": pa.array(tested, pa.int32())}), tmp)
    with atomic_path(output["describe_items"]) as tmp:
        pq.write_table(pa.table({"item_id": pa.array(held_out, pa.int32())}), tmp)
    log.info("%d users asked, %d held-out items to describe", len(tested), len(held_out))


def asked_candidates(candidates: str | Path, chat_users: str | Path) -> pa.Table:
    """The candidate lists of the users the LLM is asked, in user order."""
    table = pq.read_table(candidates)
    asked = pq.read_table(chat_users).column("user_id").to_numpy().astype(np.int64)
    ids = table.column("user_id").to_numpy().astype(np.int64)
    missing = np.setdiff1d(asked, ids)
    if len(missing):
        raise ValueError(
            f"{chat_users} asks users without a candidate list in {candidates} (e.g. user "
            f"{missing[0]}); rebuild both"
        )
    order = np.argsort(ids, kind="stable")
    return table.take(order[np.searchsorted(ids[order], asked)])


# --- who wrote a file ------------------------------------------------------------------------


def stamp_run(table: pa.Table, *, dataset: str, model: str, seed: int | str) -> pa.Table:
    """``table`` with the run's keys in its schema metadata, for :func:`read_run_keys`."""
    keys = run_keys(study=STUDY, dataset=dataset, model=model, variant=None, seed=seed)
    meta = dict(table.schema.metadata or {}) | {RUN_METADATA: json.dumps(keys)}
    return table.replace_schema_metadata(meta)


def read_run_keys(path: str | Path) -> dict[str, Any]:
    """The dataset, model and seed of the run that wrote ``path``: its ``llmrec.run`` metadata
    (:func:`stamp_run`), or the ``summary.json`` in its folder."""
    meta = pq.read_schema(path).metadata or {}
    if RUN_METADATA in meta:
        return json.loads(meta[RUN_METADATA])
    summary = Path(path).parent / "summary.json"
    if summary.exists():
        return read_json(summary)
    raise ValueError(
        f"{path} records no run (no llmrec.run metadata, no summary.json beside it); write it "
        f"through llmrec.studies.mbr_split.stamp_run"
    )

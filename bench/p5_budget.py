"""P5's training budget against hit@10 on ml-100k: the curve behind the arithmetic defaults.

    python bench/p5_budget.py --epochs 4,8,16                      # config.yaml's P5
    python bench/p5_budget.py --epochs 2,4 --set train.lr=0.003 --set model.whole_word=true

For every budget (``arithmetic.train.epochs``; ``--set`` changes any other ``arithmetic:`` key,
a YAML value after a dotted path) it builds the study's index and tokenizer
(:func:`llmrec.studies.arithmetic.p5_index`, :func:`~llmrec.studies.arithmetic.p5_tokenizer`),
trains a P5 from scratch with the study's code and seed (the learning-rate schedule spans the
whole budget, as in a real run), and scores it as the table does: beam search constrained to
valid IDs, the first seen template, one prompt per user, on the validation item and on the
test item. Each point appends a row to ``--out`` (CSV): the settings, examples seen, steps,
training and evaluation time in CPU seconds (``time.process_time``, this process's threads
together: the machine is shared, so wall time alone says little) and wall seconds, and
hit@10 / NDCG@10 on validation and test.

Run it with ``OMP_NUM_THREADS=1 --threads 1``: the study's P5 jobs use one thread each, two at
a time on 2 cores. The measured curve and the default chosen from it: docs/arithmetic.md
("Training budget"). In short, on 2 shared cores, seed 0, lr 0.003: 11,316 / 22,632 / 45,264
examples cost 99 / 212 / 448 CPU s of training and gave validation hit@10 0.036 / 0.031 /
0.040 (test 0.027 / 0.024 / 0.026): flat, far below 0.08, while the loss kept falling.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from llmrec.p5.indexing import read_index  # noqa: E402
from llmrec.p5.prompts import SEEN  # noqa: E402
from llmrec.p5.tokenizer import load_tokenizer  # noqa: E402
from llmrec.p5.train import train_seq2seq  # noqa: E402
from llmrec.studies.arithmetic import (  # noqa: E402
    _model,
    _recommendation_examples,
    load_sequences,
    p5_index,
    p5_tokenizer,
    rank_p5,
)

FIELDS = [
    "label",
    "changes",
    "epochs",
    "windows_per_user",
    "examples_seen",
    "steps",
    "final_loss",
    "train_cpu_s",
    "train_wall_s",
    "eval_cpu_s",
    "eval_wall_s",
    "hit@10_valid",
    "hit@10_test",
    "ndcg@10_valid",
    "ndcg@10_test",
    "threads",
    "seed",
]


def with_changes(config: dict, changes: list[str]) -> dict:
    """``config`` with each ``dotted.key=yaml-value`` of ``changes`` set."""
    config = copy.deepcopy(config)
    for change in changes:
        key, _, value = change.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        if leaf not in node:
            raise KeyError(f"--set {change}: arithmetic has no key {key!r}")
        node[leaf] = yaml.safe_load(value)
    return config


def run_point(cfg: dict, data: Path, seed: int, device: str) -> dict:
    """Train one P5 on ``cfg`` and score it on validation and test."""
    sequences = load_sequences(str(data / "sequences.parquet"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"index": f"{tmp}/index.parquet", "tokenizer": f"{tmp}/tokenizer"}
        p5_index(
            {"sequences": str(data / "sequences.parquet"),
             "item_table": str(data / "filtered/items.parquet")},
            paths,
            method=cfg["indexing"],
            seed=seed,
        )  # fmt: skip
        p5_tokenizer(
            {"sequences": str(data / "sequences.parquet"), "index": paths["index"]},
            paths,
            vocab_size=cfg["tokenizer"]["vocab_size"],
            prompts=cfg["prompts"],
            arithmetic=cfg["task"],
        )
        index, tokenizer = read_index(paths["index"]), load_tokenizer(paths["tokenizer"])
    net = _model(cfg["model"], tokenizer, seed)
    train = cfg["train"]
    seen = []

    def examples(epoch: int):
        pairs = _recommendation_examples(sequences, index, cfg["prompts"], seed, epoch)
        seen.append(len(pairs))
        return pairs

    cpu, wall = time.process_time(), time.perf_counter()
    history = train_seq2seq(
        net,
        tokenizer,
        examples,
        epochs=train["epochs"],
        batch_size=train["batch_size"],
        lr=train["lr"],
        weight_decay=train["weight_decay"],
        warmup=train["warmup"],
        max_source_len=train["max_source_len"],
        max_target_len=train["max_target_len"],
        seed=seed,
        device=device,
        progress=False,
    )
    row = {
        "train_cpu_s": time.process_time() - cpu,
        "train_wall_s": time.perf_counter() - wall,
        # examples(0) is also called once to count the steps
        "examples_seen": sum(seen[1:]),
        "steps": train["epochs"] * -(-seen[0] // train["batch_size"]),
        "final_loss": history[-1]["loss"],
    }
    cpu, wall = time.process_time(), time.perf_counter()
    for stage in ("valid", "test"):
        per_user = rank_p5(
            net,
            tokenizer,
            index,
            sequences,
            stage=stage,
            template=SEEN[0],
            max_history=cfg["prompts"]["max_history"],
            ks=[10],
            batch_size=cfg["evaluation"]["batch_size"],
            device=device,
        )
        row[f"hit@10_{stage}"] = float(per_user["hit@10"].mean())
        row[f"ndcg@10_{stage}"] = float(per_user["ndcg@10"].mean())
    row["eval_cpu_s"] = time.process_time() - cpu
    row["eval_wall_s"] = time.perf_counter() - wall
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "results/data/ml-100k")
    parser.add_argument("--epochs", required=True, help="comma-separated budgets, e.g. 4,8,16")
    parser.add_argument("--set", action="append", default=[], dest="changes")
    parser.add_argument("--label", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "results/bench/p5_budget.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = with_changes(yaml.safe_load(args.config.read_text())["arithmetic"], args.changes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for epochs in (int(e) for e in args.epochs.split(",")):
        cfg = with_changes(base, [f"train.epochs={epochs}"])
        row = run_point(cfg, args.data, args.seed, args.device)
        row.update(
            label=args.label,
            changes=" ".join(args.changes),
            epochs=epochs,
            windows_per_user=cfg["prompts"]["windows_per_user"],
            threads=args.threads,
            seed=args.seed,
        )
        row = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        new = not args.out.exists()
        with args.out.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

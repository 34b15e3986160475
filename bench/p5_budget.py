"""P5's training budget against hit@10 on ml-100k: the curve behind the arithmetic defaults.

    python bench/p5_budget.py --epochs 8 --eval-epochs 2,4 --label default   # config.yaml's P5
    python bench/p5_budget.py --epochs 5 --eval-epochs 1,2,3,4 --label every-window \
        --set prompts.windows_per_user=null
    python bench/p5_budget.py --references --sasrec 100 --plot results/bench/p5_budget.png

For every budget (``arithmetic.train.epochs``; ``--set`` changes any other ``arithmetic:`` key,
a YAML value after a dotted path) it builds the study's index and tokenizer
(:func:`llmrec.studies.arithmetic.p5_index`, :func:`~llmrec.studies.arithmetic.p5_tokenizer`),
trains a P5 from scratch with the study's code and seed (the learning-rate schedule spans the
whole budget, as in a real run), and scores it as the table does: beam search constrained to
valid IDs, the first seen template, one prompt per user, on the validation item and on the
test item. Each point appends a row to ``--out`` (CSV): the settings, examples seen, steps,
training and evaluation time in CPU seconds (``time.process_time``, this process's threads
together: the machine is shared, so wall time alone says little) and wall seconds, and
hit@10 / NDCG@10 on validation and test. ``--eval-epochs`` also scores each run part-way
(``after_epochs``; the schedule still spans the whole budget), a curve from one run.

The references a budget is read against: ``--references`` writes what popularity alone scores
(the top 10 as P5 writes them, any item, and without the user's own earlier items), what the
last item's transitions alone score, and the entropy of the training answers' items per
answer token (P5's loss if it learned popularity and nothing of the prompt); ``--sasrec N``
trains the study's SASRec for N epochs, validated after each, counted in next-item
predictions; ``--memorise`` checks that the T5 reads its prompt at all. ``--plot`` draws the
CSV's validation curves.

Run it with ``OMP_NUM_THREADS=1 --threads 1``: the study's P5 jobs use one thread each, two at
a time on 2 cores. The measured curve and the default chosen from it: docs/arithmetic.md
("Training budget"). In short (seed 0, lr 0.003): P5 stays at popularity's level (validation
hit@10 0.040-0.056, popularity 0.038) from the default's 45,264 examples to 771,664 (17x,
65 CPU-minutes), with whole-word embedding, lr 0.01 or a one-item history too, while SASRec on
the same data passes 0.08 after about 580,000 predictions and the last item's transitions
alone (a first-order Markov chain) score 0.108.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from llmrec.p5.indexing import read_index  # noqa: E402
from llmrec.p5.model import collate  # noqa: E402
from llmrec.p5.prompts import SEEN  # noqa: E402
from llmrec.p5.tokenizer import load_tokenizer  # noqa: E402
from llmrec.p5.train import train_seq2seq  # noqa: E402
from llmrec.studies.arithmetic import (  # noqa: E402
    _model,
    _n_items,
    _recommendation_examples,
    _sasrec,
    load_sequences,
    p5_index,
    p5_tokenizer,
    rank_p5,
)
from llmrec.training.sequential import fit_sasrec  # noqa: E402

FIELDS = [
    "label",
    "changes",
    "epochs",
    "after_epochs",
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


def study_inputs(data: Path, cfg: dict, seed: int):
    """The study's sequences, item index and tokenizer for ``cfg``, built as its rules build
    them (:func:`llmrec.studies.arithmetic.p5_index`,
    :func:`~llmrec.studies.arithmetic.p5_tokenizer`)."""
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
    return sequences, index, tokenizer


def score(net, tokenizer, index, sequences, cfg: dict, device: str) -> dict:
    """hit@10 and NDCG@10 of ``net`` on validation and test, as the table scores them."""
    row = {}
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
    return row


def references(data: Path, cfg: dict, seed: int) -> list[dict]:
    """What a P5 that learned only item popularity would score, the floor a credible one beats.

    ``final_loss`` of the first row: the entropy of the training answers' items (popularity
    alone, no prompt) per answer token, comparable with P5's training loss, the mean
    cross-entropy per answer token (the item's pieces and ``</s>``). The rows' metrics:
    the most popular items (training events; for test, the validation item counted too) as the
    top 10 of every user, as P5 writes them (any item), and without the user's own earlier items
    (which no ml-100k user rates twice). A third row, "last-item transitions", ranks the
    items that followed the user's last item anywhere in the same events (a first-order Markov
    chain, ties by popularity, any item): what a P5 that read only the last item of its
    history could score.
    """
    sequences, index, tokenizer = study_inputs(data, cfg, seed)
    answers = [item for seq in sequences for item in np.asarray(seq)[1:-2].tolist()]
    share = np.bincount(answers, minlength=len(index)) / len(answers)
    entropy = -float(np.sum(share[share > 0] * np.log(share[share > 0])))
    tokens = np.mean([len(tokenizer(index[item]).input_ids) for item in answers])
    rows = [{"label": "popularity", "final_loss": entropy / tokens},
            {"label": "popularity without own items"},
            {"label": "last-item transitions"}]  # fmt: skip
    for stage, end in (("valid", -2), ("test", -1)):
        inputs = [seq[:end] for seq in sequences if len(seq) >= 3]
        counts = np.bincount(np.concatenate(inputs), minlength=len(index))
        order = np.argsort(-counts, kind="stable")  # ties: the smaller id
        popularity_rank = np.argsort(order)
        follows = np.zeros((len(index), len(index)))
        for part in inputs:
            np.add.at(follows, (part[:-1], part[1:]), 1.0)
        for row, mode in zip(rows, ("any", "exclude", "markov")):
            hits, gains = [], []
            for seq in sequences:
                if len(seq) < 3:
                    continue
                own = set(seq[:end].tolist()) if mode == "exclude" else set()
                if mode == "markov":  # popularity rank breaks ties among equal counts
                    score = follows[seq[end - 1]] * len(index) - popularity_rank
                    top = np.argsort(-score, kind="stable")[:10].tolist()
                else:
                    top = [i for i in order[: 10 + len(own)] if i not in own][:10]
                rank = top.index(seq[end]) if seq[end] in top else None
                hits.append(rank is not None)
                gains.append(0.0 if rank is None else 1 / np.log2(rank + 2))
            row[f"hit@10_{stage}"] = float(np.mean(hits))
            row[f"ndcg@10_{stage}"] = float(np.mean(gains))
    return rows


def sasrec_curve(data: Path, cfg: dict, seed: int, epochs: int, device: str) -> list[dict]:
    """The study's SASRec (``arithmetic.sasrec``) validated after every epoch, for comparison:
    ``examples_seen`` counts its next-item predictions (every target position of a training
    part's last ``max_len`` transitions, each a softmax over all items), P5's unit too (one
    answer per prompt). No early stopping: the curve runs ``epochs`` epochs."""
    sequences = load_sequences(str(data / "sequences.parquet"))
    conf = cfg["sasrec"]
    net = _sasrec(_n_items(str(data / "filtered/items.parquet")), conf, seed)
    positions = sum(min(max(len(seq) - 3, 0), conf["max_len"]) for seq in sequences)
    start = time.process_time()
    _, history = fit_sasrec(
        net,
        sequences,
        epochs=epochs,
        batch_size=conf["batch_size"],
        lr=conf["lr"],
        eval_every=1,
        patience=epochs,
        ks=[10],
        seed=seed,
        device=device,
        progress=False,
    )
    rows = []
    for entry in history:
        rows.append(
            {
                "label": "sasrec",
                "epochs": epochs,
                "after_epochs": entry["epoch"],
                "examples_seen": entry["epoch"] * positions,
                "final_loss": entry["loss"],
                "hit@10_valid": entry["hit@10"],
                "ndcg@10_valid": entry["ndcg@10"],
            }
        )
    rows[-1]["train_cpu_s"] = time.process_time() - start
    return rows


def memorise(data: Path, cfg: dict, seed: int, n: int = 64, steps: int = 300) -> dict:
    """Does the T5 read its prompt? It trains on one batch of ``n`` training prompts for
    ``steps`` steps (AdamW at the study's lr, no schedule); then, without dropout, its loss on
    them and on the same prompts with their answers shuffled (a model that ignores the prompt
    scores both alike)."""
    sequences, index, tokenizer = study_inputs(data, cfg, seed)
    pairs = _recommendation_examples(sequences, index, cfg["prompts"], seed, 0)
    batch = [pairs[i] for i in np.random.default_rng(seed).choice(len(pairs), n, replace=False)]
    net = _model(cfg["model"], tokenizer, seed)
    train = cfg["train"]
    tensors = collate(
        batch, tokenizer, train["max_source_len"], train["max_target_len"], net.whole_word
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=train["lr"])
    net.train()
    for _ in range(steps):
        loss = net(**tensors)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    shuffled = dict(tensors, labels=tensors["labels"][torch.randperm(n)])
    net.eval()
    with torch.no_grad():
        return {
            "prompts": n,
            "steps": steps,
            "loss": round(float(net(**tensors)), 4),
            "loss_shuffled_answers": round(float(net(**shuffled)), 4),
        }


def run_point(cfg: dict, data: Path, seed: int, device: str, on_epoch=None, eval_epochs=()) -> dict:
    """Train one P5 on ``cfg`` and score it on validation and test.

    ``on_epoch(row)`` also gets a row for every epoch count in ``eval_epochs`` reached before
    the end: the same run scored part-way through its schedule (a curve within one run).
    """
    sequences, index, tokenizer = study_inputs(data, cfg, seed)
    net = _model(cfg["model"], tokenizer, seed)
    train = cfg["train"]
    seen, scoring = [], [0.0, 0.0]  # examples per epoch; CPU and wall s spent scoring so far

    def examples(epoch: int):
        # fit_resumable asks for epoch e's examples when e epochs are done: score them there
        if epoch in eval_epochs and len(seen) > epoch and on_epoch is not None:
            cpu, wall = time.process_time(), time.perf_counter()
            row = score(net, tokenizer, index, sequences, cfg, device)
            net.train()
            row.update(
                after_epochs=epoch,
                examples_seen=sum(seen[1:]),
                eval_cpu_s=time.process_time() - cpu,
                eval_wall_s=time.perf_counter() - wall,
                train_cpu_s=cpu - start[0] - scoring[0],
                train_wall_s=wall - start[1] - scoring[1],
            )
            scoring[0] += row["eval_cpu_s"]
            scoring[1] += row["eval_wall_s"]
            on_epoch(row)
        pairs = _recommendation_examples(sequences, index, cfg["prompts"], seed, epoch)
        seen.append(len(pairs))
        return pairs

    start = time.process_time(), time.perf_counter()
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
        "train_cpu_s": time.process_time() - start[0] - scoring[0],
        "train_wall_s": time.perf_counter() - start[1] - scoring[1],
        # examples(0) is also called once to count the steps
        "examples_seen": sum(seen[1:]),
        "steps": train["epochs"] * -(-seen[0] // train["batch_size"]),
        "final_loss": history[-1]["loss"],
    }
    cpu, wall = time.process_time(), time.perf_counter()
    row.update(score(net, tokenizer, index, sequences, cfg, device), after_epochs=train["epochs"])
    row["eval_cpu_s"] = time.process_time() - cpu
    row["eval_wall_s"] = time.perf_counter() - wall
    return row


def plot(csv_path: Path, png: Path) -> None:
    """Validation hit@10 against examples seen: every P5 run of ``csv_path`` (its part-way
    scores and its end), SASRec's curve, and the reference rows (no examples seen: popularity,
    last-item transitions) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    runs: dict[tuple, list] = {}
    for row in rows:
        if not row["examples_seen"]:
            ax.axhline(float(row["hit@10_valid"]), ls=":", color="grey")
            ax.annotate(row["label"], (1e4, float(row["hit@10_valid"])), fontsize=8, va="bottom")
        elif row["hit@10_valid"]:
            key = (row["label"], row["changes"], row["epochs"], row["seed"])
            runs.setdefault(key, []).append((int(row["examples_seen"]), float(row["hit@10_valid"])))
    for (label, _, epochs, seed), points in runs.items():
        points.sort()
        style = "-" if label == "sasrec" else "o-"
        ax.plot(*zip(*points), style, ms=3, label=f"{label} ({epochs} epochs, seed {seed})")
    ax.axhline(0.08, color="red", lw=0.8)
    ax.annotate("0.08: a credible P5 (issue 14)", (1e4, 0.08), fontsize=8, va="bottom", color="red")
    ax.set_xscale("log")
    ax.set_xlabel("examples seen (P5: prompts; SASRec: next-item predictions)")
    ax.set_ylabel("hit@10, validation (ml-100k)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "results/data/ml-100k")
    parser.add_argument("--epochs", default="", help="comma-separated budgets, e.g. 4,8,16")
    parser.add_argument("--set", action="append", default=[], dest="changes")
    parser.add_argument("--label", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "results/bench/p5_budget.csv")
    parser.add_argument(
        "--eval-epochs",
        default="",
        help="comma-separated epoch counts at which each run is also scored part-way "
        "(its schedule still spans the whole budget), e.g. 1,2,4",
    )
    parser.add_argument(
        "--references",
        action="store_true",
        help="first write the reference rows (popularity, last-item transitions; references())",
    )
    parser.add_argument(
        "--memorise",
        action="store_true",
        help="print the T5's loss on 64 prompts it was trained on, and with shuffled answers",
    )
    parser.add_argument(
        "--sasrec",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also write the study's SASRec validated after each of EPOCHS epochs",
    )
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="draw --out's rows (after any runs) into PNG"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    base = with_changes(yaml.safe_load(args.config.read_text())["arithmetic"], args.changes)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def emit(row: dict, settings: dict) -> None:
        row = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        row.update(settings)
        new = not args.out.exists()
        with args.out.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(json.dumps(row), flush=True)

    eval_epochs = {int(e) for e in args.eval_epochs.split(",") if e}
    if args.references:
        for row in references(args.data, base, args.seed):
            emit(row, {"changes": " ".join(args.changes), "seed": args.seed})
    if args.memorise:
        print(json.dumps(memorise(args.data, base, args.seed)), flush=True)
    if args.sasrec:
        for row in sasrec_curve(args.data, base, args.seed, args.sasrec, args.device):
            emit(row, {"threads": args.threads, "seed": args.seed})
    for epochs in (int(e) for e in args.epochs.split(",") if e):
        cfg = with_changes(base, [f"train.epochs={epochs}"])
        settings = dict(
            label=args.label,
            changes=" ".join(args.changes),
            epochs=epochs,
            windows_per_user=cfg["prompts"]["windows_per_user"],
            threads=args.threads,
            seed=args.seed,
        )

        emit(
            run_point(
                cfg,
                args.data,
                args.seed,
                args.device,
                lambda row, settings=settings: emit(row, settings),
                eval_epochs - {epochs},
            ),
            settings,
        )

    if args.plot:
        plot(args.out, args.plot)


if __name__ == "__main__":
    main()

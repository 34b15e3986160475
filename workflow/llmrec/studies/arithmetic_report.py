"""The arithmetic study's table, its number-embedding figure and the co-occurrence table, each
with an HTML page for the report.

The table reads the evaluation runs' summaries (:mod:`llmrec.studies.tables`), not their paths.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..evaluation.embedding_order import adjacent_distance, ordered_triples
from ..evaluation.significance import NOTE as SIGNIFICANCE_NOTE
from ..figures import figure, save_png
from ..io import write_csv, write_text
from .tables import TableSpec, frame_html, frame_table, html_page, write_study_table

BASELINE = "p5"
ROWS = ("p5", "precondition", "task_vector", "sasrec", "sasrec_ordered")
NAMES = {
    "p5": "P5",
    "precondition": "pre-conditioning",
    "task_vector": "task vector",
    "sasrec": "SASRec",
    "sasrec_ordered": "SASRec + ordered pre-training",
}
NOTE = (
    "\nMean ± std over seeds of the leave-one-out test item's hit rate and NDCG at k "
    "(P5 variants: beam search constrained to valid item IDs, as many beams as the "
    "largest k; SASRec: full ranking). In brackets: change against P5 in the same "
    "prompt setting (SASRec + ordered pre-training: against SASRec) and the p-values. "
    + SIGNIFICANCE_NOTE.format(units="users", unit="user")
    + " seen: a training template; unseen: a template never trained on. "
    "SASRec reads no prompt: its rows repeat under both settings. SASRec + ordered "
    "pre-training: the same SASRec first trained to continue runs of consecutive item "
    "numbers, then trained as SASRec.\n"
)


def arithmetic_table(
    input: Mapping[str, Sequence[str]],
    output: Mapping[str, str],
    *,
    ks: Sequence[int],
    settings: Sequence[str],
    synthetic: Sequence[str] = (),
    provenance: Mapping | None = None,
) -> None:
    """Mean and std over seeds per (dataset, prompt setting, method); change and test over
    seeds and users against P5 in the same setting.

    SASRec, plain and with ordered pre-training, reads no prompt (its runs record no setting):
    they appear under every setting, the same numbers each time.
    """
    from .arithmetic import STUDY

    spec = TableSpec(
        study=STUDY,
        columns=("dataset", "variant", "model"),
        markdown_columns=("dataset", "setting", "method", "seeds"),
        models=ROWS,
        baseline={"model": BASELINE},
        model_baselines={"sasrec_ordered": {"model": "sasrec"}},
        unit="user_id",
        unit_table="per_user",
        metrics=tuple(f"{m}@{k}" for m in ("hit", "ndcg") for k in ks),
        note=NOTE + chosen_coefficients(input["summaries"]),
        names={"variant": "setting", "model": "method"},
        labels={"setting": "prompts"},
        model_names=NAMES,
        variants=tuple(settings),
        change="units",
        title=(
            "Arithmetic study: P5, arithmetic pre-conditioning and task vector, and SASRec "
            "with and without ordered pre-training"
        ),
    )
    write_study_table(input, output, spec, synthetic=synthetic, provenance=provenance)


def chosen_coefficients(summaries: Sequence[str]) -> str:
    """A sentence with the task vector's lambda of every dataset and seed, as each run chose
    it on validation (its ``summary.json`` records ``coefficient``); empty without such runs."""
    chosen = {}
    for path in summaries:
        run = json.loads(Path(path).read_text())
        if "coefficient" in run:
            chosen[(run["dataset"], int(run["seed"]))] = run["coefficient"]
    if not chosen:
        return ""
    by_dataset = {}
    for (dataset, seed), coefficient in sorted(chosen.items()):
        by_dataset.setdefault(dataset, []).append(f"{coefficient:g} (seed {seed})")
    listed = "; ".join(f"{d}: {', '.join(values)}" for d, values in by_dataset.items())
    return f"Task vector lambda, chosen per seed on validation NDCG: {listed}.\n"


def number_piece_ids(tokenizer, prefix: str = "10") -> list[int]:
    """Token ids of the two-digit pieces 00..99, read off the IDs prefix00..prefix99 (their
    last sub-token), so that the tokenizer's piece marking does not matter."""
    ids = []
    for n in range(100):
        pieces = tokenizer(f"{prefix}{n:02d}", add_special_tokens=False)["input_ids"]
        ids.append(pieces[-1])
    if len(set(ids)) != 100:
        raise ValueError("the tokenizer does not give the numbers 00..99 their own pieces")
    return ids


def similarity_by_distance(
    embeddings: torch.Tensor, ids: Sequence[int], max_distance: int = 20
) -> np.ndarray:
    """Mean cosine similarity of the embeddings of numbers ``d`` apart, for d = 1..max."""
    vectors = torch.nn.functional.normalize(embeddings[list(ids)].double(), dim=1)
    # Pair by pair, not the full similarity matrix: a catalogue's items would not fit.
    return np.array(
        [(vectors[:-d] * vectors[d:]).sum(1).mean().item() for d in range(1, max_distance + 1)]
    )


START = "theta_0 (start)"
# The weight sets the figure compares, by the input that holds each: the start, after
# arithmetic training, and the three recommenders.
WEIGHTS = {
    "base": START,
    "arithmetic": "theta_arith",
    "p5": "P5",
    "precondition": "pre-conditioning",
    "task_vector": "task vector",
}
# SASRec's item embeddings, items in the order of their numbers: plain, after ordered
# pre-training alone, and after its training too.
SASREC_WEIGHTS = {
    "sasrec": "SASRec",
    "sasrec_pretrained": "SASRec, ordered pre-training only",
    "sasrec_ordered": "SASRec + ordered pre-training",
}
PIECES = "T5 number pieces 00..99"
ITEMS = "SASRec items by number"
DISPLAY = {START: "θ₀ (start)", "theta_arith": "θ_arith"}  # the figure's names


def _embedding_rows(embeddings: str, name: str, vectors: torch.Tensor, max_distance: int):
    """The table's rows of one weight set: similarity by distance and the two order measures
    (:mod:`llmrec.evaluation.embedding_order`), the number ``i``'s embedding in row ``i``."""
    curve = similarity_by_distance(vectors, range(len(vectors)), max_distance)
    order = {
        "adjacent_distance": adjacent_distance(vectors),
        "ordered_triples": ordered_triples(vectors),
    }
    return [
        {"embeddings": embeddings, "model": name, "distance": d, "mean_cosine": s, **order}
        for d, s in enumerate(curve, start=1)
    ]


def arithmetic_embeddings(
    input: Mapping[str, str], output: Mapping[str, str], *, max_distance: int = 20
) -> None:
    """How continuous and how ordered the embeddings of numbers are, per weight set (one
    seed): the T5's number pieces 00..99 (start, after arithmetic, three P5 variants) and
    SASRec's item embeddings in the order of the items' numbers (plain, after ordered
    pre-training, and after its training too). Per set: mean cosine similarity of numbers d
    apart, and the normalised distance of consecutive numbers and the share of ordered triples;
    the table (CSV and HTML) and :func:`embeddings_figure`."""
    from ..p5.indexing import read_index
    from ..p5.tokenizer import load_tokenizer
    from .arithmetic import items_by_number

    tokenizer = load_tokenizer(input["tokenizer"])
    ids = number_piece_ids(tokenizer)
    rows, consecutive = [], {}
    for key, name in WEIGHTS.items():
        state = torch.load(input[key], weights_only=True, map_location="cpu")
        shared = next(v for k, v in state.items() if k.endswith("shared.weight"))
        rows += _embedding_rows(PIECES, name, shared[ids], max_distance)
        vectors = torch.nn.functional.normalize(shared[ids].double(), dim=1)
        consecutive[name] = (vectors[:-1] * vectors[1:]).sum(1).numpy()
    order = torch.from_numpy(items_by_number(read_index(input["index"])))
    for key, name in SASREC_WEIGHTS.items():
        state = torch.load(input[key], weights_only=True, map_location="cpu")
        items = state["item_embedding.weight"][1:]  # row 0 is padding
        rows += _embedding_rows(ITEMS, name, items[order], max_distance)
    table = pd.DataFrame(rows)
    write_csv(output["table"], table)
    write_text(output["html"], embeddings_html(table))
    embeddings_figure(table, consecutive, output["figure"])


def order_measures(table: pd.DataFrame) -> pd.DataFrame:
    """One row per weight set: its embeddings and the two order measures."""
    columns = ["embeddings", "model", "adjacent_distance", "ordered_triples"]
    return table[columns].drop_duplicates("model").reset_index(drop=True)


def _by_distance(table: pd.DataFrame) -> pd.DataFrame:
    """Distance down, weight set across (in :data:`WEIGHTS` order)."""
    wide = table.pivot(index="distance", columns="model", values="mean_cosine")
    return wide[[m for m in WEIGHTS.values() if m in wide]]


def embeddings_html(table: pd.DataFrame) -> str:
    """The figure's numbers: mean cosine similarity by distance per T5 weight set, each set's
    change from the start (theta_0), and every weight set's order measures."""
    wide = _by_distance(table)
    change = wide.drop(columns=START).sub(wide[START], axis=0)
    # Fixed decimals, so that the columns line up; changes are small, hence one more.
    levels = wide.map(lambda v: f"{v:.4f}").reset_index()
    changes = change.map(lambda v: f"{v:+.5f}").reset_index()
    order = order_measures(table)
    order[["adjacent_distance", "ordered_triples"]] = order[
        ["adjacent_distance", "ordered_triples"]
    ].map(lambda v: f"{v:.3f}")
    return html_page(
        "Arithmetic study: embeddings of numbers",
        [
            ("Mean cosine similarity of pieces d apart", frame_table(levels)),
            ("Change from theta_0 (start)", frame_table(changes)),
            ("Order of the embeddings", frame_table(order)),
        ],
        note=(
            "One seed. Two-digit number pieces 00..99 of the T5 vocabulary: the mean cosine "
            "similarity of the pieces d apart, for the starting weights (theta_0), after "
            "arithmetic training (theta_arith), and for P5, pre-conditioning and task vector. "
            "Order, also of SASRec's item embeddings with the items in the order of their "
            "numbers: adjacent_distance is the mean Euclidean distance between the "
            "embeddings of numbers i and i+1 divided by the mean distance over all pairs "
            "(about 1 for embeddings in no order, 3/(n+1) for n points evenly on a line); "
            "ordered_triples is the share of triples i < j < k with d(i,j) < d(i,k) and "
            "d(j,k) < d(i,k) (about 1/3 in no order, 1 on a line; 200,000 triples drawn "
            "with a fixed seed where there are more)."
        ),
    )


def embeddings_figure(
    table: pd.DataFrame, consecutive: Mapping[str, np.ndarray], path: str
) -> None:
    """Top: the starting weights' similarity by distance, and each trained set's change in the
    similarity of consecutive pieces (mean ± std over the 99 pairs); below, one small panel per
    trained set: its change in similarity by distance. Changes from theta_0, not levels: the
    trained sets differ from the start by far less than the levels vary with d. Bottom: the
    two order measures of every weight set, SASRec's included."""
    wide = _by_distance(table)
    trained = [m for m in wide.columns if m != START]
    fig = figure(figsize=(3.1 * max(len(trained), 3), 10.2), layout="constrained")
    grid = fig.add_gridspec(3, 2 * len(trained), height_ratios=[1, 1, 1.1])
    half = len(trained)
    ax_start = fig.add_subplot(grid[0, :half])
    ax_next = fig.add_subplot(grid[0, half:])
    ax_start.plot(wide.index, wide[START], marker="o", ms=3, color="black")
    ax_start.axhline(0, color="grey", lw=0.8)
    ax_start.set_title("θ₀ (start): similarity of pieces d apart", fontsize=10)
    ax_start.set_xlabel("distance d between the numbers")
    ax_start.set_ylabel("mean cosine similarity")
    first = consecutive[START]
    for i, name in enumerate(trained):
        change = consecutive[name] - first
        ax_next.errorbar(
            i, change.mean(), yerr=change.std(ddof=1), fmt="o", capsize=5, color=f"C{i}"
        )
    ax_next.axhline(0, color="grey", lw=0.8)
    ax_next.set_xticks(range(len(trained)), [DISPLAY.get(m, m) for m in trained])
    ax_next.set_xlim(-0.5, len(trained) - 0.5)
    ax_next.set_title("Consecutive pieces n, n+1: change in similarity from θ₀", fontsize=10)
    ax_next.set_ylabel("change in cosine similarity\n(mean ± std over the 99 pairs)")
    axes = [fig.add_subplot(grid[1, 2 * i : 2 * i + 2]) for i in range(len(trained))]
    for ax in axes[1:]:
        ax.sharey(axes[0])
    for i, (ax, name) in enumerate(zip(axes, trained)):
        ax.plot(wide.index, wide[name] - wide[START], marker="o", ms=3, color=f"C{i}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"{DISPLAY.get(name, name)} − θ₀", fontsize=10)
        ax.set_xlabel("distance d")
    axes[0].set_ylabel("change in mean cosine similarity")
    for ax in axes[1:]:
        ax.tick_params(labelleft=False)
    ticks = [1, *range(5, int(wide.index.max()) + 1, 5)]  # distances count from 1
    for ax in [ax_start, *axes]:
        ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
    ax_next.grid(axis="y", alpha=0.3)
    _order_panels(
        order_measures(table), fig.add_subplot(grid[2, :half]), fig.add_subplot(grid[2, half:])
    )
    fig.suptitle(
        "Arithmetic study: embeddings of numbers, T5 number pieces 00..99 and SASRec items "
        "(1 seed)",
        fontsize=11,
    )
    save_png(fig, path)


def _order_panels(order: pd.DataFrame, ax_adjacent, ax_triples) -> None:
    """Bottom row: the two order measures of every weight set, one bar each, T5 sets above
    SASRec's, with what embeddings in no order and on a line would give."""
    labels = [
        f"{DISPLAY.get(m, m)} (T5)" if e == PIECES else m
        for e, m in zip(order["embeddings"], order["model"])
    ]
    colours = ["C0" if e == PIECES else "C1" for e in order["embeddings"]]
    rows = np.arange(len(order))[::-1]  # the first set on top
    panels = (
        (ax_adjacent, "adjacent_distance", 1.0, "Distance of consecutive numbers i, i+1"),
        (ax_triples, "ordered_triples", 1 / 3, "Ordered triples i < j < k"),
    )
    for ax, column, no_order, title in panels:
        ax.barh(rows, order[column], color=colours)
        ax.axvline(no_order, color="grey", ls="--", lw=1, label="no order")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    ax_adjacent.set_yticks(rows, labels)
    ax_adjacent.set_xlabel("mean distance ÷ mean distance of all pairs")
    ax_triples.set_yticks(rows, [])
    ax_triples.axvline(1, color="black", ls=":", lw=1, label="a line")
    ax_triples.legend(loc="lower right", fontsize=8)
    ax_triples.set_xlim(0, 1.05)
    ax_triples.set_xlabel("share with d(i,j) < d(i,k) and d(j,k) < d(i,k)")


def consecutive_pairs(sequences: Sequence[np.ndarray], index: Sequence[str]) -> dict[str, float]:
    """How often items with consecutive numeric IDs (n, n+1) go together in training data.

    ``cooccur``: share of such pairs that some user has both of in the training part (all but
    the last two items); ``adjacent``: share that follow each other directly in some user's
    training part; ``users``: mean number of users with both.
    """
    by_number = {int(text): item for item, text in enumerate(index) if text.isdigit()}
    users_of: dict[int, set[int]] = {}
    adjacent: set[tuple[int, int]] = set()
    for user, seq in enumerate(sequences):
        train = [int(i) for i in seq[:-2]]
        for item in train:
            users_of.setdefault(item, set()).add(user)
        adjacent.update(zip(train, train[1:]))
    pairs = [(by_number[n], by_number[n + 1]) for n in sorted(by_number) if n + 1 in by_number]
    shared = [len(users_of.get(a, set()) & users_of.get(b, set())) for a, b in pairs]
    return {
        "pairs": len(pairs),
        "cooccur": float(np.mean([s > 0 for s in shared])),
        "adjacent": float(np.mean([(a, b) in adjacent or (b, a) in adjacent for a, b in pairs])),
        "users": float(np.mean(shared)),
    }


def arithmetic_cooccurrence(
    input: Mapping[str, Sequence[str]],
    output: Mapping[str, str],
    *,
    datasets: Sequence[str],
    indexing: str,
    seed: int,
) -> None:
    """Consecutive-ID pairs under the configured indexing against a random indexing."""
    from ..p5.indexing import random_indexing, read_index
    from .arithmetic import load_sequences

    rows = []
    for dataset, seq_path, index_path in zip(datasets, input["sequences"], input["index"]):
        sequences, index = load_sequences(seq_path), read_index(index_path)
        for name, ids in ((indexing, index), ("random", random_indexing(len(index), seed))):
            rows.append({"dataset": dataset, "indexing": name, **consecutive_pairs(sequences, ids)})
    table = pd.DataFrame(rows)
    write_csv(output["table"], table)
    write_text(
        output["html"],
        frame_html(
            table, "Arithmetic study: consecutive item IDs in the training data", COOCCURRENCE_NOTE
        ),
    )


COOCCURRENCE_NOTE = (
    "Pairs of items with consecutive numeric IDs (n, n+1) under the configured indexing and "
    "under a random one. cooccur: share of the pairs that some user has both of in the "
    "training part of their history (all but the last two items); adjacent: share that follow "
    "each other directly in some user's training part; users: mean number of users with both."
)

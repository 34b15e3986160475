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

from ..figures import figure, save_png
from ..io import write_csv, write_text
from .tables import TableSpec, frame_html, frame_table, html_page, write_study_table

BASELINE = "p5"
ROWS = ("p5", "precondition", "task_vector", "sasrec")
NAMES = {
    "p5": "P5",
    "precondition": "pre-conditioning",
    "task_vector": "task vector",
    "sasrec": "SASRec",
}
NOTE = (
    "\nMean ± std over seeds of the leave-one-out test item's hit rate and NDCG at k "
    "(P5 variants: beam search constrained to valid item IDs, as many beams as the "
    "largest k; SASRec: full ranking). In brackets: change against P5 in the same "
    "prompt setting and the paired t-test p over users (each user's value averaged "
    "over seeds). seen: a training template; unseen: a template never trained on. "
    "SASRec reads no prompt: its row repeats under both settings.\n"
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
    """Mean and std over seeds per (dataset, prompt setting, method); change and paired test
    against P5 in the same setting (each user's value averaged over seeds first).

    SASRec reads no prompt (its runs record no setting): they appear under every setting, the
    same numbers each time.
    """
    from .arithmetic import STUDY

    spec = TableSpec(
        study=STUDY,
        columns=("dataset", "variant", "model"),
        markdown_columns=("dataset", "setting", "method", "seeds"),
        models=ROWS,
        baseline={"model": BASELINE},
        unit="user_id",
        unit_table="per_user",
        metrics=tuple(f"{m}@{k}" for m in ("hit", "ndcg") for k in ks),
        note=NOTE + chosen_coefficients(input["summaries"]),
        names={"variant": "setting", "model": "method"},
        labels={"setting": "prompts"},
        model_names=NAMES,
        variants=tuple(settings),
        change="units",
        title="Arithmetic study: P5, arithmetic pre-conditioning and task vector, and SASRec",
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
    sims = (vectors @ vectors.T).numpy()
    return np.array([np.diagonal(sims, offset=d).mean() for d in range(1, max_distance + 1)])


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
DISPLAY = {START: "θ₀ (start)", "theta_arith": "θ_arith"}  # the figure's names


def arithmetic_embeddings(
    input: Mapping[str, str], output: Mapping[str, str], *, max_distance: int = 20
) -> None:
    """How continuous the number-piece embeddings are, per weight set (one seed): mean cosine
    similarity of pieces d apart, and the similarity of each piece to the next; the table
    (CSV and HTML) and :func:`embeddings_figure`."""
    from ..p5.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(input["tokenizer"])
    ids = number_piece_ids(tokenizer)
    rows, consecutive = [], {}
    for key, name in WEIGHTS.items():
        state = torch.load(input[key], weights_only=True, map_location="cpu")
        shared = next(v for k, v in state.items() if k.endswith("shared.weight"))
        curve = similarity_by_distance(shared, ids, max_distance)
        rows += [
            {"model": name, "distance": d, "mean_cosine": s} for d, s in enumerate(curve, start=1)
        ]
        vectors = torch.nn.functional.normalize(shared[ids].double(), dim=1)
        consecutive[name] = (vectors[:-1] * vectors[1:]).sum(1).numpy()
    table = pd.DataFrame(rows)
    write_csv(output["table"], table)
    write_text(output["html"], embeddings_html(table))
    embeddings_figure(table, consecutive, output["figure"])


def _by_distance(table: pd.DataFrame) -> pd.DataFrame:
    """Distance down, weight set across (in :data:`WEIGHTS` order)."""
    wide = table.pivot(index="distance", columns="model", values="mean_cosine")
    return wide[[m for m in WEIGHTS.values() if m in wide]]


def embeddings_html(table: pd.DataFrame) -> str:
    """The figure's numbers: mean cosine similarity by distance per weight set, and each set's
    change from the start (theta_0)."""
    wide = _by_distance(table)
    change = wide.drop(columns=START).sub(wide[START], axis=0)
    # Fixed decimals, so that the columns line up; changes are small, hence one more.
    levels = wide.map(lambda v: f"{v:.4f}").reset_index()
    changes = change.map(lambda v: f"{v:+.5f}").reset_index()
    return html_page(
        "Arithmetic study: number-piece embeddings",
        [
            ("Mean cosine similarity of pieces d apart", frame_table(levels)),
            ("Change from theta_0 (start)", frame_table(changes)),
        ],
        note=(
            "Two-digit number pieces 00..99 of the T5 vocabulary, one seed: the mean cosine "
            "similarity of the pieces d apart, for the starting weights (theta_0), after "
            "arithmetic training (theta_arith), and for P5, pre-conditioning and task vector."
        ),
    )


def embeddings_figure(
    table: pd.DataFrame, consecutive: Mapping[str, np.ndarray], path: str
) -> None:
    """Top: the starting weights' similarity by distance, and each trained set's change in the
    similarity of consecutive pieces (mean ± std over the 99 pairs); below, one small panel per
    trained set: its change in similarity by distance. Changes from theta_0, not levels: the
    trained sets differ from the start by far less than the levels vary with d."""
    wide = _by_distance(table)
    trained = [m for m in wide.columns if m != START]
    fig = figure(figsize=(3.1 * max(len(trained), 3), 6.6), layout="constrained")
    grid = fig.add_gridspec(2, 2 * len(trained))
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
    fig.suptitle(
        "Arithmetic study: number-piece embeddings 00..99 of the T5 (1 seed)",
        fontsize=11,
    )
    save_png(fig, path)


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

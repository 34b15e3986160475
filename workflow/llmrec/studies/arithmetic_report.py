"""The arithmetic study's table, its number-embedding figure and the co-occurrence table.

The table reads the evaluation runs' summaries (:mod:`llmrec.studies.tables`), not their paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..figures import save_png, subplots
from ..io import write_csv
from .tables import TableSpec, write_study_table

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
        note=NOTE,
        names={"variant": "setting", "model": "method"},
        labels={"setting": "prompts"},
        model_names=NAMES,
        variants=tuple(settings),
        change="units",
    )
    write_study_table(input, output, spec, synthetic=synthetic, provenance=provenance)


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


def arithmetic_embeddings(
    input: Mapping[str, str], output: Mapping[str, str], *, max_distance: int = 20
) -> None:
    """How continuous the number-piece embeddings are, per model (one seed): mean cosine
    similarity of pieces d apart, and the similarity of each piece to the next."""
    from ..p5.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(input["tokenizer"])
    ids = number_piece_ids(tokenizer)
    models = {
        "theta_0 (start)": input["base"],
        "theta_arith": input["arithmetic"],
        "P5": input["p5"],
        "pre-conditioning": input["precondition"],
        "task vector": input["task_vector"],
    }
    rows, consecutive = [], {}
    for name, path in models.items():
        state = torch.load(path, weights_only=True, map_location="cpu")
        shared = next(v for k, v in state.items() if k.endswith("shared.weight"))
        curve = similarity_by_distance(shared, ids, max_distance)
        rows += [
            {"model": name, "distance": d, "mean_cosine": s} for d, s in enumerate(curve, start=1)
        ]
        vectors = torch.nn.functional.normalize(shared[ids].double(), dim=1)
        consecutive[name] = (vectors[:-1] * vectors[1:]).sum(1).numpy()
    table = pd.DataFrame(rows)
    write_csv(output["table"], table)
    fig, (left, right) = subplots(1, 2, figsize=(11, 3.8))
    for name, sub in table.groupby("model", sort=False):
        left.plot(sub["distance"], sub["mean_cosine"], marker="o", ms=3, label=name)
        right.plot(np.arange(99), consecutive[name], lw=1, label=name)
    left.set_xlabel("numeric distance d between pieces")
    left.set_ylabel("mean cosine similarity")
    left.set_title("Number pieces 00..99: similarity by distance")
    right.set_xlabel("piece n (similarity of n and n+1)")
    right.set_ylabel("cosine similarity")
    right.set_title("Consecutive pieces")
    left.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    save_png(fig, output["figure"])


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
    write_csv(output["table"], pd.DataFrame(rows))

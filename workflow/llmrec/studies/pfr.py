"""The PFR study: LightGCN, SGE and PFR trained on one split, evaluated by full ranking.

- ``lightgcn``: the graph model alone.
- ``sge``: LightGCN aligned with sentence embeddings of the raw item text (users: the mean of
  their training items' embeddings); no LLM.
- ``pfr``: LightGCN aligned with sentence embeddings of LLM-written item profiles, and of
  LLM-written user profiles (``pfr.user_profiles: llm``) or, without an ``user_semantic``
  input (``item_mean``), the mean of the user's training items' profile embeddings.

Every model is trained with the same backbone settings and seed, selected by early stopping on
the validation split, and evaluated on the test split with training and validation items masked
(:func:`train_pfr`); :func:`pfr_table` compares SGE and PFR with LightGCN over the seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from ..data.artifacts import load_graph, load_split
from ..device import resolve_device
from ..evaluation.ranking import METRICS, evaluate, summarize
from ..evaluation.significance import NOTE as SIGNIFICANCE_NOTE
from ..figures import save_png, seed_count, subplots
from ..io import atomic_path, save_weights, write_json
from ..models.lightgcn import LightGCN, sparse_adjacency
from ..models.pfr import PFR
from ..training.loop import train_bpr
from ..training.seed import init_seed
from .tables import TableSpec, metric_label, run_keys, write_study_table

log = logging.getLogger(__name__)

STUDY = "pfr"
MODELS = ("lightgcn", "sge", "pfr")
MODEL_NAMES = {"lightgcn": "LightGCN", "sge": "SGE", "pfr": "PFR"}
BASELINE = "lightgcn"


def mean_item_embeddings(train: sp.csr_matrix, item_vectors: np.ndarray) -> np.ndarray:
    """Each user's mean of its training items' vectors (zeros for a user without any)."""
    counts = np.asarray(train.sum(axis=1)).ravel()
    sums = train @ item_vectors
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def train_pfr(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    dataset: str,
    model: str,
    seed: int | str,
    backbone: Mapping,
    alignment: Mapping | None,
    ks: Sequence[int],
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """Train one model with one seed; write test metrics per user, a summary and the weights."""
    seed = int(seed)  # a wildcard when Snakemake calls
    torch.set_num_threads(threads)
    init_seed(seed)
    graph = load_graph(input["graph"])
    split = load_split(input["split"], graph.n_users, graph.n_items)
    if model == BASELINE:
        net = LightGCN(
            graph.n_users, graph.n_items, backbone["embedding_dim"], backbone["num_layers"]
        )
        extra = None
    else:
        item_sem = np.load(input["item_semantic"])
        user_sem = (
            np.load(input["user_semantic"])
            if "user_semantic" in input
            else mean_item_embeddings(split.train, item_sem)
        )
        net = PFR(
            graph.n_users,
            graph.n_items,
            torch.from_numpy(user_sem),
            torch.from_numpy(item_sem),
            backbone["embedding_dim"],
            backbone["num_layers"],
            alignment["hidden_dim"],
            alignment["temperature"],
            alignment["max_nodes"],
        )
        weight = alignment["weight"]

        def extra(m, users, pos, neg, user_final, item_final):
            return weight * m.alignment_loss(users, pos, user_final, item_final)

    dev = resolve_device(device)
    adj = sparse_adjacency(graph.normalized_adjacency(), dev)
    start = time.perf_counter()
    state, history = train_bpr(
        net,
        adj,
        split.train,
        split.valid,
        epochs=backbone["epochs"],
        batch_size=backbone["batch_size"],
        lr=backbone["lr"],
        reg_weight=backbone["reg_weight"],
        eval_every=backbone["eval_every"],
        patience=backbone["patience"],
        metric=backbone["metric"],
        extra_loss=extra,
        seed=seed,
        progress=progress,
        device=dev,
    )
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        user_final, item_final = net.propagate(adj)
        per_user = evaluate(
            lambda u: net.scores(u.to(dev), user_final, item_final),
            split.test,
            split.train + split.valid,
            ks=ks,
        )
    with atomic_path(output["per_user"]) as tmp:
        pq.write_table(pa.Table.from_pandas(per_user, preserve_index=False), tmp)
    best = max(history, key=lambda row: row[backbone["metric"]])
    write_json(
        output["summary"],
        {
            **run_keys(study=STUDY, dataset=dataset, model=model, variant=None, seed=seed),
            "device": str(dev),
            "train_seconds": seconds,
            "best_epoch": best["epoch"],
            "epochs_run": history[-1]["epoch"],
            "valid": {backbone["metric"]: best[backbone["metric"]]},
            "test": summarize(per_user),
            "history": history,
        },
    )
    save_weights(output["weights"], {k: v.cpu() for k, v in state.items()})
    log.info("%s seed %d: test %s", model, seed, summarize(per_user))


NOTE = (
    "\nMean ± std over seeds; in brackets the p-values against LightGCN. "
    + SIGNIFICANCE_NOTE.format(units="users", unit="user")
    + " MRR@k is the reciprocal rank of the first hit within the "
    "top k. Full ranking over all items, training and validation items masked.\n"
)


LLM_NAMES = {"smollm2": "SmolLM2-135M-Instruct"}


def profile_models_note(llm: Mapping | None, embedder: Mapping | None) -> str:
    """The sentence that says which LLM wrote the profiles and which encoder embedded them."""
    if not llm or not embedder:
        return ""
    name = LLM_NAMES.get(llm["model"], llm["model"])
    return (
        f"Profiles written by {name} ({llm['dtype']}, greedy, at most {llm['max_new_tokens']} "
        f"new tokens) and embedded, like SGE's item texts, by {embedder['model']}.\n"
    )


def pfr_table(
    input: Mapping[str, Sequence[str]],
    output: Mapping[str, str],
    *,
    ks: Sequence[int],
    synthetic: Sequence[str] = (),
    provenance: Mapping | None = None,
    llm: Mapping | None = None,
    embedder: Mapping | None = None,
) -> None:
    """Mean and std over seeds per (dataset, model), and tests against LightGCN over seeds and
    users (:mod:`llmrec.evaluation.significance`). ``llm`` and ``embedder`` (the config's
    sections) name the profiles' models in the note."""
    spec = TableSpec(
        study=STUDY,
        columns=("dataset", "model"),
        markdown_columns=("dataset", "model", "seeds"),
        models=MODELS,
        baseline={"model": BASELINE},
        unit="user_id",
        unit_table="per_user",
        metrics=tuple(f"{m}@{k}" for k in ks for m in METRICS),
        note=NOTE + profile_models_note(llm, embedder),
        title="PFR study: test metrics of LightGCN, SGE and PFR",
    )
    write_study_table(input, output, spec, synthetic=synthetic, provenance=provenance)


def pfr_figure(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    metrics: Sequence[str] = ("recall@20", "ndcg@20"),
) -> None:
    """Each model's mean test metric as a dot with its std over seeds as an error bar and its
    value written beside it: one panel per dataset and metric, each on its own axis (not from
    0), so that a difference of 0.005 shows."""
    table = pd.read_csv(input["table"])
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = subplots(
        len(datasets),
        len(metrics),
        figsize=(4.2 * len(metrics), 3.2 * len(datasets) + 0.7),
        squeeze=False,
    )
    for row_axes, dataset in zip(axes, datasets):
        sub = table[table["dataset"] == dataset].set_index("model")
        models = [m for m in MODELS if m in sub.index]
        for ax, metric in zip(row_axes, metrics):
            for i, model in enumerate(models):
                mean, std = sub.loc[model, metric], sub.loc[model, f"{metric}_std"]
                ax.errorbar(i, mean, yerr=std, fmt="o", ms=7, capsize=5, color=f"C{i}")
                ax.annotate(
                    f"{mean:.4f}",
                    (i, mean),
                    xytext=(9, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                )
            ax.set_xticks(range(len(models)), [MODEL_NAMES[m] for m in models])
            ax.set_xlim(-0.5, len(models) - 0.3)
            ax.set_ylabel(f"test {metric_label(metric)}")
            ax.set_title(f"{dataset}: {metric_label(metric)}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"PFR study: test metrics, mean ± std over {seed_count(table['seeds'])}", fontsize=11
    )
    fig.tight_layout()
    save_png(fig, output["figure"])

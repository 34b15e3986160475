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
from ..figures import save_png, subplots
from ..io import atomic_path, save_weights, write_json
from ..models.lightgcn import LightGCN, sparse_adjacency
from ..models.pfr import PFR
from ..training.loop import train_bpr
from ..training.seed import init_seed
from .tables import TableSpec, run_keys, write_study_table

log = logging.getLogger(__name__)

STUDY = "pfr"
MODELS = ("lightgcn", "sge", "pfr")
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
    "\nMean ± std over seeds; p: paired t-test against LightGCN over users (each user's "
    "value averaged over seeds). MRR@k is the reciprocal rank of the first hit within the "
    "top k. Full ranking over all items, training and validation items masked.\n"
)


def pfr_table(
    input: Mapping[str, Sequence[str]],
    output: Mapping[str, str],
    *,
    ks: Sequence[int],
    synthetic: Sequence[str] = (),
    provenance: Mapping | None = None,
) -> None:
    """Mean and std over seeds per (dataset, model), and paired tests against LightGCN.

    Tests pair users: each user's metric is first averaged over the seeds, then the model's and
    LightGCN's per-user values are compared with a paired t-test and a Wilcoxon test.
    """
    spec = TableSpec(
        study=STUDY,
        columns=("dataset", "model"),
        markdown_columns=("dataset", "model", "seeds"),
        models=MODELS,
        baseline={"model": BASELINE},
        unit="user_id",
        unit_table="per_user",
        metrics=tuple(f"{m}@{k}" for k in ks for m in METRICS),
        note=NOTE,
        wilcoxon=True,
    )
    write_study_table(input, output, spec, synthetic=synthetic, provenance=provenance)


def pfr_figure(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    metrics: Sequence[str] = ("recall@20", "ndcg@20"),
) -> None:
    """Bars of each model's mean test metrics with std over seeds, one panel per metric."""
    table = pd.read_csv(input["table"])
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / len(MODELS)
    for ax, metric in zip(axes[0], metrics):
        for j, model in enumerate(MODELS):
            sub = table[table["model"] == model].set_index("dataset").reindex(datasets)
            x = np.arange(len(datasets)) + (j - (len(MODELS) - 1) / 2) * width
            ax.bar(x, sub[metric], width, yerr=sub[f"{metric}_std"], capsize=3, label=model)
        ax.set_xticks(np.arange(len(datasets)), datasets)
        ax.set_ylabel(metric)
        ax.set_title(f"Test {metric} (mean ± std over seeds)")
    axes[0][0].legend(frameon=False)
    fig.tight_layout()
    save_png(fig, output["figure"])

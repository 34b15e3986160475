"""The multi-behaviour study, part 1: the baselines a unified model is measured against.

Each model of :data:`MODELS` is trained (or, training-free, built) on a dataset's training part
(every event before the user's validation target: ``data/multi_behaviour.py``), early-stopped on
the validation target, and tested on the last target event with the test-time inputs (every
event before the test target): graph models propagate over the test-time graphs with their
trained embeddings, sequence models read the test-time history, training-free methods rank from
it. Rankings cover the whole catalogue; a user's earlier target items are masked, auxiliary
items are not (they are legitimate answers), unless the dataset masks their behaviours too
(``behaviours.masked``: MovieLens, where a movie is rated once).
:func:`llmrec.evaluation.segments.evaluate_segments` scores the test overall, on tail items and
on sparse users; :func:`mbr_table` compares each model with the best baseline of each column.
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

from ..data.artifacts import (
    BehaviourGraphs,
    BehaviourSequences,
    load_behaviour_graphs,
    load_behaviour_sequences,
)
from ..device import resolve_device
from ..evaluation.candidates import candidate_scores
from ..evaluation.ranking import ScoresFn, evaluate, summarize
from ..evaluation.segments import SEGMENTS, evaluate_segments, popularity_groups
from ..evaluation.significance import NOTE as SIGNIFICANCE_NOTE
from ..figures import save_png, seed_count, subplots
from ..io import atomic_path, read_json, save_weights, write_json
from ..models.aux_first import AuxFirst
from ..models.bsasrec import BehaviourSASRec
from ..models.cascading_gcn import CascadingGCN
from ..models.cascading_rank import CascadingRank
from ..models.lightgcn import LightGCN, normalized_bipartite, sparse_adjacency
from ..models.popularity import Popularity
from ..training.loop import train_bpr
from ..training.next_target import fit_next_target, history_scores, target_only
from ..training.seed import init_seed
from .tables import Run, TableSpec, metric_label, run_keys, write_study_table

log = logging.getLogger(__name__)

STUDY = "mbr"
# Part 1's baselines: train_mbr builds them; each table column compares every row with the best
# of them.
BASELINES = (
    "pop",
    "aux_first",
    "mf",
    "lightgcn",
    "lightgcn_merged",
    "cascading_gcn",
    "cascading_rank",
    "sasrec",
    "bsasrec",
)
# Part 2: the unified model and its ablations (studies/mbr_unified.py trains them).
UNIFIED = ("unified", "unified_no_llm", "unified_no_aux", "unified_no_gnn", "unified_no_seq")
MODELS = BASELINES + UNIFIED
MODEL_NAMES = {
    "pop": "Pop",
    "aux_first": "Aux-first",
    "mf": "MF-BPR",
    "lightgcn": "LightGCN (target)",
    "lightgcn_merged": "LightGCN (merged)",
    "cascading_gcn": "Cascading GCN",
    "cascading_rank": "CascadingRank",
    "sasrec": "SASRec (target)",
    "bsasrec": "SASRec + behaviour",
    "unified": "Unified",
    "unified_no_llm": "Unified w/o LLM view",
    "unified_no_aux": "Unified w/o aux. behaviours",
    "unified_no_gnn": "Unified w/o GNN",
    "unified_no_seq": "Unified w/o Transformer",
}
TRAINING_FREE = ("pop", "aux_first", "cascading_rank")
GRAPH_MODELS = ("mf", "lightgcn", "lightgcn_merged", "cascading_gcn")
SEQUENCE_MODELS = ("sasrec", "bsasrec")
SEGMENT_NAMES = {
    "overall": "overall",
    "tail": "tail (bottom 80%)",
    "strict_tail": "strict tail (bottom 20%)",
    "sparse": "sparse users",
    "tail_within": "tail, ranked within the tail",
}


class Stage:
    """One evaluation stage's inputs: validation (the training part) or test (every event
    before the test target)."""

    def __init__(
        self,
        seqs: BehaviourSequences,
        graphs: BehaviourGraphs,
        stage: str,
        masked: Sequence[str] = (),
    ) -> None:
        self.graphs = graphs
        self.cut = (
            seqs.n_train if stage == "valid" else np.array([len(s) for s in seqs.items], np.int64)
        )
        held_out = seqs.valid_item if stage == "valid" else seqs.test_item
        self.users = np.flatnonzero(held_out >= 0)
        self.targets = held_out[self.users]
        target = graphs.behaviours[-1]
        self.target_items = graphs.matrices[target]
        # Never ranked: the user's earlier items of the masked behaviours (the target's at least).
        self.masked = sp.csr_matrix(
            sum(
                (graphs.matrices[b] for b in {target, *masked}),
                sp.csr_matrix(graphs.matrices[target].shape),
            )
        )
        self.masked.data[:] = 1.0

    def truth(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (np.ones(len(self.users), np.float32), (self.users, self.targets)),
            shape=self.target_items.shape,
        )


def _adjacencies(model: str, graphs: BehaviourGraphs) -> list[sp.csr_matrix] | sp.csr_matrix:
    """The normalised adjacency (or, cascading, one per behaviour in funnel order) a graph
    model propagates over."""
    if model == "cascading_gcn":
        return [normalized_bipartite(m) for m in _funnel_matrices(graphs)]
    if model == "lightgcn_merged":
        return normalized_bipartite(graphs.merged())
    return normalized_bipartite(graphs.matrices[graphs.behaviours[-1]])


def _graph_model(model: str, graphs: BehaviourGraphs, cfg: Mapping) -> torch.nn.Module:
    if model == "cascading_gcn":
        return CascadingGCN(
            graphs.n_users,
            graphs.n_items,
            len(graphs.behaviours),
            cfg["embedding_dim"],
            cfg["num_layers"],
        )
    layers = 0 if model == "mf" else cfg["num_layers"]  # MF-BPR: LightGCN without propagation
    return LightGCN(graphs.n_users, graphs.n_items, cfg["embedding_dim"], layers)


def _fit_graph(
    model: str,
    valid: Stage,
    test: Stage,
    cfg: Mapping,
    seed: int,
    dev: torch.device,
    progress: bool,
) -> tuple[ScoresFn, dict, list[dict]]:
    """Train a graph model with BPR on the training target pairs; its test scores propagate
    over the test-time graphs."""
    net = _graph_model(model, valid.graphs, cfg)
    state, history = train_bpr(
        net,
        _as_tensors(_adjacencies(model, valid.graphs), dev),
        valid.target_items,
        valid.truth(),
        exclude=valid.masked,
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        reg_weight=cfg["reg_weight"],
        eval_every=cfg["eval_every"],
        patience=cfg["patience"],
        metric=cfg["metric"],
        seed=seed,
        progress=progress,
        device=dev,
    )
    net.eval()
    with torch.no_grad():
        user_final, item_final = net.propagate(_as_tensors(_adjacencies(model, test.graphs), dev))
    return (lambda u: net.scores(u.to(dev), user_final, item_final)), state, history


def _as_tensors(
    adj: sp.csr_matrix | list[sp.csr_matrix], dev: torch.device
) -> torch.Tensor | list[torch.Tensor]:
    if isinstance(adj, list):
        return [sparse_adjacency(a, dev) for a in adj]
    return sparse_adjacency(adj, dev)


def _fit_sequence(
    model: str,
    seqs: BehaviourSequences,
    valid: Stage,
    cfg: Mapping,
    seed: int,
    dev: torch.device,
    progress: bool,
) -> tuple[ScoresFn, dict, list[dict]]:
    """Train SASRec on the target-only sequences, or the behaviour-aware SASRec on the whole
    typed sequences, to predict the next target item."""
    items, behaviours, n_train = seqs.items, seqs.behaviours, seqs.n_train
    target = seqs.target
    if model == "sasrec":
        items, behaviours, n_train = target_only(items, behaviours, n_train, target)
    net = BehaviourSASRec(
        valid.graphs.n_items,
        len(seqs.funnel) if model == "bsasrec" else 0,
        cfg["max_len"],
        cfg["hidden"],
        cfg["num_layers"],
        cfg["num_heads"],
        cfg["dropout"],
    )
    state, history = fit_next_target(
        net,
        items,
        behaviours,
        n_train,
        seqs.valid_item,
        target=target,
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        eval_every=cfg["eval_every"],
        patience=cfg["patience"],
        metric=cfg["metric"],
        exclude=valid.masked,
        seed=seed,
        device=dev,
        progress=progress,
    )
    cut = np.array([len(i) for i in items], np.int64)
    return history_scores(net, items, behaviours, cut, dev), state, history


def _training_free(
    model: str,
    seqs: BehaviourSequences,
    valid: Stage,
    test: Stage,
    cfg: Mapping,
    dev: torch.device,
) -> tuple[ScoresFn, list[dict]]:
    """Pop, aux-first or CascadingRank on the test-time inputs; CascadingRank's weights are
    chosen on the validation case first (the grid's history is returned)."""
    target_items = test.target_items
    if model == "pop":
        return Popularity(target_items).scores, []
    if model == "aux_first":
        popularity = np.asarray(target_items.sum(axis=0)).ravel()
        strength = cfg.get("strength")
        if strength is not None:
            strength = [seqs.funnel.index(b) for b in strength]
        return AuxFirst(
            seqs.items, seqs.behaviours, test.cut, seqs.target, popularity, strength
        ).scores, []
    return _cascading_rank(valid, test, cfg, dev)


def _cascading_rank(
    valid: Stage, test: Stage, cfg: Mapping, dev: torch.device
) -> tuple[ScoresFn, list[dict]]:
    """CascadingRank with the (alpha, beta) of the grid that ranks the validation case best;
    as the paper tunes its weights per dataset, and the training part is the validation's input."""
    fixed = {k: cfg[k] for k in ("iterations", "tolerance", "chunk_size")}
    metric = cfg["metric"]
    k = int(metric.partition("@")[2])
    history = []
    for alpha in cfg["alpha"]:
        for beta in cfg["beta"]:
            if alpha + beta > 1:
                continue
            ranker = CascadingRank(_funnel_matrices(valid.graphs), alpha, beta, device=dev, **fixed)
            value = summarize(evaluate(ranker.scores, valid.truth(), valid.masked, [k]))
            history.append({"alpha": alpha, "beta": beta, metric: value[metric]})
    if not history:
        raise ValueError("mbr.cascading_rank: no alpha + beta <= 1 in the grid")
    best = max(history, key=lambda row: row[metric])
    ranker = CascadingRank(
        _funnel_matrices(test.graphs), best["alpha"], best["beta"], device=dev, **fixed
    )
    return ranker.scores, history


def _funnel_matrices(graphs: BehaviourGraphs) -> list[sp.csr_matrix]:
    return [graphs.matrices[b] for b in graphs.behaviours]


def train_mbr(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    dataset: str,
    model: str,
    seed: int | str,
    settings: Mapping,
    segments: Mapping,
    ks: Sequence[int],
    masked: Sequence[str] = (),
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """Train (or build) one model with one seed and test it by segment; write the per-user
    metrics, a summary and the weights (an empty state for training-free models).

    ``settings`` is the model's own config section (``mbr.<model>``); ``segments`` the study's
    ``mbr.segments`` (``head_share``, ``strict_tail_share``, ``sparse_max``); ``masked`` the
    behaviours whose earlier items are never ranked, besides the target (the dataset's
    ``behaviours.masked``).
    """
    if model not in BASELINES:
        raise ValueError(
            f"unknown multi-behaviour baseline {model!r}; known: {', '.join(BASELINES)} (the "
            f"unified models train through train_unified)"
        )
    seed = int(seed)
    torch.set_num_threads(threads)
    init_seed(seed)
    seqs, valid, test = load_stages(input, dataset, masked)
    dev = resolve_device(device)
    start = time.perf_counter()
    state: dict = {}
    history: list[dict] = []
    if model in TRAINING_FREE:
        scores_fn, history = _training_free(model, seqs, valid, test, settings, dev)
    elif model in GRAPH_MODELS:
        scores_fn, state, history = _fit_graph(model, valid, test, settings, seed, dev, progress)
    else:
        scores_fn, state, history = _fit_sequence(model, seqs, valid, settings, seed, dev, progress)
    write_results(
        output,
        dataset=dataset,
        model=model,
        seed=seed,
        seqs=seqs,
        valid=valid,
        test=test,
        scores_fn=scores_fn,
        state=state,
        history=history,
        seconds=time.perf_counter() - start,
        settings=settings,
        segments=segments,
        ks=ks,
        device=dev,
        candidates=input.get("candidates"),
    )


def load_stages(
    input: Mapping[str, str], dataset: str, masked: Sequence[str] = ()
) -> tuple[BehaviourSequences, Stage, Stage]:
    """The sequences and both evaluation stages of a run's inputs (``sequences``,
    ``graphs_valid``, ``graphs_test``); an error if nobody is tested."""
    seqs = load_behaviour_sequences(input["sequences"])
    valid = Stage(seqs, load_behaviour_graphs(input["graphs_valid"]), "valid", masked)
    test = Stage(seqs, load_behaviour_graphs(input["graphs_test"]), "test", masked)
    if not len(test.users):
        raise ValueError(
            f"{dataset}: no user has three target events to hold out; nothing to evaluate"
        )
    return seqs, valid, test


def write_results(
    output: Mapping[str, str],
    *,
    dataset: str,
    model: str,
    seed: int,
    seqs: BehaviourSequences,
    valid: Stage,
    test: Stage,
    scores_fn: ScoresFn,
    state: Mapping[str, torch.Tensor],
    history: Sequence[dict],
    seconds: float,
    settings: Mapping,
    segments: Mapping,
    ks: Sequence[int],
    device: torch.device,
    candidates: str | None = None,
) -> None:
    """Test a trained run by segment and write its ``per_user`` metrics, ``summary`` and
    ``weights``: what :func:`mbr_table` reads, for every model of the study; with ``chat`` in
    ``output``, also its scores of the chat task's ``candidates`` lists (the same lists the LLM
    is asked about: :func:`llmrec.evaluation.candidates.candidate_scores`).

    ``scores_fn`` ranks with the test-time inputs; ``state`` is the weights to save (empty for
    training-free models); ``history`` one row per validation (``settings["metric"]`` in it)
    or grid point; ``seconds`` the training time.
    """
    training_targets = valid.target_items
    groups = popularity_groups(
        np.asarray(training_targets.sum(axis=0)).ravel(),
        segments["head_share"],
        segments["strict_tail_share"],
    )
    target_events = np.array(
        [(b[:n] == seqs.target).sum() for b, n in zip(seqs.behaviours, seqs.n_train)]
    )
    per_user, coverage = evaluate_segments(
        scores_fn,
        test.users,
        test.targets,
        test.masked,
        groups,
        target_events,
        ks,
        sparse_max=segments["sparse_max"],
    )
    with atomic_path(output["per_user"]) as tmp:
        pq.write_table(pa.Table.from_pandas(per_user, preserve_index=False), tmp)
    summary_test = {
        segment: {
            c.removeprefix(f"{segment}/"): float(per_user[c].mean())
            for c in per_user.columns
            if c.startswith(f"{segment}/")
        }
        | coverage[segment]
        | {"users": int(per_user[f"{segment}/hit@{ks[0]}"].notna().sum())}
        for segment in SEGMENTS
    }
    best = max(history, key=lambda row: row[settings["metric"]]) if history else None
    write_json(
        output["summary"],
        {
            **run_keys(study=STUDY, dataset=dataset, model=model, variant=None, seed=seed),
            "device": str(device),
            "train_seconds": seconds,
            "best_epoch": best.get("epoch") if best else None,
            "valid": {settings["metric"]: best[settings["metric"]]} if best else {},
            "test": summary_test,
            "history": history,
        },
    )
    save_weights(output["weights"], {k: v.cpu() for k, v in state.items()})
    if "chat" in output:
        if candidates is None:
            raise ValueError("a chat output needs the candidates input (mbr_candidates)")
        with atomic_path(output["chat"]) as tmp:
            pq.write_table(candidate_scores(scores_fn, candidates), tmp)
    log.info("%s seed %d: test %s", model, seed, summary_test["overall"])


# --- the table and the figure ---------------------------------------------------------------


def segment_runs(summaries: Sequence[str], per_user: Sequence[str]) -> list[Run]:
    """Every run once per segment (the table's ``variant``), reading its segment's columns."""
    runs = []
    for summary_path, units in zip(summaries, per_user, strict=True):
        summary = read_json(summary_path)
        if summary.get("study") != STUDY:
            raise ValueError(f"{summary_path} is not a run of the {STUDY} study")
        for segment in SEGMENTS:
            runs.append(
                Run(
                    summary["dataset"],
                    summary["model"],
                    segment,
                    int(summary["seed"]),
                    summary["test"][segment],
                    str(units),
                    prefix=f"{segment}/",
                )
            )
    return runs


def table_spec(ks: Sequence[int], overlap_note: str = "") -> TableSpec:
    metrics = tuple(f"{m}@{k}" for m in ("hit", "ndcg") for k in ks)
    return TableSpec(
        study=STUDY,
        columns=("dataset", "variant", "model"),
        markdown_columns=("dataset", "segment", "model", "seeds"),
        names={"variant": "segment"},
        models=MODELS,
        model_names=MODEL_NAMES,
        variants=SEGMENTS,
        best_of=BASELINES,
        baseline={},
        unit="user_id",
        unit_table="per_user",
        metrics=metrics + tuple(f"{m}@{k}" for m in ("tail_share", "coverage") for k in ks),
        markdown_metrics=metrics,
        run_metrics=tuple(f"coverage@{k}" for k in ks),
        note=NOTE + overlap_note,
        title="Multi-behaviour study: baselines by segment",
    )


NOTE = (
    "\nMean ± std over seeds (training-free models give the same numbers every seed); in "
    "brackets the p-values against the best model of the column in the same dataset and segment "
    "(its own cell has none; where several models tie as best, the first in row order). "
    + SIGNIFICANCE_NOTE.format(units="users", unit="user")
    + " Leave-one-out on the target behaviour: the last target event of each user is the test "
    "case, ranked among all items with the user's earlier target items masked (auxiliary items "
    "are legitimate answers, unless the dataset masks them too: below). Segments: tail = test "
    "items outside the 20% most popular by training target events; strict tail = the bottom "
    "20%; sparse users = at most 5 training target events; tail, ranked within the tail = the "
    "tail cases with the head items removed from the candidates; test_users: the segment's "
    "users. HR@k = hit@k (one held-out item).\n"
)


def overlap_note(
    behaviours: Mapping[str, Mapping], masked: Mapping[str, Sequence[str]] | None = None
) -> str:
    """Per dataset, the share of test targets the user had met in an auxiliary behaviour before
    the test time (``behaviours.json``'s ``aux_overlap``), and the datasets that mask more than
    the target's items (``masked``: dataset -> behaviours)."""
    parts = []
    for dataset, info in sorted(behaviours.items()):
        shares = ", ".join(f"{b} {100 * v:.1f}%" for b, v in info["aux_overlap"].items())
        parts.append(f"{dataset}: {shares}")
    if not parts:
        return ""
    more = [
        f"{dataset} masks the user's earlier items of every behaviour in {', '.join(names)}"
        for dataset, names in sorted((masked or {}).items())
        if set(names) - {behaviours.get(dataset, {}).get("target")}
    ]
    return (
        "Test targets the user had already met in an auxiliary behaviour before the test time: "
        + "; ".join(parts)
        + ".\n"
        + ("".join(f"{m} (docs/mbr.md).\n" for m in more))
    )


def mbr_table(
    input: Mapping[str, Sequence[str]],
    output: Mapping[str, str],
    *,
    ks: Sequence[int],
    synthetic: Sequence[str] = (),
    provenance: Mapping | None = None,
    masked: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Dataset x segment x model: mean ± std over seeds, tests against the best model per
    column (:mod:`llmrec.evaluation.significance`, Holm over the table), the segment's number of
    test users (``test_users``), and per dataset the auxiliary-overlap share
    (``aux_overlap_<behaviour>`` columns and the note). ``masked``: per dataset, the behaviours
    whose earlier items its runs masked (for the note)."""
    behaviours = {}
    for path in input["behaviours"]:
        info = read_json(path)
        behaviours[info["dataset"]] = info
    runs = segment_runs(input["summaries"], input["per_user"])
    users = {(r.dataset, r.variant): r.test["users"] for r in runs}

    def add_columns(table: pd.DataFrame) -> pd.DataFrame:
        table.insert(
            table.columns.get_loc("seeds") + 1,
            "test_users",
            [
                users[(d.removesuffix(" (synthetic)"), s)]
                for d, s in zip(table["dataset"], table["segment"])
            ],
        )
        for dataset, info in behaviours.items():
            name = dataset + (" (synthetic)" if dataset in synthetic else "")
            for behaviour, share in info["aux_overlap"].items():
                table.loc[table["dataset"] == name, f"aux_overlap_{behaviour}"] = share
        return table

    write_study_table(
        input,
        output,
        table_spec(ks, overlap_note(behaviours, masked)),
        synthetic=synthetic,
        provenance=provenance,
        runs=runs,
        add_columns=add_columns,
    )


FIGURE_SEGMENTS = ("overall", "tail", "sparse")


def mbr_figure(input: Mapping[str, str], output: Mapping[str, str], *, k: int = 10) -> None:
    """Per dataset, each model's HR@k overall, on tail items and on sparse users: grouped bars
    with the std over seeds as error bars."""
    table = pd.read_csv(input["table"])
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = subplots(len(datasets), 1, figsize=(11, 3.8 * len(datasets) + 0.6), squeeze=False)
    metric = f"hit@{k}"
    for ax, dataset in zip(axes[:, 0], datasets):
        sub = table[table["dataset"] == dataset]
        models = [MODEL_NAMES[m] for m in MODELS if MODEL_NAMES[m] in set(sub["model"])]
        width = 0.8 / len(FIGURE_SEGMENTS)
        for j, segment in enumerate(FIGURE_SEGMENTS):
            rows = sub[sub["segment"] == segment].set_index("model").reindex(models)
            n = int(rows["test_users"].iloc[0])
            x = np.arange(len(models)) + (j - (len(FIGURE_SEGMENTS) - 1) / 2) * width
            ax.bar(
                x,
                rows[metric],
                width,
                yerr=rows[f"{metric}_std"],
                capsize=2,
                label=f"{SEGMENT_NAMES[segment]}: {n} test users",
                color=f"C{j}",
            )
        top = (sub[metric] + sub[f"{metric}_std"]).max()
        ax.set_ylim(0, 1.25 * top if top > 0 else 1)  # room for the legend above the bars
        ax.set_xticks(np.arange(len(models)), models, rotation=20, ha="right")
        ax.set_ylabel(f"test {metric_label(metric).replace('Hit', 'HR')}")
        ax.set_title(f"{dataset}: {metric_label(metric).replace('Hit', 'HR')} by segment")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncols=len(FIGURE_SEGMENTS))
    fig.suptitle(
        "Multi-behaviour study: where each model helps (mean ± std over "
        f"{seed_count(table['seeds'])})",
        fontsize=11,
    )
    fig.tight_layout()
    save_png(fig, output["figure"])

"""The multi-behaviour study, part 2: the evaluation of its two text tasks.

The split (:mod:`llmrec.studies.mbr_split`) draws, per test user, one list of candidates, the
held-out target among items the user never met, the same for every model; the users the LLM is
asked; and the items whose descriptions are never trained on.

- **Chat-based recommendation** (LLaRA / LlamaRec protocol): LLM rows score a list by their
  letters' logits and by a free answer, ID models by their scores of the candidates
  (:mod:`llmrec.evaluation.candidates`).
- **Item description**: the fine-tuned LLM describes the held-out items from their soft token,
  and :mod:`llmrec.evaluation.text` compares each description with the item's text and its
  LLM-written profile.

:func:`mbr_text_table` puts both tasks in one table, :func:`mbr_chat_figure` draws the chat
rows against the random line and :func:`mbr_examples` shows what the models say.

Each row's files record who wrote them: a parquet's schema metadata ``llmrec.run``
(:func:`llmrec.studies.mbr_split.stamp_run`), or else the run's ``summary.json`` beside it
(the ID models'); the table never reads a model or a seed from a path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.artifacts import load_behaviour_sequences
from ..data.multi_behaviour import history_text, item_names
from ..evaluation.candidates import (
    CHAT_METRICS,
    GENERATION_METRICS,
    candidate_items,
    chat_metrics,
    generation_metrics,
    letters,
    match_answer,
    random_expectation,
)
from ..evaluation.significance import NOTE as SIGNIFICANCE_NOTE
from ..evaluation.text import embedding_cosine, genre_f1, item_genres, rouge
from ..figures import save_png, seed_count, subplots
from ..io import write_csv, write_text
from ..provenance import stamp
from ..text.models import DEFAULT_EMBEDDING_MODEL
from .mbr import BASELINES, UNIFIED
from .mbr import MODEL_NAMES as ID_MODEL_NAMES
from .mbr_split import STUDY, asked_candidates, read_run_keys
from .tables import (
    Run,
    TableSpec,
    build_rows,
    cell,
    html_page,
    html_table,
    notes,
)

log = logging.getLogger(__name__)

TASKS = ("chat", "description")

# Row keys: the LLM rows carry "llm_" so that the LLM fine-tuned with the unified model's
# vectors ("llm_unified") is not the unified ID scorer ("unified").
CHAT_LLM_ROWS = ("zero_shot", "text", "unified")
DESCRIBE_ROWS = ("unified", "unified_no_llm", "zero_shot_title")
ROW_NAMES = {
    "random": "Random (expectation)",
    "llm_zero_shot": "LLM zero-shot",
    "llm_text": "LLM + adapter, text only",
    "llm_unified": "LLM + adapter + soft tokens (unified)",
    "llm_unified_no_llm": "LLM + adapter + soft tokens without the LLM view",
    "llm_zero_shot_title": "LLM zero-shot given the title (upper reference)",
    **ID_MODEL_NAMES,
    "unified": "Unified (ID scorer)",
}
ROW_ORDER = (
    "random",
    *(f"llm_{r}" for r in CHAT_LLM_ROWS),
    *(f"llm_{r}" for r in DESCRIBE_ROWS if r != "unified"),
    *UNIFIED,
    *BASELINES,
)
DESCRIPTION_METRICS = (
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeL_profile",
    "cosine",
    "cosine_profile",
    "genre_f1",
)
METRICS = {"chat": CHAT_METRICS + GENERATION_METRICS, "description": DESCRIPTION_METRICS}
LABELS = {
    "hit@1": "HR@1",
    "hit@5": "HR@5",
    "ndcg@5": "NDCG@5",
    "ndcg@10": "NDCG@10",
    "valid": "ValidRatio",
    "gen_hit@1": "HR@1 (generation, all prompts)",
    "gen_hit@1_valid": "HR@1 (generation, valid answers only)",
    "rouge1": "ROUGE-1 vs text",
    "rouge2": "ROUGE-2 vs text",
    "rougeL": "ROUGE-L vs text",
    "rougeL_profile": "ROUGE-L vs profile",
    "cosine": "MiniLM cosine vs text",
    "cosine_profile": "MiniLM cosine vs profile",
    "genre_f1": "genre F1",
}
# Not the best row of a column: an upper reference that is given the answer's title.
NOT_COMPARED_WITH = ("llm_zero_shot_title",)


def _aligned(path: str | Path, ids: np.ndarray, key: str, subset: bool = False) -> pd.DataFrame:
    """A row's table in the order of ``ids``, every id present exactly once (``subset``: the
    file may hold more ids, as an ID model's scores of every test user's list)."""
    frame = pd.read_parquet(path)
    held = set(frame[key])
    if frame[key].duplicated().any() or (
        not set(ids.tolist()) <= held if subset else set(ids.tolist()) != held
    ):
        raise ValueError(
            f"{path} must hold one row for each of the {len(ids)} {key}s of the split (it has "
            f"{frame[key].nunique()}); rerun it with the current split"
        )
    return frame.set_index(key).loc[ids].reset_index()


def chat_units(
    path: str | Path, candidates: pa.Table, titles: np.ndarray, subset: bool = False
) -> pd.DataFrame:
    """One chat row's per-user metrics (``unit`` = user id) on the users of ``candidates``: the
    letter-score ranking's, and where the file holds ``answer`` the generation's. ``subset``:
    the file may score more users (an ID model scores every test user's list)."""
    users = candidates.column("user_id").to_numpy().astype(np.int64)
    items = candidate_items(candidates)
    target = candidates.column("target_position").to_numpy().astype(np.int64)
    frame = _aligned(path, users, "user_id", subset)
    scores = np.array(frame["letter_scores"].tolist(), np.float64)
    if scores.shape != items.shape:
        raise ValueError(
            f"{path} holds {scores.shape[-1]} scores per user, the split {items.shape[1]} "
            f"candidates; rerun it with the current split"
        )
    units = chat_metrics(scores, target)
    if "answer" in frame:
        generated = generation_metrics(list(frame["answer"]), list(titles[items]), target)
        units = units.join(generated)
    return units.assign(unit=users)


class DescriptionReferences:
    """What the descriptions of the held-out items are compared with: each item's text, its
    LLM-written profile (where the profile is valid) and its genres."""

    def __init__(
        self, item_text: str | Path, profiles: str | Path | None, items: np.ndarray
    ) -> None:
        texts = pq.read_table(item_text, columns=["text"]).column("text").to_pylist()
        genres = [item_genres(t) for t in texts]
        self.vocabulary = sorted({g for listed in genres for g in listed})
        columns = ["item_id", "summary", "valid"]
        profile = (
            pq.read_table(profiles, columns=columns).to_pandas()
            if profiles is not None
            else pd.DataFrame(columns=columns)  # a dataset without LLM profiles (not in PFR)
        )
        profile = profile.set_index("item_id")
        self.items = items
        self.text = [texts[i] for i in items]
        self.profile = [
            profile.at[i, "summary"] if i in profile.index and profile.at[i, "valid"] else None
            for i in items
        ]
        self.genres = [genres[i] for i in items]


def description_units(
    path: str | Path, refs: DescriptionReferences, encoder, progress: bool = False
) -> pd.DataFrame:
    """One description row's per-item metrics (``unit`` = item id)."""
    frame = _aligned(path, refs.items, "item_id")
    said = [d or "" for d in frame["description"]]
    units = rouge(said, refs.text)
    units["rougeL_profile"] = rouge(said, refs.profile)["rougeL"]
    units["cosine"] = embedding_cosine(said, refs.text, encoder, progress=progress)
    units["cosine_profile"] = embedding_cosine(said, refs.profile, encoder, progress=progress)
    units["genre_f1"] = [genre_f1(d, g, refs.vocabulary) for d, g in zip(said, refs.genres)]
    return units.assign(unit=refs.items)


# --- the table -------------------------------------------------------------------------------


def _run(keys: Mapping, model: str, task: str, units: pd.DataFrame) -> Run:
    # Every metric of the table: the other task's (and, for ID models, generation's) are NaN.
    every = [m for t in TASKS for m in METRICS[t]]
    test = {m: float(units[m].mean()) if m in units else np.nan for m in every}
    return Run(keys["dataset"], model, task, int(keys["seed"]), test, units)


def dataset_inputs(input: Mapping[str, Any], datasets: Sequence[str], profiled: Sequence[str]):
    """Per dataset, its split files (``candidates``, ``chat_users``, ``describe_items``,
    ``item_text``: lists in the order of ``datasets``; ``profiles``: in the order of
    ``profiled``, the datasets that have LLM profiles)."""

    def listed(key: str, names: Sequence[str]) -> dict[str, str]:
        paths = input.get(key, ())
        paths = [paths] if isinstance(paths, str | Path) else list(paths)
        if len(paths) != len(names):
            raise ValueError(f"{key}: {len(paths)} files for the {len(names)} datasets {names}")
        return dict(zip(names, map(str, paths)))

    per = {k: listed(k, datasets) for k in ("candidates", "chat_users", "describe_items")}
    per["item_text"] = listed("item_text", datasets)
    profiles = listed("profiles", profiled)
    return {d: {k: v[d] for k, v in per.items()} | {"profiles": profiles.get(d)} for d in datasets}


def text_runs(
    input: Mapping[str, Any],
    encoder,
    progress: bool = False,
    datasets: Sequence[str] | None = None,
    profiled: Sequence[str] | None = None,
) -> list[Run]:
    """Every row's runs (one per file) with their per-unit metrics in memory; each file is read
    against its own dataset's split (``datasets``, ``profiled``: :func:`dataset_inputs`; None:
    the single dataset the files record)."""
    chat, chat_id = list(input.get("chat", ())), list(input.get("chat_id", ()))
    descriptions = list(input.get("descriptions", ()))
    if datasets is None:
        datasets = sorted({read_run_keys(p)["dataset"] for p in [*chat, *chat_id, *descriptions]})
        profiled = datasets if input.get("profiles") else []
    splits = dataset_inputs(input, datasets, profiled or [])
    asked = {d: asked_candidates(f["candidates"], f["chat_users"]) for d, f in splits.items()}
    titles = {d: item_names(f["item_text"]) for d, f in splits.items()}
    refs: dict[str, DescriptionReferences] = {}
    runs, paths = [], []

    def split_of(path: str) -> tuple[dict, str]:
        keys = read_run_keys(path)
        if keys["dataset"] not in splits:
            raise ValueError(f"{path} is a run of {keys['dataset']}, not of {list(datasets)}")
        return keys, keys["dataset"]

    for path, prefix, subset in [(p, "llm_", False) for p in chat] + [
        (p, "", True) for p in chat_id
    ]:
        keys, d = split_of(path)
        units = chat_units(path, asked[d], titles[d], subset)
        runs.append(_run(keys, f"{prefix}{keys['model']}", "chat", units))
        paths.append(path)
    for path in descriptions:
        keys, d = split_of(path)
        if d not in refs:
            f = splits[d]
            items = pq.read_table(f["describe_items"]).column("item_id").to_numpy()
            refs[d] = DescriptionReferences(f["item_text"], f["profiles"], items.astype(np.int64))
        units = description_units(path, refs[d], encoder, progress)
        runs.append(_run(keys, f"llm_{keys['model']}", "description", units))
        paths.append(path)
    seen: dict[tuple, str] = {}
    for run, path in zip(runs, paths):
        key = (run.dataset, run.variant, run.model, run.seed)
        if key in seen:
            raise ValueError(f"{path} and {seen[key]} record the same run {key}")
        seen[key] = path
    return runs


def table_spec(models: Sequence[str], note: str) -> TableSpec:
    metrics = tuple(m for task in TASKS for m in METRICS[task])
    return TableSpec(
        study=STUDY,
        columns=("dataset", "variant", "model"),
        markdown_columns=("dataset", "task", "model", "seeds", "prompts"),
        names={"variant": "task"},
        models=tuple(models),
        model_names=ROW_NAMES,
        variants=TASKS,
        best_of=tuple(m for m in models if m not in NOT_COMPARED_WITH),
        baseline={},
        unit="unit",
        unit_table="per_user",
        metrics=metrics,
        note=note,
        title="Multi-behaviour study: chat-based recommendation and item description",
    )


NOTE = (
    "\nTask chat: each test user's prompt lists {n} candidates, the held-out target among {m} "
    "items the user never met, in one fixed order, the same for every row. HR@k and NDCG@k rank "
    "the candidates by the LLM's logit of each candidate's letter (LLM rows) or by the model's "
    "score of the item (ID models), ties broken at random in expectation. Generation: a greedy "
    "answer names exactly one candidate by its letter or title (ValidRatio); HR@1 over all "
    "prompts counts an invalid answer as a miss, HR@1 over valid answers (LLaRA's) leaves them "
    "out. Random (expectation), stated, not measured: HR@k = k/{n}, NDCG@k = (1/{n}) "
    "sum_(i<=min(k,{n})) 1/log2(i+1) (the random row), and a random pick is always "
    "valid. Task description: the LLM describes held-out items (never trained on) from their "
    "soft token; ROUGE F1 and the cosine of MiniLM embeddings against the item's text, and "
    "against its LLM-written profile (partly circular: an LLM wrote that reference from the "
    "same item text); genre F1: the genres the description names against the item's. The "
    "zero-shot LLM given the title is an upper reference (it is told what the others must "
    "infer) and is never the row the others are compared with. prompts: users (chat) or items "
    "(description) per run. Mean ± std over seeds; in brackets the p-values against the best "
    "row of the column in the same dataset and task. "
    + SIGNIFICANCE_NOTE.format(units="users or items", unit="prompt")
    + "\n"
)


def _single_seed_note(rows: Sequence[Mapping]) -> str:
    single = [f"{r['model']} ({r['task']})" for r in rows if r["seeds"] == 1]
    if not single:
        return ""
    return (
        f"One seed only: {', '.join(single)}; their seed variance is not measured (their tests "
        f"take the compared row's, and two one-seed rows are not tested).\n"
    )


def _random_row(dataset: str, prompts: int, n: int) -> dict[str, Any]:
    expected = random_expectation(n)
    row: dict[str, Any] = {"dataset": dataset, "task": "chat", "model": ROW_NAMES["random"]}
    row |= {"seeds": np.nan, "prompts": prompts}
    for task in TASKS:
        for m in METRICS[task]:
            value = expected[m] if task == "chat" else np.nan
            row |= {m: value, f"{m}_std": np.nan}  # stated, not measured
            row |= {f"{m}_p": np.nan, f"{m}_p_holm": np.nan, f"{m}_vs": None}
    return row


def _value(row: Mapping, metric: str) -> str:
    if math.isnan(row[metric]):
        return "–"
    if math.isnan(row[f"{metric}_std"]):
        return f"{row[metric]:.4f}"
    return cell(
        row[metric], row[f"{metric}_std"], None, row[f"{metric}_p"], row[f"{metric}_p_holm"]
    )


def _markdown(rows: Sequence[Mapping], note: str) -> str:
    parts = []
    for task in TASKS:
        picked = [r for r in rows if r["task"] == task]
        if not picked:
            continue
        header = ["dataset", "model", "seeds", "prompts", *(LABELS[m] for m in METRICS[task])]
        lines = [f"### {task}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in picked:
            seeds = "" if math.isnan(row["seeds"]) else str(int(row["seeds"]))
            cells = [row["dataset"], row["model"], seeds, str(row["prompts"])]
            lines.append("| " + " | ".join(cells + [_value(row, m) for m in METRICS[task]]) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n" + note


def _html(rows: Sequence[Mapping], note: str, title: str, provenance: Mapping[str, str]) -> str:
    sections = []
    for task in TASKS:
        picked = [r for r in rows if r["task"] == task]
        if not picked:
            continue
        header = ["dataset", "model", "seeds", "prompts", *(LABELS[m] for m in METRICS[task])]
        body = []
        for row in picked:
            seeds = "" if math.isnan(row["seeds"]) else str(int(row["seeds"]))
            cells: list = [row["dataset"], row["model"], seeds, str(row["prompts"])]
            for m in METRICS[task]:
                if math.isnan(row[m]):
                    cells.append("–")
                    continue
                std = row[f"{m}_std"]
                shown = f"{row[m]:.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")
                cells.append((shown, notes(None, row[f"{m}_p"], row[f"{m}_p_holm"])))
            body.append(cells)
        sections.append((task, html_table(header, body)))
    return html_page(title, sections, note=note, provenance=provenance)


def mbr_text_table(
    input: Mapping[str, Any],
    output: Mapping[str, str],
    *,
    datasets: Sequence[str] | None = None,
    profiled: Sequence[str] | None = None,
    encoder: Any = DEFAULT_EMBEDDING_MODEL,
    device: str = "auto",
    provenance: Mapping | None = None,
    threads: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Both text tasks in one table: a row per (dataset, task, model), a column per metric.

    Layout: the CSV's leading columns are ``dataset``, ``task`` (``chat`` or ``description``),
    ``model`` (display name), ``seeds`` and ``prompts`` (users or items per run); then per
    metric its mean over seeds, ``_std``, ``_p`` and ``_p_holm`` (the seed-and-unit test against
    the best row of the column in the same dataset and task, Holm over the whole table) and
    ``_vs`` (that row). Chat metrics: ``hit@1``, ``hit@5``, ``ndcg@5``, ``ndcg@10`` (letter-score
    ranking), ``valid``, ``gen_hit@1``, ``gen_hit@1_valid`` (generation; empty for ID models);
    description metrics: ``rouge1``, ``rouge2``, ``rougeL``, ``cosine`` (against the item's
    text), ``rougeL_profile``, ``cosine_profile`` (against its profile), ``genre_f1``. A metric
    of the other task is empty. The chat task opens with the stated ``random`` row. The
    markdown and HTML show one table per task, the metrics named for a reader.

    Args:
        input: per dataset (lists in the order of ``datasets``) ``candidates``,
            ``chat_users``, ``describe_items``, ``item_text``; ``profiles`` (item profiles
            parquet) in the order of ``profiled``; then ``chat`` (the LLM rows' per_user
            parquets: user_id, letter_scores, answer), ``chat_id`` (the ID models'
            chat.parquet: user_id, letter_scores) and ``descriptions`` (item_id,
            description); each file's run from :func:`read_run_keys`.
        output: ``table`` (CSV), ``markdown`` and ``html``.
        datasets: the datasets of the split files (default: the one the runs record).
        profiled: the datasets that have LLM profiles (the others' profile columns are empty).
        encoder: the sentence encoder's name (default all-MiniLM-L6-v2, offline) or an encoder
            object (tests pass a stand-in).
        device: where the encoder runs (default auto).
        provenance: the config stamped on the rows (git commit, config hash).
        threads: torch threads for the encoder (default 1).
        progress: show the encoder's progress.
    """
    import torch

    torch.set_num_threads(threads)
    if isinstance(encoder, str) and input.get("descriptions"):
        from ..text.embed import load_encoder

        encoder = load_encoder(encoder, device)
    runs = text_runs(input, encoder, progress, datasets, profiled)
    seen = {r.model for r in runs}
    models = [m for m in ROW_ORDER if m in seen] + sorted(seen - set(ROW_ORDER))
    files = input["candidates"]
    files = [files] if isinstance(files, str | Path) else list(files)
    # Every dataset's lists have the same length (mbr.text.candidates).
    n_candidates = candidate_items(pq.read_table(files[0])).shape[1]
    spec = table_spec(models, NOTE.format(n=n_candidates, m=n_candidates - 1))
    built = [row for row, _ in build_rows(runs, spec)]
    prompts = {}
    for run in runs:
        prompts[(run.dataset, run.variant, ROW_NAMES.get(run.model, run.model))] = len(run.units)
    rows, done = [], set()
    for row in built:
        row = dict(row)
        row["prompts"] = prompts[(row["dataset"], row["task"], row["model"])]
        if row["task"] == "chat" and row["dataset"] not in done:
            done.add(row["dataset"])
            rows.append(_random_row(row["dataset"], row["prompts"], n_candidates))
        rows.append(row)
    note = spec.note + _single_seed_note(rows)
    stamped = stamp(provenance)
    table = pd.DataFrame(rows)
    lead = ["dataset", "task", "model", "seeds", "prompts"]
    table = table[lead + [c for c in table.columns if c not in lead]].assign(**stamped)
    write_csv(output["table"], table)
    write_text(output["markdown"], _markdown(rows, note))
    write_text(output["html"], _html(rows, note, spec.title, stamped))
    return table


# --- the figure --------------------------------------------------------------------------------

FIGURE_METRICS = ("hit@1", "hit@5", "ndcg@10")


def mbr_chat_figure(input: Mapping[str, str], output: Mapping[str, str]) -> None:
    """Per dataset, every chat row's HR@1, HR@5 and NDCG@10 on the 20 candidates (grouped bars,
    std over seeds as error bars), with the random expectation of each as a dashed line."""
    table = pd.read_csv(input["table"])
    chat = table[table["task"] == "chat"]
    datasets = list(dict.fromkeys(chat["dataset"]))
    fig, axes = subplots(len(datasets), 1, figsize=(11, 4.2 * len(datasets) + 0.6), squeeze=False)
    for ax, dataset in zip(axes[:, 0], datasets):
        sub = chat[chat["dataset"] == dataset]
        random = sub[sub["model"] == ROW_NAMES["random"]].iloc[0]
        rows = sub[sub["model"] != ROW_NAMES["random"]]
        x = np.arange(len(rows))
        width = 0.8 / len(FIGURE_METRICS)
        for j, metric in enumerate(FIGURE_METRICS):
            label = LABELS[metric]
            offset = (j - (len(FIGURE_METRICS) - 1) / 2) * width
            ax.bar(
                x + offset,
                rows[metric],
                width,
                yerr=rows[f"{metric}_std"],
                capsize=2,
                color=f"C{j}",
                label=label,
            )
            ax.axhline(
                random[metric],
                color=f"C{j}",
                linestyle="--",
                linewidth=1,
                label=f"{label}, random ({random[metric]:.3f})",
            )
        top = max(
            (
                rows[list(FIGURE_METRICS)].to_numpy()
                + rows[[f"{m}_std" for m in FIGURE_METRICS]].to_numpy()
            ).max(),
            random[list(FIGURE_METRICS)].max(),
        )
        ax.set_ylim(0, 1.35 * top if top > 0 else 1)  # room for the legend above the bars
        ax.set_xticks(x, rows["model"], rotation=20, ha="right")
        listed = round(1 / random["hit@1"])  # the random HR@1 is 1 / candidates
        ax.set_ylabel(f"test metric within {listed} candidates")
        n = int(rows["prompts"].iloc[0])
        ax.set_title(f"{dataset}: {n} test users, target among {listed} candidates")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncols=2)
    fig.suptitle(
        "Chat-based recommendation: letter-score ranking of each row against random "
        f"(mean ± std over {seed_count(chat['seeds'].dropna().astype(int))})",
        fontsize=11,
    )
    fig.tight_layout()
    save_png(fig, output["figure"])


# --- example outputs ---------------------------------------------------------------------------


def _first_seed(paths: Sequence[str]) -> dict[str, str]:
    """Each row's file of its lowest seed, by row (model) name, in the order given."""
    best: dict[str, tuple[int, str]] = {}
    for path in paths:
        keys = read_run_keys(path)
        seed = int(keys["seed"])
        if keys["model"] not in best or seed < best[keys["model"]][0]:
            best[keys["model"]] = (seed, str(path))
    return {model: path for model, (_, path) in best.items()}


def _quote(text: str | None) -> str:
    return "> " + (text or "(none)").strip().replace("\n", "\n> ")


def mbr_examples(
    input: Mapping[str, Any],
    output: Mapping[str, str],
    *,
    users: int = 3,
    items: int = 3,
    history: int = 15,
) -> None:
    """A markdown page of what the models say, for a reader.

    Args:
        input: ``sequences``, ``item_text``, ``candidates``, ``chat_users``, ``describe_items``,
            ``profiles``,
            ``chat`` (the LLM rows' per_user parquets) and ``descriptions``; of each row the
            lowest seed is shown.
        output: ``examples`` (markdown).
        users: the first asked users by id (default 3): their latest history in
            words, the candidates with the target marked, each row's answer, the candidate it
            names and its top letter.
        items: the first held-out items by id (default 3): each row's description beside the
            item's text and profile.
        history: the latest events shown per user (default 15).
    """
    seqs = load_behaviour_sequences(input["sequences"])
    titles = item_names(input["item_text"])
    candidates = asked_candidates(input["candidates"], input["chat_users"])
    chat = {
        m: pd.read_parquet(p).set_index("user_id")
        for m, p in _first_seed(input.get("chat", ())).items()
    }
    funnel = np.array(seqs.funnel, dtype=object)
    lines = ["# What the models say", "", "## Chat-based recommendation", ""]
    for row in candidates.slice(0, users).to_pylist():
        user, items_, target = row["user_id"], row["items"], row["target_position"]
        labels = letters(len(items_))
        seen = slice(max(0, len(seqs.items[user]) - history), len(seqs.items[user]))
        words = history_text(titles[seqs.items[user][seen]], funnel[seqs.behaviours[user][seen]])
        lines += [f"### User {user}", "", f"Latest history (oldest first): {words}.", ""]
        lines += ["| letter | candidate | |", "|---|---|---|"]
        for i, (label, item) in enumerate(zip(labels, items_)):
            lines.append(f"| {label} | {titles[item]} | {'**target**' if i == target else ''} |")
        lines += ["", "| row | answer | names | top letter |", "|---|---|---|---|"]
        names = [titles[i] for i in items_]
        for model, frame in chat.items():
            if user not in frame.index:
                continue
            answer = str(frame.at[user, "answer"]) if "answer" in frame else ""
            picked = match_answer(answer, names, labels)
            top = int(np.argmax(frame.at[user, "letter_scores"]))
            flat = " ".join(answer.split()).replace("|", "\\|")
            names_one = (
                f"{labels[picked]} {mark(picked, target)}" if picked >= 0 else "none (invalid)"
            )
            lines.append(
                f"| {ROW_NAMES.get('llm_' + model, model)} | {flat} | {names_one} | "
                f"{labels[top]} {mark(top, target)} |"
            )
        lines.append("")
    lines += ["## Item description", ""]
    described = {
        m: pd.read_parquet(p).set_index("item_id")
        for m, p in _first_seed(input.get("descriptions", ())).items()
    }
    held_out = np.sort(pq.read_table(input["describe_items"]).column("item_id").to_numpy())[:items]
    texts = pq.read_table(input["item_text"], columns=["text"]).column("text").to_pylist()
    profiles = None
    if input.get("profiles"):  # only the datasets with PFR's LLM profiles have them
        profiles = pq.read_table(input["profiles"], columns=["item_id", "summary"]).to_pandas()
        profiles = profiles.set_index("item_id")["summary"]
    for item in held_out.tolist():
        lines += [f"### Item {item}: {titles[item]}", "", "Item text:", "", _quote(texts[item]), ""]
        if profiles is not None:
            lines += ["Profile (LLM-written):", "", _quote(profiles.get(item)), ""]
        for model, frame in described.items():
            said = frame.at[item, "description"] if item in frame.index else None
            lines += [f"{ROW_NAMES.get('llm_' + model, model)}:", "", _quote(said), ""]
    write_text(output["examples"], "\n".join(lines))


def mark(picked: int, target: int) -> str:
    """A hit or a miss, for the examples."""
    return "(target)" if picked == target else "(miss)"

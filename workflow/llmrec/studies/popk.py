"""The POPK study: news recommenders trained with popk popular articles as extra negatives.

One run = (dataset, model, mode, popk, seed): popular negatives added to the k impression
negatives (``add``, the paper's) or in place of popk of them (``replace``). Train on the
dataset's training impressions with the POPK sampler, score the dev impressions, and save per
impression MIND's accuracy metrics and the diversity and popularity of the impression's top 10
(:func:`train_popk`). The table compares every popk with popk = 0, the usual sampler, of the
same model (:func:`popk_table`).

Diversity of a top-10 list (the impression's 10 highest-scored candidates):

- ``ild_category``: share of pairs of different categories; ``ild_embedding``: mean
  ``1 - cosine`` between the articles' sentence embeddings (all-MiniLM-L6-v2 of the article text,
  the same vectors for every model);
- ``avg_popularity``: mean training clicks of the listed articles; ``tail_share``: share of
  them outside the 20% most-clicked articles; ``novelty``: mean ``-log2`` of the share of
  training users who clicked them;
- over all lists of a run: ``coverage`` (distinct listed articles over distinct dev candidates)
  and ``gini`` of how often each dev candidate is listed per impression that showed it
  (:func:`recommendation_gini`; over the dev candidates, not the catalogue, so that a ranker
  that ignores the articles scores near 0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from matplotlib.colors import to_rgb

from ..device import resolve_device
from ..evaluation.diversity import (
    average_popularity,
    coverage,
    gini,
    intra_list_diversity,
    novelty,
    tail_share,
)
from ..evaluation.impressions import IMPRESSION_METRICS, impression_metrics
from ..evaluation.significance import NOTE as SIGNIFICANCE_NOTE
from ..figures import save_png, seed_count, subplots
from ..io import atomic_path, write_json
from ..news import build_model
from ..news.data import NewsFeatures, build_features, training_articles, user_numbering
from ..news.sampling import Impressions, Popularity
from ..news.train import score_impressions, train_news_model
from ..training.seed import init_seed
from .tables import TableSpec, metric_label, run_keys, write_study_table

log = logging.getLogger(__name__)

STUDY = "popk"
MODELS = ("nrms", "naml", "lstur")
MODEL_NAMES = {"nrms": "NRMS", "naml": "NAML", "lstur": "LSTUR"}
LIST_METRICS = ("ild_category", "ild_embedding", "avg_popularity", "tail_share", "novelty")
RUN_METRICS = ("coverage", "gini")
TOP = 10


def load_impressions(path: str, split: str) -> Impressions:
    table = pq.read_table(path)
    table = table.filter(pc.equal(table.column("split"), split))
    return Impressions.from_table(
        table.sort_by([("timestamp", "ascending"), ("impression_id", "ascending")])
    )


def minilm_word_vectors(vocab: list[str], model: str = "all-MiniLM-L6-v2") -> torch.Tensor:
    """Each word's vector: the mean of its WordPiece token embeddings in the sentence encoder
    (384-d for all-MiniLM-L6-v2); padding gets zeros."""
    from transformers import AutoModel, AutoTokenizer

    from ..text.models import embedding_model_path

    path = embedding_model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    table = AutoModel.from_pretrained(path).get_input_embeddings().weight.detach()
    vectors = torch.zeros(len(vocab), table.shape[1])
    for i, word in enumerate(vocab[2:], start=2):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if ids:
            vectors[i] = table[ids].mean(0)
    vectors[1] = table[tokenizer.unk_token_id]
    return vectors


def glove_word_vectors(vocab: list[str], path: str | Path, dim: int) -> torch.Tensor:
    """Each word's vector from a GloVe text file (``word v1 ... v_dim`` per line, as Stanford's
    glove.840B.300d.txt); words it lacks get N(0, 0.1) draws (torch's generator, seeded by the
    caller), padding zeros. Words are looked up as written, then lower-cased."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"popk.glove_path: there is no GloVe file {path}; download glove.840B.300d.zip "
            f"from https://nlp.stanford.edu/projects/glove/, unzip it there, or set "
            f"popk.word_init: minilm (offline)"
        )
    index = {w: i for i, w in enumerate(vocab)}
    vectors = torch.randn(len(vocab), dim) * 0.1
    vectors[0] = 0
    found = np.zeros(len(vocab), bool)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            # The word may contain spaces (glove.840B has some): the vector is the last dim.
            parts = line.rstrip("\n").rsplit(" ", dim)
            if len(parts) != dim + 1:
                raise ValueError(f"{path}: line {lineno}: expected a word and {dim} numbers")
            for word in (parts[0], parts[0].lower()):
                i = index.get(word)
                if i is not None and i > 1 and not found[i]:
                    vectors[i] = torch.tensor([float(x) for x in parts[1:]])
                    found[i] = True
    log.info("GloVe vectors for %d of %d words from %s", found.sum(), len(vocab) - 2, path)
    return vectors


def recommendation_gini(top: np.ndarray, candidates: Sequence[np.ndarray], n_items: int) -> float:
    """Gini of how often each dev candidate is recommended per impression that showed it
    (:func:`~llmrec.evaluation.diversity.gini` over the candidates, per exposure)."""
    shown = np.concatenate([np.asarray(c) for c in candidates])
    exposure = np.bincount(shown, minlength=n_items)
    return gini(top, n_items, population=np.unique(shown), exposure=exposure)


def list_metrics(
    top: np.ndarray,
    features: NewsFeatures,
    item_vectors: np.ndarray,
    clicks: np.ndarray,
    click_users: np.ndarray,
    n_train_users: int,
) -> dict:
    """Per-list diversity and popularity columns (coverage and Gini are computed per run)."""
    return {
        "ild_category": intra_list_diversity(top, item_categories=features.category),
        "ild_embedding": intra_list_diversity(top, item_vectors=item_vectors),
        "avg_popularity": average_popularity(top, clicks),
        "tail_share": tail_share(top, clicks),
        "novelty": novelty(top, click_users, n_train_users),
    }


def train_popk(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    dataset: str,
    model: str,
    popk: int | str,
    seed: int | str,
    settings: Mapping,
    sampler: Mapping,
    data: Mapping,
    train: Mapping,
    mode: str = "add",
    word_init: str = "random",
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """Train one (model, mode, popk, seed) on the training impressions; evaluate on dev ones.

    ``mode``: popular negatives added to the k impression negatives or in place of popk of them
    (``sample_negatives``); popk = 0 is the same plain sampler in both. ``word_init``: random,
    minilm or glove (the GloVe text file ``input["glove"]``)."""
    popk, seed = int(popk), int(seed)
    torch.set_num_threads(threads)
    init_seed(seed)
    dev = resolve_device(device)
    train_imps = load_impressions(input["split"], "train")
    test_imps = load_impressions(input["split"], "dev")
    items = pq.read_table(input["news"])
    features = build_features(
        items,
        training_articles(train_imps),
        title_len=data["title_len"],
        abstract_len=data["abstract_len"],
        min_word_count=data["min_word_count"],
    )
    item_vectors = np.load(input["item_vectors"]).astype(np.float32)
    if settings.get("news_encoder", "words") == "sentence":
        features.vectors = item_vectors
    word_vectors = None
    if word_init == "minilm":
        word_vectors = minilm_word_vectors(features.vocab)
        if settings.get("word_dim") != word_vectors.shape[1]:
            raise ValueError(
                f"word_init: minilm gives {word_vectors.shape[1]}-d word vectors; "
                f"set popk.{model}.word_dim to {word_vectors.shape[1]} "
                f"(it is {settings.get('word_dim')})"
            )
    elif word_init == "glove":
        if not input.get("glove"):
            raise ValueError("popk.word_init: glove needs popk.glove_path, the GloVe text file")
        word_vectors = glove_word_vectors(features.vocab, input["glove"], int(settings["word_dim"]))
    train_users = user_numbering(train_imps.users, train_imps.users)
    test_users = user_numbering(train_imps.users, test_imps.users)
    net = build_model(
        model,
        vocab_size=len(features.vocab),
        num_categories=int(features.category.max()) + 1,
        num_subcategories=int(features.subcategory.max()) + 1,
        num_users=int(train_users.max()) + 1,
        settings=settings,
        word_vectors=word_vectors,
    )
    click_times, click_items = train_imps.clicks()
    shown_times, shown_items = train_imps.shown()
    hours = 3600
    window = sampler.get("window_hours")
    popularity = Popularity(
        click_times,
        click_items,
        len(features.title),
        logic=sampler["logic"],
        window=None if window is None else int(window * hours),
        step=int(sampler["step_hours"] * hours),
        pool_size=sampler["pool_size"],
        measure=sampler["measure"],
        shown_times=shown_times,
        shown_items=shown_items,
        min_impressions=sampler["min_impressions"],
    )
    start = time.perf_counter()
    history = train_news_model(
        net,
        features,
        train_imps,
        train_users,
        k=sampler["npratio"],
        popk=popk,
        popularity=popularity,
        weighting=sampler["weighting"],
        mode=mode,
        selection=sampler["selection"],
        epochs=train["epochs"],
        batch_size=train["batch_size"],
        lr=train["lr"],
        history_len=data["history_len"],
        seed=seed,
        progress=progress,
        device=dev,
    )
    train_seconds = time.perf_counter() - start
    scores = score_impressions(
        net, features, test_imps, test_users, history_len=data["history_len"], device=dev
    )
    labels = [test_imps.labels[a:b] for a, b in zip(test_imps.offsets[:-1], test_imps.offsets[1:])]
    frame = impression_metrics(labels, scores, test_imps.ids)
    top = np.full((len(scores), TOP), -1, dtype=np.int64)
    for i, (s, a) in enumerate(zip(scores, test_imps.offsets[:-1])):
        order = np.argsort(-s, kind="stable")[:TOP]
        top[i, : len(order)] = test_imps.candidates[a + order]
    clicks = np.bincount(click_items, minlength=len(features.title)).astype(np.float64)
    row = np.repeat(np.arange(len(train_imps)), train_imps.sizes())
    pairs = np.unique(np.stack([train_imps.users[row][train_imps.labels > 0], click_items]), axis=1)
    click_users = np.bincount(pairs[1], minlength=len(features.title)).astype(np.float64)
    n_train_users = len(np.unique(train_imps.users))
    for name, values in list_metrics(
        top, features, item_vectors, clicks, click_users, n_train_users
    ).items():
        frame[name] = values
    with atomic_path(output["per_impression"]) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    shown = np.unique(test_imps.candidates)
    dev_lists = np.split(test_imps.candidates, test_imps.offsets[1:-1])
    variant = variant_label(popk, mode)
    summary = {
        **run_keys(study=STUDY, dataset=dataset, model=model, variant=variant, seed=seed),
        "popk": popk,
        "mode": mode,
        "device": str(dev),
        "train_seconds": train_seconds,
        "history": history,
        "test": {
            **frame.drop(columns="impression_id").mean().to_dict(),
            "coverage": coverage(top, len(shown)),
            "gini": recommendation_gini(top, dev_lists, len(features.title)),
        },
        "impressions": {"train": len(train_imps), "dev": len(test_imps)},
    }
    write_json(output["summary"], summary)
    log.info("%s %s seed=%d: %s", model, variant, seed, summary["test"])


def variant_label(popk: int, mode: str) -> str:
    """The table's popk cell: ``0`` (the plain sampler, the same in both modes) or e.g.
    ``2 (add)``; labels sort by popk, then mode."""
    return "0" if popk == 0 else f"{popk} ({mode})"


def parse_variant(label) -> tuple[int, str | None]:
    """``(popk, mode)`` of a table's popk cell (a bare number: no mode)."""
    text = str(label)
    number, _, rest = text.partition(" ")
    return int(float(number)), (rest.strip("()") or None)


METRIC_ORDER = (*IMPRESSION_METRICS, *LIST_METRICS, *RUN_METRICS)


NOTE = (
    "\nMean ± std over seeds on the dev impressions; in brackets the change against "
    "popk = 0 (the usual in-impression sampler) of the same model and the p-values. "
    + SIGNIFICANCE_NOTE.format(units="impressions", unit="impression")
    + " popk: popular negatives per click, "
    "added to the k impression negatives (add, the paper's) or in place of popk of them "
    "(replace). AUC, MRR, nDCG@5/10: MIND's "
    "impression metrics. Diversity and popularity of each impression's top 10: "
    "intra-list diversity by category and by MiniLM article embedding, coverage of the "
    "dev candidates, mean training clicks, share of tail articles (outside the top 20% "
    "by clicks), novelty (-log2 of the share of training users who clicked), Gini of how "
    "often each dev candidate is recommended per impression that showed it.\n"
)
TABLE = TableSpec(
    study=STUDY,
    columns=("dataset", "model", "variant"),
    markdown_columns=("dataset", "model", "popk"),
    models=MODELS,
    baseline={"variant": "0"},
    unit="impression_id",
    unit_table="per_impression",
    metrics=METRIC_ORDER,
    note=NOTE,
    names={"variant": "popk"},
    run_metrics=RUN_METRICS,
    change="runs",
    markdown_metrics=(
        "auc",
        "mrr",
        "ndcg@5",
        "ndcg@10",
        "ild_category",
        "ild_embedding",
        "coverage",
        "avg_popularity",
        "tail_share",
        "novelty",
    ),
    annotate_if="change_%",
    title="POPK study: news recommenders trained with popular negatives",
)


def popk_table(
    input: Mapping[str, Sequence[str]],
    output: Mapping[str, str],
    *,
    synthetic: Sequence[str] = (),
    provenance: Mapping | None = None,
) -> None:
    """Per (dataset, model, popk): mean and std over seeds, % change and p against
    popk = 0 of the same model, over seeds and dev impressions;
    coverage and Gini are one number per run and get no test."""
    write_study_table(input, output, TABLE, synthetic=synthetic, provenance=provenance)


def popk_figure(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    diversity: str = "ild_category",
    accuracy: str = "auc",
    tradeoff: str = "ndcg@10",
    mode: str = "add",
) -> None:
    """Per dataset, one line per model: the diversity change (%) against popk = 0 by popk; the
    accuracy by popk; the trade-off, the change of ``tradeoff`` (an accuracy) against the
    change of diversity, one point per popk. Error bars: the std over seeds (of a change: in %
    of the popk = 0 mean). One sampler ``mode`` (popk = 0 and that mode's rows)."""
    table = pd.read_csv(input["table"], dtype={"popk": str})
    parsed = [parse_variant(v) for v in table["popk"]]
    table["popk"] = [k for k, _ in parsed]
    table = table[[m in (None, mode) for _, m in parsed]]
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = subplots(
        len(datasets),
        3,
        figsize=(16, 4.4 * len(datasets) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    div, acc, trade = metric_label(diversity), metric_label(accuracy), metric_label(tradeoff)
    for (ax_div, ax_acc, ax_trade), dataset in zip(axes, datasets):
        sub = table[table["dataset"] == dataset]
        popks = sorted(sub["popk"].unique())
        models = [m for m in MODELS if m in set(sub["model"])]
        # Side by side at each popk, so that the models' error bars do not hide each other.
        step = 0.06 * (min(np.diff(popks)) if len(popks) > 1 else 1)
        for i, model in enumerate(models):
            rows = sub[sub["model"] == model].sort_values("popk")
            base = rows[rows["popk"] == 0]
            x = rows["popk"] + (i - (len(models) - 1) / 2) * step
            style = {"marker": "o", "capsize": 3, "color": f"C{i}", "label": MODEL_NAMES[model]}
            spread = {m: _change_spread(rows, base, m) for m in (diversity, tradeoff)}
            ax_div.errorbar(x, rows[f"{diversity}_change_%"], yerr=spread[diversity], **style)
            ax_acc.errorbar(x, rows[accuracy], yerr=rows[f"{accuracy}_std"], **style)
            # Each model's path from popk = 0 (the origin) through its popk values.
            dx, dy = rows[f"{diversity}_change_%"], rows[f"{tradeoff}_change_%"]
            ax_trade.plot(dx, dy, color=f"C{i}", lw=1)
            tried = (rows["popk"] != 0).to_numpy()
            ax_trade.errorbar(
                dx[tried],
                dy[tried],
                xerr=spread[diversity][tried],
                yerr=spread[tradeoff][tried],
                fmt="o",
                capsize=3,
                color=f"C{i}",
                ecolor=(*to_rgb(f"C{i}"), 0.45),
            )
            for popk, x_, y_ in zip(rows["popk"][tried], dx[tried], dy[tried]):
                ax_trade.annotate(
                    f"popk {popk}",
                    (x_, y_),
                    xytext=(5, 5),
                    textcoords="offset points",
                    fontsize=8,
                    color=f"C{i}",
                )
        ax_trade.plot(0, 0, "ks", ms=5)
        ax_trade.annotate(
            "popk = 0", (0, 0), xytext=(-5, -12), textcoords="offset points", ha="right", fontsize=8
        )
        ax_div.set_title(f"{dataset}\nDiversity of the top 10: {div}", fontsize=10)
        ax_div.set_ylabel(f"{div}, change against popk = 0 (%)")
        ax_acc.set_title(f"{dataset}\nAccuracy: {acc}", fontsize=10)
        ax_acc.set_ylabel(f"dev {acc}")
        for ax in (ax_div, ax_acc):
            ax.set_xlabel(f"popk (popular negatives per click, {mode} mode)")
            ax.set_xticks(popks)
        ax_trade.set_title(f"{dataset}\nTrade-off: {trade} against {div}", fontsize=10)
        ax_trade.set_xlabel(f"{div}, change against popk = 0 (%)")
        ax_trade.set_ylabel(f"{trade}, change against popk = 0 (%)")
        ax_trade.axvline(0, color="grey", lw=0.8)
        for ax in (ax_div, ax_trade):
            ax.axhline(0, color="grey", lw=0.8)
        for ax in (ax_div, ax_acc, ax_trade):
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper right", ncol=len(labels), frameon=False)
    fig.suptitle(
        f"POPK study ({mode} mode): dev metrics by popk, mean ± std over "
        f"{seed_count(table['seeds'])}",
        fontsize=11,
    )
    save_png(fig, output["figure"])


def _change_spread(rows: pd.DataFrame, base: pd.DataFrame, metric: str) -> np.ndarray:
    """A change's error bar: the std over seeds of ``metric``, in % of the popk = 0 mean (none
    without a popk = 0 row or against a mean of 0, as the change itself)."""
    base_mean = base[metric].iloc[0] if len(base) else 0.0
    return (100 * rows[f"{metric}_std"] / (base_mean or np.nan)).to_numpy()

"""The arithmetic study: P5 with number-token embeddings made continuous by an arithmetic task.

One function per rule of ``workflow/rules/arithmetic.smk``:

- :func:`p5_index`: item ID texts (sequential or random indexing);
- :func:`p5_tokenizer`: a tokenizer trained on the study's prompts and arithmetic problems;
- :func:`p5_init`: the seed's starting weights theta_0;
- :func:`p5_arithmetic`: theta_arith, theta_0 trained on arithmetic;
- :func:`train_p5`: sequential recommendation fine-tuning from theta_0 (``p5``) or
  from theta_arith (``precondition``: pre-conditioning);
- :func:`p5_task_vector`: ``task_vector``: the P5 model plus lambda (theta_arith - theta_0)
  (Ilharco et al. 2023, https://arxiv.org/abs/2212.04089);
- :func:`evaluate_p5`: constrained beam search over valid IDs, hit and NDCG at k on the
  leave-one-out test item, with seen or unseen prompt templates;
- :func:`train_sasrec`: SASRec on the same split, the classic reference row;
- :func:`train_sasrec_ordered`: SASRec first pre-trained on runs of consecutive item numbers
  (ordered item embeddings), then trained as SASRec.

The runs the table reads are the evaluations (:func:`evaluate_p5`, :func:`train_sasrec`,
:func:`train_sasrec_ordered`); their
summaries record the study, dataset, model (the method), variant (the prompt setting, none for
SASRec) and seed. The table, the embedding figure and the co-occurrence table are in
:mod:`llmrec.studies.arithmetic_report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from ..device import resolve_device
from ..evaluation.ranking import ranking_metrics, summarize
from ..io import atomic_path, save_weights, write_json
from ..models.sasrec import SASRec
from ..p5.arithmetic import apply_task_vector, arithmetic_examples, split_facts, task_vector
from ..p5.decoding import Trie, recommend
from ..p5.indexing import build_index, read_index, write_index
from ..p5.model import P5, build_t5, collate
from ..p5.prompts import evaluation_examples, templates, training_examples
from ..p5.tokenizer import load_tokenizer, pretrained_tokenizer, train_tokenizer
from ..p5.train import train_seq2seq
from ..training.seed import init_seed
from ..training.sequential import evaluate_sasrec, fit_sasrec, pretrain_ordered
from .tables import run_keys

log = logging.getLogger(__name__)

STUDY = "arithmetic"

HELD_OUT = 2**31 - 1
"""The "epoch" whose generator draws the held-out problems; training never reaches it."""


def load_sequences(path: str) -> list[np.ndarray]:
    """Every user's items in time order (``sequences.parquet``; row i is user i)."""
    table = pq.read_table(path, columns=["user_id", "items"])
    users = table.column("user_id").to_numpy()
    if not np.array_equal(users, np.arange(len(users))):
        raise ValueError(f"{path}: users must be rows 0..n-1 in order")
    return [np.asarray(items, dtype=np.int64) for items in table.column("items").to_pylist()]


def _n_items(path: str) -> int:
    return pq.read_metadata(path).num_rows


def _id_range(index: Sequence[str]) -> tuple[int, int]:
    """The numbers the item IDs span (arithmetic is posed over them)."""
    numbers = [int(text) for text in index if text.isdigit()]
    if not numbers:
        raise ValueError(
            "the arithmetic task needs numeric item IDs: use sequential or random "
            "indexing (arithmetic.indexing)"
        )
    return min(numbers), max(numbers)


def p5_index(
    input: Mapping[str, str], output: Mapping[str, str], *, method: str, seed: int
) -> None:
    """The ID text of every item (sequential or random indexing), written as ``index.parquet``.

    Collaborative indexing (:mod:`llmrec.p5.indexing`) gives no numbers to do arithmetic on, so
    the study's config offers only the other two."""
    index = build_index(
        method, load_sequences(input["sequences"]), _n_items(input["item_table"]), seed=seed
    )
    write_index(output["index"], index, method)


def _held_out_facts(arithmetic: Mapping, index: Sequence[str], seed: int) -> dict[int, np.ndarray]:
    """The seed's arithmetic facts that training never sees (:func:`split_facts`)."""
    low, high = _id_range(index)
    return split_facts(
        low,
        high,
        max_operand=arithmetic["max_operand"],
        share=arithmetic["held_out"],
        rng=np.random.default_rng([seed, 3]),
    )


def _arithmetic_examples(
    arithmetic: Mapping, index: Sequence[str], seed: int, epoch: int, part: str = "train"
):
    """An epoch's training problems, or (``part="held_out"``) problems on the held-out facts
    only."""
    low, high = _id_range(index)
    return arithmetic_examples(
        arithmetic["examples"],
        low=low,
        high=high,
        forms=arithmetic["forms"],
        max_operand=arithmetic["max_operand"],
        held_out=_held_out_facts(arithmetic, index, seed),
        part=part,
        rng=np.random.default_rng([seed, 1, epoch]),
    )


def held_out_problems(arithmetic: Mapping, index: Sequence[str], seed: int, n: int = 256):
    """``n`` problems whose facts the seed's arithmetic training never states, in any form."""
    return _arithmetic_examples({**arithmetic, "examples": n}, index, seed, HELD_OUT, "held_out")


def _recommendation_examples(sequences, index, prompts: Mapping, seed: int, epoch: int):
    return training_examples(
        sequences,
        index,
        max_history=prompts["max_history"],
        windows_per_user=prompts["windows_per_user"],
        rng=np.random.default_rng([seed, 2, epoch]),
        tasks=prompts["tasks"],
        prompts_per_window=prompts["prompts_per_window"],
    )


def p5_tokenizer(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    vocab_size: int,
    prompts: Mapping,
    arithmetic: Mapping,
    pretrained: str | None = None,
) -> None:
    """A tokenizer trained on the recommendation prompts (all templates) and arithmetic, or a
    pretrained T5's (``pretrained``) with the corpus's collaborative-ID tokens added."""
    sequences, index = load_sequences(input["sequences"]), read_index(input["index"])
    corpus = [
        text for pair in _recommendation_examples(sequences, index, prompts, 0, 0) for text in pair
    ]
    corpus += [text for pair in _arithmetic_examples(arithmetic, index, 0, 0) for text in pair]
    for template in templates("seen") + templates("unseen"):  # validation histories only
        corpus += evaluation_examples(
            sequences, index, stage="valid", template=template, max_history=prompts["max_history"]
        )[1]
    if pretrained:
        pretrained_tokenizer(pretrained, corpus, output["tokenizer"])
    else:
        train_tokenizer(corpus, vocab_size, output["tokenizer"])


def _model(model: Mapping, tokenizer, seed: int):
    init_seed(seed)
    options = {k: v for k, v in model.items() if k != "whole_word"}
    return P5(build_t5(len(tokenizer), **options), whole_word=model["whole_word"])


def _load(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True, map_location="cpu")


def _save(path: str, state: Mapping[str, torch.Tensor]) -> None:
    save_weights(path, {k: v.detach().cpu() for k, v in state.items()})


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _train(
    net,
    tokenizer,
    examples,
    train: Mapping,
    seed: int,
    checkpoint: Path,
    fingerprint: str,
    device: str,
    progress: bool,
) -> list[dict]:
    return train_seq2seq(
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
        checkpoint=checkpoint,
        checkpoint_every=train["checkpoint_every"],
        fingerprint=fingerprint,
        device=resolve_device(device),
        progress=progress,
    )


def arithmetic_accuracy(
    net, tokenizer, problems: Sequence[tuple[str, str]], device, batch_size: int = 64
) -> float:
    """Share of problems the model answers exactly (greedy decoding, unconstrained)."""
    net.eval()
    right = 0
    with torch.inference_mode():
        for start in range(0, len(problems), batch_size):
            batch = problems[start : start + batch_size]
            enc = {
                k: v.to(device)
                for k, v in collate(batch, tokenizer, 64, 16, net.whole_word).items()
            }
            inputs = net.encoder_inputs(
                enc["input_ids"], enc["attention_mask"], enc.get("whole_word_ids")
            )
            out = net.t5.generate(**inputs, max_new_tokens=8, num_beams=1, do_sample=False)
            answers = tokenizer.batch_decode(out, skip_special_tokens=True)
            right += sum(
                a.replace(" ", "") == t.replace(" ", "") for a, (_, t) in zip(answers, batch)
            )
    return right / max(1, len(problems))


def p5_init(
    input: Mapping[str, str], output: Mapping[str, str], *, seed: int | str, model: Mapping
) -> None:
    """theta_0: the seed's starting weights, shared by the three P5 variants of the seed."""
    _save(output["base"], _model(model, load_tokenizer(input["tokenizer"]), int(seed)).state_dict())


def p5_arithmetic(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    seed: int | str,
    model: Mapping,
    arithmetic: Mapping,
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """theta_arith: theta_0 trained on arithmetic problems over the item-ID numbers."""
    seed = int(seed)
    torch.set_num_threads(threads)
    tokenizer, index = load_tokenizer(input["tokenizer"]), read_index(input["index"])
    net = _model(model, tokenizer, seed)
    net.load_state_dict(_load(input["base"]))
    held_out = held_out_problems(arithmetic, index, seed)
    dev = resolve_device(device)
    before = arithmetic_accuracy(net.to(dev), tokenizer, held_out, dev)
    start = time.perf_counter()
    history = _train(
        net,
        tokenizer,
        lambda e: _arithmetic_examples(arithmetic, index, seed, e),
        arithmetic["train"],
        seed,
        Path(output["arithmetic"]).with_suffix(".ckpt"),
        _fingerprint(model, arithmetic, seed, _sha256(input["base"])),
        device,
        progress,
    )
    seconds = time.perf_counter() - start
    after = arithmetic_accuracy(net, tokenizer, held_out, dev)
    _save(output["arithmetic"], net.state_dict())
    log.info("arithmetic exact-match accuracy %.3f -> %.3f", before, after)
    write_json(
        output["summary"],
        {
            "seed": seed,
            "train_seconds": seconds,
            "history": history,
            "accuracy_before": before,
            "accuracy_after": after,
            "held_out_facts": sum(
                len(x) for x in _held_out_facts(arithmetic, index, seed).values()
            ),
        },
    )


def train_p5(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    method: str,
    seed: int | str,
    model: Mapping,
    prompts: Mapping,
    train: Mapping,
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """Fine-tune on sequential recommendation from ``input["init"]`` (theta_0 or theta_arith)."""
    seed = int(seed)
    torch.set_num_threads(threads)
    tokenizer, index = load_tokenizer(input["tokenizer"]), read_index(input["index"])
    sequences = load_sequences(input["sequences"])
    net = _model(model, tokenizer, seed)
    net.load_state_dict(_load(input["init"]))
    start = time.perf_counter()
    examples = lambda epoch: _recommendation_examples(sequences, index, prompts, seed, epoch)  # noqa: E731
    history = _train(
        net,
        tokenizer,
        examples,
        train,
        seed,
        Path(output["weights"]).with_suffix(".ckpt"),
        _fingerprint(method, model, prompts, train, seed, _sha256(input["init"])),
        device,
        progress,
    )
    _save(output["weights"], net.state_dict())
    write_json(
        output["summary"],
        {
            "method": method,
            "seed": seed,
            "history": history,
            "train_seconds": time.perf_counter() - start,
        },
    )


def choose_coefficient(scores: Mapping[float, float]) -> float:
    """The lambda with the best validation score; ties go to the smallest (the least edit)."""
    if not scores:
        raise ValueError("no task-vector coefficient to choose from")
    best = max(scores.values())
    return min(coefficient for coefficient, score in scores.items() if score == best)


def p5_task_vector(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    seed: int | str,
    coefficients: Sequence[float],
    model: Mapping,
    prompts: Mapping,
    evaluation: Mapping,
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """The P5 model's weights plus lambda x (theta_arith - theta_0), lambda chosen on validation.

    As in task arithmetic (Ilharco et al. 2023), lambda is the one of ``coefficients`` whose
    edited model has the best validation NDCG at the largest k (first seen template; each
    user's second-last item, so the test item never enters the choice); ties go to the
    smaller lambda. ``output["selection"]`` records every lambda's validation metrics and the
    choice; the task vector's evaluations copy the choice into their summaries.
    """
    torch.set_num_threads(threads)
    tokenizer, index = load_tokenizer(input["tokenizer"]), read_index(input["index"])
    sequences = load_sequences(input["sequences"])
    recommender = _load(input["recommender"])
    tau = task_vector(_load(input["arithmetic"]), _load(input["base"]))
    net = _model(model, tokenizer, int(seed))
    metric = f"ndcg@{max(evaluation['ks'])}"
    dev = resolve_device(device)
    validation = {}
    for coefficient in coefficients:
        net.load_state_dict(apply_task_vector(recommender, tau, coefficient))
        per_user = rank_p5(
            net,
            tokenizer,
            index,
            sequences,
            stage="valid",
            template=templates("seen")[0],
            max_history=prompts["max_history"],
            ks=evaluation["ks"],
            batch_size=evaluation["batch_size"],
            device=dev,
            progress=progress,
        )
        validation[float(coefficient)] = summarize(per_user)
        log.info("lambda %g: validation %s", coefficient, validation[float(coefficient)])
    chosen = choose_coefficient({c: scores[metric] for c, scores in validation.items()})
    log.info("chosen lambda %g (validation %s %.4f)", chosen, metric, validation[chosen][metric])
    _save(output["weights"], apply_task_vector(recommender, tau, chosen))
    write_json(
        output["selection"],
        {
            "coefficient": chosen,
            "metric": metric,
            "stage": "valid",
            "validation": [{"coefficient": c, **scores} for c, scores in validation.items()],
        },
    )


def _truth(users: np.ndarray, targets: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(users)), (users, targets)), shape=(n_users, n_items))


def _write_results(output: Mapping[str, str], per_user, extra: Mapping) -> None:
    with atomic_path(output["per_user"]) as tmp:
        per_user.to_parquet(tmp, index=False)
    write_json(output["summary"], {**extra, "test": summarize(per_user)})


def rank_p5(
    net,
    tokenizer,
    index: Sequence[str],
    sequences: Sequence[np.ndarray],
    *,
    stage: str,
    template,
    max_history: int,
    ks: Sequence[int],
    batch_size: int = 64,
    device="cpu",
    progress: bool = False,
):
    """Per-user hit and NDCG at ``ks`` of ``net`` on the ``stage`` ("valid" or "test") item of
    every user: one prompt of ``template`` each, beam search constrained to valid item IDs (as
    many beams as the largest k)."""
    users, sources, targets = evaluation_examples(
        sequences, index, stage=stage, template=template, max_history=max_history
    )
    top = recommend(
        net.to(device),
        tokenizer,
        sources,
        Trie.from_items(index, tokenizer),
        k=max(ks),
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    return ranking_metrics(top, _truth(users, targets, len(sequences), len(index)), users, ks)


def evaluate_p5(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    dataset: str,
    method: str,
    seed: int | str,
    setting: str,
    model: Mapping,
    prompts: Mapping,
    evaluation: Mapping,
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """Test hit and NDCG at k: beam search constrained to valid item IDs, one template of the
    ``setting`` (seen in training or unseen), the last item of every user as the truth. A task
    vector's summary also records the lambda chosen on validation (``input["selection"]``)."""
    torch.set_num_threads(threads)
    tokenizer, index = load_tokenizer(input["tokenizer"]), read_index(input["index"])
    sequences = load_sequences(input["sequences"])
    net = _model(model, tokenizer, int(seed))
    net.load_state_dict(_load(input["weights"]))
    template = templates(setting)[0]
    dev = resolve_device(device)
    start = time.perf_counter()
    per_user = rank_p5(
        net,
        tokenizer,
        index,
        sequences,
        stage="test",
        template=template,
        max_history=prompts["max_history"],
        ks=evaluation["ks"],
        batch_size=evaluation["batch_size"],
        device=dev,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    keys = run_keys(study=STUDY, dataset=dataset, model=method, variant=setting, seed=seed)
    extra = {}
    if "selection" in input.keys():
        extra["coefficient"] = json.loads(Path(input["selection"]).read_text())["coefficient"]
    _write_results(
        output,
        per_user,
        {
            **keys,
            "method": method,
            "setting": setting,
            "template": template.id,
            **extra,
            "eval_seconds": seconds,
        },
    )
    log.info("%s seed %s %s: %s in %.0fs", method, seed, setting, summarize(per_user), seconds)


def items_by_number(index: Sequence[str]) -> np.ndarray:
    """Every item id, in the order of the items' numbers (sequential or random indexing)."""
    _id_range(index)  # numbers only
    return np.argsort([int(text) for text in index], kind="stable")


def _sasrec(n_items: int, sasrec: Mapping, seed: int) -> SASRec:
    init_seed(seed)
    return SASRec(
        n_items,
        max_len=sasrec["max_len"],
        hidden=sasrec["hidden"],
        num_layers=sasrec["num_layers"],
        num_heads=sasrec["num_heads"],
        dropout=sasrec["dropout"],
    )


def _fit_and_test_sasrec(
    net: SASRec,
    sequences: Sequence[np.ndarray],
    output: Mapping[str, str],
    *,
    dataset: str,
    method: str,
    seed: int,
    sasrec: Mapping,
    ks: Sequence[int],
    device,
    progress: bool,
    extra: Mapping | None = None,
) -> None:
    """SASRec's training (early stopping on validation), then its test metrics and weights."""
    start = time.perf_counter()
    _, history = fit_sasrec(
        net.to(device),
        sequences,
        epochs=sasrec["epochs"],
        batch_size=sasrec["batch_size"],
        lr=sasrec["lr"],
        patience=sasrec["patience"],
        eval_every=sasrec["eval_every"],
        ks=ks,
        seed=seed,
        device=device,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    per_user = evaluate_sasrec(net, sequences, "test", ks, device)
    _save(output["weights"], net.state_dict())
    keys = run_keys(study=STUDY, dataset=dataset, model=method, variant=None, seed=seed)
    _write_results(
        output,
        per_user,
        {**keys, "method": method, "history": history, "train_seconds": seconds, **(extra or {})},
    )


def train_sasrec(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    dataset: str,
    seed: int | str,
    sasrec: Mapping,
    ks: Sequence[int],
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """SASRec on the same leave-one-out split; test metrics by full ranking. It reads no prompt,
    so its summary records no variant: the table shows it under every prompt setting."""
    seed = int(seed)
    torch.set_num_threads(threads)
    net = _sasrec(_n_items(input["item_table"]), sasrec, seed)
    _fit_and_test_sasrec(
        net,
        load_sequences(input["sequences"]),
        output,
        dataset=dataset,
        method="sasrec",
        seed=seed,
        sasrec=sasrec,
        ks=ks,
        device=resolve_device(device),
        progress=progress,
    )


def train_sasrec_ordered(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    dataset: str,
    seed: int | str,
    sasrec: Mapping,
    ordered: Mapping,
    ks: Sequence[int],
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """SASRec + ordered pre-training: the seed's SASRec, first trained to continue runs of
    consecutive item numbers (the study's index; :func:`pretrain_ordered`), then trained and
    tested exactly as :func:`train_sasrec`. The pre-trained weights are kept for the embedding
    figure."""
    seed = int(seed)
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    net = _sasrec(_n_items(input["item_table"]), sasrec, seed)
    start = time.perf_counter()
    pretraining = pretrain_ordered(
        net,
        items_by_number(read_index(input["index"])),
        sequences=ordered["sequences"],
        epochs=ordered["epochs"],
        batch_size=sasrec["batch_size"],
        lr=sasrec["lr"],
        seed=seed,
        device=dev,
        progress=progress,
    )
    pretrain_seconds = time.perf_counter() - start
    _save(output["pretrained"], net.state_dict())
    _fit_and_test_sasrec(
        net,
        load_sequences(input["sequences"]),
        output,
        dataset=dataset,
        method="sasrec_ordered",
        seed=seed,
        sasrec=sasrec,
        ks=ks,
        device=dev,
        progress=progress,
        extra={"pretraining": pretraining, "pretrain_seconds": pretrain_seconds},
    )

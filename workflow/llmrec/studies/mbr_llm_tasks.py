"""The multi-behaviour study's LLM, steps 3 and 4: fine-tune with soft tokens, and answer.

3. :func:`mbr_llm_finetune`: instruction fine-tuning of the adapted LLM on chat recommendation
   (training users, the validation target among never-met items) and item description (items
   outside the held-out set), with the unified model's vectors as soft tokens (variant
   ``text``: none).
4. :func:`mbr_chat` and :func:`mbr_describe`: the test-time answers the text table reads.

The fine-tuning keeps a checkpoint beside its output (``<output>.ckpt``) and resumes from it
when rerun after a kill. ``settings`` is the config's ``mbr.llm``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..data.artifacts import load_behaviour_sequences, read_sequences_metadata
from ..evaluation.candidates import letters, scores_table
from ..io import atomic_path, write_json
from ..llm import prompts
from ..llm.lm import (
    base_identity,
    load_adapter,
    placeholder_token,
    save_adapter,
)
from ..llm.soft import SoftPromptLM
from ..llm.tasks import Requests, never_met
from ..llm.train import Example, fit_lm, instruction_collate
from ..progress import Progress
from .mbr_llm import open_llm, settings_fingerprint
from .mbr_split import asked_candidates, stamp_run

log = logging.getLogger(__name__)

PROJECTOR = "projector.pt"
CANDIDATES = 20


def _vectors(input: Mapping[str, str], stage: str | None) -> tuple[np.ndarray | None, ...]:
    """The item vectors and the ``users_<stage>`` vectors, or Nones without ``vectors``."""
    if "vectors" not in input:
        return None, None
    with np.load(input["vectors"]) as npz:
        # At test time the items' vectors from the test-time graphs, as the ID scorer's.
        items = npz["items_test"] if stage == "test" else npz["items"]
        return items, (npz[f"users_{stage}"] if stage else None)


def _soft_model(lm, input: Mapping[str, str], tokenizer, items, hidden: int | None = None):
    """The adapted LM, wrapped in a :class:`SoftPromptLM` (its projector loaded from
    ``model``) where there are item vectors."""
    placeholder = placeholder_token(tokenizer)
    if items is None:
        return lm, placeholder
    if hidden is None:
        state = torch.load(Path(input["model"]) / PROJECTOR, weights_only=True)
        model = SoftPromptLM(lm, items.shape[1], state["0.weight"].shape[0], placeholder[1])
        model.projector.load_state_dict(state)
        return model, placeholder
    return SoftPromptLM(lm, items.shape[1], hidden, placeholder[1]), placeholder


def mbr_llm_finetune(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    variant: str,
    settings: Mapping,
    candidates: int = CANDIDATES,
    seed: int | str = 0,
    llm: str,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
) -> None:
    """Instruction fine-tuning of the adapter (and the soft-token projector) on the two tasks.

    Chat: for training users drawn with the seed, the latest ``chat.history`` training events
    and 20 candidates, the validation target and 19 items the user never met (nor its test
    target), shuffled; the answer "<letter>. <title>". Description: items outside the held-out
    set, the prompt naming the item by its soft token (variant ``text``: by its title); the
    answer its text. Test targets and held-out descriptions are never trained on.

    Args:
        input: ``adapter`` (of :func:`mbr_llm_adapt`), ``sequences``, ``item_text``,
            ``describe_items`` (held-out items) and ``vectors`` (npz: ``items``,
            ``users_valid``; absent for ``text``).
        output: ``model`` (folder: adapter, base identity, ``projector.pt``) and ``summary``.
        variant: ``text``, ``unified`` or ``unified_no_llm`` (recorded; the vectors decide).
        settings: ``mbr.llm`` (``finetune``, ``chat.history``, ``dtype``).
        candidates: items per training chat prompt (default 20, as the test's).
        seed: the run's seed (the unified model's whose vectors it reads), added to
            ``finetune.seed`` times 1000 (default 0).
        llm, device: the base LLM (folder or Hugging Face id) and where it runs (default auto).
        threads, progress: CPU threads (default 1), progress bars (default True).
    """
    started = time.perf_counter()
    cfg = dict(settings["finetune"])
    # One fine-tuning per run seed (the unified model's): its draws and init follow both.
    cfg["seed"] = cfg["seed"] + 1000 * int(seed)
    if variant != "text" and "vectors" not in input:
        raise ValueError(f"variant {variant!r} needs the unified model's vectors as input")
    lm, tokenizer = open_llm(llm, settings, threads, device)
    lm = load_adapter(lm, input["adapter"], llm, trainable=True)
    items, users = _vectors(input, "valid") if variant != "text" else (None, None)
    torch.manual_seed(cfg["seed"])
    model, placeholder = _soft_model(lm, input, tokenizer, items, cfg["projector_hidden"])
    seqs = load_behaviour_sequences(input["sequences"])
    requests = Requests(
        tokenizer,
        input["item_text"],
        seqs.funnel,
        title_words=cfg["title_words"],
        history=settings["chat"]["history"],
        items=items,
        users=users,
        placeholder=placeholder,
    )
    rng = np.random.default_rng(cfg["seed"])
    n_items = len(requests.names)
    trainable = np.flatnonzero((seqs.valid_item >= 0) & (seqs.n_train > 0))
    chosen = np.sort(rng.permutation(trainable)[: cfg["chat_examples"]])
    examples = []
    for user in chosen.tolist():
        own = np.random.default_rng([cfg["seed"], user])
        met = np.r_[seqs.items[user], seqs.test_item[user]]
        cands = np.r_[seqs.valid_item[user], never_met(own, met, n_items, candidates - 1)]
        order = own.permutation(candidates)
        cands = cands[order].tolist()
        n = seqs.n_train[user]
        ids, soft = requests.chat(user, seqs.items[user][:n], seqs.behaviours[user][:n], cands)
        answer = requests.chat_answer(cands, int(np.flatnonzero(order == 0)[0]))
        examples.append(Example(ids, answer, soft))
    held_out = set(pq.read_table(input["describe_items"]).column("item_id").to_pylist())
    texts = pq.read_table(input["item_text"], columns=["text"]).column("text").to_pylist()
    describable = [i for i, t in enumerate(texts) if t and t.strip() and i not in held_out]
    for item in np.sort(rng.permutation(describable)[: cfg["describe_examples"]]).tolist():
        ids, soft = requests.describe(item)
        examples.append(Example(ids, prompts.encode_answer(tokenizer, texts[item].strip()), soft))
    fingerprint = settings_fingerprint(settings, variant, base_identity(lm), len(examples))
    history = fit_lm(
        model,
        lambda epoch: examples,
        lambda b: instruction_collate(
            b, pad_id=tokenizer.pad_token_id, max_len=cfg["max_len"], placeholder_id=placeholder[1]
        ),
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        seed=cfg["seed"],
        checkpoint=f"{output['model']}.ckpt",
        checkpoint_every=cfg["checkpoint_every"],
        fingerprint=fingerprint,
        device=lm.device,
        progress=progress,
    )
    extra = {PROJECTOR: model.projector.state_dict()} if items is not None else {}
    save_adapter(lm, output["model"], extra)
    write_json(
        output["summary"],
        {
            "variant": variant,
            "settings": dict(settings),
            "chat_examples": len(chosen),
            "describe_examples": len(examples) - len(chosen),
            "history": history,
            "seconds": time.perf_counter() - started,
        },
    )


def _answering_model(
    input: Mapping[str, str], settings: Mapping, threads: int, stage: str, llm: str, device: str
):
    """The base LLM, with the fine-tuned adapter and projector where ``model`` is given."""
    lm, tokenizer = open_llm(llm, settings, threads, device)
    items = users = None
    if "model" in input:
        lm = load_adapter(lm, input["model"], llm)
        items, users = _vectors(input, stage)
    model, placeholder = _soft_model(lm, input, tokenizer, items)
    return model.eval(), tokenizer, items, users, placeholder


def _soft_lm(model) -> SoftPromptLM:
    """``model`` as a :class:`SoftPromptLM` (a plain LM gets an unused projector)."""
    return model if isinstance(model, SoftPromptLM) else SoftPromptLM(model, 1, 1, -1)


def mbr_chat(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    row: str,
    settings: Mapping,
    seed: int = 0,
    llm: str,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
) -> None:
    """Chat recommendation answers of one row on the split's candidate lists.

    Args:
        input: ``candidates`` (user_id, items, target_position), ``chat_users`` (the users
            asked), ``sequences`` (the
            test-time history: every event before the test target), ``item_text``, ``model``
            (of :func:`mbr_llm_finetune`; absent for ``zero_shot``) and ``vectors`` (npz:
            ``items``, ``users_test``; ``unified`` only).
        output: ``per_user`` (parquet: user_id, letter_scores list<float32> of each
            candidate's letter logit after the prompt, in presentation order, and answer, the
            greedy generation), stamped with the run (``llm_<row>`` in the table).
        row: ``zero_shot``, ``text`` or ``unified``.
        settings: ``mbr.llm`` (``chat``: history, max_new_tokens, batch_size;
            ``finetune.title_words``).
        seed: the run's seed, recorded (default 0).
        llm, device: the base LLM (folder or Hugging Face id) and where it runs (default auto).
        threads, progress: CPU threads (default 1), progress bar (default True).
    """
    model, tokenizer, items, users, placeholder = _answering_model(
        input, settings, threads, "test", llm, device
    )
    model = _soft_lm(model)
    seqs = load_behaviour_sequences(input["sequences"])
    cfg = settings["chat"]
    requests = Requests(
        tokenizer,
        input["item_text"],
        seqs.funnel,
        title_words=settings["finetune"]["title_words"],
        history=cfg["history"],
        items=items,
        users=users,
        placeholder=placeholder,
    )
    table = asked_candidates(input["candidates"], input["chat_users"])
    user_ids = table.column("user_id").to_numpy().astype(np.int64)
    lists = table.column("items").to_pylist()
    asked = [
        requests.chat(u, seqs.items[u], seqs.behaviours[u], c) for u, c in zip(user_ids, lists)
    ]
    ids = [a[0] for a in asked]
    soft = [a[1] for a in asked] if items is not None else None
    width = len(lists[0]) if lists else CANDIDATES
    labels = prompts.letter_ids(tokenizer, letters(width))
    pad, batch = tokenizer.pad_token_id, cfg["batch_size"]
    with Progress(len(ids), "chat", "prompts", bar=progress) as done:
        scores, answers = [], []
        for lo in range(0, len(ids), batch):
            chunk = soft[lo : lo + batch] if soft is not None else None
            logits, tokens = model.answer(
                ids[lo : lo + batch],
                labels,
                chunk,
                pad_id=pad,
                eos_ids=[tokenizer.eos_token_id],
                max_new_tokens=cfg["max_new_tokens"],
                batch_size=batch,
            )
            scores.append(logits)
            answers += tokens
            done.update(len(ids[lo : lo + batch]))
    out = scores_table(user_ids, torch.cat(scores).numpy() if scores else np.empty((0, width)))
    texts = [t.strip() for t in tokenizer.batch_decode(answers, skip_special_tokens=True)]
    out = out.append_column("answer", pa.array(texts, pa.string()))
    dataset = read_sequences_metadata(input["sequences"])["dataset"]
    with atomic_path(output["per_user"]) as tmp:
        pq.write_table(stamp_run(out, dataset=dataset, model=row, seed=seed), tmp)


def mbr_describe(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    row: str,
    settings: Mapping,
    dataset: str,
    seed: int = 0,
    llm: str,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
) -> None:
    """Descriptions of the held-out items by one row.

    Args:
        input: ``describe_items`` (held-out item ids), ``item_text``, and ``model``
            and ``vectors`` (``items``) except for ``zero_shot_title``, which gives the base
            LLM the title instead of a soft token.
        output: ``descriptions`` (parquet: item_id int32, description string), stamped with
            the run (``llm_<row>`` in the table).
        row: ``unified``, ``unified_no_llm`` or ``zero_shot_title``.
        settings: ``mbr.llm`` (``describe``: max_new_tokens, batch_size).
        dataset: the dataset's name, recorded.
        seed: the run's seed, recorded (default 0).
        llm, device: the base LLM (folder or Hugging Face id) and where it runs (default auto).
        threads, progress: CPU threads (default 1), progress bar (default True).
    """
    if row != "zero_shot_title" and ("model" not in input or "vectors" not in input):
        raise ValueError(f"description row {row!r} needs the fine-tuned model and its vectors")
    model, tokenizer, items, _, placeholder = _answering_model(
        input, settings, threads, None, llm, device
    )
    model = _soft_lm(model)
    requests = Requests(tokenizer, input["item_text"], ("",), items=items, placeholder=placeholder)
    held_out = pq.read_table(input["describe_items"]).column("item_id").to_numpy().astype(np.int64)
    asked = [requests.describe(int(i), by_title=row == "zero_shot_title") for i in held_out]
    soft = [a[1] for a in asked] if items is not None else None
    cfg = settings["describe"]
    answers = []
    with Progress(len(asked), "describe", "items", bar=progress) as done:
        for lo in range(0, len(asked), cfg["batch_size"]):
            hi = lo + cfg["batch_size"]
            answers += model.generate(
                [a[0] for a in asked[lo:hi]],
                soft[lo:hi] if soft is not None else None,
                pad_id=tokenizer.pad_token_id,
                eos_ids=[tokenizer.eos_token_id],
                max_new_tokens=cfg["max_new_tokens"],
                batch_size=cfg["batch_size"],
            )
            done.update(len(asked[lo:hi]))
    texts = [t.strip() for t in tokenizer.batch_decode(answers, skip_special_tokens=True)]
    table = pa.table(
        {"item_id": pa.array(held_out, pa.int32()), "description": pa.array(texts, pa.string())}
    )
    with atomic_path(output["descriptions"]) as tmp:
        pq.write_table(stamp_run(table, dataset=dataset, model=row, seed=seed), tmp)

"""The multi-behaviour study's LLM, steps 1 and 2: adapt it to the domain, embed the items.

1. :func:`mbr_llm_adapt`: LoRA domain adaptation of the instruct LLM (causal-LM loss) on the
   training text, item texts and users' training histories in words; optionally first an
   arithmetic task over the numbers in that text (``number_preconditioning``, the idea of the
   arithmetic study).
2. :func:`mbr_llm_embed`: each item's text embedding from the adapted LLM.

The fine-tuning with the unified model's vectors and the answers are
:mod:`llmrec.studies.mbr_llm_tasks`: a separate module, so that editing the tasks reruns
neither the adaptation nor what reads its embeddings. The adaptation keeps a checkpoint beside
its output (``<output>.ckpt``) and resumes from it when rerun after a kill. ``settings`` is
the config's ``mbr.llm``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from ..data.multi_behaviour import item_names
from ..io import atomic_path, save_weights, write_json
from ..llm import prompts
from ..llm.lm import (
    add_lora,
    base_identity,
    load_adapter,
    load_causal_lm,
    require_chat_template,
    save_adapter,
)
from ..llm.train import Example, fit_lm, instruction_collate, text_collate
from ..progress import Progress
from ..training.resumable import load_trainable_state, trainable_state

log = logging.getLogger(__name__)


def open_llm(llm: str, settings: Mapping, threads: int, device: str = "cpu"):
    """The LLM and its tokenizer (``settings["dtype"]``) on ``device``; an error without a chat
    template."""
    torch.set_num_threads(threads)
    lm, tokenizer = load_causal_lm(llm, settings.get("dtype", "float32"), device)
    require_chat_template(tokenizer, llm)
    return lm, tokenizer


def settings_fingerprint(settings: Mapping, *parts) -> str:
    """What a checkpoint must match to be resumed: the settings and what else decides it."""
    return hashlib.sha256(json.dumps([dict(settings), *parts], default=str).encode()).hexdigest()


def _texts(item_text: str) -> list[str]:
    """Each item's text, or its name where the text is empty."""
    names = item_names(item_text)
    texts = pq.read_table(item_text, columns=["text"]).column("text").to_pylist()
    return [t.strip() if t and t.strip() else str(n) for t, n in zip(texts, names)]


def arithmetic_pairs(texts: list[str], count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` problems "What is x + d?" / "What is x - d?" over the numbers in ``texts``
    (years, ratings, ids: 1 to 4 digits), ``d`` from 1 to 20."""
    numbers = sorted({int(n) for t in texts for n in re.findall(r"\b\d{1,4}\b", t)})
    if not numbers:
        raise ValueError("the training text holds no numbers; set number_preconditioning false")
    rng = np.random.default_rng([seed, 1])
    pairs = []
    for _ in range(count):
        x, d = int(rng.choice(numbers)), int(rng.integers(1, 21))
        if rng.random() < 0.5 or x < d:
            pairs.append((f"What is {x} + {d}?", str(x + d)))
        else:
            pairs.append((f"What is {x} - {d}?", str(x - d)))
    return pairs


def mbr_llm_adapt(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    settings: Mapping,
    llm: str,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
) -> None:
    """LoRA domain adaptation on the training text.

    Args:
        input: ``item_text``, ``user_text`` (training histories in words) and
            ``describe_items`` (held-out items: their texts are left out).
        output: ``adapter`` (folder: the peft adapter and its base's identity) and ``summary``
            (json: the histories, examples and settings).
        settings: ``mbr.llm``: ``lora``, ``number_preconditioning``, ``arithmetic.examples``
            and ``adapt`` (examples, epochs, batch_size, lr, max_len, checkpoint_every, seed).
        llm: the base LLM, a folder or a Hugging Face id (the rule's ``llm`` input, where it
            is a file, makes a new model rerun the step).
        device: where it trains (default auto).
        threads: CPU threads (default 1).
        progress: show progress bars (default True).
    """
    started = time.perf_counter()
    cfg = settings["adapt"]
    lm, tokenizer = open_llm(llm, settings, threads, device)
    items = _texts(input["item_text"])
    users = [t for t in pq.read_table(input["user_text"]).column("text").to_pylist() if t]
    # The held-out items' texts are the description task's references: never trained on.
    held_out = set(pq.read_table(input["describe_items"]).column("item_id").to_pylist())
    items = [t for i, t in enumerate(items) if i not in held_out]
    corpus = items + users
    rng = np.random.default_rng(cfg["seed"])
    chosen = [corpus[i] for i in rng.permutation(len(corpus))[: cfg["examples"]]]
    domain = [
        tokenizer.encode(t, add_special_tokens=False) + [tokenizer.eos_token_id] for t in chosen
    ]
    torch.manual_seed(cfg["seed"])
    model = add_lora(lm, **settings["lora"])
    pad, max_len = tokenizer.pad_token_id, cfg["max_len"]
    fingerprint = settings_fingerprint(settings, base_identity(model), len(corpus))
    train = {k: cfg[k] for k in ("epochs", "batch_size", "lr", "checkpoint_every", "seed")}
    summary = {
        "settings": dict(settings),
        "domain_examples": len(domain),
        "base": base_identity(model),
    }
    if settings.get("number_preconditioning"):
        # Done first and kept as a file, so a run killed in the domain phase does not redo it.
        done = Path(f"{output['adapter']}.numbers.pt")
        pairs = arithmetic_pairs(corpus, settings["arithmetic"]["examples"], cfg["seed"])
        if done.exists() and (state := torch.load(done, weights_only=True))["fp"] == fingerprint:
            load_trainable_state(model, state["model"])
            summary["numbers"] = state["history"]
        else:
            examples = [
                Example(prompts.encode_chat(tokenizer, q), prompts.encode_answer(tokenizer, a))
                for q, a in pairs
            ]
            summary["numbers"] = fit_lm(
                model,
                lambda epoch: examples,
                lambda b: instruction_collate(b, pad_id=pad, max_len=max_len),
                checkpoint=f"{output['adapter']}.numbers.ckpt",
                fingerprint=fingerprint,
                device=lm.device,
                progress=progress,
                **train,
            )
            fp = {"fp": fingerprint, "model": trainable_state(model), "history": summary["numbers"]}
            save_weights(done, fp)
        summary["arithmetic_examples"] = len(pairs)
    summary["domain"] = fit_lm(
        model,
        lambda epoch: domain,
        lambda b: text_collate(b, pad_id=pad, max_len=max_len),
        checkpoint=f"{output['adapter']}.ckpt",
        fingerprint=fingerprint,
        device=lm.device,
        progress=progress,
        **train,
    )
    save_adapter(model, output["adapter"])
    Path(f"{output['adapter']}.numbers.pt").unlink(missing_ok=True)
    write_json(output["summary"], summary | {"seconds": time.perf_counter() - started})


@torch.no_grad()
def mbr_llm_embed(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    settings: Mapping,
    llm: str,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
) -> None:
    """Each item's embedding: the adapted LLM's last hidden states averaged over its text.

    Args:
        input: ``adapter`` (of :func:`mbr_llm_adapt`) and ``item_text``.
        output: ``embeddings`` (.npy float32 ``[n_items, LM hidden size]``, by item id).
        settings: ``mbr.llm`` (``embed.batch_size``, ``embed.max_len``).
        llm, device: the base LLM (folder or Hugging Face id) and where it runs (default auto).
        threads, progress: CPU threads (default 1), progress bar (default True).
    """
    lm, tokenizer = open_llm(llm, settings, threads, device)
    model = load_adapter(lm, input["adapter"], llm).eval()
    texts = _texts(input["item_text"])
    cfg = settings["embed"]
    rows = []
    with Progress(len(texts), "embed", "items", bar=progress) as done:
        for lo in range(0, len(texts), cfg["batch_size"]):
            tokens = [
                tokenizer.encode(t, add_special_tokens=False)
                for t in texts[lo : lo + cfg["batch_size"]]
            ]
            batch = text_collate(tokens, pad_id=tokenizer.pad_token_id, max_len=cfg["max_len"])
            batch = {k: v.to(lm.device) for k, v in batch.items()}
            out = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_hidden_states=True,
            )
            mask = batch["attention_mask"].unsqueeze(-1).float()
            last = out.hidden_states[-1].float()
            rows.append(((last * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy())
            done.update(len(tokens))
    with atomic_path(output["embeddings"]) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.concatenate(rows).astype(np.float32))

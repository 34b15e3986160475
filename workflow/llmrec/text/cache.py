"""Caches of LLM answers (and embeddings) that survive an interrupted run.

A cache is a folder of parquet part files (``part-00001.parquet``, ...). Each part is written
under a temporary name and renamed when complete, so a run killed mid-way loses at most the
chunk it was working on, and the next run starts from what the parts hold. Parts are only ever
added: one writer at a time (a Snakemake job owns its cache folder).

Answers are keyed by (model id, template id, SHA-256 of the input text). The model id carries
the decoding settings (:attr:`Generator.model_id`) and the template id a hash of the template
(:func:`llmrec.text.prompts.load_template`), so a change to either never serves a stale answer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from ..io import atomic_path

log = logging.getLogger(__name__)

PART = re.compile(r"part-(\d{5,})\.parquet")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PartFolder:
    """A folder of parquet parts sharing one schema: append a part, read them all."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema

    def parts(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        found = [p for p in self.path.iterdir() if PART.fullmatch(p.name)]
        return sorted(found, key=lambda p: int(PART.fullmatch(p.name).group(1)))

    def append(self, table: pa.Table) -> Path:
        """Write ``table`` as the next part, atomically; return its path."""
        parts = self.parts()
        number = int(PART.fullmatch(parts[-1].name).group(1)) + 1 if parts else 1
        final = self.path / f"part-{number:05d}.parquet"
        with atomic_path(final) as tmp:
            pq.write_table(table.cast(self.schema), tmp)
        return final

    def read(self) -> pa.Table:
        tables = [pq.read_table(p, schema=self.schema) for p in self.parts()]
        return pa.concat_tables(tables) if tables else self.schema.empty_table()


class CacheKey(NamedTuple):
    model: str
    template: str
    input_sha256: str


GENERATION_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("template", pa.string()),
        ("input_sha256", pa.string()),
        ("output", pa.string()),
    ]
)


class GenerationCache:
    """LLM answers keyed by :class:`CacheKey`, stored as parquet parts under ``path``.

    The parts are read once, on first use, into a dict; :meth:`add` writes a part and updates it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.folder = PartFolder(path, GENERATION_SCHEMA)
        self._answers: dict[CacheKey, str] | None = None

    @property
    def answers(self) -> dict[CacheKey, str]:
        if self._answers is None:
            table = self.folder.read()
            cols = [table.column(name).to_pylist() for name in GENERATION_SCHEMA.names]
            self._answers = {CacheKey(m, t, h): out for m, t, h, out in zip(*cols)}
        return self._answers

    def missing(self, keys: Iterable[CacheKey]) -> list[CacheKey]:
        """The keys that have no answer yet, first occurrences in order, without repeats."""
        answers = self.answers
        return [k for k in dict.fromkeys(keys) if k not in answers]

    def add(self, rows: Sequence[tuple[CacheKey, str]]) -> None:
        """Store (key, answer) pairs as one new part file."""
        if not rows:
            return
        keys, outputs = zip(*rows)
        table = pa.table(
            {
                "model": [k.model for k in keys],
                "template": [k.template for k in keys],
                "input_sha256": [k.input_sha256 for k in keys],
                "output": list(outputs),
            },
            schema=GENERATION_SCHEMA,
        )
        self.folder.append(table)
        self.answers.update(rows)

    def get(self, key: CacheKey) -> str:
        return self.answers[key]

    def load(self) -> pa.Table:
        """Every stored row, in the order the parts were written."""
        return self.folder.read()


class TextGenerator(Protocol):
    """What :func:`generate_cached` needs of a generator (:class:`Generator` is one)."""

    model_id: str

    def generate(self, prompts: list[str], system: str | None = None) -> list[str]: ...


def generate_cached(
    generator: TextGenerator,
    cache: GenerationCache,
    items: Sequence[tuple[str, str]],
    template_id: str,
    chunk_size: int = 256,
    system: str | None = None,
) -> dict[str, str]:
    """Answer every prompt whose answer the cache lacks, one chunk (one part file) at a time.

    Args:
        generator: has ``model_id`` and ``generate(prompts, system)``.
        cache: where answers are looked up and stored.
        items: ``(key_text, prompt)`` pairs; ``key_text`` is the input the template was filled
            with (an item's text), so the key is its SHA-256 with the model and template ids.
        template_id: identifies the template (see ``load_template``).
        chunk_size: prompts per part file (default 256): at most this many answers are lost
            when a run is interrupted.
        system: system message passed to the generator; folded into the template id.

    Returns:
        ``{sha256(key_text): answer}`` for every item.
    """
    if system is not None:
        template_id = f"{template_id}+system-{text_sha256(system)[:12]}"
    prompts = {}
    for key_text, prompt in items:
        prompts.setdefault(CacheKey(generator.model_id, template_id, text_sha256(key_text)), prompt)
    # Longest first over all chunks (the generator sorts only within a call): batches then
    # hold prompts of similar lengths and pad little. Stable, so the order is deterministic.
    todo = sorted(cache.missing(prompts), key=lambda k: -len(prompts[k]))
    log.info("%d of %d prompts need an answer (%s)", len(todo), len(prompts), template_id)
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        outputs = generator.generate([prompts[k] for k in chunk], system=system)
        cache.add(list(zip(chunk, outputs)))
    return {key.input_sha256: cache.get(key) for key in prompts}

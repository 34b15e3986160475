"""Sentence embeddings of texts (profiles, titles) with sentence-transformers.

The default encoder, all-MiniLM-L6-v2 (384 dimensions), loads from a pinned package, so this
works with ``HF_HUB_OFFLINE=1``. Normalisation is done here, in numpy, after the encoder, so the
cached and uncached routes give the same vectors (all-MiniLM-L6-v2 also normalises inside).

Texts are padded per batch, so a text's vector differs in its last bits (about 1e-7) with the
texts it is batched with, and training amplifies such bits into different metrics. The cache
therefore keeps whole chunks, each the output of one call of the encoder, and a chunk is reused
only by the same computation: the same model, device type, batch size, CPU thread count and
texts in the same order. A job's vectors thus depend only on its texts and settings, not on
what another job (a dataset's text columns share one cache folder), another batch size or
another thread count put in the cache first, and an interrupted job resumes at the chunk it
was on.

The cache is a folder of parquet parts (see :mod:`llmrec.text.cache`), one per chunk, with
columns ``model``, ``chunk_sha256`` (:func:`chunk_sha256`), ``text_sha256`` and ``embedding``
(list<float32>), holding the encoder's output before our normalisation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..device import resolve_device
from .cache import PartFolder, text_sha256
from .models import DEFAULT_EMBEDDING_MODEL, embedding_model_path

log = logging.getLogger(__name__)

EMBEDDING_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("chunk_sha256", pa.string()),
        ("text_sha256", pa.string()),
        ("embedding", pa.list_(pa.float32())),
    ]
)


def load_encoder(model: str = DEFAULT_EMBEDDING_MODEL, device: str = "auto"):
    from sentence_transformers import SentenceTransformer  # slow import, only when needed

    return SentenceTransformer(embedding_model_path(model), device=str(resolve_device(device)))


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def encode(encoder, texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
    """The encoder's raw float32 vectors, ``[len(texts), dim]``."""
    if not texts:
        return np.empty((0, encoder.get_embedding_dimension()), dtype=np.float32)
    vectors = encoder.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=False,
        show_progress_bar=progress,
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def embed_texts(
    texts: Sequence[str],
    model: str = DEFAULT_EMBEDDING_MODEL,
    batch_size: int = 64,
    device: str = "auto",
    normalize: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Embed ``texts`` into a float32 array ``[len(texts), dim]``.

    Args:
        texts: the strings to embed.
        model: ``"all-MiniLM-L6-v2"`` (default, offline) or any sentence-transformers id or folder.
        batch_size: texts per forward pass (default 64).
        device: ``"auto"`` (default; CUDA if available), ``"cpu"`` or ``"cuda"``.
        normalize: scale every vector to unit L2 norm (default True).
        progress: show a progress bar (default False).
    """
    vectors = encode(load_encoder(model, device), texts, batch_size, progress)
    return normalise(vectors) if normalize else vectors


def chunk_sha256(
    model: str, device: str, batch_size: int, text_hashes: Sequence[str], threads: int = 0
) -> str:
    """Names one call of the encoder: everything that decides the last bits of the vectors,
    the batches and, on CPU, the thread count (``threads``; ``0`` on other devices): on an
    AVX-512 Xeon, all-MiniLM-L6-v2 gives other bits (about 1e-7) with 1 and 2 threads."""
    fields = [model, device, str(batch_size), *([f"threads={threads}"] if threads else [])]
    return text_sha256("\n".join([*fields, *text_hashes]))


class EmbeddingCache:
    """Encoder outputs of whole chunks, keyed by :func:`chunk_sha256`, stored as parquet parts."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.folder = PartFolder(path, EMBEDDING_SCHEMA)
        self._chunks: dict[str, dict[str, np.ndarray]] | None = None

    @property
    def chunks(self) -> dict[str, dict[str, np.ndarray]]:
        """``{chunk_sha256: {text_sha256: vector}}``, read from the parts on first use. Rows
        without a chunk key (written before chunks were keyed) are never reused."""
        if self._chunks is None:
            table = self.folder.read()
            table = table.filter(pc.is_valid(table.column("chunk_sha256")))
            lists = table.column("embedding").combine_chunks()
            values, offsets = lists.values.to_numpy(), lists.offsets.to_numpy()
            chunk_keys = table.column("chunk_sha256").to_pylist()
            text_keys = table.column("text_sha256").to_pylist()
            self._chunks = {}
            for row, (chunk, text) in enumerate(zip(chunk_keys, text_keys)):
                self._chunks.setdefault(chunk, {})[text] = values[offsets[row] : offsets[row + 1]]
        return self._chunks

    def add(self, chunk: str, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store one chunk as one part: ``vectors[i]`` embeds the text hashed to ``hashes[i]``."""
        n, dim = vectors.shape
        values = pa.array(vectors.astype(np.float32, copy=False).ravel(), pa.float32())
        embedding = pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32)), values
        )
        self.folder.append(
            pa.table(
                {
                    "model": [model] * n,
                    "chunk_sha256": [chunk] * n,
                    "text_sha256": list(hashes),
                    "embedding": embedding,
                },
                schema=EMBEDDING_SCHEMA,
            )
        )
        self.chunks[chunk] = dict(zip(hashes, vectors))


def embed_texts_cached(
    texts: Sequence[str],
    cache: EmbeddingCache,
    model: str = DEFAULT_EMBEDDING_MODEL,
    batch_size: int = 64,
    device: str = "auto",
    normalize: bool = True,
    chunk_size: int = 4096,
    progress: bool = False,
) -> np.ndarray:
    """:func:`embed_texts` of the distinct ``texts``, in order of first occurrence, encoded
    ``chunk_size`` at a time; a chunk ``cache`` holds from the same computation is not encoded
    again (see the module docstring)."""
    import torch

    hashes = [text_sha256(t) for t in texts]
    distinct = list(dict(zip(hashes, texts)).items())
    device_type = resolve_device(device).type
    threads = torch.get_num_threads() if device_type == "cpu" else 0
    chunks = []
    for start in range(0, len(distinct), chunk_size):
        chunk = distinct[start : start + chunk_size]
        key = chunk_sha256(model, device_type, batch_size, [h for h, _ in chunk], threads)
        chunks.append((key, chunk))
    todo = [(key, chunk) for key, chunk in chunks if key not in cache.chunks]
    log.info("%d of %d chunks of texts need an embedding (%s)", len(todo), len(chunks), model)
    if todo:
        encoder = load_encoder(model, device)
        for key, chunk in todo:
            vectors = encode(encoder, [t for _, t in chunk], batch_size, progress)
            cache.add(key, model, [h for h, _ in chunk], vectors)
    if not hashes:
        return embed_texts([], model, batch_size, device, normalize)
    known = {h: v for key, _ in chunks for h, v in cache.chunks[key].items()}
    vectors = np.stack([known[h] for h in hashes])
    return normalise(vectors) if normalize else vectors

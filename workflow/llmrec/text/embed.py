"""Sentence embeddings of texts (profiles, titles) with sentence-transformers.

The default encoder, all-MiniLM-L6-v2 (384 dimensions), loads from a pinned package, so this
works with ``HF_HUB_OFFLINE=1``. Normalisation is done here, in numpy, after the encoder, so the
cached and uncached routes give the same vectors (all-MiniLM-L6-v2 also normalises inside).

The cache is a folder of parquet parts (see :mod:`llmrec.text.cache`) with columns ``model``,
``text_sha256`` and ``embedding`` (list<float32>), holding the encoder's output before our
normalisation. Texts are padded per batch, so a vector computed in a different batch can differ
from an uncached one in the last bits (about 1e-7), never more.
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


class EmbeddingCache:
    """Encoder outputs keyed by (model, SHA-256 of the text), stored as parquet parts."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.folder = PartFolder(path, EMBEDDING_SCHEMA)
        self._vectors: dict[str, dict[str, np.ndarray]] = {}

    def vectors(self, model: str) -> dict[str, np.ndarray]:
        """``{text_sha256: vector}`` for ``model``, read from the parts on first use."""
        if model not in self._vectors:
            table = self.folder.read()
            table = table.filter(pc.equal(table.column("model"), model))
            if table.num_rows:
                flat = table.column("embedding").combine_chunks()
                matrix = flat.flatten().to_numpy().reshape(table.num_rows, -1)
            else:
                matrix = np.empty((0, 0), dtype=np.float32)
            self._vectors[model] = dict(zip(table.column("text_sha256").to_pylist(), matrix))
        return self._vectors[model]

    def add(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store one part: ``vectors[i]`` is the embedding of the text hashed to ``hashes[i]``."""
        n, dim = vectors.shape
        values = pa.array(vectors.astype(np.float32, copy=False).ravel(), pa.float32())
        embedding = pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32)), values
        )
        self.folder.append(
            pa.table(
                {"model": [model] * n, "text_sha256": list(hashes), "embedding": embedding},
                schema=EMBEDDING_SCHEMA,
            )
        )
        self.vectors(model).update(zip(hashes, vectors))


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
    """:func:`embed_texts`, encoding only the texts ``cache`` lacks, ``chunk_size`` per part."""
    hashes = [text_sha256(t) for t in texts]
    known = cache.vectors(model)
    todo = list({h: t for h, t in zip(hashes, texts) if h not in known}.items())
    log.info("%d of %d texts need an embedding (%s)", len(todo), len(set(hashes)), model)
    if todo:
        encoder = load_encoder(model, device)
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            vectors = encode(encoder, [t for _, t in chunk], batch_size, progress)
            cache.add(model, [h for h, _ in chunk], vectors)
    if not hashes:
        return embed_texts([], model, batch_size, device, normalize)
    vectors = np.stack([known[h] for h in hashes])
    return normalise(vectors) if normalize else vectors

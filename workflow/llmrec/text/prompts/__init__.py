"""Prompt templates, one ``.txt`` file each, filled with ``str.format``.

``item_profile.txt`` takes ``{item_text}`` (the intrinsic attributes: title, year, genres or
category, description) and ``{extrinsic}`` (training ratings and review snippets,
:mod:`llmrec.text.extrinsic`), after a short in-context example, as P4R prompts (Chen and
Suzumura 2024, https://arxiv.org/abs/2409.16674); ``user_profile.txt`` takes ``{history}`` (the
profiles or titles of the items a user interacted with, one a line). Both ask for RLMRec-style
JSON, ``{"summary": ..., "reasoning": ...}`` (Ren et al. 2024, https://arxiv.org/abs/2310.15950),
kept short for a 135M model on CPU. The example comes before the item, in the token prefix that
every prompt shares and the generator computes once.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path


def load_template(name: str, folder: str | os.PathLike | None = None) -> tuple[str, str]:
    """Return a template's text and its id, ``"<name>-<first 12 hex of its SHA-256>"``.

    Args:
        name: the template's file name without ``.txt``.
        folder: where to look instead of the packaged templates (default None: packaged).

    The id changes whenever the text does, so answers cached under the old text are not reused.
    """
    where = Path(folder) if folder is not None else resources.files(__name__)
    path = where / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.name[:-4] for p in where.iterdir() if p.name.endswith(".txt"))
        raise FileNotFoundError(f"no prompt template {name!r} in {where}; known: {known}")
    text = path.read_text(encoding="utf-8")
    return text, f"{name}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"

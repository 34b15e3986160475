"""Source parsers: one module per source format, each with

    load(con, raw_dir, options, scratch) -> None

that fills the ``raw_*`` duckdb tables described in :mod:`llmrec.data.canonical` from the files
under ``raw_dir`` (downloaded, extracted or placed there by hand). ``options`` is the dataset's
config section (``skip_malformed`` and source-specific keys); ``scratch`` is a folder for
temporary files that the caller removes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType


def find_file(raw_dir: Path, name: str) -> Path:
    """Return the one file called ``name`` below ``raw_dir`` (archives unpack into subfolders)."""
    matches = sorted(p for p in Path(raw_dir).rglob(name) if p.is_file())
    if not matches:
        raise FileNotFoundError(f"expected a file named {name!r} below {raw_dir}, found none")
    if len(matches) > 1:
        raise FileNotFoundError(
            f"expected one file named {name!r} below {raw_dir}, found {matches}"
        )
    return matches[0]


def parser_module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")

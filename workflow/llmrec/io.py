"""Writing artifacts so that a crash never leaves a half-written file under its final name."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file lives in the same folder, so the final ``os.replace`` is atomic on POSIX.
    On any exception the temporary file (or folder) is removed and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers (duckdb COPY, pyarrow) want to create the file themselves
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {final}")
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_leftovers(path: str | os.PathLike) -> None:
    """Remove the temporaries that :func:`atomic_path` left beside ``path`` in a killed run."""
    final = Path(path)
    prefix = f".{final.name}."
    for tmp in final.parent.glob(f"{prefix}*.tmp"):
        if "." in tmp.name[len(prefix) : -len(".tmp")]:
            continue  # another file's temporary (".a.zip.x.tmp" for "a"): mkstemp adds no dots
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_csv(path: str | os.PathLike, table: Any) -> None:
    """Write a DataFrame as CSV (6 significant digits, no index), atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_weights(path: str | os.PathLike, state: Any) -> None:
    """``torch.save`` a state dict (or a checkpoint of them) atomically, the same bytes for the
    same state: saved to a path, torch names the archive's records after the file, here a
    random temporary; saved to an open file, it names them ``archive``."""
    import torch  # the data stage's environment has no torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())

"""Where a result came from: the git commit of the workflow, a hash of the config it used, and
the digests of the files a user put in a local source folder.

The config hash covers the config slice a table depends on (computed by the workflow when it
plans the job, passed as a param, so a changed slice reruns the table). The commit is read when
the table is written, not planned: a new commit alone does not rerun anything. The folder digests
(:func:`folder_digests`) are params of the fetch step likewise: an edited or replaced file reruns
its dataset, a copied or touched one does not.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .data.download import file_digest
from .io import read_json, write_json

CHECKOUT = Path(__file__).resolve().parents[2]


def config_sha256(slices: Mapping) -> str:
    """SHA-256 of ``slices`` as canonical JSON (sorted keys)."""
    text = json.dumps(slices, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def git_commit(folder: Path = CHECKOUT) -> str:
    """HEAD of the checkout holding this package, ``+dirty`` when tracked files changed, or
    ``unknown`` outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def stamp(provenance: Mapping | None) -> dict[str, str]:
    """The two columns every table ends with."""
    return {
        "git_commit": git_commit(),
        "config_sha256": (provenance or {}).get("config_sha256", ""),
    }


def folder_digests(folder: str | Path, cache: str | Path | None = None) -> dict[str, str]:
    """SHA-256 of every file below ``folder``, by path relative to it; ``{}`` for no folder.

    Hashing a source of gigabytes at every plan would be slow, so a digest is kept in ``cache``
    (a JSON file) with the file's size and modification time and reused while both hold.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}  # the fetch step says what is missing and where
    known = read_json(cache) if cache and Path(cache).is_file() else {}
    seen, digests = {}, {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        key = str(path.resolve())
        size_time = [stat.st_size, stat.st_mtime_ns]
        entry = known.get(key)
        digest = entry[2] if entry and entry[:2] == size_time else file_digest(path)
        seen[key] = [*size_time, digest]
        digests[path.relative_to(folder).as_posix()] = digest
    if cache and any(known.get(key) != entry for key, entry in seen.items()):
        write_json(cache, {**known, **seen})
    return digests

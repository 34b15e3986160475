"""What a cluster run of the paper config relies on: the documented Slurm command asks for a GPU,
on the GPU partition, for every job of a rule that can use one; a missing manual download stops
the run before any job starts; each config runs in its own folder and leaves the others' alone.

Dry runs and small local runs only; tests/test_slurm.py submits jobs to a real Slurm."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping

import pytest
import yaml

from llmrec.data.download import ManualDownloadRequired, check_manual
from llmrec.data.registry import get_spec

from .conftest import FIXTURES, REPO
from .test_rules import load_rules
from .test_workflow import SNAKEMAKE, _test_config, copy_checkout

pytestmark = pytest.mark.workflow

# docs/cluster.md's commands for the paper config on GPUs, word for word.
EXPORTS = (
    "export LLMREC_SLURM_ACCOUNT=<account> LLMREC_CPU_PARTITION=<partition>\n"
    "export LLMREC_GPU_PARTITION=<partition with GPUs>"
)
COMMAND = (
    "snakemake --profile profiles/slurm --configfile configs/paper.yaml --directory runs/paper"
)
CLUSTER = {"LLMREC_SLURM_ACCOUNT": "acct", "LLMREC_CPU_PARTITION": "cpuq"}
GPU_PARTITION = "gpuq"


def snakemake(*args, cwd=REPO, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def planned_jobs(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists."""
    jobs = []
    for line in dry_run_output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            jobs.append((m.group(1), {}))
        elif jobs and line.strip().startswith("resources: "):
            pairs = line.strip().removeprefix("resources: ").split(", ")
            jobs[-1][1].update(pair.split("=", 1) for pair in pairs)
    return jobs


def profile_gpu_rules() -> set[str]:
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    return {rule for rule, res in profile["set-resources"].items() if res.get("gpu")}


def carries_a_device(rule) -> bool:
    """A `device` setting among the rule's params, or inside a config slice it gets (`llm`)."""
    for name in rule.params._names:
        value = getattr(rule.params, name)
        if callable(value):
            try:
                value = value(None)  # slices of a whole section do not read the wildcards
            except (AttributeError, TypeError):
                continue  # one that reads a job's wildcards picks a dataset's settings
        if name == "device" or (isinstance(value, Mapping) and "device" in value):
            return True
    return False


def test_the_docs_give_the_command_tested_here():
    docs = (REPO / "docs" / "cluster.md").read_text()
    assert EXPORTS in docs and COMMAND in docs
    assert "--set-resources" not in COMMAND and "--default-resources" not in COMMAND


def test_every_rule_that_can_use_a_gpu_asks_for_one():
    workflow_rules = load_rules("configs/paper.yaml")
    on_gpu = {name for name, rule in workflow_rules.items() if carries_a_device(rule)}
    assert on_gpu == profile_gpu_rules()
    assert {"item_profiles", "embed_texts", "train_pfr", "train_popk", "train_p5"} <= on_gpu


def test_the_documented_command_plans_a_gpu_for_every_gpu_rules_job(tmp_path):
    """A command-line --set-resources would replace the profile's whole mapping (Snakemake
    9.27 plans no GPU at all then): the partitions come from the environment instead."""
    args = COMMAND.split()[1:]
    args[args.index("--directory") + 1] = str(tmp_path)
    env = os.environ | CLUSTER | {"LLMREC_GPU_PARTITION": GPU_PARTITION}
    done = snakemake(*args, "--dry-run", env=env)
    jobs = planned_jobs(done.stdout)
    gpu_rules = profile_gpu_rules()
    on_gpu = [(rule, res) for rule, res in jobs if rule in gpu_rules]
    assert {rule for rule, _ in on_gpu} == gpu_rules  # the paper config runs every one of them
    assert len(on_gpu) > 100
    for rule, res in jobs:
        wanted = {"gpu": "1", "slurm_partition": GPU_PARTITION} if rule in gpu_rules else {}
        assert {k: res.get(k) for k in ("gpu", "slurm_partition")} == {
            "gpu": None,
            "slurm_partition": CLUSTER["LLMREC_CPU_PARTITION"],
            **wanted,
        }, rule
        assert res["slurm_account"] == CLUSTER["LLMREC_SLURM_ACCOUNT"], rule
    # Each rule's memory and runtime (minutes) reach its jobs.
    declared = {rule: (res["mem_mb"], res["runtime"]) for rule, res in jobs}
    assert declared["train_pfr"] == ("4000", "120") and declared["train_p5"] == ("4000", "240")


def test_an_unset_cluster_variable_stops_the_run_before_planning(tmp_path):
    args = COMMAND.split()[1:]
    args[args.index("--directory") + 1] = str(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREC_")} | CLUSTER
    done = snakemake(*args, "--dry-run", env=env, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "the resources name $LLMREC_GPU_PARTITION, which is not set in the environment" in out
    assert "Building DAG" not in out
    # Empty: Slurm's choice (the cluster's default partition), planned as no partition.
    done = snakemake(*args, "--dry-run", env=env | {"LLMREC_GPU_PARTITION": ""})
    assert ("train_pfr", "") in {
        (r, res.get("slurm_partition")) for r, res in planned_jobs(done.stdout)
    }


def test_a_missing_manual_download_stops_the_run_before_any_job(tmp_path):
    """Yelp's files missing: the fetch step's message while planning, before the jobs of the
    datasets that are there start (or are submitted); a dry run plans without the files."""
    config = _test_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    manual = tmp_path / "manual" / "yelp"
    manual.mkdir(parents=True)
    cfg["build"] = ["ml-100k", "yelp"]
    cfg["datasets"]["yelp"] = {"source": "local", "path": str(manual)}
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    work.mkdir()
    common = ["data", "--configfile", str(config), "--directory", str(work)]
    common += ["--snakefile", str(REPO / "Snakefile")]
    with pytest.raises(ManualDownloadRequired) as expected:
        check_manual(get_spec("yelp"), manual)
    done = snakemake("--cores", "1", *common, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert str(expected.value) in out
    assert not (work / "results").exists() and not (work / "resources").exists()
    done = snakemake("--dry-run", *common)
    assert "fetch_dataset" in done.stdout
    (manual / "yelp_academic_dataset_business.json").write_text("")
    done = snakemake("--cores", "1", *common, check=False)
    assert "yelp_academic_dataset_review.json" in done.stdout + done.stderr
    assert "yelp_academic_dataset_business.json  (" not in done.stdout + done.stderr


def test_two_configs_run_in_two_folders_and_neither_touches_the_other(tmp_path):
    """One config in the checkout, another in runs/other (--directory): relative folders in a
    config (the fixtures here, resources/manual/ on a cluster) are the checkout's in both."""
    checkout = copy_checkout(tmp_path / "checkout")
    shutil.copytree(FIXTURES / "ml-100k", checkout / "tests" / "fixtures" / "ml-100k")
    shutil.copytree(REPO / "envs", checkout / "envs")  # recorded with each job's metadata
    (checkout / "configs").mkdir()
    for name, k_core in (("first", 2), ("other", 3)):
        cfg = yaml.safe_load((REPO / "configs" / "quick.yaml").read_text())
        assert cfg["datasets"]["ml-100k"]["path"] == "tests/fixtures/ml-100k"  # relative
        cfg["datasets"]["ml-100k"]["filter"]["k_core"] = k_core
        (checkout / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/data/ml-100k/stats.json"
    first = [target, "--configfile", "configs/first.yaml"]
    other = [target, "--configfile", "configs/other.yaml", "--directory", "runs/other"]
    snakemake("--cores", "2", *first, cwd=checkout)
    files = [p for p in (checkout / "results").rglob("*") if p.is_file()]
    tree = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    snakemake("--cores", "2", *other, cwd=checkout)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tree} == tree
    ours = (checkout / target).read_text()
    theirs = (checkout / "runs" / "other" / target).read_text()
    assert ours != theirs  # k-core 2 and 3 keep different users
    assert not (checkout / "runs" / "other" / "tests").exists()  # read from the checkout
    for args in (first, other):
        done = snakemake("--dry-run", *args, cwd=checkout)
        assert "Nothing to be done" in done.stdout + done.stderr, args

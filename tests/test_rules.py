"""The rule table (llmrec.rules) against the workflow's rules, and the one adapter (llmrec.snake).

The workflow is loaded through Snakemake's API, without running anything: a rule whose params or
wildcards do not fit its function fails here in seconds, not inside a job."""

from __future__ import annotations

import inspect
import logging
import types
from pathlib import Path

import pytest
from snakemake.api import SnakemakeApi
from snakemake.iocontainers import Namedlist
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

from llmrec import rules, snake

from .conftest import REPO

CONFIGS = ["config.yaml", "configs/paper.yaml", "configs/quick.yaml"]
# What the adapter adds to params and wildcards where the function takes them.
ADAPTER_EXTRAS = {"threads": 1, "progress": False, "mem_mb": 1000}


def load_rules(configfile: str) -> dict:
    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[REPO / configfile]),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )
        # Pinned Snakemake (pyproject): its loaded workflow, rules parsed, nothing scheduled.
        return {rule.name: rule for rule in workflow_api._workflow.rules}


@pytest.fixture(scope="module", params=CONFIGS)
def workflow_rules(request):
    return load_rules(request.param)


def test_every_rule_with_work_runs_the_adapter_and_has_an_entry(workflow_rules):
    working = {name for name, rule in workflow_rules.items() if rule.script or rule.shellcmd}
    assert working == set(rules.RULES), "llmrec.rules.RULES and the workflow's rules differ"
    for name in working:
        assert Path(workflow_rules[name].script).name == "run.py", name
    # Rules with no script only gather targets.
    assert {n for n in workflow_rules if n not in working} == {"all", "data"}


def test_each_rules_params_and_wildcards_bind_to_its_function(workflow_rules):
    for name, module in rules.RULES.items():
        rule = workflow_rules[name]
        func = rules.rule_function(name)
        assert func.__module__ == module and func.__name__ == name
        accepted = inspect.signature(func).parameters
        params = set(rule.params._names) - {rules.CODE_PARAM}  # the adapter drops it
        kwargs = {"input": {}, "output": {}, **{p: None for p in params}}
        kwargs.update({w: "0" for w in rule.wildcard_names if w in accepted})
        kwargs.update({k: v for k, v in ADAPTER_EXTRAS.items() if k in accepted})
        try:
            inspect.signature(func).bind(**kwargs)
        except TypeError as error:
            pytest.fail(
                f"rule {name}: params {sorted(rule.params._names)} and wildcards "
                f"{sorted(rule.wildcard_names)} do not fit {module}.{name}: {error}"
            )


def test_each_rule_carries_the_digest_of_its_own_code(workflow_rules):
    for name in rules.RULES:
        assert workflow_rules[name].params.code == rules.code_sha256(name), name


def test_a_rule_with_no_entry_is_named_in_the_error():
    with pytest.raises(KeyError, match="'no_such_rule' has no entry in llmrec.rules.RULES"):
        rules.rule_function("no_such_rule")


def test_rule_table_imports_lazily():
    import subprocess
    import sys

    code = "import sys, llmrec.rules as r; r.rule_function('split'); print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip() == "False", "a data rule's function imported torch"


# --- the adapter ---------------------------------------------------------------------------------


def fake_job(tmp_path: Path, rule: str = "toy", **params) -> types.SimpleNamespace:
    """What Snakemake hands a ``script:``: named inputs, outputs, params, wildcards, log."""
    return types.SimpleNamespace(
        rule=rule,
        input=Namedlist(fromdict={"table": "in.parquet", "parts": ["a", "b"]}),
        output=Namedlist(fromdict={"result": str(tmp_path / "out.json")}),
        params=Namedlist(fromdict=params),
        wildcards=Namedlist(fromdict={"dataset": "ml-100k", "seed": "3"}),
        log=[str(tmp_path / "job.log")],
        threads=2,
        resources=types.SimpleNamespace(mem_mb=1500),
        config={"progress": False},
    )


def test_call_passes_named_io_params_accepted_wildcards_and_resources(tmp_path):
    seen = {}

    def toy(input, output, *, alpha, seed, threads=1, progress=True, mem_mb=None):
        seen.update(
            input=input,
            output=output,
            alpha=alpha,
            seed=seed,
            threads=threads,
            progress=progress,
            mem_mb=mem_mb,
        )
        logging.getLogger("toy").info("did the work")
        return "done"

    assert snake.call(fake_job(tmp_path, alpha=0.5), toy) == "done"
    assert seen == {
        "input": {"table": "in.parquet", "parts": ["a", "b"]},
        "output": {"result": str(tmp_path / "out.json")},
        "alpha": 0.5,
        "seed": "3",
        "threads": 2,
        "progress": False,
        "mem_mb": 1500,
    }
    assert "did the work" in (tmp_path / "job.log").read_text()


def test_call_leaves_out_what_the_function_does_not_take(tmp_path):
    def plain(input, output):
        return sorted(input)

    assert snake.call(fake_job(tmp_path), plain) == ["parts", "table"]


def test_call_logs_the_failure_to_the_rules_log_and_raises(tmp_path):
    def broken(input, output):
        raise ValueError("the input has no rows")

    with pytest.raises(ValueError, match="no rows"):
        snake.call(fake_job(tmp_path), broken)
    log = (tmp_path / "job.log").read_text()
    assert "broken failed" in log and "ValueError: the input has no rows" in log


def test_call_does_not_pass_the_code_digest(tmp_path):
    def toy(input, output, *, alpha):
        return alpha

    assert snake.call(fake_job(tmp_path, alpha=1, code="0" * 64), toy) == 1


def test_a_failing_rule_prints_one_line_and_logs_the_traceback(tmp_path, monkeypatch, capsys):
    module = types.ModuleType("toy_rules")

    def toy_rule(input, output):
        raise ValueError("the input has no rows")

    module.toy_rule = toy_rule
    monkeypatch.setitem(__import__("sys").modules, "toy_rules", module)
    monkeypatch.setitem(rules.RULES, "toy_rule", "toy_rules")
    with pytest.raises(SystemExit) as stop:
        snake.run_rule(fake_job(tmp_path, rule="toy_rule"))
    assert stop.value.code == 1
    printed = capsys.readouterr().err
    assert "toy_rule failed: ValueError: the input has no rows" in printed
    assert "Traceback" not in printed and str(tmp_path / "job.log") in printed
    assert "Traceback" in (tmp_path / "job.log").read_text()


def test_run_rule_runs_the_function_of_the_rules_name(tmp_path, monkeypatch):
    module = types.ModuleType("toy_rules")
    module.toy_rule = lambda input, output, *, dataset: (dataset, output["result"])
    monkeypatch.setitem(__import__("sys").modules, "toy_rules", module)
    monkeypatch.setitem(rules.RULES, "toy_rule", "toy_rules")
    assert snake.run_rule(fake_job(tmp_path, rule="toy_rule")) == (
        "ml-100k",
        str(tmp_path / "out.json"),
    )


# --- code digests --------------------------------------------------------------------------------


def test_code_modules_follow_imports_and_run_time_parsers():
    pfr = rules.code_modules("llmrec.studies.pfr")
    assert {"llmrec", "llmrec.studies", "llmrec.models.lightgcn", "llmrec.evaluation.ranking"} <= (
        set(pfr)
    )
    assert not any(m.startswith(("llmrec.news", "llmrec.p5", "llmrec.data.sources")) for m in pfr)
    # Parsers are imported by name at run time (importlib): every one of them counts.
    parse = rules.code_modules("llmrec.data.steps")
    assert {f"llmrec.data.sources.{s}" for s in ("movielens", "mind", "yelp")} <= set(parse)
    assert "llmrec.models.lightgcn" not in parse


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package whose files a test may edit."""
    import shutil

    copy = tmp_path / "llmrec"
    shutil.copytree(rules.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(rules, "PACKAGE_DIR", copy)
    clear_caches()
    yield copy
    clear_caches()


def clear_caches() -> None:
    for cached in (rules._tree, rules._imports, rules._code_only):
        cached.cache_clear()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def digests() -> dict[str, str]:
    clear_caches()
    return {name: rules.code_sha256(name) for name in rules.RULES}


def test_a_code_edit_changes_the_digest_of_the_rules_that_run_it(package_copy):
    before = digests()
    edit(package_copy / "models" / "lightgcn.py", "import torch\n", "import torch\n\n_EDIT = 1\n")
    after = digests()
    changed = {name for name in rules.RULES if before[name] != after[name]}
    # PFR and the multi-behaviour study build LightGCN; their tables live in the same modules,
    # and the text tasks' table names the ID models. No LLM step reads the graph code.
    assert changed == {
        "train_pfr",
        "pfr_table",
        "pfr_figure",
        "train_mbr",
        "mbr_table",
        "mbr_figure",
        "train_unified",
        "mbr_text_table",
        "mbr_chat_figure",
        "mbr_examples",
    }


def test_comments_docstrings_and_layout_leave_the_digest(package_copy):
    before = digests()
    ranking = package_copy / "evaluation" / "ranking.py"
    text = ranking.read_text()
    assert text.startswith('"""')
    first_def = text.index("\ndef ")
    ranking.write_text(
        '"""Another docstring.\n\nMore words."""  # and a comment\n'
        + text[text.index('"""', 3) + 3 : first_def]
        + "\n# a new comment\n\n"
        + text[first_def:]
    )
    assert digests() == before
    edit(ranking, "\ndef ", "\n_EDIT = 1\n\n\ndef ")
    changed = {name for name, digest in digests().items() if digest != before[name]}
    assert "train_pfr" in changed and "evaluate_p5" in changed and "split" not in changed

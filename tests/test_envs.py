"""The conda environments (envs/*.yaml) against the code each rule runs and pyproject.toml's pins.

CI cannot reach conda's channels, so the environments are checked statically: every third-party
package that a rule's code imports (the modules ``llmrec.rules.code_modules`` lists, read as
ASTs) is in the rule's environment, pinned as pyproject.toml pins it. This is the only check
that notices a missing one: inside a rule's script Snakemake appends the path of the Python that
runs Snakemake, so ``--use-conda`` would take the package from that installation, unpinned,
without an error. The slow test asks PyPI whether each environment's pip section resolves."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

from llmrec import rules

from .conftest import REPO

ENVS = REPO / "envs"
# conda-forge's names for Python packages that it names otherwise than PyPI.
CONDA_NAMES = {"python-duckdb": "duckdb"}
# (importing module, package): an import inside a function that the rules of an environment
# without the package never call. llmrec.io.save_state saves weights; no data rule does.
LAZY = {("llmrec.io", "torch")}


@cache
def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        (spec,) = req.specifier  # pinned: exactly one ==
        assert spec.operator == "==", line
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def env_pins(text: str) -> dict[str, str]:
    """Distribution name -> pinned version, conda and pip entries alike (``python`` included)."""
    pins = {}
    for dep in yaml.safe_load(text)["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line.startswith("-"):
                    continue  # an option: the CPU build's index
                name, sep, version = line.partition("==")
                assert sep and version, f"pip entry {line!r} is not pinned with =="
                pins[canonicalize_name(name)] = version
        else:
            name, sep, version = dep.partition("=")
            assert sep and version and "=" not in version, (
                f"conda entry {dep!r} is not name=version"
            )
            pins[canonicalize_name(CONDA_NAMES.get(name, name))] = version
    return pins


@cache
def distribution_of(import_name: str) -> str:
    found = packages_distributions().get(import_name)
    assert found, f"{import_name} is imported by the package but not installed here"
    return canonicalize_name(found[0])


def imports_of(module: str) -> set[str]:
    """Top-level names of the third-party packages a module imports, anywhere in its code."""
    names = set()
    for node in ast.walk(rules._tree(module)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != rules.PACKAGE}


def needed_by(rule: str) -> dict[str, set[str]]:
    """Distribution -> the modules of the rule's code that import it (LAZY ones left out)."""
    needed: dict[str, set[str]] = {}
    for module in rules.code_modules(rules.RULES[rule]):
        for name in imports_of(module):
            if (module, name) not in LAZY:
                needed.setdefault(distribution_of(name), set()).add(module)
    return needed


@cache
def dependencies(dist: str) -> frozenset[str]:
    """What installing ``dist`` installs too, by this installation's metadata."""
    try:
        reqs = [Requirement(r) for r in requires(dist) or []]
    except PackageNotFoundError:
        return frozenset()
    direct = {
        canonicalize_name(r.name) for r in reqs if not r.marker or r.marker.evaluate({"extra": ""})
    }
    return frozenset(direct.union(*(dependencies(d) for d in direct)))


def problems(rule: str, pins: dict[str, str]) -> list[str]:
    """Why the environment with ``pins`` cannot run ``rule``'s code as pyproject.toml pins it."""
    found = []
    for dist, importers in sorted(needed_by(rule).items()):
        where = f"{dist} (imported by {', '.join(sorted(importers))})"
        if dist in pyproject_pins():
            if dist not in pins:
                found.append(f"{where} is missing")
            elif pins[dist] != pyproject_pins()[dist]:
                found.append(
                    f"{where} is pinned {pins[dist]}, pyproject.toml {pyproject_pins()[dist]}"
                )
        elif not any(dist in dependencies(listed) for listed in pins):
            found.append(
                f"{where} is neither pinned in pyproject.toml nor installed by a listed one"
            )
    return found


def rule_envs(torch_build: str) -> dict[str, Path]:
    """Each rule's conda environment file under the config's ``torch_build``."""
    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(config={"torch_build": torch_build}),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )
        loaded = workflow_api._workflow.rules  # pinned Snakemake: rules parsed, nothing run
        smk = REPO / "workflow" / "rules"
        return {r.name: (smk / r.conda_env).resolve() for r in loaded if r.name in rules.RULES}


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def envs_by_rule(request):
    return request.param, rule_envs(request.param)


def test_every_rule_with_code_has_an_environment_for_its_torch_build(envs_by_rule):
    torch_build, envs = envs_by_rule
    assert set(envs) == set(rules.RULES)
    used = {path.name for path in envs.values()}
    assert used == {"data.yaml", {"cpu": "torch.yaml", "cuda": "torch-cuda.yaml"}[torch_build]}
    for rule, path in envs.items():
        if "torch" in needed_by(rule):
            assert path.name != "data.yaml", rule


def test_each_rules_environment_holds_what_its_code_imports(envs_by_rule):
    _, envs = envs_by_rule
    found = {
        f"{rule} ({path.name}): {problem}"
        for rule, path in envs.items()
        for problem in problems(rule, env_pins(path.read_text()))
    }
    assert not found, "\n".join(sorted(found))


@pytest.mark.parametrize(
    "drop, rule", [("scipy", "train_pfr"), ("transformers", "item_profiles"), ("torch", "train_p5")]
)
def test_a_package_missing_from_an_environment_is_caught(drop, rule):
    text = (ENVS / "torch.yaml").read_text()
    assert not problems(rule, env_pins(text))
    assert f"- {drop}==" in text
    found = problems(rule, env_pins(re.sub(rf"\n *- {drop}==.*", "", text)))
    assert len(found) == 1 and found[0].startswith(f"{drop} (imported by llmrec.")
    assert found[0].endswith(") is missing")


def test_a_pin_other_than_pyprojects_is_caught():
    text = (ENVS / "data.yaml").read_text().replace("python-duckdb=1.4.4", "python-duckdb=1.4.3")
    found = problems("parse_dataset", env_pins(text))
    assert len(found) == 1 and found[0].startswith("duckdb (imported by llmrec.data.")
    assert found[0].endswith(") is pinned 1.4.3, pyproject.toml 1.4.4")


@pytest.mark.parametrize("env", sorted(p.name for p in ENVS.glob("*.yaml")))
def test_every_environment_pins_as_pyproject_and_its_python(env):
    pins = env_pins((ENVS / env).read_text())
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert pins.pop("python") in SpecifierSet(python)
    other = {d: v for d, v in pins.items() if d in pyproject_pins() and v != pyproject_pins()[d]}
    assert not other, f"{env} pins {other}; pyproject.toml pins {pyproject_pins()}"
    assert set(pins) - set(pyproject_pins()) <= {"pip"}, "a package pyproject.toml does not pin"


def test_the_cuda_environment_is_the_cpu_one_with_another_torch_build():
    cpu, cuda = ((ENVS / name).read_text() for name in ("torch.yaml", "torch-cuda.yaml"))
    assert env_pins(cpu) == env_pins(cuda)
    assert "download.pytorch.org/whl/cpu" in cpu and "download.pytorch.org/whl/cpu" not in cuda


# Pinned packages that PyPI serves only as source archives.
SOURCE_ONLY = ("rouge-score",)


def pip_section(env: Path) -> list[str]:
    deps = yaml.safe_load(env.read_text())["dependencies"]
    return next((d["pip"] for d in deps if isinstance(d, dict)), [])


@pytest.mark.slow
@pytest.mark.parametrize("env", sorted(p.name for p in ENVS.glob("*.yaml") if pip_section(p)))
def test_each_pip_section_resolves_on_pypi(env, tmp_path):
    """Every pinned wheel exists for this Python and platform (metadata only, nothing
    installed). --isolated: PyPI as a user reaches it, not this machine's pip configuration.
    rouge-score publishes only a source archive (pure Python): it alone may build from it."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pip_section(ENVS / env)) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--isolated",
            "install",
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "--only-binary=:all:",
            f"--no-binary={','.join(SOURCE_ONLY)}",
            "--retries",
            "1",
            "--timeout",
            "30",
            "--index-url",
            "https://pypi.org/simple",
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
    )
    unreachable = ("NewConnectionError", "Temporary failure in name resolution", "No route to host")
    if (
        done.returncode != 0
        and "pypi.org" in done.stderr
        and any(u in done.stderr for u in unreachable)
    ):
        pytest.skip(f"PyPI cannot be reached: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    would = done.stdout.rpartition("Would install ")[2].split()
    assert {canonicalize_name(w.rpartition("-")[0]) for w in would} == set(
        canonicalize_name(line.partition("==")[0])
        for line in pip_section(ENVS / env)
        if not line.startswith("-")
    )

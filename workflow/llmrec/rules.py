"""Every rule of the workflow and the module of this package that runs it.

A rule ``name`` in ``workflow/rules/*.smk`` runs ``workflow/scripts/run.py``, the one adapter,
which calls the function ``name`` of the module this table gives (:func:`rule_function`): the
rule's name is the function's name, so ``train_pfr`` in a log, a benchmark file or a Slurm
profile is ``llmrec.studies.pfr.train_pfr`` in the code. Modules are imported only when their
rule runs, so the data rules never import torch.

Each rule also gets the digest of the package code it runs (:func:`code_sha256`) as its param
``code``: editing a module reruns the jobs whose rule imports it, directly or not, and nothing
else. The digest covers the code, not comments, docstrings, layout or file times, so a fresh
clone or a reformatting leaves finished results as they are.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

PACKAGE = "llmrec"
PACKAGE_DIR = Path(__file__).resolve().parent
# The param that carries a rule's code digest; the adapter does not pass it to the function.
CODE_PARAM = "code"

RULES: dict[str, str] = {
    # Data: fetch -> canonical tables -> filtered interactions -> splits, graph, sequences,
    # item text, statistics (workflow/rules/data.smk).
    "fetch_dataset": "llmrec.data.steps",
    "parse_dataset": "llmrec.data.steps",
    "filter_interactions": "llmrec.data.steps",
    "split": "llmrec.data.steps",
    "graph": "llmrec.data.steps",
    "sequences": "llmrec.data.steps",
    "item_text": "llmrec.data.steps",
    "dataset_statistics": "llmrec.data.steps",
    "dataset_table": "llmrec.data.steps",
    # Multi-behaviour study, data: behaviour sequences and split, per-behaviour graphs, user
    # history text (workflow/rules/mbr_data.smk).
    "mbr_sequences": "llmrec.data.steps",
    "mbr_graphs": "llmrec.data.steps",
    "mbr_user_text": "llmrec.data.steps",
    # Text: the LLM's profiles and sentence embeddings (workflow/rules/text.smk).
    "fetch_llm": "llmrec.text.steps",
    "item_profiles": "llmrec.text.steps",
    "user_profiles": "llmrec.text.steps",
    "embed_texts": "llmrec.text.steps",
    # PFR study (workflow/rules/pfr.smk).
    "train_pfr": "llmrec.studies.pfr",
    "pfr_table": "llmrec.studies.pfr",
    "pfr_figure": "llmrec.studies.pfr",
    # POPK study (workflow/rules/popk.smk).
    "train_popk": "llmrec.studies.popk",
    "popk_table": "llmrec.studies.popk",
    "popk_figure": "llmrec.studies.popk",
    # Arithmetic (P5) study (workflow/rules/arithmetic.smk).
    "p5_index": "llmrec.studies.arithmetic",
    "p5_tokenizer": "llmrec.studies.arithmetic",
    "p5_init": "llmrec.studies.arithmetic",
    "p5_arithmetic": "llmrec.studies.arithmetic",
    "train_p5": "llmrec.studies.arithmetic",
    "p5_task_vector": "llmrec.studies.arithmetic",
    "evaluate_p5": "llmrec.studies.arithmetic",
    "train_sasrec": "llmrec.studies.arithmetic",
    "train_sasrec_ordered": "llmrec.studies.arithmetic",
    "arithmetic_table": "llmrec.studies.arithmetic_report",
    "arithmetic_embeddings": "llmrec.studies.arithmetic_report",
    "arithmetic_cooccurrence": "llmrec.studies.arithmetic_report",
    # Multi-behaviour study (workflow/rules/mbr.smk).
    "train_mbr": "llmrec.studies.mbr",
    "mbr_table": "llmrec.studies.mbr",
    "mbr_figure": "llmrec.studies.mbr",
    "train_unified": "llmrec.studies.mbr_unified",
    # Multi-behaviour study, part 2: the LLM and the text tasks (workflow/rules/mbr_text.smk).
    "mbr_candidates": "llmrec.studies.mbr_split",
    "mbr_text_subsets": "llmrec.studies.mbr_split",
    "mbr_llm_adapt": "llmrec.studies.mbr_llm",
    "mbr_llm_embed": "llmrec.studies.mbr_llm",
    "mbr_llm_finetune": "llmrec.studies.mbr_llm_tasks",
    "mbr_chat": "llmrec.studies.mbr_llm_tasks",
    "mbr_describe": "llmrec.studies.mbr_llm_tasks",
    "mbr_text_table": "llmrec.studies.mbr_text",
    "mbr_chat_figure": "llmrec.studies.mbr_text",
    "mbr_examples": "llmrec.studies.mbr_text",
    # The report: the dataset table as HTML, the run's own cost (workflow/rules/report.smk).
    "dataset_table_html": "llmrec.studies.tables",
    "benchmarks_table": "llmrec.benchmarks",
}


def rule_function(rule: str) -> Callable:
    """The function that runs ``rule``: ``RULES[rule]``'s attribute of the same name."""
    if rule not in RULES:
        raise KeyError(
            f"rule {rule!r} has no entry in llmrec.rules.RULES: add it with the "
            f"module whose function {rule}() runs it"
        )
    return getattr(importlib.import_module(RULES[rule]), rule)


def _source(module: str) -> Path | None:
    """The file of a module of this package, or None for one that does not exist."""
    parts = module.split(".")[1:]
    folder = PACKAGE_DIR.joinpath(*parts)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    file = folder.with_suffix(".py")
    return file if parts and file.is_file() else None


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_source(module).read_text(), filename=str(_source(module)))


@cache
def _imports(module: str) -> frozenset[str]:
    """The package's modules that ``module`` imports anywhere in its code (functions too)."""
    is_package = _source(module).name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from . import sampling`` imports a module, not a name.
            found |= {f"{target}.{alias.name}" for alias in node.names}
        elif _calls_import_module(node):
            # A module picked by name at run time (a source's parser): any of the package's.
            package = ".".join(base)
            modules = _source(package).parent.glob("*.py")
            found |= {f"{package}.{p.stem}" for p in modules if p.stem != "__init__"}
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE and _source(m) is not None)


def _calls_import_module(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == "import_module"


def _with_parents(module: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` too."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def code_modules(module: str) -> list[str]:
    """Every module of the package that importing ``module`` runs, sorted."""
    seen: set[str] = set()
    todo = _with_parents(module)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imported in _imports(current):
            todo |= _with_parents(imported) - seen
    return sorted(seen)


@cache
def _code_only(module: str) -> str:
    """The module's code without docstrings: what runs, not how it is written down."""
    tree = ast.parse(_source(module).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def code_sha256(rule: str) -> str:
    """SHA-256 of the code of every package module the rule's function can run."""
    if rule not in RULES:
        rule_function(rule)  # raises the error that names the missing entry
    digest = hashlib.sha256()
    for module in code_modules(RULES[rule]):
        digest.update(f"{module}\n{_code_only(module)}\n".encode())
    return digest.hexdigest()

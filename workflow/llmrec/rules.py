"""Every rule of the workflow and the module of this package that runs it.

A rule ``name`` in ``workflow/rules/*.smk`` runs ``workflow/scripts/run.py``, the one adapter,
which calls the function ``name`` of the module this table gives (:func:`rule_function`): the
rule's name is the function's name, so ``train_pfr`` in a log, a benchmark file or a Slurm
profile is ``llmrec.studies.pfr.train_pfr`` in the code. Modules are imported only when their
rule runs, so the data rules never import torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

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
    "arithmetic_table": "llmrec.studies.arithmetic_report",
    "arithmetic_embeddings": "llmrec.studies.arithmetic_report",
    "arithmetic_cooccurrence": "llmrec.studies.arithmetic_report",
    # The run's own cost (workflow/rules/report.smk).
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

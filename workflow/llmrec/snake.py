"""The bridge between a Snakemake ``script:`` and a function of this package.

Every rule runs ``workflow/scripts/run.py``, which calls :func:`run_rule`: the function of the
rule's name (:mod:`llmrec.rules`) with the rule's named inputs and outputs as ``input``/``output``
mappings, its params and wildcards as keyword arguments, and its threads and memory
(``resources.mem_mb``) where the function takes them. Logging goes to the rule's log file.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any

from .rules import rule_function


def _named(namedlist: Any) -> dict:
    return {name: value for name, value in namedlist.items()}


def call(smk: Any, func: Callable) -> Any:
    """Run ``func`` with the rule's named inputs, outputs and params; log to the rule's log."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if smk.log:
        handlers.append(logging.FileHandler(str(smk.log[0]), mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    kwargs: dict[str, Any] = {
        "input": _named(smk.input),
        "output": _named(smk.output),
        **_named(smk.params),
    }
    accepted = inspect.signature(func).parameters
    kwargs.update({k: v for k, v in _named(smk.wildcards).items() if k in accepted})
    if "threads" in accepted:
        kwargs["threads"] = smk.threads
    if "progress" in accepted:
        # Display only: read from the config here, not passed as a param, so that turning
        # progress bars off does not make Snakemake rerun every job whose params changed.
        kwargs["progress"] = bool(smk.config.get("progress", True))
    if "mem_mb" in accepted:
        kwargs["mem_mb"] = getattr(smk.resources, "mem_mb", None)
    try:
        return func(**kwargs)
    except Exception:
        logging.getLogger(func.__module__).exception("%s failed", func.__name__)
        raise


def run_rule(smk: Any) -> Any:
    """Run the function of the rule ``smk`` belongs to (``smk.rule``, see :mod:`llmrec.rules`)."""
    return call(smk, rule_function(smk.rule))

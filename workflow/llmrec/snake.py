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

from .device import passive_openmp
from .rules import CODE_PARAM, rule_function


def _named(namedlist: Any) -> dict:
    return {name: value for name, value in namedlist.items()}


class _Brief(logging.Formatter):
    """A record without its traceback: the terminal gets one line, the log file the rest."""

    def format(self, record: logging.LogRecord) -> str:
        brief = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(brief)


def call(smk: Any, func: Callable) -> Any:
    """Run ``func`` with the rule's named inputs, outputs and params; log to the rule's log.

    A failure is logged once: its message on stderr, its traceback in the rule's log file.
    """
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    terminal = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [terminal]
    if smk.log:
        terminal.setFormatter(_Brief(fmt))
        handlers.append(logging.FileHandler(str(smk.log[0]), mode="w"))
    # basicConfig gives ``fmt`` to the handlers that have no formatter yet.
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True, format=fmt)
    params = _named(smk.params)
    params.pop(CODE_PARAM, None)  # what reruns the job when its code changes, not an argument
    kwargs: dict[str, Any] = {"input": _named(smk.input), "output": _named(smk.output), **params}
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
    except Exception as error:
        where = f" (traceback in {smk.log[0]})" if smk.log else ""
        logging.getLogger(func.__module__).exception(
            "%s failed: %s: %s%s", func.__name__, type(error).__name__, error, where
        )
        raise


def run_rule(smk: Any) -> Any:
    """Run the function of the rule ``smk`` belongs to (``smk.rule``, see :mod:`llmrec.rules`).

    A failure ends the script with exit status 1 once it is logged, so that the error is not
    printed a second time as the script's uncaught traceback.
    """
    passive_openmp()  # before the rule's module imports torch: libgomp reads it once, at load
    try:
        return call(smk, rule_function(smk.rule))
    except Exception:
        raise SystemExit(1) from None

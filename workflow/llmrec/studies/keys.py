"""The keys that name a run in every study's outputs: a light module, so that a step which
only records them (the multi-behaviour LLM steps) does not depend on the tables' code."""

from __future__ import annotations

from typing import Any

Variant = str | int | None


def run_keys(
    *, study: str, dataset: str, model: str, variant: Variant, seed: int | str
) -> dict[str, Any]:
    """The keys a run's ``summary.json`` records, so that a table attributes the run by them.

    ``variant`` is what the study varies besides the model (POPK's popk, the arithmetic study's
    prompt setting); ``None`` where there is nothing, or where the run holds for every variant
    (SASRec reads no prompt).
    """
    return {
        "study": study,
        "dataset": dataset,
        "model": model,
        "variant": variant,
        "seed": int(seed),
    }

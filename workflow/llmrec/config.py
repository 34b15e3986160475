"""The workflow's config checked against its schema, with an error a person can act on."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def error_sentence(error: jsonschema.ValidationError) -> str:
    """One sentence: where in the config, and what is wrong there."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    hint = ""
    if "'ml-100k'" in error.message and "is not one of" in error.message:
        hint = "; a dataset of your own is named csv-<name> (docs/datasets.md)"
    return f"config{where}: {error.message}{hint} (see workflow/schemas/config.schema.yaml)"


def validate_config(config: MutableMapping, schema: str | Path) -> None:
    """Validate ``config`` against ``schema`` and fill its defaults, as
    :func:`snakemake.utils.validate` does, but stop with one sentence instead of a dump of the
    whole schema and config."""
    try:
        validate(config, str(schema))
    except WorkflowError as error:
        # Snakemake raises it while handling jsonschema's error, which it pastes in whole.
        cause = error.__context__
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        raise WorkflowError(error_sentence(cause)) from None

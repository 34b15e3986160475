# Input functions and config slices. Each rule gets only the part of the config it depends on,
# as params, so that changing one dataset's settings reruns only that dataset's jobs.
import sys

# The package of this checkout, also where it is not installed (scripts add it likewise).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from llmrec.data.registry import get_spec

DATASETS = sorted(config["build"])
_unset = [d for d in DATASETS if d not in config["datasets"]]
if _unset:
    raise ValueError(f"config: build names {_unset} but datasets has no settings for them; add "
                     f"datasets.<name> (see config.yaml for every dataset's settings)")
NEWS = [d for d in DATASETS if get_spec(d).kind == "news"]
INTERACTION_DATASETS = [d for d in DATASETS if d not in NEWS]


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    protocol="loo|random|mind",


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def fetch_options(wildcards):
    """What the fetch step depends on: where the files come from (not filters or splits)."""
    cfg = dataset_config(wildcards)
    keys = ("source", "path", "base_url", "wheel_dir", "generator")
    return {k: cfg[k] for k in keys if k in cfg}


def parse_options(wildcards):
    cfg = dataset_config(wildcards)
    return {k: cfg[k] for k in ("skip_malformed", "time_window") if k in cfg}


def filter_options(wildcards):
    return dataset_config(wildcards)["filter"]


def split_input(wildcards):
    if wildcards.protocol == "mind":
        return f"results/data/{wildcards.dataset}/canonical/impressions.parquet"
    return f"results/data/{wildcards.dataset}/filtered/interactions.parquet"


def split_seed(wildcards):
    return config["seed"] if wildcards.protocol == "random" else 0


def split_ratios(wildcards):
    return config["splits"]["random_ratios"] if wildcards.protocol == "random" else []


def stats_input(wildcards):
    if wildcards.dataset in NEWS:
        return {
            "interactions": f"results/data/{wildcards.dataset}/canonical/interactions.parquet",
            "impressions": f"results/data/{wildcards.dataset}/canonical/impressions.parquet",
        }
    return {"interactions": f"results/data/{wildcards.dataset}/filtered/interactions.parquet"}


def text_input(wildcards):
    stage = "canonical" if wildcards.dataset in NEWS else "filtered"
    return f"results/data/{wildcards.dataset}/{stage}/items.parquet"


def dataset_targets(dataset):
    """Every data artifact of one dataset."""
    base = f"results/data/{dataset}"
    if dataset in NEWS:
        return [f"{base}/split/mind.parquet", f"{base}/item_text.parquet", f"{base}/stats.json"]
    return [
        *(f"{base}/split/{p}.parquet" for p in ("loo", "random")),
        *(f"{base}/graph/{p}.npz" for p in ("loo", "random")),
        f"{base}/sequences.parquet",
        f"{base}/item_text.parquet",
        f"{base}/stats.json",
    ]


def data_targets():
    return [t for d in DATASETS for t in dataset_targets(d)] + ["results/tables/datasets.csv"]

# The config's validation, input functions and config slices. Each rule gets only the part of the config it depends on,
# as params, so that changing one dataset's settings reruns only that dataset's jobs.
import os
import sys

# The package of this checkout, also where it is not installed (scripts add it likewise).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
PACKAGED_PROMPTS = Path(workflow.basedir) / "workflow" / "llmrec" / "text" / "prompts"

from llmrec.config import validate_config

# Checked, defaults filled, before anything else reads the config.
validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")


def in_checkout(path):
    """A relative folder of the config, which names the checkout's (resources/manual/,
    tests/fixtures/), as a run folder reaches it; relative, so a moved checkout keeps its runs."""
    return path if os.path.isabs(path) else os.path.relpath(Path(workflow.basedir) / path)


# A run folder (--directory runs/<name>) has its own results/, resources/raw/ and .snakemake/,
# and reads the checkout's manual downloads, fixtures, wheels and prompts. In the checkout itself
# the config stays as written (its params, and so its finished jobs, as before).
if not Path(workflow.basedir).samefile(os.getcwd()):
    for _name, _dataset in config["datasets"].items():
        if _dataset.get("source") in ("local", "csv"):
            _dataset["path"] = in_checkout(_dataset.get("path") or f"resources/manual/{_name}")
        if _dataset.get("wheel_dir"):
            _dataset["wheel_dir"] = in_checkout(_dataset["wheel_dir"])
    if config["popk"]["glove_path"]:
        config["popk"]["glove_path"] = in_checkout(config["popk"]["glove_path"])
    for _key in ("wheel_dir", "prompts"):
        if config["llm"][_key]:
            config["llm"][_key] = in_checkout(config["llm"][_key])


def unset_profile_variables():
    """$NAMEs in the resources a profile or the command line sets (profiles/slurm names the
    cluster's account and partitions so) that the environment does not define: Snakemake would
    submit them as literal text, and Slurm would refuse the first job that uses one, hours in."""
    settings = workflow.resource_settings
    values = [*(settings.default_resources or {}).values()]
    values += [v for per_rule in settings.overwrite_resources.values() for v in per_rule.values()]
    raw = [str(getattr(value, "raw", value)) for value in values]
    names = {name for text in raw for name in re.findall(r"\$\{?(\w+)", text)}
    return sorted(name for name in names if name not in os.environ)


_unset_variables = unset_profile_variables()
if workflow.is_main_process and _unset_variables:
    _one = len(_unset_variables) == 1
    raise WorkflowError(
        f"the resources name ${', $'.join(_unset_variables)}, which "
        f"{'is' if _one else 'are'} not set in the environment: export "
        f"{'it' if _one else 'them'} (an empty value leaves the choice to Slurm; docs/cluster.md)"
    )

# The model rules' conda environment (--use-conda): torch's CPU build, or its CUDA build.
TORCH_ENVS = {"cpu": "../../envs/torch.yaml", "cuda": "../../envs/torch-cuda.yaml"}
TORCH_ENV = TORCH_ENVS[config["torch_build"]]

from llmrec.data.download import check_manual
from llmrec.data.registry import get_spec
from llmrec.provenance import folder_digests
from llmrec.rules import code_sha256

DATASETS = sorted(
    set(config["build"])
    | set(config["pfr"]["datasets"])
    | set(config["popk"]["datasets"])
    | set(config["arithmetic"]["datasets"])
    | set(config["mbr"]["datasets"])
)
_unset = [d for d in DATASETS if d not in config["datasets"]]
if _unset:
    raise ValueError(
        f"config: build names {_unset} but datasets has no settings for them; add "
        f"datasets.<name> (see config.yaml for every dataset's settings)"
    )
NEWS = [d for d in DATASETS if get_spec(d).kind == "news"]
_not_news = [d for d in config["popk"]["datasets"] if d not in NEWS]
if _not_news:
    raise ValueError(f"config: popk.datasets {_not_news} are not news datasets (MIND format)")
POPK_MODES = (
    [config["popk"]["mode"]]
    if isinstance(config["popk"]["mode"], str)
    else list(config["popk"]["mode"])
)
if (
    "replace" in POPK_MODES
    and max(config["popk"]["popk"], default=0) > config["popk"]["sampler"]["npratio"]
):
    raise ValueError(
        f"config: popk values {config['popk']['popk']} exceed "
        f"popk.sampler.npratio = {config['popk']['sampler']['npratio']} (mode replace)"
    )
if (
    config["popk"]["word_init"] == "glove"
    and not Path(config["popk"]["glove_path"] or "").is_file()
):
    raise ValueError(
        f"config: popk.word_init is glove but popk.glove_path ({config['popk']['glove_path']}) "
        f"is no file; download glove.840B.300d.zip from https://nlp.stanford.edu/projects/glove/ "
        f"and unzip it there, or set popk.word_init: minilm (offline)"
    )
INTERACTION_DATASETS = [d for d in DATASETS if d not in NEWS]
_no_behaviours = [
    d for d in config["mbr"]["datasets"] if not config["datasets"][d].get("behaviours")
]
if _no_behaviours:
    raise ValueError(
        f"config: mbr.datasets {_no_behaviours} have no datasets.<name>.behaviours block (the "
        f"funnel and the target behaviour; docs/mbr.md)"
    )


SYNTHETIC = [d for d in DATASETS if get_spec(d).synthetic]


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    protocol="loo|random|mind",
    model="lightgcn|sge|pfr",
    seed=r"\d+",
    news_model="nrms|naml|lstur",
    popk=r"\d+",
    popk_mode="add|replace",
    texts=r"item_text|(item|user)_profiles_(loo|random)",
    p5_method="p5|precondition|task_vector",
    setting="seen|unseen",
    mbr_model="pop|aux_first|mf|lightgcn|lightgcn_merged|cascading_gcn|cascading_rank|sasrec|bsasrec",
    unified_model="unified|unified_no_llm|unified_no_aux|unified_no_gnn|unified_no_seq",
    ft_variant="text|unified|unified_no_llm",
    chat_row="zero_shot|text|unified",
    describe_row="unified|unified_no_llm|zero_shot_title",
    stage="valid|test",


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def fetch_options(wildcards):
    """What the fetch step depends on: where the files come from (not filters or splits)."""
    cfg = dataset_config(wildcards)
    keys = ("source", "path", "base_url", "wheel_dir", "generator")
    return {k: cfg[k] for k in keys if k in cfg}


def local_files(wildcards):
    """Digests of the files in a local or csv source folder, so that a changed file reruns the
    dataset; cached by size and time in .snakemake/ (hashing gigabytes at every plan is slow).

    A manual download that is missing stops the run here, while Snakemake plans the jobs of
    the targets asked for, with the fetch step's message: before any job runs or is submitted,
    not when a cluster run reaches the fetch. A dry run plans without the files."""
    cfg = dataset_config(wildcards)
    if cfg.get("source") not in ("local", "csv"):
        return {}
    folder = cfg.get("path") or f"resources/manual/{wildcards.dataset}"
    spec = get_spec(wildcards.dataset)
    manual = spec.manual and cfg["source"] == "local"
    if manual and workflow.is_main_process and not workflow.dryrun:
        check_manual(spec, Path(os.path.abspath(folder)))
    return folder_digests(folder, cache=".snakemake/llmrec/local_files.json")


def parse_options(wildcards):
    cfg = dataset_config(wildcards)
    return {k: cfg[k] for k in ("skip_malformed", "time_window", "csv") if k in cfg}


def filter_options(wildcards):
    """The dataset's filters, and the config's seed where users are sampled (only there, so
    that a new seed reruns no other dataset's filter)."""
    options = dataset_config(wildcards)["filter"]
    if options.get("sample_users") is not None:
        return {**options, "seed": config["seed"]}
    return options


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
        *mbr_dataset_targets(dataset),
    ]


def mbr_dataset_targets(dataset):
    """The multi-behaviour artifacts of a dataset with a behaviours block."""
    if not config["datasets"][dataset].get("behaviours"):
        return []
    base = f"results/data/{dataset}/mbr"
    return [
        f"{base}/sequences.parquet",
        f"{base}/behaviours.json",
        *(
            f"{base}/{kind}_{stage}.{ext}"
            for kind, ext in (("graphs", "npz"), ("user_text", "parquet"))
            for stage in ("valid", "test")
        ),
    ]


def data_targets():
    return [t for d in DATASETS for t in dataset_targets(d)] + ["results/tables/datasets.csv"]


def mbr_behaviours(wildcards):
    """The dataset's multi-behaviour settings; a dataset without them is one sentence's error."""
    settings = dataset_config(wildcards).get("behaviours")
    if not settings:
        raise ValueError(
            f"datasets.{wildcards.dataset} has no behaviours block, which the multi-behaviour "
            f"study needs: add one (funnel, target; from_rating for ratings; see config.yaml's "
            f"ml-100k)"
        )
    return settings


def mbr_split_options(wildcards):
    """What the behaviour sequences and split depend on (not the text's history length)."""
    return {k: v for k, v in mbr_behaviours(wildcards).items() if k != "text_events"}


def mbr_text_events(wildcards):
    return mbr_behaviours(wildcards)["text_events"]


def pfr_train_input(wildcards):
    """The split and graph, and for SGE and PFR the text embeddings they align with."""
    ds, split = wildcards.dataset, config["pfr"]["split"]
    inputs = {
        "split": f"results/data/{ds}/split/{split}.parquet",
        "graph": f"results/data/{ds}/graph/{split}.npz",
    }
    if wildcards.model == "sge":
        inputs["item_semantic"] = f"results/text/{ds}/embeddings/item_text.npy"
    elif wildcards.model == "pfr":
        inputs["item_semantic"] = f"results/text/{ds}/embeddings/item_profiles_{split}.npy"
        if config["pfr"]["user_profiles"] == "llm":  # else: the mean of its items' profiles
            inputs["user_semantic"] = f"results/text/{ds}/embeddings/user_profiles_{split}.npy"
    return inputs


def pfr_alignment(wildcards):
    return config["pfr"]["alignment"].get(wildcards.model)


def pfr_runs(filename):
    return expand(
        "results/pfr/{dataset}/{model}/seed{seed}/{filename}",
        dataset=config["pfr"]["datasets"],
        model=["lightgcn", "sge", "pfr"],
        seed=config["pfr"]["seeds"],
        filename=filename,
    )


def llm_input(wildcards):
    """The default LLM's file, fetched by a rule; a model id or folder from config needs none."""
    if config["llm"]["model"] == "smollm2":
        return {"model": "resources/models/SmolLM2-135M-Instruct"}
    return {}


def prompt_template(name):
    """The template file of a profile job: an input, so that editing it reruns the job.
    The packaged ones are named relative to the working directory, which is the checkout's root
    unless --directory says otherwise."""
    folder = config["llm"]["prompts"] or os.path.relpath(PACKAGED_PROMPTS)
    return f"{folder}/{name}.txt"


def item_llm_options(wildcards):
    """The LLM settings item profiles depend on: not the user-prompt history length (nor the
    prompts folder: the template file itself is an input)."""
    return {k: v for k, v in config["llm"].items() if k not in ("user_history", "prompts")}


def user_llm_options(wildcards):
    return {k: v for k, v in config["llm"].items() if k != "prompts"}


def embed_input(wildcards):
    ds, texts = wildcards.dataset, wildcards.texts
    if texts == "item_text":
        return f"results/data/{ds}/item_text.parquet"
    if texts.startswith("item_profiles_"):
        return f"results/text/{ds}/profiles/items_{texts.removeprefix('item_profiles_')}.parquet"
    return f"results/text/{ds}/profiles/users_{texts.removeprefix('user_profiles_')}.parquet"


def embed_column(wildcards):
    return "text" if wildcards.texts == "item_text" else "profile_text"


def popk_values():
    """popk = 0 (the plain sampler, every comparison's baseline) and the configured values."""
    return sorted({0, *config["popk"]["popk"]})


def popk_runs(filename):
    """Every mode's runs; popk = 0 is the same sampler in both modes and runs once, as add."""
    pattern = "results/popk/{dataset}/{news_model}/{popk_mode}/popk{popk}/seed{seed}/{filename}"
    runs = dict(
        dataset=config["popk"]["datasets"],
        news_model=config["popk"]["models"],
        seed=config["popk"]["seeds"],
        filename=filename,
    )
    baseline = expand(pattern, popk_mode="add", popk=0, **runs)
    popular = [k for k in popk_values() if k > 0]
    return baseline + expand(pattern, popk_mode=POPK_MODES, popk=popular, **runs)


def popk_word_vectors(wildcards):
    """The GloVe file where word_init is glove (a rule input, so a new file reruns)."""
    cfg = config["popk"]
    return {"glove": cfg["glove_path"]} if cfg["word_init"] == "glove" else {}


def popk_model_settings(wildcards):
    """The model's settings plus the news-encoder switch every news model shares."""
    cfg = config["popk"]
    return {**cfg[wildcards.news_model], "news_encoder": cfg["news_encoder"]}


def p5_train_input(wildcards):
    """Plain P5 starts from the seed's theta_0; pre-conditioning from theta_arith."""
    root = f"results/arithmetic/{wildcards.dataset}"
    if wildcards.trained == "p5":
        return {"init": f"{root}/init/seed{wildcards.seed}/base.pt"}
    return {"init": f"{root}/arithmetic/seed{wildcards.seed}/arithmetic.pt"}


def p5_evaluation_input(wildcards):
    """A task vector's evaluation also reads the lambda chosen on validation."""
    if wildcards.p5_method != "task_vector":
        return {}
    root = f"results/arithmetic/{wildcards.dataset}/task_vector/seed{wildcards.seed}"
    return {"selection": f"{root}/lambda.json"}


def arithmetic_runs(filename):
    """Every evaluation of the table: P5 variants x prompt setting, and SASRec with and without
    ordered pre-training."""
    a = config["arithmetic"]
    p5 = expand(
        "results/arithmetic/{dataset}/{p5_method}/seed{seed}/{setting}/{filename}",
        dataset=a["datasets"],
        p5_method=["p5", "precondition", "task_vector"],
        seed=a["seeds"],
        setting=a["evaluation"]["settings"],
        filename=filename,
    )
    sasrec = expand(
        "results/arithmetic/{dataset}/{sasrec}/seed{seed}/{filename}",
        dataset=a["datasets"],
        sasrec=["sasrec", "sasrec_ordered"],
        seed=a["seeds"],
        filename=filename,
    )
    return p5 + sasrec


def arithmetic_figure_input(wildcards):
    """The first dataset and seed's weights: start, arithmetic, the three P5 variants, SASRec,
    and SASRec after ordered pre-training and after its training; the index that numbers the
    items."""
    ds, seed = config["arithmetic"]["datasets"][0], config["arithmetic"]["seeds"][0]
    root = f"results/arithmetic/{ds}"
    trained = ("p5", "precondition", "task_vector", "sasrec", "sasrec_ordered")
    return {
        "tokenizer": f"{root}/tokenizer",
        "index": f"{root}/index.parquet",
        "base": f"{root}/init/seed{seed}/base.pt",
        "arithmetic": f"{root}/arithmetic/seed{seed}/arithmetic.pt",
        "sasrec_pretrained": f"{root}/sasrec_ordered/seed{seed}/pretrained.pt",
        **{m: f"{root}/{m}/seed{seed}/weights.pt" for m in trained},
    }


# The multi-behaviour study's outputs; left out of the default target with mbr.datasets: [].
MBR_TABLES = [
    "results/tables/mbr.csv",
    "results/figures/mbr_tail.png",
    "results/tables/mbr_text.csv",
    "results/figures/mbr_chat.png",
    *(f"results/mbr/{d}/examples.md" for d in config["mbr"]["datasets"]),
]


def study_tables():
    """Every study table and figure the default target builds."""
    return [
        "results/tables/datasets.csv",
        "results/tables/pfr.csv",
        "results/figures/pfr.png",
        "results/tables/popk.csv",
        "results/figures/popk_diversity.png",
        "results/tables/arithmetic.csv",
        "results/figures/arithmetic_embeddings.png",
        "results/tables/arithmetic_cooccurrence.csv",
    ] + (MBR_TABLES if config["mbr"]["datasets"] else [])


def masked_behaviours(dataset):
    """The behaviours whose earlier items a user's ranking leaves out (null: the target's)."""
    block = config["datasets"][dataset]["behaviours"]
    return block.get("masked") or [block["target"]]


def mbr_masked(wildcards):
    return masked_behaviours(wildcards.dataset)


def mbr_masked_by_dataset():
    return {d: masked_behaviours(d) for d in config["mbr"]["datasets"]}


def mbr_model_settings(wildcards):
    """The model's own section: changing one model's settings reruns only its runs."""
    return config["mbr"].get(wildcards.mbr_model, {})  # pop has no settings


def unified_settings(wildcards):
    """Every unified variant reads mbr.unified; the variant itself is the model wildcard."""
    return config["mbr"]["unified"]


def unified_input(wildcards):
    """The LLM item embeddings, for every variant but the one without the LLM view."""
    if wildcards.unified_model == "unified_no_llm":
        return {}
    return {"item_embeddings": f"results/mbr/{wildcards.dataset}/llm/item_embeddings.npy"}


def mbr_llm_model():
    """The LLM of part 2: mbr.llm.model, or the project's llm.model (smollm2: its folder)."""
    model = config["mbr"]["llm"]["model"] or config["llm"]["model"]
    return "resources/models/SmolLM2-135M-Instruct" if model == "smollm2" else model


def mbr_llm_input(wildcards):
    """The default LLM's folder, fetched by a rule; a Hugging Face id needs none."""
    model = mbr_llm_model()
    return {"llm": model} if model == "resources/models/SmolLM2-135M-Instruct" else {}


def mbr_llm_settings(*sections):
    """The slice of mbr.llm that a step reads (a change elsewhere does not rerun it)."""
    llm = config["mbr"]["llm"]
    return {"dtype": llm["dtype"], **{name: llm[name] for name in sections}}


def mbr_vectors(wildcards, model):
    return f"results/mbr/{wildcards.dataset}/{model}/seed{wildcards.seed}/vectors.npz"


def mbr_finetune_input(wildcards):
    inputs = mbr_llm_input(wildcards)
    if wildcards.ft_variant != "text":
        inputs["vectors"] = mbr_vectors(wildcards, wildcards.ft_variant)
    return inputs


def mbr_finetuned(wildcards, variant):
    root = f"results/mbr/{wildcards.dataset}/text/finetune/{variant}/seed{wildcards.seed}"
    return f"{root}/model"


def mbr_chat_input(wildcards):
    """zero_shot: the base LLM; text: the fine-tuned adapter; unified: it with soft tokens."""
    inputs = mbr_llm_input(wildcards)
    if wildcards.chat_row != "zero_shot":
        inputs["model"] = mbr_finetuned(wildcards, wildcards.chat_row)
    if wildcards.chat_row == "unified":
        inputs["vectors"] = mbr_vectors(wildcards, "unified")
    return inputs


def mbr_describe_input(wildcards):
    inputs = mbr_llm_input(wildcards)
    if wildcards.describe_row != "zero_shot_title":
        inputs["model"] = mbr_finetuned(wildcards, wildcards.describe_row)
        inputs["vectors"] = mbr_vectors(wildcards, wildcards.describe_row)
    return inputs


def mbr_text_runs(kind, rows, filename):
    """The text tasks' per-row outputs: seeded rows once per mbr.text.seeds, the zero-shot
    rows (nothing trained) once, at the first seed."""
    t = config["mbr"]["text"]
    return [
        f"results/mbr/{dataset}/text/{kind}/{row}/seed{seed}/{filename}"
        for dataset in config["mbr"]["datasets"]
        for row in rows
        for seed in (t["seeds"][:1] if row.startswith("zero_shot") else t["seeds"])
    ]


CHAT_ROWS = ["zero_shot", "text", "unified"]
DESCRIBE_ROWS = ["unified", "unified_no_llm", "zero_shot_title"]


def mbr_profiled():
    """The study's datasets that have LLM item profiles (PFR's): the description task's
    second reference. Profiles are not generated for the others."""
    return [d for d in config["mbr"]["datasets"] if d in config["pfr"]["datasets"]]


def mbr_split_files(name):
    return [f"results/data/{d}/mbr/text_split/{name}.parquet" for d in config["mbr"]["datasets"]]


def mbr_text_table_input(wildcards):
    return {
        "candidates": mbr_split_files("candidates"),
        "chat_users": mbr_split_files("chat_users"),
        "describe_items": mbr_split_files("describe_items"),
        "item_text": [f"results/data/{d}/item_text.parquet" for d in config["mbr"]["datasets"]],
        "profiles": [
            f"results/text/{d}/profiles/items_{config['pfr']['split']}.parquet"
            for d in mbr_profiled()
        ],
        "chat": mbr_text_runs("chat", CHAT_ROWS, "per_user.parquet"),
        "chat_id": mbr_runs("chat.parquet"),
        "descriptions": mbr_text_runs("describe", DESCRIBE_ROWS, "descriptions.parquet"),
    }


def mbr_examples_input(wildcards):
    ds = wildcards.dataset
    inputs = {
        "chat": [p for p in mbr_text_runs("chat", CHAT_ROWS, "per_user.parquet") if f"/{ds}/" in p],
        "descriptions": [
            p
            for p in mbr_text_runs("describe", DESCRIBE_ROWS, "descriptions.parquet")
            if f"/{ds}/" in p
        ],
    }
    if ds in mbr_profiled():
        inputs["profiles"] = f"results/text/{ds}/profiles/items_{config['pfr']['split']}.parquet"
    return inputs


def mbr_runs(filename):
    m = config["mbr"]
    return expand(
        "results/mbr/{dataset}/{mbr_model}/seed{seed}/{filename}",
        dataset=m["datasets"],
        mbr_model=m["models"],
        seed=m["seeds"],
        filename=filename,
    )


def provenance(*sections, datasets=()):
    """The config slice a table depends on, hashed (see llmrec.provenance)."""
    from llmrec.provenance import config_sha256

    slices = {name: config[name] for name in sections}
    slices["datasets"] = {d: config["datasets"][d] for d in datasets}
    return {"config_sha256": config_sha256(slices)}

# Data stage: fetch -> canonical tables -> filtered interactions -> splits, graph, sequences,
# text and statistics. Paths: resources/raw/{dataset}/ and results/data/{dataset}/.


# Run where Snakemake runs, not as cluster jobs: downloads (compute nodes often have no
# internet) and the small statistics steps.
localrules:
    fetch_dataset,
    dataset_statistics,
    dataset_table,


rule data:
    input:
        data_targets(),


rule fetch_dataset:
    output:
        manifest="resources/raw/{dataset}/manifest.json",
    log:
        "results/logs/data/fetch/{dataset}.log",
    benchmark:
        "results/benchmarks/data/fetch/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        code=code_sha256("fetch_dataset"),
        options=fetch_options,
        local_files=local_files,
    script:
        "../scripts/run.py"


rule parse_dataset:
    input:
        manifest="resources/raw/{dataset}/manifest.json",
    output:
        interactions="results/data/{dataset}/canonical/interactions.parquet",
        item_table="results/data/{dataset}/canonical/items.parquet",
        users="results/data/{dataset}/canonical/users.parquet",
        impressions="results/data/{dataset}/canonical/impressions.parquet",
        reviews="results/data/{dataset}/canonical/reviews.parquet",
    log:
        "results/logs/data/parse/{dataset}.log",
    benchmark:
        "results/benchmarks/data/parse/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_sha256("parse_dataset"),
        options=parse_options,
    script:
        "../scripts/run.py"


rule filter_interactions:
    input:
        interactions="results/data/{dataset}/canonical/interactions.parquet",
        item_table="results/data/{dataset}/canonical/items.parquet",
        users="results/data/{dataset}/canonical/users.parquet",
    output:
        interactions="results/data/{dataset}/filtered/interactions.parquet",
        item_table="results/data/{dataset}/filtered/items.parquet",
        users="results/data/{dataset}/filtered/users.parquet",
    log:
        "results/logs/data/filter/{dataset}.log",
    benchmark:
        "results/benchmarks/data/filter/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_sha256("filter_interactions"),
        filter=filter_options,
    script:
        "../scripts/run.py"


rule split:
    input:
        table=split_input,
    output:
        split="results/data/{dataset}/split/{protocol}.parquet",
    log:
        "results/logs/data/split/{dataset}/{protocol}.log",
    benchmark:
        "results/benchmarks/data/split/{dataset}/{protocol}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_sha256("split"),
        seed=split_seed,
        ratios=split_ratios,
    script:
        "../scripts/run.py"


rule graph:
    input:
        split="results/data/{dataset}/split/{protocol}.parquet",
        item_table="results/data/{dataset}/filtered/items.parquet",
        users="results/data/{dataset}/filtered/users.parquet",
    output:
        graph="results/data/{dataset}/graph/{protocol}.npz",
    log:
        "results/logs/data/graph/{dataset}/{protocol}.log",
    benchmark:
        "results/benchmarks/data/graph/{dataset}/{protocol}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_sha256("graph"),
    script:
        "../scripts/run.py"


rule sequences:
    input:
        interactions="results/data/{dataset}/filtered/interactions.parquet",
    output:
        sequences="results/data/{dataset}/sequences.parquet",
    log:
        "results/logs/data/sequences/{dataset}.log",
    benchmark:
        "results/benchmarks/data/sequences/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_sha256("sequences"),
    script:
        "../scripts/run.py"


rule item_text:
    input:
        item_table=text_input,
    output:
        text="results/data/{dataset}/item_text.parquet",
    log:
        "results/logs/data/item_text/{dataset}.log",
    benchmark:
        "results/benchmarks/data/item_text/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("item_text"),
    script:
        "../scripts/run.py"


rule dataset_statistics:
    input:
        unpack(stats_input),
    output:
        stats="results/data/{dataset}/stats.json",
    log:
        "results/logs/data/stats/{dataset}.log",
    benchmark:
        "results/benchmarks/data/stats/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("dataset_statistics"),
    script:
        "../scripts/run.py"


rule dataset_table:
    input:
        stats=expand("results/data/{dataset}/stats.json", dataset=DATASETS),
    output:
        table=report(
            "results/tables/datasets.csv",
            caption="../report/csv.rst",
            category="Datasets",
            subcategory="CSV (download)",
        ),
    log:
        "results/logs/data/dataset_table.log",
    benchmark:
        "results/benchmarks/data/dataset_table.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("dataset_table"),
        provenance=provenance(datasets=DATASETS),
    script:
        "../scripts/run.py"

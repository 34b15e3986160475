# Multi-behaviour study, data: behaviour-typed sequences with the leak-free leave-one-out split
# on the target behaviour, one graph per behaviour, and the users' histories as text
# (llmrec/data/multi_behaviour.py). Paths: results/data/{dataset}/mbr/. A dataset needs a
# `behaviours` block in its settings (config.yaml).


rule mbr_sequences:
    input:
        interactions="results/data/{dataset}/filtered/interactions.parquet",
    output:
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        summary="results/data/{dataset}/mbr/behaviours.json",
    log:
        "results/logs/data/mbr/sequences/{dataset}.log",
    benchmark:
        "results/benchmarks/data/mbr/sequences/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_sha256("mbr_sequences"),
        behaviours=mbr_split_options,
    script:
        "../scripts/run.py"


rule mbr_graphs:
    input:
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        item_table="results/data/{dataset}/filtered/items.parquet",
        users="results/data/{dataset}/filtered/users.parquet",
    output:
        graphs="results/data/{dataset}/mbr/graphs_{stage}.npz",
    log:
        "results/logs/data/mbr/graphs/{dataset}/{stage}.log",
    benchmark:
        "results/benchmarks/data/mbr/graphs/{dataset}/{stage}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_sha256("mbr_graphs"),
    script:
        "../scripts/run.py"


rule mbr_user_text:
    input:
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        item_text="results/data/{dataset}/item_text.parquet",
    output:
        text="results/data/{dataset}/mbr/user_text_{stage}.parquet",
    log:
        "results/logs/data/mbr/user_text/{dataset}/{stage}.log",
    benchmark:
        "results/benchmarks/data/mbr/user_text/{dataset}/{stage}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_sha256("mbr_user_text"),
        text_events=mbr_text_events,
    script:
        "../scripts/run.py"

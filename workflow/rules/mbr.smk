# The multi-behaviour study: baselines (part 1) and the unified model with its ablations
# (part 2) x seed on behaviour-typed data -> results/tables/mbr.csv and
# results/figures/mbr_tail.png. The data it reads (typed sequences, per-behaviour graphs) is built
# by workflow/rules/mbr_data.smk; the LLM the unified model reads, and the text tasks, by
# workflow/rules/mbr_text.smk. Every model also scores the chat task's candidate lists
# (chat.parquet), so that ID models sit beside the LLM in results/tables/mbr_text.csv.


# Tables and figures take seconds: no cluster job for them.
localrules:
    mbr_table,
    mbr_figure,


rule train_mbr:
    input:
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        graphs_valid="results/data/{dataset}/mbr/graphs_valid.npz",
        graphs_test="results/data/{dataset}/mbr/graphs_test.npz",
        candidates="results/data/{dataset}/mbr/text_split/candidates.parquet",
    output:
        per_user="results/mbr/{dataset}/{mbr_model}/seed{seed}/per_user.parquet",
        summary="results/mbr/{dataset}/{mbr_model}/seed{seed}/summary.json",
        weights="results/mbr/{dataset}/{mbr_model}/seed{seed}/weights.pt",
        chat="results/mbr/{dataset}/{mbr_model}/seed{seed}/chat.parquet",
    log:
        "results/logs/mbr/{dataset}/{mbr_model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/{mbr_model}/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("train_mbr"),
        model=lambda wildcards: wildcards.mbr_model,
        settings=mbr_model_settings,
        masked=mbr_masked,
        segments=config["mbr"]["segments"],
        ks=config["mbr"]["ks"],
        device=config["mbr"]["device"],
    script:
        "../scripts/run.py"


rule train_unified:
    input:
        unpack(unified_input),
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        graphs_valid="results/data/{dataset}/mbr/graphs_valid.npz",
        graphs_test="results/data/{dataset}/mbr/graphs_test.npz",
        candidates="results/data/{dataset}/mbr/text_split/candidates.parquet",
    output:
        per_user="results/mbr/{dataset}/{unified_model}/seed{seed}/per_user.parquet",
        summary="results/mbr/{dataset}/{unified_model}/seed{seed}/summary.json",
        weights="results/mbr/{dataset}/{unified_model}/seed{seed}/weights.pt",
        vectors="results/mbr/{dataset}/{unified_model}/seed{seed}/vectors.npz",
        chat="results/mbr/{dataset}/{unified_model}/seed{seed}/chat.parquet",
    log:
        "results/logs/mbr/{dataset}/{unified_model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/{unified_model}/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("train_unified"),
        model=lambda wildcards: wildcards.unified_model,
        settings=unified_settings,
        masked=mbr_masked,
        segments=config["mbr"]["segments"],
        ks=config["mbr"]["ks"],
        device=config["mbr"]["device"],
    script:
        "../scripts/run.py"


rule mbr_table:
    input:
        summaries=mbr_runs("summary.json"),
        per_user=mbr_runs("per_user.parquet"),
        behaviours=expand(
            "results/data/{dataset}/mbr/behaviours.json", dataset=config["mbr"]["datasets"]
        ),
    output:
        table=report(
            "results/tables/mbr.csv",
            caption="../report/csv.rst",
            category="Multi-behaviour",
            subcategory="CSV (download)",
        ),
        markdown="results/tables/mbr.md",
        html=report(
            "results/tables/mbr.html",
            caption="../report/mbr.rst",
            category="Multi-behaviour",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/mbr/table.log",
    benchmark:
        "results/benchmarks/mbr/table.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("mbr_table"),
        provenance=provenance("mbr", datasets=config["mbr"]["datasets"]),
        ks=config["mbr"]["ks"],
        synthetic=SYNTHETIC,
        masked=mbr_masked_by_dataset(),
    script:
        "../scripts/run.py"


rule mbr_figure:
    input:
        table="results/tables/mbr.csv",
    output:
        figure=report(
            "results/figures/mbr_tail.png",
            caption="../report/mbr_figure.rst",
            category="Multi-behaviour",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/mbr/figure.log",
    benchmark:
        "results/benchmarks/mbr/figure.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("mbr_figure"),
    script:
        "../scripts/run.py"

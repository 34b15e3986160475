# The run's own cost: every benchmark file gathered after the study tables are built.


# Reads the benchmark files in seconds: no cluster job.
localrules:
    benchmarks_table,


rule benchmarks_table:
    input:
        study_tables(),
    output:
        table=report(
            "results/tables/benchmarks.csv",
            caption="../report/benchmarks.rst",
            category="Benchmarks",
        ),
        figure=report(
            "results/figures/benchmarks.png",
            caption="../report/benchmarks_figure.rst",
            category="Benchmarks",
        ),
    log:
        "results/logs/report/benchmarks.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code_sha256("benchmarks_table"),
    script:
        "../scripts/run.py"

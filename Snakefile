# LLM-based recommendation studies, end to end. This file is a table of contents only.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config.yaml"


# The landing page of `snakemake --report`: the studies, the configuration, the docs.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/mbr_data.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/pfr.smk"
include: "workflow/rules/popk.smk"
include: "workflow/rules/arithmetic.smk"
include: "workflow/rules/mbr.smk"
include: "workflow/rules/mbr_text.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        data_targets(),
        study_tables(),
        "results/tables/benchmarks.csv",

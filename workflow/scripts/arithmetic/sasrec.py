import sys
from pathlib import Path

# The package of this checkout (scripts run from a copy; --use-conda envs do not install it).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821
from llmrec.studies.arithmetic import train_sasrec_model
from llmrec.snake import call

call(snakemake, train_sasrec_model)  # noqa: F821 (snakemake is injected)

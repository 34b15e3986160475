# The one script every rule runs: the function of the rule's name (llmrec.rules.RULES), called
# with the rule's inputs, outputs, params and wildcards (llmrec.snake.call).
import sys
from pathlib import Path

# The package of this checkout: scripts run from a copy, and --use-conda envs do not install it.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (injected by Snakemake)
from llmrec.snake import run_rule  # noqa: E402

run_rule(snakemake)  # noqa: F821

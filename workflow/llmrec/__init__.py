"""LLM-for-recommendation studies: all logic of the Snakemake workflow."""

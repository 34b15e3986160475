"""The LLM side of the multi-behaviour study: a LoRA-adapted causal LM, its training loop,
soft tokens projected from recommender vectors, and the prompts of its two text tasks."""

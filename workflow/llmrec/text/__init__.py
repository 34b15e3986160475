"""Text stage: LLM-written profiles of items and users, and sentence embeddings of texts.

- :mod:`.models`: the default LLM (SmolLM2-135M-Instruct GGUF, from a PyPI wheel) and encoder.
- :mod:`.prompts`: prompt templates, each with an id that changes with its text.
- :mod:`.generate`: :class:`~.generate.Generator`, batched chat generation.
- :mod:`.cache`: resumable parquet caches and :func:`~.cache.generate_cached`.
- :mod:`.parse`: reading the JSON profile out of an answer.
- :mod:`.embed`: sentence embeddings, plain and cached.

Modules are imported one by one (``from llmrec.text.parse import parse_profile``) so that the
light ones do not pull in torch and transformers.
"""

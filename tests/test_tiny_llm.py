"""The tiny LLM the LLM tests use is a working chat model: template, tokens, a forward pass."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .conftest import make_tiny_llm


def test_tiny_llm_is_a_chat_model_that_loads_and_runs(tiny_llm):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Toy Story 1995"}],
        add_generation_prompt=True,
        return_dict=False,
    )
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    logits = model(input_ids=torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))


def test_tiny_llm_without_template_has_none(tmp_path):
    assert (
        AutoTokenizer.from_pretrained(make_tiny_llm(tmp_path, chat_template=False)).chat_template
        is None
    )

"""Batched text generation with a chat LLM through Hugging Face transformers.

One :class:`Generator` turns a list of user prompts into the model's answers: the chat template
is applied; the token prefix all prompts share (the template's system turn and the instructions
before the item) is run once and its keys and values reused by every row; the rest is sorted by
length so that each batch pads little, padded before each row's own tokens, and decoded greedily
with the KV cache. Answers come back in the order of the prompts.

Determinism: greedy decoding (``temperature=0``, the default) in float32 gave the same answers
whatever the batch size in every check on CPU (``tests/test_text.py``, ``bench/generation.py``).
bfloat16 is faster on CPUs with AVX512-BF16 and on GPUs, but not batch-invariant: padding
changes the rounding, and answers drift after a few tokens (1 of 4 identical in the benchmark).

CPU threads are torch's (one per core by default); set them to the cores a job really has
(``torch.set_num_threads``): in ``bench/generation.py``, two threads on two cores that another
job was also using ran 13 times slower than one thread.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, GenerationConfig

from ..device import resolve_device

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def shared_prefix(rows: list[list[int]]) -> list[int]:
    """The longest common prefix of ``rows``, leaving every row at least one token of its own."""
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    end = 0
    while end < limit and all(r[end] == first[end] for r in rows):
        end += 1
    return first[:end]


class Generator:
    r"""A chat LLM that answers many prompts in batches.

    Args:
        model: a ``.gguf`` file (dequantised on load), a Hugging Face model id, or a local
            folder in Hugging Face layout.
        device: ``"auto"`` (default; CUDA if available), ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"`` (default; batch-invariant greedy answers) or ``"bfloat16"``
            (faster on GPUs and bf16-capable CPUs; answers may depend on the batch).
        batch_size: prompts decoded together (default 64).
        max_new_tokens: longest answer in tokens (default 64).
        seed: seeds torch before each :meth:`generate` call when sampling (default 0).
        temperature: 0 (default) decodes greedily; above 0 samples at that temperature, and the
            answers then also depend on how prompts fall into batches.
        progress: show a tqdm bar over batches (default True).
    """

    def __init__(self, model: str | Path, device: str = "auto", dtype: str = "float32",
                 batch_size: int = 64, max_new_tokens: int = 64, seed: int = 0,
                 temperature: float = 0.0, progress: bool = True) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be at least 1")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.device = resolve_device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.temperature = temperature
        self.progress = progress

        path = Path(model)
        if path.suffix == ".gguf":
            if not path.is_file():
                raise FileNotFoundError(f"GGUF model file {path} does not exist")
            source, extra, name = str(path.parent), {"gguf_file": path.name}, path.name
        else:
            source, extra, name = str(model), {}, path.name if path.is_dir() else str(model)
        log.info("loading %s (%s) on %s", model, dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        self.model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype], **extra)
        self.model.to(self.device).eval()
        self.pad_token_id = self.tokenizer.pad_token_id
        if self.pad_token_id is None:
            self.pad_token_id = self.tokenizer.eos_token_id
        decoding = "greedy" if temperature == 0 else f"t={temperature},seed={seed}"
        # Everything that changes an answer, so a cache keyed on it never serves a stale one.
        self.model_id = f"{name}|{dtype}|{decoding}|max_new_tokens={max_new_tokens}"
        self.generation_config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_k=0 if temperature > 0 else None,  # plain temperature sampling, no truncation
            top_p=1.0 if temperature > 0 else None,
            eos_token_id=self.model.generation_config.eos_token_id,
            pad_token_id=self.pad_token_id,
            use_cache=True,
        )

    def encode(self, prompt: str, system: str | None = None) -> list[int]:
        """Token ids of ``prompt`` wrapped in the chat template, ready for the answer."""
        messages = [{"role": "user", "content": prompt}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                  return_dict=False)

    def pad(self, prefix: list[int], suffixes: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and attention mask of ``prefix + suffix`` rows, padded before the suffix.

        Without a prefix this is plain left padding. Padding in the middle leaves the shared
        prefix at the same place in every row, where its cached keys and values sit; positions
        come from the attention mask, so each row still reads as one unpadded prompt.
        """
        width = max(len(s) for s in suffixes)
        ids = torch.full((len(suffixes), len(prefix) + width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        ids[:, :len(prefix)] = torch.tensor(prefix, dtype=torch.long)
        mask[:, :len(prefix)] = 1
        for i, suffix in enumerate(suffixes):
            ids[i, ids.shape[1] - len(suffix):] = torch.tensor(suffix, dtype=torch.long)
            mask[i, ids.shape[1] - len(suffix):] = 1
        return ids.to(self.device), mask.to(self.device)

    def prefill(self, prefix: list[int]) -> DynamicCache:
        """Keys and values of ``prefix``, computed once for a batch of one."""
        cache = DynamicCache(config=self.model.config)
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        return cache

    @torch.inference_mode()
    def generate_tokens(self, prompts: list[str], system: str | None = None) -> list[list[int]]:
        """The answers' token ids, end-of-sequence and padding removed, in prompt order."""
        if self.temperature > 0:
            torch.manual_seed(self.seed)
        encoded = [self.encode(p, system) for p in prompts]
        # The chat template's system turn and the instructions before the item are the same in
        # every prompt; computing them once saves most of the prompt work (bench/generation.py).
        prefix = shared_prefix(encoded) if len(encoded) > 1 else []
        prefix_cache = self.prefill(prefix) if prefix else None
        # Longest first: batches of similar lengths pad little, and a batch that does not fit
        # in memory fails at once rather than at the end.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        answers: list[list[int]] = [[] for _ in prompts]
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="generate", unit="batch", disable=not self.progress):
            batch = order[start:start + self.batch_size]
            ids, mask = self.pad(prefix, [encoded[i][len(prefix):] for i in batch])
            cache = None
            if prefix_cache is not None:
                cache = copy.deepcopy(prefix_cache)  # generate appends to the cache it is given
                cache.batch_repeat_interleave(len(batch))
            out = self.model.generate(input_ids=ids, attention_mask=mask, cache=cache,
                                      generation_config=self.generation_config)
            for i, row in zip(batch, out[:, ids.shape[1]:].tolist()):
                answers[i] = self.until_eos(row)
        return answers

    def until_eos(self, tokens: list[int]) -> list[int]:
        """``tokens`` up to the first end-of-sequence token (rows that ended early are padded)."""
        eos = self.generation_config.eos_token_id
        stops = set(eos) if isinstance(eos, list) else {eos}
        end = next((k for k, t in enumerate(tokens) if t in stops), len(tokens))
        return tokens[:end]

    def generate(self, prompts: list[str], system: str | None = None) -> list[str]:
        """Answer each prompt; ``system`` replaces the chat template's default system message.

        Returns the answers (special tokens removed, whitespace stripped) in prompt order.
        """
        tokens = self.generate_tokens(prompts, system)
        return [t.strip() for t in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]

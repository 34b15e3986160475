"""Batched text generation with a chat LLM through Hugging Face transformers.

One :class:`Generator` turns a list of user prompts into the model's answers: the chat template
is applied; the token prefix all prompts share (the template's system turn and the instructions
before the item) is run once and its keys and values reused by every row; the rest is sorted by
length so that each batch pads little, padded before each row's own tokens, and decoded with the
KV cache by :meth:`Generator.decode`, a loop of its own rather than ``model.generate``: finished
rows leave the batch and the cache fills preallocated room instead of growing by concatenation
(1.4 times the new tokens per second of ``model.generate`` on the same batches, same answers).
Answers come back in the order of the prompts. Progress (a bar, and a line in the log every 30 s)
counts prompts answered, per call or, under :meth:`Generator.counting`, over a rule's whole step.

Determinism: greedy decoding (``temperature=0``, the default) in float32 gave the same answers
whatever the batch size in every check on CPU (``tests/test_text.py``, ``bench/generation.py``).
bfloat16 is faster on CPUs with AVX512-BF16 and on GPUs, but not batch-invariant: padding
changes the rounding, and answers drift after a few tokens (1 of 4 identical in the benchmark).

CPU threads are the rule's ``threads`` (:func:`llmrec.device.cpu_threads`). On cores that other
work shares, threads waiting for each other must sleep rather than spin
(``OMP_WAIT_POLICY=PASSIVE``, :mod:`llmrec.device`): with libgomp's default, two threads beside
one other job ran 11 times slower than with it, and 16 times slower than one thread
(``bench/busy_machine.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from transformers.cache_utils import Cache, DynamicLayer

from ..device import resolve_device
from ..progress import Progress

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


class RoomyLayer(DynamicLayer):
    """One layer's KV cache that keeps free room after its tokens and writes new ones there.

    transformers' dynamic cache concatenates each step's keys and values onto the old ones, a
    copy of the whole cache per layer and step: a quarter of a decoding step's time at batch 64
    on a CPU. This layer copies only when its room runs out (it then grows by ``room`` again).
    ``keys`` and ``values`` are views of the filled part.
    """

    def __init__(self, room: int = 0) -> None:
        super().__init__()
        self.room = room
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    @classmethod
    def repeated(cls, layer: RoomyLayer, rows: int, room: int) -> RoomyLayer:
        """A layer holding ``rows`` copies of the single row of ``layer``, with ``room`` free."""
        new = cls(room)
        new.lazy_initialization(layer.keys, layer.values)
        new._allocate(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1))
        return new

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def _allocate(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Take ``keys`` and ``values`` (batch, heads, length, dim) with ``room`` after them."""
        batch, heads, length, dim = keys.shape
        self._keys = keys.new_empty(batch, heads, length + self.room, dim)
        self._values = values.new_empty(batch, heads, length + self.room, values.shape[-1])
        self._keys[:, :, :length] = keys
        self._values[:, :, :length] = values
        self.length = length
        self._views()

    def _views(self) -> None:
        self.keys = self._keys[:, :, : self.length]
        self.values = self._values[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self._keys is None:
            self._allocate(key_states, value_states)
            return self.keys, self.values
        new = key_states.shape[-2]
        if self.length + new > self._keys.shape[-2]:
            self._allocate(self.keys, self.values)
        self._keys[:, :, self.length : self.length + new] = key_states
        self._values[:, :, self.length : self.length + new] = value_states
        self.length += new
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._keys is not None:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._keys is not None:
            self._keys = self._keys[indices]
            self._values = self._values[indices]
            self._views()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("RoomyLayer does not support cropping")


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
        progress: show a tqdm bar of the prompts answered (default True); the log gets a
            progress line every 30 s either way.
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 64,
        max_new_tokens: int = 64,
        seed: int = 0,
        temperature: float = 0.0,
        progress: bool = True,
    ) -> None:
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
        self._step: Progress | None = None

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
        eos = self.generation_config.eos_token_id
        self.eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=self.device)

    def encode(self, prompt: str, system: str | None = None) -> list[int]:
        """Token ids of ``prompt`` wrapped in the chat template, ready for the answer."""
        messages = [{"role": "user", "content": prompt}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=False
        )

    def pad(
        self, prefix: list[int], suffixes: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and attention mask of ``prefix + suffix`` rows, padded before the suffix.

        Without a prefix this is plain left padding. Padding in the middle leaves the shared
        prefix at the same place in every row, where its cached keys and values sit; positions
        come from the attention mask, so each row still reads as one unpadded prompt.
        """
        width = max(len(s) for s in suffixes)
        ids = torch.full((len(suffixes), len(prefix) + width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        ids[:, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
        mask[:, : len(prefix)] = 1
        for i, suffix in enumerate(suffixes):
            ids[i, ids.shape[1] - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
            mask[i, ids.shape[1] - len(suffix) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def prefill(self, prefix: list[int]) -> Cache:
        """Keys and values of ``prefix``, computed once for a batch of one."""
        cache = Cache(layers=[RoomyLayer() for _ in range(self.model.config.num_hidden_layers)])
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        return cache

    def batch_cache(self, prefix_cache: Cache | None, rows: int, room: int) -> Cache:
        """A cache for ``rows`` prompts: the prefix's keys and values in each, ``room`` free."""
        n_layers = self.model.config.num_hidden_layers
        if prefix_cache is None:
            return Cache(layers=[RoomyLayer(room) for _ in range(n_layers)])
        return Cache(
            layers=[RoomyLayer.repeated(layer, rows, room) for layer in prefix_cache.layers]
        )

    def next_tokens(self, logits: torch.Tensor) -> torch.Tensor:
        """Greedy (temperature 0) or sampled next tokens from the last position's logits."""
        if self.temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        return torch.multinomial(probs, 1).squeeze(-1)

    def decode(
        self, ids: torch.Tensor, mask: torch.Tensor, cache: Cache, cached: int
    ) -> list[list[int]]:
        """Answer one padded batch whose first ``cached`` tokens are already in ``cache``.

        The loop ``model.generate`` runs, with two changes that matter on a CPU: a row that has
        produced its end-of-sequence token leaves the batch (greedy answers of short rows are
        no longer paid for by every later step), and the cache writes each step's keys and
        values into room set aside for them instead of copying itself (:class:`RoomyLayer`).
        Positions follow the attention mask, so padding does not shift a row's positions.
        """
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids[:, cached:],
            attention_mask=mask,
            position_ids=positions[:, cached:],
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        rows = torch.arange(len(ids), device=self.device)  # which prompt each batch row is
        last = positions[:, -1]
        answers: list[list[int]] = [[] for _ in range(len(ids))]
        for step in range(self.max_new_tokens):
            tokens = self.next_tokens(out.logits[:, -1])
            done = torch.isin(tokens, self.eos_ids)
            for row, token in zip(rows.tolist(), tokens.tolist()):
                answers[row].append(token)
            if step == self.max_new_tokens - 1 or bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(-1)
                rows, tokens, mask, last = rows[keep], tokens[keep], mask[keep], last[keep]
                cache.batch_select_indices(keep)
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            last = last + 1
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=last[:, None],
                cache=cache,
                use_cache=True,
            )
        return answers

    @contextmanager
    def counting(self, total: int) -> Iterator[Progress]:
        """One bar and one series of log lines for ``total`` prompts answered over several calls
        of :meth:`generate` (a rule's step, asked chunk by chunk), instead of one per call."""
        with Progress(total, "generate", "prompts", bar=self.progress) as step:
            self._step = step
            try:
                yield step
            finally:
                self._step = None

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
        counting = (
            nullcontext(self._step)
            if self._step
            else Progress(len(prompts), "generate", "prompts", bar=self.progress)
        )
        with counting as done:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                ids, mask = self.pad(prefix, [encoded[i][len(prefix) :] for i in batch])
                room = ids.shape[1] - len(prefix) + self.max_new_tokens
                cache = self.batch_cache(prefix_cache, len(batch), room)
                for i, row in zip(batch, self.decode(ids, mask, cache, len(prefix))):
                    answers[i] = self.until_eos(row)
                done.update(len(batch))
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

"""Top-k recommendation by beam search constrained to valid item IDs.

As in P5 and OpenP5, the decoder may only write token sequences that spell an item's ID: a
prefix tree (trie) over the items' token ids says which tokens may come next, and Hugging
Face's ``generate`` masks all others. Every finished beam is therefore an item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from llmrec.p5.model import P5, whole_word_id_tensor

DECODER_START = 0
"""T5's decoder start token (``<pad>``), which begins every prefix ``generate`` passes."""


class Trie:
    """A prefix tree over the token ids of the valid item IDs, each ending with ``</s>``.

    Args:
        sequences: one token-id sequence per item, in item-id order; unique, none empty.
        pad_token_id: the token offered after a finished sequence, so that beams that are
            already done stay valid while others finish. (default: :obj:`0`)
    """

    def __init__(self, sequences: Sequence[Sequence[int]], pad_token_id: int = 0) -> None:
        self.root: dict[int, dict] = {}
        self.items: dict[tuple[int, ...], int] = {}
        self.pad_token_id = pad_token_id
        for item, sequence in enumerate(sequences):
            key = tuple(int(token) for token in sequence)
            if not key:
                raise ValueError(f"item {item} has an empty token sequence")
            if key in self.items:
                raise ValueError(f"items {self.items[key]} and {item} have the same tokens {key}")
            self.items[key] = item
            node = self.root
            for token in key:
                node = node.setdefault(token, {})
        self.depth = max(len(key) for key in self.items) if self.items else 0

    @classmethod
    def from_items(cls, index_texts: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> Trie:
        """The trie of ``index_texts`` (``index[item_id]``) as ``tokenizer`` writes them.

        Raises ``ValueError`` if an item ID needs ``<unk>``: the model could never write it.
        """
        sequences = tokenizer(list(index_texts), add_special_tokens=True)["input_ids"]
        unk = tokenizer.unk_token_id
        for text, sequence in zip(index_texts, sequences):
            if unk is not None and unk in sequence:
                raise ValueError(
                    f"item ID {text!r} tokenizes with <unk>; the tokenizer was not "
                    f"trained on this index"
                )
        return cls(sequences, pad_token_id=tokenizer.pad_token_id)

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """The tokens that may follow ``prefix``, a decoder sequence starting with token 0.

        After a whole item (or off the trie, which the constraint never allows) only padding
        may follow.
        """
        node = self.root
        for token in prefix[1:]:
            node = node.get(int(token))
            if node is None or not node:
                return [self.pad_token_id]
        return list(node)

    def item(self, generated: Sequence[int]) -> int:
        """The item id of a generated sequence (start token, item tokens, padding), or -1."""
        tokens = tuple(int(token) for token in generated[1:])
        for end in range(1, len(tokens) + 1):
            if (found := self.items.get(tokens[:end])) is not None:
                return found
        return -1

    def __len__(self) -> int:
        return len(self.items)


@torch.inference_mode()
def recommend(
    model: P5,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    trie: Trie,
    *,
    k: int,
    beams: int | None = None,
    batch_size: int = 64,
    max_source_len: int = 256,
    device: str | torch.device = "cpu",
    whole_word: bool | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The top-``k`` items for each prompt, by beam search constrained to ``trie``.

    Items are ranked by the probability of their whole token sequence (``length_penalty``
    0): the usual length normalisation, meant for free text, would favour longer IDs. The
    encoder runs once per batch; with whole-word embeddings ``generate`` gets its
    ``inputs_embeds``. The model is moved to ``device`` and put back in its training mode
    after decoding.

    Args:
        model: the trained model.
        tokenizer: its tokenizer.
        sources: the prompts.
        trie: the valid items (:meth:`Trie.from_items`).
        k: items per prompt.
        beams: beam width, at least ``k``; ``None`` for ``k``. (default: :obj:`None`)
        batch_size: prompts per ``generate`` call. (default: :obj:`64`)
        max_source_len: prompt tokens kept, ``</s>`` included. (default: :obj:`256`)
        device: where to decode. (default: ``"cpu"``)
        whole_word: ``None`` to follow the model; ``True``/``False`` must match it.
            (default: :obj:`None`)
        progress: show a tqdm bar over batches. (default: :obj:`False`)

    Returns:
        ``(len(sources), k)`` int64 item ids, best first; -1 where fewer than ``k`` distinct
        valid items were found.
    """
    beams = k if beams is None else beams
    if k < 1 or beams < k:
        raise ValueError(f"need k >= 1 and beams >= k, got k={k}, beams={beams}")
    if whole_word is not None and whole_word != model.whole_word:
        raise ValueError(
            f"whole_word={whole_word} but the model was built with whole_word={model.whole_word}"
        )
    if len(trie) == 0:
        raise ValueError("the trie holds no items; there is nothing to recommend")
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()

    def allowed(_: int, prefix: torch.Tensor) -> list[int]:
        return trie.allowed(prefix.tolist())

    out = np.full((len(sources), k), -1, dtype=np.int64)
    try:
        for start in tqdm(
            range(0, len(sources), batch_size), desc="recommend", disable=not progress
        ):
            batch = tokenizer(
                list(sources[start : start + batch_size]),
                max_length=max_source_len,
                truncation=True,
                padding=True,
                return_tensors="pt",
            )
            wwids = (
                whole_word_id_tensor(batch["input_ids"], tokenizer, model.max_words)
                if model.whole_word
                else None
            )
            inputs = model.encoder_inputs(
                batch["input_ids"].to(device),
                batch["attention_mask"].to(device),
                None if wwids is None else wwids.to(device),
            )
            generated = model.t5.generate(
                **inputs,
                num_beams=beams,
                num_return_sequences=k,
                max_new_tokens=trie.depth,
                prefix_allowed_tokens_fn=allowed,
                length_penalty=0.0,
                do_sample=False,
                decoder_start_token_id=DECODER_START,
                pad_token_id=trie.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            rows = generated.view(batch["input_ids"].shape[0], k, -1).tolist()
            for row, candidates in enumerate(rows):
                # Beams that could not end on a new item (fewer items than beams) come back
                # as repeats or as no item; the valid ones move up.
                items = dict.fromkeys(trie.item(sequence) for sequence in candidates)
                items = [item for item in items if item >= 0]
                out[start + row, : len(items)] = items
    finally:
        model.train(was_training)
    return out

"""Soft tokens: recommender vectors projected into an LLM's input embeddings (LLaRA, E4SRec).

A prompt holds a placeholder token wherever a user or item vector goes; :class:`SoftPromptLM`
projects the vectors with an MLP and puts them in place of the placeholders' embeddings, in
order, row by row. Without vectors it is exactly the plain LM. Evaluation reads the logits of
candidate letters after a prompt (:meth:`SoftPromptLM.letter_logits`) and decodes greedily
from input embeddings with a KV cache (:meth:`SoftPromptLM.generate`; :meth:`SoftPromptLM.answer`
does both from one read of the prompt), batched with left padding and positions from the
attention mask, so a row reads as its unpadded prompt.

LLaRA: Liao et al. 2024, https://arxiv.org/abs/2312.02445; E4SRec: Li et al. 2023,
https://arxiv.org/abs/2312.02443.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


class SoftPromptLM(nn.Module):
    r"""A causal LM whose placeholder tokens read projected vectors.

    Args:
        lm: the causal LM (plain or with a peft adapter).
        in_dim: the vectors' size.
        hidden: the projector's hidden size (MLP in_dim -> hidden -> the LM's hidden size).
        placeholder_id: the token id that marks a soft token (:func:`llm.lm.placeholder_token`).
    """

    def __init__(self, lm: nn.Module, in_dim: int, hidden: int, placeholder_id: int) -> None:
        super().__init__()
        self.lm = lm
        self.placeholder_id = placeholder_id
        width = lm.get_input_embeddings().weight.shape[1]
        self.projector = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, width)
        )

    def embed(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        soft: Tensor | None = None,
        soft_mask: Tensor | None = None,
    ) -> Tensor:
        """Input embeddings ``[B, T, H]`` with row ``b``'s placeholders (where the attention
        mask is 1) replaced by its projected vectors ``soft[b, soft_mask[b]]``, in order."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        if soft is None:
            return embeds
        if soft_mask is None:
            soft_mask = torch.ones(soft.shape[:2], dtype=torch.bool, device=soft.device)
        slots = (input_ids == self.placeholder_id) & attention_mask.bool()
        slots_per_row, vectors_per_row = slots.sum(1).tolist(), soft_mask.sum(1).tolist()
        if slots_per_row != vectors_per_row:
            raise ValueError(
                f"prompts hold {slots_per_row} placeholders but {vectors_per_row} vectors were "
                f"given; a title may contain the placeholder token"
            )
        projected = self.projector(soft[soft_mask.bool()].to(embeds.dtype))
        rows, cols = slots.nonzero(as_tuple=True)  # row-major: each row's slots in order
        return embeds.index_put((rows, cols), projected)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        soft: Tensor | None = None,
        soft_mask: Tensor | None = None,
        labels: Tensor | None = None,
    ):
        """The LM's output (``loss`` where ``labels`` are given) on right-padded rows."""
        embeds = self.embed(input_ids, attention_mask, soft, soft_mask)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    def _left_padded(
        self, prompts: Sequence[Sequence[int]], soft: Sequence[np.ndarray | Tensor] | None, pad: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Left-padded ids, mask and input embeddings of ``prompts`` (soft vectors per prompt)."""
        device = self.lm.get_input_embeddings().weight.device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.as_tensor(prompt, dtype=torch.long)
            mask[i, width - len(prompt) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        vectors = soft_mask = None
        if soft is not None:
            vectors, soft_mask = pad_vectors(soft)
            vectors, soft_mask = vectors.to(device), soft_mask.to(device)
        return ids, mask, self.embed(ids, mask, vectors, soft_mask)

    @torch.no_grad()
    def letter_logits(
        self,
        prompts: Sequence[Sequence[int]],
        label_ids: Sequence[int],
        soft: Sequence[np.ndarray | Tensor] | None = None,
        *,
        pad_id: int,
        batch_size: int = 8,
    ) -> Tensor:
        """The logits ``[len(prompts), len(label_ids)]`` of each label token right after each
        prompt (one forward pass per prompt, ``batch_size`` prompts at a time)."""
        return self._decode(prompts, soft, label_ids, pad_id, [], 0, batch_size)[0]

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        soft: Sequence[np.ndarray | Tensor] | None = None,
        *,
        pad_id: int,
        eos_ids: Sequence[int],
        max_new_tokens: int = 32,
        batch_size: int = 8,
    ) -> list[list[int]]:
        """Greedy answers (token ids up to, not including, the first end-of-sequence token),
        in prompt order; the prompt is read once from its embeddings, then the KV cache."""
        return self._decode(prompts, soft, None, pad_id, eos_ids, max_new_tokens, batch_size)[1]

    @torch.no_grad()
    def answer(
        self,
        prompts: Sequence[Sequence[int]],
        label_ids: Sequence[int],
        soft: Sequence[np.ndarray | Tensor] | None = None,
        *,
        pad_id: int,
        eos_ids: Sequence[int],
        max_new_tokens: int = 32,
        batch_size: int = 8,
    ) -> tuple[Tensor, list[list[int]]]:
        """:meth:`letter_logits` and :meth:`generate` from one read of each prompt: the
        label logits are the first greedy step's."""
        return self._decode(prompts, soft, label_ids, pad_id, eos_ids, max_new_tokens, batch_size)

    def _decode(self, prompts, soft, label_ids, pad_id, eos_ids, max_new_tokens, batch_size):
        """Greedy answers, and the first step's logits of ``label_ids`` (None without)."""
        stops = torch.as_tensor(list(eos_ids), dtype=torch.long)
        stop_set = set(eos_ids)
        labels = None if label_ids is None else torch.as_tensor(list(label_ids), dtype=torch.long)
        answers: list[list[int]] = []
        scores: list[Tensor] = []
        for lo in range(0, len(prompts), batch_size):
            chunk = soft[lo : lo + batch_size] if soft is not None else None
            ids, mask, embeds = self._left_padded(prompts[lo : lo + batch_size], chunk, pad_id)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.lm(
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
            )
            if labels is not None:
                scores.append(out.logits[:, -1, labels.to(ids.device)].float().cpu())
            last = positions[:, -1:]
            done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
            rows: list[list[int]] = [[] for _ in range(len(ids))]
            for step in range(max_new_tokens):
                tokens = out.logits[:, -1].argmax(-1)
                for row, token, finished in zip(rows, tokens.tolist(), done.tolist()):
                    if not finished:
                        row.append(token)
                done |= torch.isin(tokens, stops.to(tokens.device))
                if bool(done.all()) or step == max_new_tokens - 1:
                    break
                mask = torch.cat([mask, mask.new_ones(len(ids), 1)], dim=1)
                last = last + 1
                out = self.lm(
                    input_ids=tokens[:, None],
                    attention_mask=mask,
                    position_ids=last,
                    cache=out.cache,
                    use_cache=True,
                )
            answers += [
                r[: next((k for k, t in enumerate(r) if t in stop_set), len(r))] for r in rows
            ]
        if labels is None:
            return None, answers
        width = len(labels)
        return (torch.cat(scores) if scores else torch.empty(0, width)), answers


def pad_vectors(soft: Sequence[np.ndarray | Tensor]) -> tuple[Tensor, Tensor]:
    """Per-prompt vectors ``[S_i, d]`` as one zero-padded ``[B, max S, d]`` and its mask."""
    arrays = [torch.as_tensor(np.asarray(s, np.float32)) for s in soft]  # each [S_i, d]
    dim = max(a.shape[1] for a in arrays)
    width = max(1, max(len(a) for a in arrays))
    vectors = torch.zeros(len(arrays), width, dim)
    mask = torch.zeros(len(arrays), width, dtype=torch.bool)
    for i, a in enumerate(arrays):
        vectors[i, : len(a)] = a
        mask[i, : len(a)] = True
    return vectors, mask

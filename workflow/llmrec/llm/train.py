"""Training a causal LM (LoRA adapter, soft-token projector) on text or instruction pairs.

:func:`fit_lm` is :func:`llmrec.training.resumable.fit_resumable` (AdamW over the trainable
parameters, linear schedule, checkpoints that resume to the same weights) with the loss of a
Hugging Face causal LM; the collates turn examples into its inputs: :func:`instruction_collate`
for (prompt, answer) pairs, the prompt masked out of the loss, and :func:`text_collate` for
plain domain text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..training.resumable import fit_resumable
from .soft import pad_vectors

IGNORE = -100  # the label Hugging Face's loss skips


@dataclass(frozen=True)
class Example:
    """One instruction pair as token ids, with the soft vectors of the prompt's placeholders
    (``[S, d]``, in order) where it has any."""

    prompt: list[int]
    answer: list[int]
    soft: np.ndarray | None = None


def instruction_collate(
    examples: Sequence[Example], *, pad_id: int, max_len: int, placeholder_id: int | None = None
) -> dict[str, Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (the prompt and padding
    ``-100``: only the answer is learnt), plus ``soft`` and ``soft_mask`` where examples have
    vectors.

    A pair longer than ``max_len`` loses the prompt's oldest tokens (the answer is kept whole,
    up to ``max_len``), and with them the vectors of placeholders cut away (``placeholder_id``).
    """
    rows, answers, vectors = [], [], []
    for ex in examples:
        answer = ex.answer[:max_len]
        cut = max(0, len(ex.prompt) + len(answer) - max_len)
        prompt = ex.prompt[cut:]
        if ex.soft is not None:
            lost = sum(t == placeholder_id for t in ex.prompt[:cut])
            vectors.append(ex.soft[lost:])
        rows.append(prompt + answer)
        answers.append(len(answer))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, IGNORE)
    mask = torch.zeros_like(ids)
    for i, (row, n) in enumerate(zip(rows, answers)):
        ids[i, : len(row)] = torch.as_tensor(row)
        mask[i, : len(row)] = 1
        labels[i, len(row) - n : len(row)] = torch.as_tensor(row[len(row) - n :])
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if vectors:
        batch["soft"], batch["soft_mask"] = pad_vectors(vectors)
    return batch


def text_collate(texts: Sequence[Sequence[int]], *, pad_id: int, max_len: int) -> dict[str, Tensor]:
    """Right-padded token rows (each cut to ``max_len``) for the causal-LM loss on all of
    their tokens (padding ``-100``)."""
    rows = [list(t[:max_len]) for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, IGNORE)}


def fit_lm(
    model: nn.Module,
    examples: Callable[[int], Sequence],
    collate: Callable[[list], dict[str, Tensor]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    warmup: float = 0.05,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    fingerprint: str = "",
    device: str | torch.device = "cpu",
    progress: bool = True,
    after_step: Callable[[int], None] | None = None,
) -> list[dict]:
    """Train the trainable parameters of ``model`` on ``model(**collate(batch)).loss``.

    Args:
        model: a causal LM (or :class:`~llmrec.llm.soft.SoftPromptLM`) returning ``.loss``;
            only parameters with ``requires_grad`` (the adapter, the projector) are trained
            and checkpointed.
        examples: ``examples(epoch)``, deterministic for a given epoch.
        collate: a batch of examples -> the model's keyword tensors (with ``attention_mask``).
        epochs, batch_size, lr: passes, examples per step, AdamW's peak learning rate.
        weight_decay: AdamW's weight decay of matrices (default 0.0).
        warmup: share of steps warming up linearly (default 0.05).
        seed: seeds each epoch's shuffling (default 0); seed torch before adding the adapter.
        checkpoint: the checkpoint's path (default None: none); removed at the end.
        checkpoint_every: steps between checkpoints (default 50).
        fingerprint: the settings; a checkpoint written with other ones is ignored.
        device: where to train (default ``cpu``).
        progress: show a bar over steps (default True).
        after_step: called with the steps done after each step (default None).

    Returns:
        Per epoch ``loss``, ``seconds``, ``examples_per_s`` (prompts/s) and ``tokens_per_s``.
    """
    device = torch.device(device)
    model.to(device)

    def batch_loss(batch: list) -> tuple[Tensor, int]:
        tensors = {k: v.to(device) for k, v in collate(batch).items()}
        return model(**tensors).loss, int(tensors["attention_mask"].sum())

    return fit_resumable(
        model,
        examples,
        batch_loss,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        seed=seed,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        fingerprint=fingerprint,
        progress=progress,
        after_step=after_step,
    )

"""Sequence-to-sequence training of a :class:`~llmrec.p5.model.P5` model, resumable.

The loop is :func:`llmrec.training.resumable.fit_resumable` (AdamW, linear warm-up and decay,
checkpoints that resume to the same weights as an uninterrupted run on a CPU); this module
turns (source, target) pairs into the P5 model's loss.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from llmrec.p5.model import P5, collate
from llmrec.training.resumable import fit_resumable, linear_schedule

__all__ = ["Examples", "linear_schedule", "train_seq2seq"]

Examples = Callable[[int], Sequence[tuple[str, str]]]
"""``examples(epoch) -> [(source, target), ...]``: one epoch's training pairs."""


def train_seq2seq(
    model: P5,
    tokenizer,
    examples: Examples,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.01,
    warmup: float = 0.05,
    max_source_len: int = 128,
    max_target_len: int = 16,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 200,
    fingerprint: str = "",
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` in place on ``examples`` and return one history row per epoch.

    Args:
        model: the P5 model (its ``whole_word`` flag decides whether whole-word ids are built).
        tokenizer: the tokenizer of :mod:`llmrec.p5.tokenizer` (or a pretrained T5's).
        examples: ``examples(epoch)``, deterministic for a given epoch.
        epochs: passes over one epoch's examples each.
        batch_size: pairs per step.
        lr: the peak learning rate of AdamW.
        weight_decay: AdamW's decoupled weight decay (default 0.01).
        warmup: share of all steps spent warming up linearly (default 0.05).
        max_source_len: prompt tokens kept (default 128).
        max_target_len: answer tokens kept (default 16).
        seed: seeds the shuffling of every epoch (default 0). Seed torch before building the
            model; dropout then follows torch's generator, which checkpoints carry.
        checkpoint: where to keep the checkpoint (default None: none). It is removed at the end.
        checkpoint_every: steps between checkpoints (default 200).
        fingerprint: identifies the settings; a checkpoint with another one is not resumed.
        device: where to train (default ``cpu``).
        progress: show a tqdm bar over steps (default True); the log gets a line every 30 s
            either way (steps done over the whole run, the epoch, the ETA).

    Returns:
        ``{"epoch", "loss", "seconds", "examples_per_s", "tokens_per_s"}`` per epoch (the mean
        training loss of the epoch; tokens: the sources').
    """
    device = torch.device(device)
    model.to(device)

    def batch_loss(batch: list[tuple[str, str]]) -> tuple[torch.Tensor, int]:
        tensors = collate(batch, tokenizer, max_source_len, max_target_len, model.whole_word)
        tensors = {k: v.to(device) for k, v in tensors.items()}
        return model(**tensors), int(tensors["attention_mask"].sum())

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
    )

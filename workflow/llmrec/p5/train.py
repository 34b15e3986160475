"""Sequence-to-sequence training of a :class:`~llmrec.p5.model.P5` model, resumable.

AdamW, a linear warm-up then a linear decay to zero, a fixed number of epochs. Each epoch's
examples come from ``examples(epoch)`` (fresh windows or arithmetic problems every epoch, seeded
by the epoch), shuffled with a generator seeded by (seed, epoch). A checkpoint (model,
optimiser, schedule, torch's random state, position in the epoch) is written every
``checkpoint_every`` steps; a run started again with the same ``fingerprint`` continues from
it and ends with the same weights as an uninterrupted run on a CPU.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from llmrec.io import save_weights
from llmrec.p5.model import P5, collate
from llmrec.progress import Progress

log = logging.getLogger(__name__)

Examples = Callable[[int], Sequence[tuple[str, str]]]
"""``examples(epoch) -> [(source, target), ...]``: one epoch's training pairs."""


def linear_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """The learning-rate factor at a step: up from 0 over ``warmup`` x total, then down to 0."""
    warm = max(1, int(round(total_steps * warmup)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


def _load_checkpoint(path: Path | None, fingerprint: str) -> dict | None:
    if path is None or not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if state.get("fingerprint") != fingerprint:
        log.info("ignoring %s: it was written for other settings", path)
        return None
    return state


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
        ``{"epoch", "loss", "seconds"}`` per epoch (the mean training loss of the epoch).
    """
    device = torch.device(device)
    model.to(device)
    steps_per_epoch = max(1, -(-len(examples(0)) // batch_size))
    total = epochs * steps_per_epoch
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(total, warmup))
    path = Path(checkpoint) if checkpoint is not None else None
    history: list[dict] = []
    start_epoch, start_batch, losses = 0, 0, []
    if (state := _load_checkpoint(path, fingerprint)) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, start_batch = int(state["epoch"]), int(state["batch"])
        history, losses = list(state["history"]), list(state["losses"])
        log.info(
            "resuming from %s at epoch %d, step %d of %d",
            path,
            start_epoch + 1,
            start_batch,
            steps_per_epoch,
        )

    def save(epoch: int, batch: int) -> None:
        save_weights(
            path,
            {
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch,
                "batch": batch,
                "history": history,
                "losses": losses,
            },
        )

    model.train()
    done_before = start_epoch * steps_per_epoch + start_batch
    with Progress(total, "train", "steps", bar=progress, initial=done_before) as steps_done:
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            pairs = examples(epoch)
            order = np.random.default_rng([seed, epoch]).permutation(len(pairs))
            first = start_batch if epoch == start_epoch else 0
            if first == 0:
                losses = []
            steps_done.set_postfix(epoch=f"{epoch + 1}/{epochs}")
            for b in range(first, steps_per_epoch):
                batch = [pairs[i] for i in order[b * batch_size : (b + 1) * batch_size]]
                tensors = {
                    k: v.to(device)
                    for k, v in collate(
                        batch, tokenizer, max_source_len, max_target_len, model.whole_word
                    ).items()
                }
                loss = model(**tensors)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(loss.detach().item())
                steps_done.update()
                if path is not None and (b + 1) % checkpoint_every == 0 and b + 1 < steps_per_epoch:
                    save(epoch, b + 1)
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": float(np.mean(losses)),
                    "seconds": time.perf_counter() - started,
                }
            )
            log.info(
                "epoch %d  loss %.4f  %.1fs", epoch + 1, history[-1]["loss"], history[-1]["seconds"]
            )
            if path is not None and epoch + 1 < epochs:
                save(epoch + 1, 0)
    if path is not None and path.exists():
        path.unlink()
    model.eval()
    return history

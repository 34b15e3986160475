"""One resumable training loop over epochs of examples, shared by P5 and the LoRA LLM.

AdamW over the parameters that require gradients (weight decay on matrices only), a linear
warm-up then a linear decay to zero, a fixed number of epochs. Each epoch's examples come from
``examples(epoch)`` (fresh windows or problems every epoch, seeded by the epoch), shuffled with
a generator seeded by (seed, epoch). A checkpoint (the trainable parameters, optimiser,
schedule, torch's random state, position in the epoch) is written every ``checkpoint_every``
steps and at each epoch's end; a run started again with the same ``fingerprint`` continues from
it and ends with the same weights as an uninterrupted run on a CPU. Only trainable parameters
are checkpointed, so a LoRA run's checkpoint holds the adapter, not the frozen base model.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import save_weights
from ..progress import Progress

log = logging.getLogger(__name__)

BatchLoss = Callable[[list], tuple[torch.Tensor, int]]
"""``batch_loss(examples) -> (loss, tokens)``: one step's loss and the tokens it read."""


def linear_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """The learning-rate factor at a step: up from 0 over ``warmup`` x total, then down to 0."""
    warm = max(1, int(round(total_steps * warmup)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


def load_checkpoint(path: Path | None, fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` if it exists and was written with ``fingerprint``, else None."""
    if path is None or not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if state.get("fingerprint") != fingerprint:
        log.info("ignoring %s: it was written for other settings", path)
        return None
    return state


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that require gradients, by name (what a checkpoint needs to hold)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put a :func:`trainable_state` back; a name the model lacks is an error."""
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"the checkpoint holds parameters the model lacks: {unexpected[:3]}")


def fit_resumable(
    model: nn.Module,
    examples: Callable[[int], Sequence],
    batch_loss: BatchLoss,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    warmup: float = 0.05,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 200,
    fingerprint: str = "",
    progress: bool = True,
    after_step: Callable[[int], None] | None = None,
) -> list[dict]:
    """Train the trainable parameters of ``model`` in place; one history row per epoch.

    Args:
        model: the model; only parameters with ``requires_grad`` are optimised and saved.
        examples: ``examples(epoch)``, deterministic for a given epoch, the same length each.
        batch_loss: a batch of examples -> (its loss, tokens read), on the model's device.
        epochs: passes over one epoch's examples each.
        batch_size: examples per step.
        lr: the peak learning rate of AdamW.
        weight_decay: AdamW's decoupled weight decay of matrices (default 0.0).
        warmup: share of all steps spent warming up linearly (default 0.05).
        seed: seeds the shuffling of every epoch (default 0). Seed torch before building the
            model; dropout then follows torch's generator, which checkpoints carry.
        checkpoint: where to keep the checkpoint (default None: none). It is removed at the end.
        checkpoint_every: steps between checkpoints (default 200).
        fingerprint: identifies the settings; a checkpoint with another one is not resumed.
        progress: show a tqdm bar over steps (default True); the log gets a line every 30 s.
        after_step: called with the number of steps done after each step (tests kill runs).

    Returns:
        ``{"epoch", "loss", "seconds", "examples_per_s", "tokens_per_s"}`` per epoch (the mean
        training loss of the epoch; the rates over the steps run in this process).
    """
    steps_per_epoch = max(1, -(-len(examples(0)) // batch_size))
    total = epochs * steps_per_epoch
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for _, p in named if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(total, warmup))
    path = Path(checkpoint) if checkpoint is not None else None
    history: list[dict] = []
    start_epoch, start_batch, losses = 0, 0, []
    if (state := load_checkpoint(path, fingerprint)) is not None:
        load_trainable_state(model, state["model"])
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
                "model": trainable_state(model),
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
            seen, tokens = 0, 0
            steps_done.set_postfix(epoch=f"{epoch + 1}/{epochs}")
            for b in range(first, steps_per_epoch):
                batch = [pairs[i] for i in order[b * batch_size : (b + 1) * batch_size]]
                loss, read = batch_loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(loss.detach().item())
                seen, tokens = seen + len(batch), tokens + int(read)
                steps_done.update()
                if after_step is not None:
                    after_step(epoch * steps_per_epoch + b + 1)
                if path is not None and (b + 1) % checkpoint_every == 0 and b + 1 < steps_per_epoch:
                    save(epoch, b + 1)
            seconds = time.perf_counter() - started
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": float(np.mean(losses)),
                    "seconds": seconds,
                    "examples_per_s": seen / seconds,
                    "tokens_per_s": tokens / seconds,
                }
            )
            log.info(
                "epoch %d  loss %.4f  %.1fs  %.1f examples/s  %.0f tokens/s",
                epoch + 1,
                history[-1]["loss"],
                seconds,
                history[-1]["examples_per_s"],
                history[-1]["tokens_per_s"],
            )
            if path is not None and epoch + 1 < epochs:
                save(epoch + 1, 0)
    if path is not None and path.exists():
        path.unlink()
    model.eval()
    return history

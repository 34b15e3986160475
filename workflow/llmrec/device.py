"""The one place that turns the config's ``device: auto | cpu | cuda`` into a torch device."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA where torch sees a GPU, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no GPU")
    return torch.device(device)

"""The one seed function of the package."""

from __future__ import annotations

import random

import numpy as np
import torch


def init_seed(seed: int) -> None:
    """Seed ``random``, numpy's global generator and torch, and ask torch for deterministic kernels.

    ``warn_only`` keeps ops without a deterministic kernel usable (they warn instead of raising).
    The number of threads is not set here: it belongs to the rule that runs (its ``threads:``).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

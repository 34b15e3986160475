"""The GPU check of issue 6 (not a test): the training and generation steps of a CPU run, again
with ``device: cuda``, compared with the CPU run's outputs and timings.

    python bench/device_check.py --pfr-run /tmp/pfrrun2 --popk-run /tmp/popkrun \
        --gguf SmolLM2-135M-Instruct.Q4_1.gguf --out /tmp/check [--device cuda]

``--pfr-run`` and ``--popk-run`` are working directories of default-config CPU runs
(``snakemake --cores 2 results/tables/pfr.csv`` / ``popk.csv``); only their ``results/`` is read:
the data artifacts and text embeddings as inputs, ``summary.json``, item profiles and benchmark
files to compare with. Each step calls the very function its rule calls, with the parameters of
``config.yaml`` and the device switched:

- ``item_profiles`` (rule item_profiles): every ml-100k item's profile, float32, batch 64;
  the answers are compared with the CPU run's text (how many identical);
- ``llmrec.studies.pfr.train_pfr`` (rule train_pfr): LightGCN, SGE and PFR for the seeds that
  start within ``--budget`` seconds; test Recall/NDCG@20 against the same seed on CPU;
- ``llmrec.studies.popk.train_popk`` (rule train_popk): NRMS, NAML and LSTUR at popk 0 and 4,
  seed 0; AUC and MRR against CPU.

It writes ``device_check.json`` (every number) and prints a summary. The device machine runs the
image's own torch, so the GGUF file is dequantised there (``--gguf``) unless ``--model`` names a
folder from ``fetch_llm``. Measured on one H200 (README, "The paper config on GPUs"): item
profiles 24.5 s against 381 s on 2 CPU cores, every answer identical; PFR training 2.5-3x,
news models 7-15x faster, with metrics within the spread between seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from llmrec.studies import pfr as pfr_study  # noqa: E402
from llmrec.studies import popk as popk_study  # noqa: E402
from llmrec.text import steps  # noqa: E402

DATASET, NEWS = "ml-100k", "synthetic-news"


def benchmark_seconds(tsv: Path) -> float | None:
    """Wall seconds of a CPU job from its Snakemake benchmark file."""
    if not tsv.exists():
        return None
    with tsv.open() as f:
        return float(next(csv.DictReader(f, delimiter="\t"))["s"])


def timed(func, **kwargs) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    func(**kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def check_generation(
    cfg: dict, run: Path, model: Path, out: Path, device: str, limit: int | None
) -> dict:
    text = run / "results/data" / DATASET / "item_text.parquet"
    if limit:
        table = pq.read_table(text).slice(0, limit)
        text = out / "item_text.parquet"
        pq.write_table(table, text)
    table_out = out / "profiles" / "items.parquet"
    llm = {**cfg["llm"], "device": device}
    data, split = run / "results/data" / DATASET, cfg["pfr"]["split"]
    seconds = timed(
        steps.item_profiles,
        input={
            "model": str(model),
            "text": str(text),
            "split": str(data / f"split/{split}.parquet"),
            "reviews": str(data / "canonical/reviews.parquet"),
            "users": str(data / "filtered/users.parquet"),
        },
        output={"table": str(table_out)},
        llm=llm,
        progress=False,
        threads=2,
    )
    ours = pq.read_table(table_out, columns=["item_id", "raw"]).to_pydict()
    theirs = pq.read_table(
        run / "results/text" / DATASET / f"profiles/items_{split}.parquet",
        columns=["item_id", "raw"],
    ).to_pydict()
    cpu_raw = dict(zip(theirs["item_id"], theirs["raw"]))
    same = sum(cpu_raw.get(i) == r for i, r in zip(ours["item_id"], ours["raw"]))
    return {
        "prompts": len(ours["raw"]),
        "identical_to_cpu": same,
        "seconds": seconds,
        "cpu_seconds": None
        if limit
        else benchmark_seconds(
            run / "results/benchmarks/text" / DATASET / f"item_profiles_{split}.tsv"
        ),
    }


def check_pfr(
    cfg: dict, run: Path, out: Path, device: str, seeds: list[int], deadline: float
) -> list[dict]:
    p = cfg["pfr"]
    data, text = run / "results/data" / DATASET, run / "results/text" / DATASET / "embeddings"
    rows = []
    for seed in seeds:
        for model in ("lightgcn", "sge", "pfr"):
            if time.time() > deadline:
                return rows
            inputs = {
                "split": str(data / f"split/{p['split']}.parquet"),
                "graph": str(data / f"graph/{p['split']}.npz"),
            }
            if model == "sge":
                inputs["item_semantic"] = str(text / "item_text.npy")
            elif model == "pfr":
                inputs["item_semantic"] = str(text / f"item_profiles_{p['split']}.npy")
            folder = out / "pfr" / model / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            outputs = {
                "per_user": str(folder / "per_user.parquet"),
                "summary": str(folder / "summary.json"),
                "weights": str(folder / "weights.pt"),
            }
            seconds = timed(
                pfr_study.train_pfr,
                input=inputs,
                output=outputs,
                dataset=DATASET,
                model=model,
                seed=seed,
                backbone=p["backbone"],
                alignment=p["alignment"].get(model),
                ks=p["ks"],
                device=device,
                progress=False,
            )
            ours = json.loads(Path(outputs["summary"]).read_text())
            cpu = run / "results/pfr" / DATASET / model / f"seed{seed}"
            theirs = json.loads((cpu / "summary.json").read_text())
            rows.append(
                {
                    "model": model,
                    "seed": seed,
                    "seconds": seconds,
                    "cpu_seconds": benchmark_seconds(
                        run / "results/benchmarks/pfr" / DATASET / model / f"seed{seed}.tsv"
                    ),
                    "best_epoch": ours["best_epoch"],
                    "cpu_best_epoch": theirs["best_epoch"],
                    **{m: ours["test"][m] for m in ("recall@20", "ndcg@20")},
                    **{f"cpu_{m}": theirs["test"][m] for m in ("recall@20", "ndcg@20")},
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def check_popk(cfg: dict, run: Path, out: Path, device: str, deadline: float) -> list[dict]:
    p = cfg["popk"]
    data = run / "results/data" / NEWS
    inputs = {
        "split": str(data / "split/mind.parquet"),
        "news": str(data / "canonical/items.parquet"),
        "item_vectors": str(run / "results/text" / NEWS / "embeddings/item_text.npy"),
    }
    rows = []
    for popk in (0, 4):
        for model in p["models"]:
            if time.time() > deadline:
                return rows
            folder = out / "popk" / model / f"popk{popk}"
            folder.mkdir(parents=True, exist_ok=True)
            outputs = {
                "per_impression": str(folder / "per_impression.parquet"),
                "summary": str(folder / "summary.json"),
            }
            seconds = timed(
                popk_study.train_popk,
                input=inputs,
                output=outputs,
                dataset=NEWS,
                model=model,
                popk=popk,
                seed=0,
                settings={**p[model], "news_encoder": p["news_encoder"]},
                sampler=p["sampler"],
                data=p["data"],
                train=p["train"],
                word_init=p["word_init"],
                device=device,
                progress=False,
            )
            ours = json.loads(Path(outputs["summary"]).read_text())
            theirs = json.loads(
                (
                    run / "results/popk" / NEWS / model / f"popk{popk}/seed0" / "summary.json"
                ).read_text()
            )
            rows.append(
                {
                    "model": model,
                    "popk": popk,
                    "seconds": seconds,
                    "cpu_seconds": benchmark_seconds(
                        run / "results/benchmarks/popk" / NEWS / model / f"popk{popk}/seed0.tsv"
                    ),
                    **{m: ours["test"][m] for m in ("auc", "mrr")},
                    **{f"cpu_{m}": theirs["test"][m] for m in ("auc", "mrr")},
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pfr-run", type=Path, required=True)
    parser.add_argument("--popk-run", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="an LLM folder written by fetch_llm")
    parser.add_argument("--gguf", type=Path, help="the SmolLM2 GGUF file, dequantised here")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--items", type=int, help="only the first N item prompts")
    parser.add_argument(
        "--budget",
        type=float,
        default=300,
        help="seconds after which no further PFR or POPK training run starts",
    )
    parser.add_argument("--steps", nargs="+", default=["popk", "generation", "pfr"])
    args = parser.parse_args()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "device": args.device,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    deadline = time.time() + args.budget
    if "popk" in args.steps:
        report["popk"] = check_popk(cfg, args.popk_run, args.out, args.device, deadline)
    if "generation" in args.steps:
        model = args.model
        if model is None:
            model = Path(tempfile.mkdtemp()) / "smollm2"
            report["dequantise_seconds"] = timed(
                steps.dequantise_gguf, gguf=args.gguf, folder=model
            )
        report["generation"] = check_generation(
            cfg, args.pfr_run, model, args.out, args.device, args.items
        )
        print(json.dumps(report["generation"]), flush=True)
    if "pfr" in args.steps:
        report["pfr"] = check_pfr(cfg, args.pfr_run, args.out, args.device, args.seeds, deadline)
    (args.out / "device_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

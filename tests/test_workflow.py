"""The workflow as a user runs it: lint, dry runs of every target, an end-to-end data run on the
test config, and reruns that touch exactly the jobs a config change affects."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import FIXTURES, REPO, make_tiny_llm

# Every test here starts Snakemake: `-m "not workflow"` leaves them out of the unit suite.
pytestmark = pytest.mark.workflow

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = ["config.yaml", "configs/paper.yaml", "configs/quick.yaml"]


def snakemake(*args, cwd=REPO, check=True):
    done = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def in_work(work: Path, *args, config: Path | None = None, checkout: Path = REPO, check=True):
    """``snakemake`` on the working directory ``work`` with its config (or ``config``), running
    the workflow of ``checkout``."""
    return snakemake(
        *args,
        "--configfile",
        str(config or work / "config.yaml"),
        "--directory",
        str(work),
        "--snakefile",
        str(checkout / "Snakefile"),
        check=check,
    )


def copy_checkout(to: Path) -> Path:
    """The workflow's files copied as a fresh clone has them: same content, new file times."""
    to.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copyfile(REPO / name, to / name)
    shutil.copytree(
        REPO / "workflow", to / "workflow", ignore=shutil.ignore_patterns("__pycache__")
    )
    return to


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def jobs_of(dry_run_output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs, rule = set(), None
    for line in dry_run_output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = m.group(1)
            jobs.add((rule, ""))
        elif rule and (m := re.match(r"^wildcards: (.*)$", line.strip())):
            jobs.discard((rule, ""))
            jobs.add((rule, m.group(1)))
    return jobs


def test_lint_reports_nothing():
    done = snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition" in done.stdout + done.stderr


@pytest.mark.parametrize("configfile", CONFIGS)
@pytest.mark.parametrize("target", ["all", "data", "results/tables/datasets.csv"])
def test_dry_run_of_every_target(configfile, target, tmp_path):
    done = snakemake(
        "-n",
        "--forceall",
        target,
        "--configfile",
        str(REPO / configfile),
        "--directory",
        str(tmp_path),
        "--snakefile",
        str(REPO / "Snakefile"),
    )
    jobs = jobs_of(done.stdout)
    assert ("dataset_table", "") in jobs
    built = (
        yaml.safe_load((REPO / configfile).read_text()).get("build")
        or yaml.safe_load((REPO / "config.yaml").read_text())["build"]
    )
    fetched = {w for r, w in jobs if r == "fetch_dataset"}
    assert fetched == {f"dataset={d}" for d in built}


def test_bad_config_stops_before_any_work(tmp_path):
    """A real run (not a dry run, which writes nothing anyway) with a bad config value stops at
    validation with one sentence that names the key: no job starts, no download, nothing under
    results/ or resources/, and no dump of the schema."""
    for setting, message in [
        ('build=["ml-10m"]', "config.build[0]: 'ml-10m' is not one of"),
        ("seed=-1", "config.seed: -1 is less than the minimum of 0"),
        ("bogus=1", "'bogus' was unexpected"),
    ]:
        done = snakemake(
            "--cores",
            "1",
            "data",
            "--config",
            setting,
            "--directory",
            str(tmp_path),
            "--snakefile",
            str(REPO / "Snakefile"),
            check=False,
        )
        assert done.returncode != 0 and message in done.stdout + done.stderr
        assert "rule fetch_dataset" not in done.stdout + done.stderr
        assert len((done.stdout + done.stderr).splitlines()) < 10, done.stderr
        assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def _test_config(tmp_path: Path, **ml100k_filter) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "quick.yaml").read_text())
    cfg["datasets"]["ml-100k"]["path"] = str(REPO / "tests" / "fixtures" / "ml-100k")
    cfg["datasets"]["ml-100k"]["filter"].update(ml100k_filter)
    # The packaged templates by absolute path, so that a copy of the checkout (copy_checkout)
    # reads the very same template files.
    cfg.setdefault("llm", {})["prompts"] = str(REPO / "workflow" / "llmrec" / "text" / "prompts")
    if os.environ.get("LLMREC_WHEEL_DIR"):  # a local copy of the LLM's wheel (.ci/run sets it)
        cfg.setdefault("llm", {})["wheel_dir"] = os.environ["LLMREC_WHEEL_DIR"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The data target of the test config, built once in a scratch working directory."""
    work = tmp_path_factory.mktemp("work")
    config = _test_config(work)
    # The multi-behaviour study's LLM steps on a tiny Llama, for speed (the profiles stay with
    # SmolLM2; tests/test_text.py checks what those steps need of SmolLM2's tokenizer).
    cfg = yaml.safe_load(config.read_text())
    cfg["mbr"].setdefault("llm", {})["model"] = str(make_tiny_llm(work / "tiny-llm"))
    config.write_text(yaml.safe_dump(cfg))
    snakemake(
        "--cores",
        "2",
        "data",
        "--configfile",
        str(config),
        "--directory",
        str(work),
        "--snakefile",
        str(REPO / "Snakefile"),
    )
    return work


@pytest.mark.slow
def test_data_target_builds_every_artifact(built):
    data = built / "results" / "data"
    for name in (
        "split/loo.parquet",
        "split/random.parquet",
        "graph/loo.npz",
        "graph/random.npz",
        "sequences.parquet",
        "item_text.parquet",
        "stats.json",
    ):
        assert (data / "ml-100k" / name).is_file(), name
    for name in ("split/mind.parquet", "item_text.parquet", "stats.json"):
        assert (data / "synthetic-news" / name).is_file(), name
    table = (built / "results" / "tables" / "datasets.csv").read_text().splitlines()
    assert table[0].startswith("dataset,kind,synthetic,users,items,interactions,density")
    rows = {line.split(",")[0]: line.split(",") for line in table[1:]}
    assert rows["synthetic-news"][2] == "True" and rows["ml-100k"][2] == "False"
    header = table[0].split(",")
    assert header[-2:] == ["git_commit", "config_sha256"]
    assert len(rows["ml-100k"][-1]) == 64 and rows["ml-100k"][-2]  # a commit or "unknown"
    stats = json.loads((data / "ml-100k" / "stats.json").read_text())
    filtered = pq.read_table(data / "ml-100k" / "filtered" / "interactions.parquet")
    assert stats["interactions"] == filtered.num_rows
    assert rows["ml-100k"][5] == str(filtered.num_rows)
    # No temporary file survives a successful run.
    assert not [p for p in (built / "results").rglob("*.tmp")]
    # Nothing left to do.
    assert (
        jobs_of(
            snakemake(
                "-n",
                "data",
                "--configfile",
                str(built / "config.yaml"),
                "--directory",
                str(built),
                "--snakefile",
                str(REPO / "Snakefile"),
            ).stdout
        )
        == set()
    )


@pytest.mark.slow
def test_changing_one_datasets_k_core_reruns_only_its_jobs(built, tmp_path):
    changed = _test_config(tmp_path, k_core=3)
    done = snakemake(
        "-n",
        "data",
        "--configfile",
        str(changed),
        "--directory",
        str(built),
        "--snakefile",
        str(REPO / "Snakefile"),
    )
    expected = {
        ("filter_interactions", "dataset=ml-100k"),
        ("split", "dataset=ml-100k, protocol=loo"),
        ("split", "dataset=ml-100k, protocol=random"),
        ("graph", "dataset=ml-100k, protocol=loo"),
        ("graph", "dataset=ml-100k, protocol=random"),
        ("sequences", "dataset=ml-100k"),
        ("item_text", "dataset=ml-100k"),
        ("dataset_statistics", "dataset=ml-100k"),
        ("dataset_table", ""),
        ("data", ""),
        # ml-100k's multi-behaviour artifacts (it has a behaviours block)
        ("mbr_sequences", "dataset=ml-100k"),
        *(("mbr_graphs", f"dataset=ml-100k, stage={s}") for s in ("valid", "test")),
        *(("mbr_user_text", f"dataset=ml-100k, stage={s}") for s in ("valid", "test")),
    }
    assert jobs_of(done.stdout) == expected


@pytest.fixture(scope="module")
def pfr_built(built):
    """The PFR table and figure on the test config (real SmolLM2 and MiniLM, tiny data)."""
    in_work(built, "--cores", "2", "results/tables/pfr.csv", "results/figures/pfr.png")
    return built


@pytest.mark.slow
def test_pfr_table_and_figure(pfr_built):
    import pandas as pd

    table = pd.read_csv(pfr_built / "results" / "tables" / "pfr.csv")
    assert list(table["model"]) == ["lightgcn", "sge", "pfr"]
    assert (table["seeds"] == 2).all() and (table["dataset"] == "ml-100k").all()
    for k in (10, 20):
        for metric in ("recall", "ndcg", "mrr", "hit", "precision"):
            col = f"{metric}@{k}"
            assert table[col].between(0, 1).all(), col
            assert table[f"{col}_p"].isna().tolist() == [True, False, False], col
    markdown = (pfr_built / "results" / "tables" / "pfr.md").read_text()
    assert "reciprocal rank of the first hit" in markdown
    png = (pfr_built / "results" / "figures" / "pfr.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    profiles = pq.read_table(
        pfr_built / "results" / "text" / "ml-100k" / "profiles" / "items_random.parquet"
    )
    assert (
        profiles.num_rows
        == pq.read_metadata(
            pfr_built / "results" / "data" / "ml-100k" / "filtered" / "items.parquet"
        ).num_rows
    )
    assert all(profiles.column("profile_text").to_pylist())


@pytest.mark.slow
def test_progress_bars_are_display_only(built):
    done = snakemake(
        "-n",
        "data",
        "--configfile",
        str(built / "config.yaml"),
        "--config",
        "progress=True",
        "--directory",
        str(built),
        "--snakefile",
        str(REPO / "Snakefile"),
    )
    assert jobs_of(done.stdout) == set()


@pytest.fixture(scope="module")
def popk_built(built):
    """The POPK table and figure on the test config (tiny synthetic news, tiny models)."""
    in_work(built, "--cores", "2", "results/tables/popk.csv", "results/figures/popk_diversity.png")
    return built


@pytest.mark.slow
def test_popk_table_and_figure(popk_built):
    import pandas as pd

    table = pd.read_csv(popk_built / "results" / "tables" / "popk.csv")
    assert table[["model", "popk"]].values.tolist() == [
        [m, p] for m in ("nrms", "naml", "lstur") for p in ("0", "2 (add)")
    ]
    assert (table["seeds"] == 2).all()
    assert (table["dataset"] == "synthetic-news (synthetic)").all()
    for metric in ("auc", "mrr", "ndcg@5", "ndcg@10", "ild_category", "coverage", "tail_share"):
        assert table[metric].between(0, 1).all(), metric
    baseline = table["popk"] == "0"
    assert (table.loc[baseline, "auc_change_%"] == 0).all()
    assert table.loc[baseline, "auc_p"].isna().all()
    assert table.loc[~baseline, "auc_p"].between(0, 1).all()
    assert table.loc[~baseline, "coverage_p"].isna().all()  # one number per run: no test
    assert table["config_sha256"].nunique() == 1 and len(table["config_sha256"][0]) == 64
    markdown = (popk_built / "results" / "tables" / "popk.md").read_text()
    assert "MIND's impression metrics" in markdown
    png = (popk_built / "results" / "figures" / "popk_diversity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    per_impression = pq.read_table(
        popk_built
        / "results"
        / "popk"
        / "synthetic-news"
        / "nrms"
        / "add"
        / "popk2"
        / "seed0"
        / "per_impression.parquet"
    )
    dev = pq.read_table(
        popk_built / "results" / "data" / "synthetic-news" / "split" / "mind.parquet"
    ).to_pandas()
    assert per_impression.num_rows == (dev["split"] == "dev").sum()


ARITHMETIC_TARGETS = [
    "results/tables/arithmetic.csv",
    "results/figures/arithmetic_embeddings.png",
    "results/tables/arithmetic_cooccurrence.csv",
]


@pytest.fixture(scope="module")
def arithmetic_built(built):
    """The arithmetic study's table, figure and co-occurrence table on the test config."""
    in_work(built, "--cores", "2", *ARITHMETIC_TARGETS)
    return built


@pytest.mark.slow
def test_arithmetic_table_figure_and_cooccurrence(arithmetic_built):
    import pandas as pd

    tables = arithmetic_built / "results" / "tables"
    table = pd.read_csv(tables / "arithmetic.csv")
    methods = ["P5", "pre-conditioning", "task vector", "SASRec", "SASRec + ordered pre-training"]
    assert table[["setting", "method"]].values.tolist() == [
        [s, m] for s in ("seen", "unseen") for m in methods
    ]
    assert (table["seeds"] == 2).all() and (table["dataset"] == "ml-100k").all()
    for col in ("hit@5", "hit@10", "ndcg@5", "ndcg@10"):
        assert table[col].between(0, 1).all(), col
        assert (table["hit@10"] >= table["hit@5"]).all()
        p5 = table["method"] == "P5"
        assert table.loc[p5, f"{col}_p"].isna().all()
        assert table.loc[~p5, f"{col}_p"].between(0, 1).all(), col
    sasrec = table[table["method"] == "SASRec"]
    assert sasrec["hit@10"].nunique() == 1  # the same runs under both settings
    assert "constrained to valid item IDs" in (tables / "arithmetic.md").read_text()

    cooc = pd.read_csv(tables / "arithmetic_cooccurrence.csv")
    assert cooc["indexing"].tolist() == ["sequential", "random"]
    assert cooc["cooccur"].between(0, 1).all() and (cooc["pairs"] > 0).all()
    embeddings = pd.read_csv(tables / "arithmetic_embeddings.csv")
    assert embeddings["model"].nunique() == 8  # five T5 weight sets, three SASRec ones
    # NaN at a distance no pair of the set spans (tiny catalogues of the quick config)
    cosine = embeddings.dropna(subset=["mean_cosine"])
    assert cosine["mean_cosine"].between(-1, 1).all() and cosine["model"].nunique() == 8
    assert embeddings["ordered_triples"].between(0, 1).all()
    assert (embeddings["adjacent_distance"] > 0).all()
    png = (arithmetic_built / "results" / "figures" / "arithmetic_embeddings.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    arithmetic = json.loads(
        (
            arithmetic_built
            / "results"
            / "arithmetic"
            / "ml-100k"
            / "arithmetic"
            / "seed0"
            / "summary.json"
        ).read_text()
    )
    assert 0 <= arithmetic["accuracy_after"] <= 1


MBR_TARGETS = [
    "results/tables/mbr.csv",
    "results/figures/mbr_tail.png",
    "results/tables/mbr_text.csv",
    "results/figures/mbr_chat.png",
]


@pytest.fixture(scope="module")
def mbr_built(built):
    """The multi-behaviour study's tables and figures on the test config (ratings of the ml-100k
    fixture as dislike / neutral / like), a tiny Llama with tiny LoRA budgets."""
    in_work(built, "--cores", "2", *MBR_TARGETS, "results/mbr/ml-100k/examples.md")
    return built


@pytest.mark.slow
def test_mbr_table_and_figure(mbr_built):
    import pandas as pd

    from llmrec.evaluation.segments import SEGMENTS
    from llmrec.studies.mbr import MODEL_NAMES, MODELS

    tables = mbr_built / "results" / "tables"
    table = pd.read_csv(tables / "mbr.csv")
    assert table[["segment", "model"]].values.tolist() == [
        [s, MODEL_NAMES[m]] for s in SEGMENTS for m in MODELS
    ]
    assert (table["seeds"] == 2).all() and (table["dataset"] == "ml-100k").all()
    overall = table[table["segment"] == "overall"]
    for col in ("hit@10", "ndcg@10", "hit@20", "ndcg@20"):
        assert overall[col].between(0, 1).all(), col
        # One model per column is the best, compared with nobody.
        assert overall[f"{col}_p"].isna().sum() >= 1
    assert "already met in an auxiliary behaviour" in (tables / "mbr.md").read_text()
    png = (mbr_built / "results" / "figures" / "mbr_tail.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_mbr_text_table_figure_and_examples(mbr_built):
    import pandas as pd

    text = pd.read_csv(mbr_built / "results" / "tables" / "mbr_text.csv")
    chat = text[text["task"] == "chat"].set_index("model")
    # The random row, the three LLM rows and every ID model, on the 4 asked users' lists of 3.
    assert chat.loc["Random (expectation)", "hit@1"] == pytest.approx(1 / 3)
    assert {"LLM zero-shot", "LLM + adapter, text only", "Pop", "Unified (ID scorer)"} <= set(
        chat.index
    )
    assert (chat["prompts"] == 4).all() and chat["hit@5"].between(0, 1).all()
    llm = chat.loc["LLM + adapter + soft tokens (unified)"]
    assert 0 <= llm["valid"] <= 1 and llm["seeds"] == 1
    described = text[text["task"] == "description"]
    assert len(described) == 3 and (described["prompts"] == 3).all()
    assert described["rouge1"].between(0, 1).all()
    png = (mbr_built / "results" / "figures" / "mbr_chat.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    examples = (mbr_built / "results" / "mbr" / "ml-100k" / "examples.md").read_text()
    assert "**target**" in examples and "Item text:" in examples


@pytest.mark.slow
def test_benchmarks_table_gathers_the_runs_jobs(pfr_built, popk_built):
    import pandas as pd

    done = in_work(pfr_built, "--cores", "2", "results/tables/benchmarks.csv")
    ran = jobs_of(done.stdout + done.stderr)
    assert ("benchmarks_table", "") in ran and not any(r == "train_pfr" for r, _ in ran)
    table = pd.read_csv(pfr_built / "results" / "tables" / "benchmarks.csv")
    jobs = set(zip(table["rule"], table["job"]))
    assert ("train_pfr", "dataset=ml-100k, model=pfr, seed=1") in jobs
    assert (
        "train_popk",
        "dataset=synthetic-news, news_model=lstur, popk_mode=add, popk=2, seed=0",
    ) in jobs
    assert (table["seconds"] > 0).all() and (table["max_rss_mb"] > 0).all()
    assert (pfr_built / "results" / "figures" / "benchmarks.png").is_file()


def _chromium() -> str | None:
    import shutil

    return next(
        (c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None
    )


@pytest.mark.slow
def test_report_shows_every_table_and_figure(
    pfr_built, popk_built, arithmetic_built, mbr_built, tmp_path
):
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium (.ci/run installs Debian's chromium)")
    work = pfr_built
    in_work(work, "--cores", "2", "results/tables/benchmarks.csv")
    report = work / "results" / "report.html"
    in_work(
        work,
        "--report",
        str(report),
        "results/tables/datasets.csv",
        "results/tables/pfr.csv",
        "results/figures/pfr.png",
        "results/tables/popk.csv",
        "results/figures/popk_diversity.png",
        *ARITHMETIC_TARGETS,
        *MBR_TARGETS,
        "results/tables/benchmarks.csv",
    )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=10000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    tables = "results/tables/"
    expected = {
        "Datasets": [f"{tables}datasets.csv", f"{tables}datasets.html"],
        "PFR": [f"{tables}pfr.csv", f"{tables}pfr.html", "results/figures/pfr.png"],
        "POPK": [f"{tables}popk.csv", f"{tables}popk.html", "results/figures/popk_diversity.png"],
        "Arithmetic (P5)": [
            *ARITHMETIC_TARGETS,
            f"{tables}arithmetic.html",
            f"{tables}arithmetic_embeddings.html",
            f"{tables}arithmetic_cooccurrence.html",
        ],
        "Multi-behaviour": [*MBR_TARGETS, f"{tables}mbr.html", f"{tables}mbr_text.html"],
        "Benchmarks": [
            f"{tables}benchmarks.csv",
            f"{tables}benchmarks.html",
            "results/figures/benchmarks.png",
        ],
    }
    for category in expected:
        assert category in dom, category  # rendered by the browser
    # What each category opens to: the report's own data, read as the page's script reads it.
    html = report.read_text()
    categories, results = (
        json.loads(
            re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.S).group(
                1
            )
        )
        for name in ("categories", "results")
    )
    assert {
        c: sorted(f for sub in subs.values() for f in sub) for c, subs in categories.items()
    } == {c: sorted(f) for c, f in expected.items()}
    for path in (f for files in expected.values() for f in files):
        assert len(results[path]["caption"]) > 50, path  # a caption that says something
        mime = {".png": "image/png", ".csv": "text/csv", ".html": "text/html"}
        assert results[path]["mime_type"] == mime[Path(path).suffix], path
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1400,1000", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("LLMREC_SCREENSHOT_DIR"):  # to look at it
        import shutil

        shutil.copy(shot, Path(os.environ["LLMREC_SCREENSHOT_DIR"]) / "report.png")


@pytest.mark.slow
def test_changing_one_news_models_setting_reruns_only_its_runs_and_the_table(popk_built, tmp_path):
    cfg = yaml.safe_load((popk_built / "config.yaml").read_text())
    cfg["popk"]["nrms"]["head_dim"] = 4
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    done = in_work(
        popk_built,
        "-n",
        "results/tables/popk.csv",
        "results/figures/popk_diversity.png",
        config=changed,
    )
    expected = {
        (
            "train_popk",
            f"dataset=synthetic-news, news_model=nrms, popk_mode=add, popk={p}, seed={s}",
        )
        for p in (0, 2)
        for s in (0, 1)
    }
    expected |= {("popk_table", ""), ("popk_figure", "")}
    assert jobs_of(done.stdout) == expected


BUILT_TARGETS = [
    "results/tables/datasets.csv",
    "results/tables/pfr.csv",
    "results/figures/pfr.png",
    "results/tables/popk.csv",
    "results/figures/popk_diversity.png",
]


def _changed_config(work: Path, tmp_path: Path, change) -> Path:
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    change(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_editing_a_prompt_template_reruns_its_profiles_and_what_uses_them(
    pfr_built, popk_built, tmp_path
):
    prompts = tmp_path / "prompts"
    shutil.copytree(REPO / "workflow" / "llmrec" / "text" / "prompts", prompts)
    item_prompt = prompts / "item_profile.txt"
    item_prompt.write_text(item_prompt.read_text().replace("Item:", "The item:"))
    changed = _changed_config(
        pfr_built, tmp_path, lambda cfg: cfg["llm"].update(prompts=str(prompts))
    )
    done = in_work(pfr_built, "-n", *BUILT_TARGETS, config=changed)
    expected = {
        ("item_profiles", "dataset=ml-100k, protocol=random"),
        ("user_profiles", "dataset=ml-100k, protocol=random"),
        ("embed_texts", "dataset=ml-100k, texts=item_profiles_random"),
        ("embed_texts", "dataset=ml-100k, texts=user_profiles_random"),
        *{("train_pfr", f"dataset=ml-100k, model=pfr, seed={s}") for s in (0, 1)},
        ("pfr_table", ""),
        ("pfr_figure", ""),
    }
    # LightGCN and SGE (raw item text), the data and the news study stay as they are.
    assert jobs_of(done.stdout) == expected


@pytest.mark.slow
def test_a_fresh_clone_finds_the_finished_run_up_to_date(pfr_built, popk_built, tmp_path):
    """Every file of the checkout is newer than the results, as after a new clone: code digests,
    not file times, decide."""
    clone = copy_checkout(tmp_path / "clone")
    done = in_work(pfr_built, "-n", *BUILT_TARGETS, checkout=clone)
    assert jobs_of(done.stdout) == set(), done.stdout


@pytest.mark.slow
def test_editing_the_lightgcn_code_reruns_its_trainings_and_tables_only(
    pfr_built, popk_built, tmp_path
):
    clone = copy_checkout(tmp_path / "clone")
    edit(clone / "workflow/llmrec/models/lightgcn.py", "\nclass ", "\n_EDITED = True\n\n\nclass ")
    done = in_work(pfr_built, "-n", *BUILT_TARGETS, checkout=clone)
    expected = {
        *{
            ("train_pfr", f"dataset=ml-100k, model={m}, seed={s}")
            for m in ("lightgcn", "sge", "pfr")
            for s in (0, 1)
        },
        ("pfr_table", ""),
        ("pfr_figure", ""),
    }
    # Neither the data, the text stage nor the news study runs LightGCN's code.
    assert jobs_of(done.stdout) == expected


@pytest.mark.slow
def test_editing_the_ranking_metrics_reruns_what_evaluates_with_them(
    pfr_built, popk_built, tmp_path
):
    clone = copy_checkout(tmp_path / "clone")
    ranking = clone / "workflow/llmrec/evaluation/ranking.py"
    # A comment or a docstring changes no result: nothing reruns.
    edit(ranking, "\ndef ", "\n# A comment of no consequence.\n\n\ndef ")
    assert jobs_of(in_work(pfr_built, "-n", *BUILT_TARGETS, checkout=clone).stdout) == set()
    edit(ranking, "\ndef ", "\n_EDITED = True\n\n\ndef ")
    done = in_work(pfr_built, "-n", *BUILT_TARGETS, checkout=clone)
    trainings = {
        ("train_pfr", f"dataset=ml-100k, model={m}, seed={s}")
        for m in ("lightgcn", "sge", "pfr")
        for s in (0, 1)
    } | {
        ("train_popk", f"dataset=synthetic-news, news_model={m}, popk_mode=add, popk={k}, seed={s}")
        for m in ("nrms", "naml", "lstur")
        for k in (0, 2)
        for s in (0, 1)
    }
    tables = {(r, "") for r in ("pfr_table", "pfr_figure", "popk_table", "popk_figure")}
    assert jobs_of(done.stdout) == trainings | tables


@pytest.mark.slow
def test_a_changed_file_in_a_local_source_folder_reruns_its_dataset(tmp_path):
    folder = tmp_path / "manual" / "ml-100k"
    shutil.copytree(FIXTURES / "ml-100k", folder)
    cfg = yaml.safe_load(_test_config(tmp_path).read_text())
    cfg["datasets"]["ml-100k"]["path"] = str(folder)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    target = "results/data/ml-100k/sequences.parquet"
    in_work(tmp_path, "--cores", "2", target)
    chain = {
        ("fetch_dataset", "dataset=ml-100k"),
        ("parse_dataset", "dataset=ml-100k"),
        ("filter_interactions", "dataset=ml-100k"),
        ("sequences", "dataset=ml-100k"),
    }
    ratings = folder / "u.data"
    original = ratings.read_bytes()
    lines = original.splitlines(keepends=True)
    ratings.write_bytes(b"".join(lines[: len(lines) // 2]))
    assert jobs_of(in_work(tmp_path, "-n", target).stdout) == chain
    # The same bytes again, in a file newer than every result: nothing to do.
    ratings.write_bytes(original)
    assert jobs_of(in_work(tmp_path, "-n", target).stdout) == set()


@pytest.mark.slow
def test_adding_a_seed_runs_only_its_jobs(pfr_built, popk_built, tmp_path):
    changed = _changed_config(pfr_built, tmp_path, lambda cfg: cfg["pfr"].update(seeds=[0, 1, 2]))
    done = in_work(pfr_built, "-n", *BUILT_TARGETS, config=changed)
    expected = {
        ("train_pfr", f"dataset=ml-100k, model={m}, seed=2") for m in ("lightgcn", "sge", "pfr")
    }
    assert jobs_of(done.stdout) == expected | {("pfr_table", ""), ("pfr_figure", "")}


@pytest.mark.slow
def test_adding_a_dataset_runs_only_its_jobs(pfr_built, popk_built, tmp_path):
    def add_ml1m(cfg):
        cfg["build"].append("ml-1m")
        cfg["pfr"]["datasets"].append("ml-1m")
        cfg["datasets"]["ml-1m"] = {
            "source": "local",
            "path": str(FIXTURES / "ml-1m"),
            "filter": {"k_core": 2},
        }

    done = in_work(
        pfr_built, "-n", *BUILT_TARGETS, config=_changed_config(pfr_built, tmp_path, add_ml1m)
    )
    jobs = jobs_of(done.stdout)
    tables = {("dataset_table", ""), ("pfr_table", ""), ("pfr_figure", "")}
    assert {job for job in jobs if "dataset=ml-1m" not in job[1]} == tables
    assert {
        ("train_pfr", f"dataset=ml-1m, model={m}, seed={s}")
        for m in ("lightgcn", "sge", "pfr")
        for s in (0, 1)
    } <= jobs
    assert ("item_profiles", "dataset=ml-1m, protocol=random") in jobs


def _wait_for(folder: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> Path:
    """The first log file under ``folder`` that says ``text``, while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in folder.rglob("*.log"):
            if text in log.read_text():
                return log
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before a log said {text!r}")
        time.sleep(0.02)
    raise AssertionError(f"no log under {folder} said {text!r} within {timeout} s")


def _copy_of(work: Path, to: Path) -> Path:
    """A copy of a working directory; its fetched models hard-linked."""
    shutil.copytree(work / "resources", to / "resources", copy_function=os.link)
    shutil.copytree(work / "results", to / "results")
    shutil.copytree(work / ".snakemake", to / ".snakemake")
    return to


@pytest.mark.slow
def test_a_run_killed_during_training_resumes_to_the_same_table(pfr_built, tmp_path):
    def long_training(cfg):  # long enough to be killed in the middle of; reruns all training
        cfg["pfr"]["backbone"].update(epochs=200, eval_every=50, patience=10)
        cfg["pfr"]["seeds"] = [0]  # one seed: half the trainings

    targets = ["results/tables/pfr.csv", "results/figures/pfr.png"]
    uninterrupted = _copy_of(pfr_built, tmp_path / "uninterrupted")
    _changed_config(pfr_built, uninterrupted, long_training)
    in_work(uninterrupted, "--cores", "2", *targets)

    work = _copy_of(pfr_built, tmp_path / "killed")
    config = _changed_config(pfr_built, work, long_training)
    logs = work / "results/logs/pfr"
    shutil.rmtree(logs)
    command = [
        *SNAKEMAKE,
        "--cores",
        "1",
        *targets,
        "--configfile",
        str(config),
        "--directory",
        str(work),
        "--snakefile",
        str(REPO / "Snakefile"),
    ]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        killed = _wait_for(logs, "epoch 50 ", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the training job with it
        proc.wait()
    model, seed = killed.parent.name, killed.stem  # results/logs/pfr/ml-100k/<model>/<seed>.log
    assert not (work / "results/pfr/ml-100k" / model / seed / "summary.json").exists()

    in_work(work, "--unlock")  # a killed Snakemake leaves its lock behind
    plan = jobs_of(in_work(work, "-n", "--rerun-incomplete", *targets).stdout)
    assert ("train_pfr", f"dataset=ml-100k, model={model}, seed={seed[4:]}") in plan
    in_work(work, "--cores", "2", "--rerun-incomplete", *targets)
    table = (work / "results/tables/pfr.csv").read_text()
    assert table == (uninterrupted / "results/tables/pfr.csv").read_text()

"""What `snakemake --report` shows: the study figures read as matplotlib objects (intervals,
zoomed axes, display names, the seed count), every table marked for the report with an HTML
page beside it, the landing page, and a report of a partly built results folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml

from llmrec.studies import pfr, popk

from .conftest import REPO


@pytest.fixture
def drawn(monkeypatch):
    """The figures the study functions draw, kept open instead of saved."""
    figures = []
    for module in (pfr, popk):
        monkeypatch.setattr(module, "save_png", lambda fig, path, **kw: figures.append(fig))
    yield figures
    for fig in figures:
        plt.close(fig)


def pfr_table(path: Path) -> str:
    rows = []
    for dataset, base in (("ml-100k", 0.30), ("yelp", 0.05)):
        for i, model in enumerate(pfr.MODELS):
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "seeds": 3,
                    "recall@20": base + 0.005 * i,  # differences of 0.005
                    "recall@20_std": 0.001 * (i + 1),
                    "ndcg@20": base / 2 + 0.004 * i,
                    "ndcg@20_std": 0.002,
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_pfr_figure_shows_means_with_their_std_on_a_zoomed_axis(tmp_path, drawn):
    pfr.pfr_figure({"table": pfr_table(tmp_path / "pfr.csv")}, {"figure": "unused"})
    (fig,) = drawn
    assert len(fig.axes) == 4  # datasets x metrics
    recall = fig.axes[0]
    bars = [c for c in recall.containers if c.has_yerr]
    assert len(bars) == 3  # one dot with an error bar per model
    for i, bar in enumerate(bars):
        (y,) = bar.lines[0].get_ydata()
        (segment,) = bar.lines[2][0].get_segments()
        assert y == pytest.approx(0.30 + 0.005 * i)
        assert segment[1][1] - segment[0][1] == pytest.approx(2 * 0.001 * (i + 1))  # ± std
    low, high = recall.get_ylim()
    assert 0.25 < low and high < 0.35  # not from 0: a difference of 0.005 is a visible step
    assert [t.get_text() for t in recall.get_xticklabels()] == ["LightGCN", "SGE", "PFR"]
    assert recall.get_title() == "ml-100k: Recall@20" and fig.axes[3].get_title() == "yelp: nDCG@20"
    assert "3 seeds" in fig._suptitle.get_text()
    assert recall.get_legend() is None  # the models are named on the axis, nothing sits on data


def popk_table(path: Path, datasets=("mind-small",)) -> str:
    rows = []
    for dataset in datasets:
        for i, model in enumerate(popk.MODELS):
            for k in (0, 1, 2):
                rows.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "popk": k,
                        "seeds": 2 if model == "lstur" else 3,
                        "auc": 0.6 + 0.01 * i,
                        "auc_std": 0.01,
                        "ild_category": 0.8 * (1 + 0.01 * k * (i + 1)),
                        "ild_category_std": 0.008,
                        "ild_category_change_%": 1.0 * k * (i + 1),
                        "ndcg@10": 0.4,
                        "ndcg@10_std": 0.004,
                        "ndcg@10_change_%": -0.5 * k,
                    }
                )
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_popk_figure_has_spread_on_every_panel_and_a_trade_off(tmp_path, drawn):
    path = popk_table(tmp_path / "popk.csv", datasets=("mind-small", "synthetic-news"))
    popk.popk_figure({"table": path}, {"figure": "unused"})
    (fig,) = drawn
    assert len(fig.axes) == 6  # per dataset: diversity, accuracy, trade-off
    diversity, accuracy, trade = fig.axes[:3]
    for ax in (diversity, accuracy):
        assert sum(c.has_yerr for c in ax.containers) == 3  # every model has its error bars
    # Diversity: the change with the std over seeds in % of the popk = 0 mean (0.008 / 0.8).
    nrms = diversity.containers[0]
    assert list(nrms.lines[0].get_ydata()) == pytest.approx([0.0, 1.0, 2.0])
    (segment, *_) = nrms.lines[2][0].get_segments()
    assert segment[1][1] - segment[0][1] == pytest.approx(2 * 1.0)
    # Trade-off: one point per popk > 0 and model, change of nDCG@10 against change of ILD.
    points = [c for c in trade.containers if c.has_xerr and c.has_yerr]
    assert len(points) == 3
    for i, c in enumerate(points):
        assert list(c.lines[0].get_xdata()) == pytest.approx([1.0 * (i + 1), 2.0 * (i + 1)])
        assert list(c.lines[0].get_ydata()) == pytest.approx([-0.5, -1.0])
    assert "nDCG@10" in trade.get_ylabel() and "ILD (category)" in trade.get_xlabel()
    # Display names, no code identifiers, the seed count.
    titles = " ".join(ax.get_title() for ax in fig.axes) + fig._suptitle.get_text()
    assert "ild_category" not in titles and "ndcg@10" not in titles
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["NRMS", "NAML", "LSTUR"]
    assert "2-3 seeds" in fig._suptitle.get_text()


# --- the report in the workflow ------------------------------------------------------------------


def report_outputs(configfile: str) -> dict[str, dict]:
    """Every output the workflow marks for the report: path -> category and subcategory."""
    from snakemake.api import SnakemakeApi
    from snakemake.io import get_flag_value, is_flagged
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[REPO / configfile]),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )._workflow
        marked = {}
        for rule in workflow.rules:
            for path in rule.output:
                if is_flagged(path, "report"):
                    flag = get_flag_value(path, "report")
                    marked[str(path)] = {
                        "category": flag.category,
                        "subcategory": flag.subcategory,
                        "rule": rule.name,
                    }
        return marked, workflow.report_text


def test_every_table_in_the_report_is_shown_as_html_beside_its_csv():
    marked, landing = report_outputs("configs/quick.yaml")
    csvs = {p for p in marked if p.endswith(".csv")}
    assert csvs == {
        f"results/tables/{t}.csv"
        for t in (
            "datasets",
            "pfr",
            "popk",
            "arithmetic",
            "arithmetic_cooccurrence",
            "mbr",
            "mbr_text",
            "benchmarks",
        )
    }
    for csv in csvs:
        html = csv[: -len(".csv")] + ".html"
        assert html in marked, f"{csv} is in the report only as a download"
        assert marked[html]["category"] == marked[csv]["category"]
        assert marked[html]["subcategory"] == "Tables and figures"
        assert marked[csv]["subcategory"] == "CSV (download)"
    # A table the report shows that has no CSV: the embedding figure's numbers.
    assert "results/tables/arithmetic_embeddings.html" in marked
    assert all(
        marked[p]["subcategory"] == "Tables and figures" for p in marked if p.endswith(".png")
    )
    assert Path(landing.get_path_or_uri(secret_free=True)).name == "workflow.rst"


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/paper.yaml", "configs/quick.yaml"])
def test_landing_page_renders_with_each_config(configfile):
    """As Snakemake renders it (Jinja over the merged config, then docutils), without errors."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    from llmrec.config import validate_config

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if configfile != "config.yaml":
        overlay = yaml.safe_load((REPO / configfile).read_text())
        from snakemake.utils import update_config

        update_config(config, overlay)
    validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")

    class Snakemake:
        pass

    Snakemake.config = config
    text = (REPO / "workflow" / "report" / "workflow.rst").read_text()
    links = "\n\n" + "\n".join(
        f".. _{name}: javascript:app.showCategory('{name}')"
        for name in ("PFR", "POPK", "Arithmetic (P5)", "Multi-behaviour", "Datasets", "Benchmarks")
    )
    rendered = Environment(trim_blocks=True, lstrip_blocks=True).from_string(text + links)
    body = publish_parts(
        rendered.render(snakemake=Snakemake, categories={}, files=[]),
        writer="html",
        settings_overrides={"report_level": 2, "halt_level": 2},  # a warning fails
    )["html_body"]
    for study in ("pfr", "popk", "arithmetic", "mbr"):
        assert ", ".join(config[study]["datasets"]) in body, study
        assert f"docs/{study}.md" in body
    # The merged configuration in full, and where each table's config hash is.
    shown = re.search(r"<summary>The merged configuration.*?<pre>(.*?)</pre>", body, re.S)
    assert json.loads(shown.group(1)) == json.loads(json.dumps(config))
    assert "config_sha256" in body


@pytest.mark.workflow
def test_a_partly_built_folder_is_reported_by_naming_what_exists(tmp_path):
    """The default report needs every table; naming the targets reports what exists."""
    work = tmp_path / "work"
    (work / "results" / "tables").mkdir(parents=True)
    (work / "results" / "tables" / "popk.csv").write_text("dataset,model,popk\nnews,nrms,0\n")
    (work / "results" / "tables" / "popk.html").write_text("<table><tr><td>0.6958</td></tr>")
    for name in ("popk.md",):
        (work / "results" / "tables" / name).write_text("")

    def report(*targets):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--snakefile",
                str(REPO / "Snakefile"),
                "--directory",
                str(work),
                "--configfile",
                str(REPO / "configs" / "quick.yaml"),
                "--report",
                str(work / "report.html"),
                *targets,
            ],
            capture_output=True,
            text=True,
        )

    everything = report()
    assert everything.returncode != 0
    assert re.search(r"marked for report but does not exist", everything.stderr)
    done = report("results/tables/popk.csv")
    assert done.returncode == 0, done.stderr
    page = (work / "report.html").read_text()
    assert "results/tables/popk.html" in page and "results/tables/pfr.html" not in page
    assert "The studies" in page  # the landing page

"""ablate report on the collected fixture study: CSVs, PNGs, report.html/md, flags; Chromium render."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from study_constants import BENCHMARKS

from ablate import stats
from ablate.report import analyse, cli_report, summary
from ablate.results import collect, comparison_pairs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collected(fixture_study, tmp_path_factory):
    return collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"],
                   out=tmp_path_factory.mktemp("tables"))


def test_analyse_covers_every_comparison_and_test(collected):
    tests = analyse(collected, n_resamples=400)
    comps = set(tests["comparison"])
    assert len(comps) == 3
    per_comp = tests[tests["benchmark"] == ""].groupby("comparison")["family"].apply(set)
    for fams in per_comp:
        assert {"prismatic-t", "wilcoxon", "sign", "seeds-t"} <= fams and any(f.startswith("mixedlm") for f in fams)
    # per-example: 2 seeds x 3 benchmarks x 3 methods per comparison, plus the same pooled over both seeds
    ex = tests[tests["benchmark"] != ""]
    pooled = ex[ex["alternate"].astype(str).str.endswith("|alt")]
    assert len(ex) - len(pooled) == 3 * 2 * len(BENCHMARKS) * 3
    assert len(pooled) == 3 * len(BENCHMARKS) * 3
    # explicit scope / axis / level columns: callers select rows without parsing names
    assert (tests["scope"] == "benchmarks").sum() == (tests["benchmark"] == "").sum()
    assert tests.loc[tests["scope"] == "pooled"].index.equals(pooled.index)
    assert (tests["scope"] == "pair").sum() == len(ex) - len(pooled)
    comps = {c["name"]: c["axis"] for c in comparison_pairs(collected)}
    assert (tests["axis"].fillna("-") == tests["comparison"].map(comps).fillna("-")).all()
    for name, level in zip(tests["comparison"], tests["level"], strict=True):
        head, _, rest = name.partition(": ")
        assert level == (rest if head == comps[name] else name), (name, level)
    per_seed_n = ex[~ex.index.isin(pooled.index)].groupby(["comparison", "benchmark", "method"])["n"].sum()
    pooled_n = pooled.set_index(["comparison", "benchmark", "method"])["n"]
    assert (pooled_n == per_seed_n.loc[pooled_n.index]).all()  # pooled = every (seed, example) pair once
    # the Prismatic row equals prismatic_test on the same scores, and carries the paper's p
    comp = next(c for c in comparison_pairs(collected) if c["name"] == "naive_vs_letterbox")
    ps = collected.primary_scores()
    scores = pd.DataFrame({"model": ps["run_key"], "benchmark": ps["benchmark"], "score": ps["value"]})
    ref = stats.prismatic_test(scores, [(a, b) for a, b, _ in comp["pairs"]], sorted(BENCHMARKS))
    row = tests[(tests.comparison == "naive_vs_letterbox") & (tests.method == "prismatic-t")].iloc[0]
    assert row["pvalue"] == pytest.approx(ref.pvalue) and row["paper_p"] == 0.0176
    # Holm within a family: adjusted = statsmodels on that family's raw p-values
    fam = tests[tests["family"] == "bootstrap"]
    np.testing.assert_allclose(fam["p_adj"], stats.adjust(fam["pvalue"].to_numpy(), "holm"))
    # the simulated 12-point loss of resize-crop is found per example
    crop = tests[(tests.comparison == "image: resize-crop vs letterbox") & (tests.family == "mcnemar")]
    assert (crop["effect"] < 0).all() and crop["significant_adj"].sum() >= 3
    # resampled p-values of rows that no resample crosses take the normal tail below the 2/(B+1) floor (with
    # B=400 alone, 2/401 x 54 bootstrap tests, no loss however large could survive Holm): the crop loss survives
    # it under the bootstrap too; every other row keeps its resampled p
    boot = tests[tests.family == "bootstrap"]
    crop_boot = boot[boot.comparison == "image: resize-crop vs letterbox"]
    assert (crop_boot["pvalue"] < 2 / 401).sum() >= 3 and crop_boot["significant_adj"].sum() >= 3
    assert ((boot["pvalue"] < 2 / 401) == (boot["p_tail"] == "normal")).all()


def test_flags_findings_lost_after_correction():
    tests = pd.DataFrame({"comparison": ["a", "b", "c"], "axis": [None] * 3, "family": ["sign"] * 3,
                          "method": ["sign"] * 3, "pvalue": [0.01, 0.02, 0.04], "effect": [1.0] * 3,
                          "ci_low": [0.0] * 3, "ci_high": [2.0] * 3, "benchmark": [""] * 3, "paper_p": [np.nan] * 3})
    tests["p_adj"] = stats.adjust(tests["pvalue"], "holm")  # 0.03, 0.04, 0.04
    tests["significant"] = tests["pvalue"] < 0.05
    tests["significant_adj"] = tests["p_adj"] < 0.05
    tests["lost_after_correction"] = tests["significant"] & ~tests["significant_adj"]
    assert not tests["lost_after_correction"].any()
    tests.loc[2, "pvalue"] = 0.045
    tests["p_adj"] = stats.adjust(tests["pvalue"], "holm")  # 0.03, 0.04, 0.045 -> still all < 0.05
    tests.loc[:, "pvalue"] = [0.02, 0.03, 0.04]  # holm: 0.06, 0.06, 0.06 -> all lost
    tests["p_adj"] = stats.adjust(tests["pvalue"], "holm")
    tests["significant_adj"] = tests["p_adj"] < 0.05
    tests["lost_after_correction"] = tests["significant"] & ~tests["significant_adj"]
    assert summary(tests)["flagged"].tolist() == ["sign", "sign", "sign"]


@pytest.fixture(scope="module")
def report_dir(fixture_study, collected, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    args = argparse.Namespace(study=fixture_study["study"], out=str(out), studies_dir=str(fixture_study["studies_dir"]),
                              correction="fdr_bh")
    assert cli_report(args) == 0
    return out


def test_cli_report_writes_csvs_pngs_html(report_dir):
    out = report_dir
    for name in ("scores_wide.csv", "tests.csv", "summary.csv", "deltas.csv", "report.html", "report.md",
                 "delta_heatmap.png", "forest.png", "bars_image.png", "bars_naive-vs-letterbox.png"):
        assert (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wide = pd.read_csv(out / "scores_wide.csv")
    assert len(wide) == 6 and set(BENCHMARKS) <= set(wide.columns)
    tests = pd.read_csv(out / "tests.csv")
    assert set(tests["correction"]) == {"fdr_bh"} and tests["p_adj"].notna().all()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "0.0176" in html
    assert "src=\"delta" not in html  # self-contained: no file references
    md = (out / "report.md").read_text()
    assert "![forest](forest.png)" in md and "naive_vs_letterbox" in md


@pytest.mark.skipif(shutil.which("chromium") is None and not (os.geteuid() == 0 and shutil.which("apt-get")),
                    reason="Debian chromium is not installed and cannot be (not root, or no apt-get)")
def test_render_report_script_makes_png(report_dir, tmp_path):
    png = tmp_path / "report.png"
    subprocess.run([str(REPO / "scripts" / "render_report.sh"), str(report_dir / "report.html"), str(png), "1200",
                    "2400"],
                   check=True, timeout=120)
    from PIL import Image

    img = Image.open(png)
    assert img.size == (1200, 2400)
    pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 10  # not a blank page: text, tables and plots rendered


def test_write_report_returns_the_tests_table_it_wrote(collected, tmp_path):
    from ablate.report import write_report

    report = write_report(collected, tmp_path / "r", n_resamples=200)
    written = pd.read_csv(report.paths["tests"], keep_default_na=False)
    assert list(written.columns) == list(report.tests.columns)
    assert {"scope", "axis", "level"} <= set(report.tests.columns)
    assert written["scope"].tolist() == report.tests["scope"].tolist()
    assert np.allclose(written["p_adj"].astype(float), report.tests["p_adj"].astype(float), equal_nan=True)

"""``ablate report`` on a study where one run lacks a benchmark's examples (docs/reliability.md): everything
that can be tested is, with the same numbers as on the complete study, and what was left out is listed with
the reason (omitted.csv, report.md/html, the command's output); nothing on disk is changed."""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ablate.report import analyse, cli_report
from ablate.results import collect


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_report_with_a_missing_benchmark_reports_the_rest_and_lists_what_was_left_out(
        fixture_study, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(fixture_study["runs_dir"], runs)
    lacking = fixture_study["points"][0].run_key  # the baseline, seed 7: in every comparison
    (runs / lacking / "examples" / "pope.jsonl").unlink()
    before = _digest(runs)
    full = analyse(collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=tmp_path / "t0"),
                   n_resamples=200)
    results = collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], runs_dir=runs,
                      tracking_uri=fixture_study["uri"], out=tmp_path / "tables")
    omitted: list[dict[str, str]] = []
    tests = analyse(results, n_resamples=200, omitted=omitted)
    why = f"run(s) {lacking} have no examples on pope (runs/<run_key>/examples/pope.jsonl missing or empty)"
    assert {(o["benchmark"], o["why"]) for o in omitted} == {("pope", why)}
    assert len(omitted) == 3 + 3  # pooled, and the seed-7 pair, of each of the 3 comparisons
    # every test on the other benchmarks is the same as on the complete study
    cols = ["comparison", "benchmark", "method", "alternate", "base"]
    key = lambda f: f[f["benchmark"].isin(["gqa", "vsr"])].set_index(cols)["pvalue"].sort_index()  # noqa: E731
    pd.testing.assert_series_equal(key(tests), key(full))
    assert not ((tests["benchmark"] == "pope") & tests["alternate"].astype(str).eq(lacking)).any()
    assert (tests["benchmark"] == "pope").any()  # the seed-8 pairs are still tested on pope

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report"
    assert cli_report(argparse.Namespace(study=str(tmp_path / "tables"), out=str(out), studies_dir="studies",
                                         correction="holm")) == 0
    printed = capsys.readouterr().out.splitlines()
    left = [line for line in printed if line.startswith("left out: ")]
    assert len(left) == 6 and all(line.endswith(why) for line in left)
    assert f"naive_vs_letterbox — per-example (pooled) on pope: {why}" in (out / "report.md").read_text()
    assert len(pd.read_csv(out / "omitted.csv")) == 6 and "<h2>Left out</h2><ul><li>" in (out / "report.html").read_text()
    assert _digest(runs) == before


def test_report_with_a_missing_benchmark_score_tests_the_other_benchmarks(fixture_study, tmp_path: Path) -> None:
    import json

    runs = tmp_path / "runs"
    shutil.copytree(fixture_study["runs_dir"], runs)
    lacking = fixture_study["points"][0].run_key
    res_file = runs / lacking / "results.json"
    res = json.loads(res_file.read_text())
    del res["scores"]["pope"]
    res_file.write_text(json.dumps(res))
    before = _digest(runs)
    results = collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], runs_dir=runs,
                      tracking_uri=fixture_study["uri"], out=tmp_path / "tables")
    omitted: list[dict[str, str]] = []
    tests = analyse(results, n_resamples=200, omitted=omitted)
    across = [o for o in omitted if o["test"] == "across benchmarks"]
    assert len(across) == 3 and {o["why"] for o in across} == {f"run(s) {lacking} have no pope score (results.json)"}
    prismatic = tests[tests["method"] == "prismatic-t"]
    assert len(prismatic) == 3 and (prismatic["n"] > 0).all()  # every comparison still tested on gqa + vsr
    assert _digest(runs) == before

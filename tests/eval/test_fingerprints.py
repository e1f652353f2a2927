"""Benchmark fingerprints on POPE's two upstream versions, and collect/report refusing to mix them.

Fixture files: the first 24 lines of each ``output/coco/coco_pope_*.json`` of RUCAIBox/POPE as shipped at
commit e3e39262c85a (the 8,910-question release LLaVA's docs/Evaluation.md and Prismatic pin) and at head
3df3ba1b110e (9,000 questions; the random split was redrawn, so ids 2, 4, ... ask about other objects).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from finished_runs import two_point_study, write_pope_run, write_study

from ablate.cli import main
from ablate.eval.benchmarks import get_benchmark
from ablate.eval.fingerprint import fingerprint

FIXTURES = Path(__file__).parent.parent / "fixtures" / "pope"
PINNED, HEAD = "e3e3926", "head"

STUDY_YAML = two_point_study("pope-versions", "two points evaluated on different POPE releases")


def pope_root(tmp: Path, version: str) -> Path:
    root = tmp / f"eval-{version}"
    shutil.copytree(FIXTURES / version, root / "pope" / "coco")
    return root


def test_fingerprint_tells_pope_versions_apart_and_ignores_root_and_order(tmp_path):
    pinned = get_benchmark("pope", pope_root(tmp_path, PINNED))
    head = get_benchmark("pope", pope_root(tmp_path, HEAD))
    ex_pinned, ex_head = pinned.load(), head.load()
    assert [e.example_id for e in ex_pinned] == [e.example_id for e in ex_head]  # same ids, other content
    assert pinned.fingerprint != head.fingerprint
    assert pinned.fingerprint == fingerprint(list(reversed(ex_pinned)))  # file order does not matter
    moved = shutil.copytree(tmp_path / f"eval-{PINNED}", tmp_path / "elsewhere")
    again = get_benchmark("pope", moved)
    again.load(limit=10)  # a subset still records the whole benchmark's fingerprint
    assert again.fingerprint == pinned.fingerprint


@pytest.fixture
def mixed_study(tmp_path):
    studies, study, points, runs = write_study(tmp_path, STUDY_YAML)
    fps = [write_pope_run(runs / p.run_key, p.to_dict(), pope_root(tmp_path / p.run_key, v), [0.6, 0.4])
           for p, v in zip(points, (PINNED, HEAD), strict=True)]
    return studies, study.name, fps, [p.run_key for p in points]


def test_report_and_collect_refuse_runs_on_different_pope_versions(mixed_study, tmp_path, capsys):
    studies, name, fps, keys = mixed_study
    results = json.loads((studies.parent / "runs" / keys[0] / "results.json").read_text())
    assert results["fingerprints"] == {"pope": fps[0]}
    for argv in (["collect", name], ["report", name, "--out", str(tmp_path / "rep")]):
        assert main([*argv, "--studies-dir", str(studies)]) == 2
        err = capsys.readouterr().err
        assert "benchmark pope" in err and fps[0][:12] in err and fps[1][:12] in err
        assert all(k in err for k in keys)
    assert not (tmp_path / "rep").exists()
    assert main(["collect", name, "--studies-dir", str(studies), "--allow-mixed-benchmarks"]) == 0
    tables = studies / name / "tables"
    import pandas as pd

    assert set(pd.read_parquet(tables / "scores.parquet")["fingerprint"]) == set(fps)
    assert set(pd.read_parquet(tables / "examples.parquet")["fingerprint"]) == set(fps)

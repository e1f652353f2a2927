"""Finished POPE runs and study folders written as a real sweep leaves them, for collect/report tests.

Why it exists: the fingerprint and reference-model tests both need a study manifest and finished run folders
(examples, fingerprints, results, DONE) without training; one builder keeps them alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_pope_run(run_dir: Path, point: dict, eval_root: Path, probs: list[float],
                   headline: dict[str, dict[str, float]] | None = None) -> str:
    """A finished run that answered every POPE question with the option probabilities ``probs``; ``headline``
    adds other benchmarks' headline scores.  Returns the POPE fingerprint the run recorded."""
    from ablate.eval.benchmarks import get_benchmark
    from ablate.eval.fingerprint import write_fingerprints
    from ablate.rundir import write_results

    bench = get_benchmark("pope", eval_root)
    records = [bench.score(ex, probs) for ex in bench.load()]
    (run_dir / "examples").mkdir(parents=True)
    (run_dir / "point.json").write_text(json.dumps(point))
    (run_dir / "examples" / "pope.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
    write_fingerprints(run_dir, {"pope": bench.fingerprint})
    write_results(run_dir, point["run_key"], {"pope": bench.aggregate(records), **(headline or {})}, {})
    (run_dir / "DONE").write_text("")
    return bench.fingerprint


def write_study(tmp_path: Path, study_yaml: str) -> tuple[Path, Any, list[Any], Path]:
    """The study's manifest under ``tmp_path/studies`` (runs under ``tmp_path/runs``, an unused SQLite store):
    returns (studies dir, study spec, design points, runs dir)."""
    from ablate.design import expand, load_study, manifest

    (tmp_path / "s.yaml").write_text(study_yaml)
    spec = load_study(tmp_path / "s.yaml")
    points = expand(spec)
    man = manifest(spec, points)
    runs = tmp_path / "runs"
    man.update({"runs_dir": str(runs), "tracking_uri": f"sqlite:///{tmp_path / 'none.db'}", "jobs": {}})
    studies = tmp_path / "studies"
    (studies / spec.name).mkdir(parents=True)
    (studies / spec.name / "manifest.json").write_text(json.dumps(man))
    return studies, spec, points, runs


def two_point_study(name: str, description: str) -> str:
    """A study of two tiny design points (letterbox vs resize-naive, one seed) and their one comparison."""
    return f"""\
study: {name}
description: {description}
mode: one-at-a-time
baseline: {{vision: tiny-clip, llm: tiny-llama, train: tiny, data: shapes, eval: shapes, image: letterbox}}
axes:
  image: [letterbox, resize-naive]
seeds: [7]
comparisons:
  naive_vs_letterbox:
    pairs: [["image=resize-naive", "baseline"]]
"""

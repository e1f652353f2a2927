"""A small real study on disk for the analysis tests: manifest, run folders, and a SQLite MLflow store.

The study is a one-at-a-time sweep of the image-processing axis over tiny configs (3 points x 2 seeds) plus
one Prismatic-style named comparison with a paper p-value. Per-example outcomes are simulated with known
effects: resize-crop loses ~18 points of accuracy, resize-naive ~2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from study_constants import ACCURACY, BENCHMARKS  # noqa: E402

STUDY_YAML = """\
study: fixture-image
description: image processing one at a time (analysis test fixture)
mode: one-at-a-time
baseline: {vision: tiny-clip, llm: tiny-llama, train: tiny, data: shapes, eval: shapes, image: letterbox}
axes:
  image: [letterbox, resize-naive, resize-crop]
seeds: [7, 8]
comparisons:
  naive_vs_letterbox:
    pairs: [["image=resize-naive", "baseline"]]
    paper_p: 0.0176
"""


def _write_run(run_dir: Path, point: dict, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    (run_dir / "examples").mkdir(parents=True)
    (run_dir / "point.json").write_text(json.dumps({**point, "studies": ["fixture-image"]}))
    acc = ACCURACY[point["axes"]["image"]]
    scores, n = {}, {}
    for bench, size in BENCHMARKS.items():
        # shared per-example difficulty so runs are positively correlated, as real paired outputs are
        difficulty = np.random.default_rng(len(bench)).uniform(-0.45, 0.45, size)
        correct = rng.uniform(size=size) < np.clip(acc + difficulty, 0, 1)
        with (run_dir / "examples" / f"{bench}.jsonl").open("w") as fh:
            for i, ok in enumerate(correct):
                fh.write(json.dumps({"example_id": f"{bench}-{i:04d}", "score": float(ok), "correct": bool(ok),
                                     "prediction": "yes" if ok else "no", "parsed": "yes" if ok else "no",
                                     "parse_ok": True, "answer": "yes"}) + "\n")
        scores[bench] = {"accuracy": float(correct.mean()), "parse_rate": 1.0}
        n[bench] = size
    (run_dir / "results.json").write_text(json.dumps({"run_key": point["run_key"], "scores": scores, "n": n,
                                                      "timings": {"train_s": 12.5, "eval_s": 3.0},
                                                      "data_stats": {}}))
    (run_dir / "DONE").write_text("")
    return scores


@pytest.fixture(scope="session")
def fixture_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build the study once per session; returns paths (root, studies_dir, runs_dir, uri, study name)."""
    from mlflow.tracking import MlflowClient

    from ablate.design import expand, load_study, manifest

    root = tmp_path_factory.mktemp("study")
    (root / "fixture-image.yaml").write_text(STUDY_YAML)
    study = load_study(root / "fixture-image.yaml")
    points = expand(study)
    runs_dir = root / "runs"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    man = manifest(study, points)
    man.update({"runs_dir": str(runs_dir), "tracking_uri": uri, "jobs": {}})
    studies_dir = root / "studies"
    (studies_dir / study.name).mkdir(parents=True)
    (studies_dir / study.name / "manifest.json").write_text(json.dumps(man, indent=1))

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(study.name, artifact_location=str(root / "artifacts"))
    rng = np.random.default_rng(0)
    for p in points:
        d = p.to_dict()
        scores = _write_run(runs_dir / p.run_key, d, rng)
        run = client.create_run(exp, run_name=p.name, tags={
            "ablate.run_key": p.run_key, "ablate.design_key": p.design_key, "ablate.study": study.name,
            "ablate.point": p.name, "ablate.code_version": "test"})
        rid = run.info.run_id
        for axis, level in p.axes.items():
            client.log_param(rid, f"axis.{axis}", level)
        client.log_param(rid, "cfg.train.seed", str(p.seed))
        client.log_param(rid, "cfg.train.lr_scale", "0.5")
        client.log_param(rid, "cfg.eval.use_ocr", "False")
        for bench, metrics in scores.items():
            for metric, value in metrics.items():
                client.log_metric(rid, f"eval/{bench}/{metric}", value)
        client.set_terminated(rid, "FINISHED")
    return {"root": root, "studies_dir": studies_dir, "runs_dir": runs_dir, "uri": uri, "study": study.name,
            "points": points}

"""``ablate sweep`` runs the benchmark loaders on every point's eval root before submitting anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ablate.cli import main

POPE = Path(__file__).parent.parent / "fixtures" / "pope" / "e3e3926"
TINY = {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
        "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"}


def test_sweep_refuses_a_study_whose_eval_root_lacks_a_benchmark_file(tmp_path, monkeypatch, capsys):
    root = tmp_path / "eval"
    shutil.copytree(POPE, root / "pope" / "coco")
    (root / "pope" / "coco" / "coco_pope_popular.json").unlink()
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"study": "preflight", "mode": "points", "seeds": [7], "baseline": TINY,
                                     "points": {"base": {}}, "overrides": [f"eval.root={root}",
                                                                           "eval.benchmarks=[pope]"]}))
    monkeypatch.chdir(tmp_path)
    submitted = []
    monkeypatch.setattr("ablate.launch.submit_study", lambda *a, **k: submitted.append(a))
    assert main(["sweep", str(study), "--launcher", "debug"]) == 2
    err = capsys.readouterr().err
    assert f"error: pope: {root / 'pope/coco/coco_pope_popular.json'}: file not found" in err
    assert "nothing submitted" in err and submitted == [] and not (tmp_path / "studies").exists()

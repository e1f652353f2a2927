"""``ablate sweep`` runs ``ablate data check``'s scoped check (benchmark loaders, training files) on every point
before submitting anything: nothing is submitted on error, one line per problem naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from PIL import Image

from ablate.cli import main
from ablate.design import expand, load_study
from ablate.eval.preflight import check_points

POPE = Path(__file__).parent.parent / "fixtures" / "pope" / "e3e3926"
TINY = {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
        "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"}


def _study(tmp_path: Path, *overrides: str) -> Path:
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"study": "preflight", "mode": "points", "seeds": [7], "baseline": TINY,
                                     "points": {"base": {}}, "overrides": list(overrides)}))
    return study


def _pope_root(tmp_path: Path) -> Path:
    root = tmp_path / "eval"
    shutil.copytree(POPE, root / "pope" / "coco")
    (root / "pope" / "val2014").mkdir()
    for split in ("adversarial", "popular", "random"):
        for line in (root / "pope" / "coco" / f"coco_pope_{split}.json").read_text().splitlines():
            Image.new("RGB", (8, 6)).save(root / "pope" / "val2014" / json.loads(line)["image"], "JPEG")
    return root


def test_sweep_refuses_a_study_whose_eval_root_lacks_a_benchmark_file(tmp_path, monkeypatch, capsys):
    root = _pope_root(tmp_path)
    study = _study(tmp_path, f"eval.root={root}", "eval.benchmarks=[pope]")
    points = expand(load_study(study))
    assert check_points(points) == ([], ["data/shapes: data root does not exist yet; training files not "
                                         "checked before submit"])  # the complete eval root passes
    assert main(["data", "check", "--study", str(study)]) == 0  # the same scope as the sweep's check
    assert "warning: data/shapes: data root does not exist yet" in capsys.readouterr().out
    (root / "pope" / "coco" / "coco_pope_popular.json").unlink()
    assert main(["data", "check", "--study", str(study)]) == 1
    assert f"1 problem(s):\n  {root / 'pope/coco/coco_pope_popular.json'}: file not found" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    # the real local executor: had anything been submitted, studies/ (manifest, job folders) and runs/ would exist
    assert main(["sweep", str(study), "--launcher", "local"]) == 2
    err = capsys.readouterr().err
    assert f"error: {root / 'pope/coco/coco_pope_popular.json'}: file not found" in err
    assert err.count("error: ") == 2 and "1 data or benchmark file problem(s); nothing submitted" in err
    assert not (tmp_path / "studies").exists() and not (tmp_path / "runs").exists()


def test_sweep_names_a_missing_image_and_a_missing_training_file(tmp_path, monkeypatch, capsys):
    root = _pope_root(tmp_path)
    gone = sorted((root / "pope" / "val2014").iterdir())[0]
    gone.unlink()
    data = tmp_path / "data"
    data.mkdir()
    study = _study(tmp_path, f"eval.root={root}", "eval.benchmarks=[pope]", f"data.root={data}",
                   "data.synthetic=null")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(study), "--launcher", "local"]) == 2
    err = capsys.readouterr().err
    assert f"error: {data / 'align.json'}: missing (data mix 'shapes': shapes-align.json)" in err
    assert f"error: {data / 'instruct.json'}: missing (data mix 'shapes': shapes-instruct.json)" in err
    assert f"error: {data / 'images'}: missing (data mix 'shapes': shapes-align.images)" in err
    n = len(list((root / "pope/val2014").iterdir())) + 1
    assert f"error: {root / 'pope/coco/coco_pope_adversarial.json'}: pope: 1 of {n} images missing, e.g. " \
           f"{gone}" in err
    assert "5 data or benchmark file problem(s); nothing submitted" in err  # one line per problem
    assert not (tmp_path / "studies").exists() and not (tmp_path / "runs").exists()

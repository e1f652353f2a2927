"""Bad study values are named in one line at dry run (docs/reliability.md): what, where, what was expected;
the study file is untouched and nothing is written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from ablate.cli import main

TINY = {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
        "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"}


def _study(path: Path, **fields) -> Path:
    body = {"study": "bad", "mode": "points", "seeds": [7], "baseline": TINY, "points": {"base": {}}, **fields}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _dry_run(capsys: pytest.CaptureFixture, path: Path, *overrides: str) -> list[str]:
    before = path.read_bytes()
    assert main(["sweep", str(path), "--dry-run", *overrides]) == 2
    assert path.read_bytes() == before
    assert not (path.parent / "studies").exists() and not (path.parent / "runs").exists()
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("seeds, message", [
    ([7, 7], "seeds: duplicate seed 7 in [7, 7]; expected distinct integers"),
    ([7, "eight"], "seeds: invalid value 'eight' in [7, 'eight']; expected distinct integers"),
    ([7, 1.5], "seeds: invalid value 1.5 in [7, 1.5]; expected distinct integers"),
    ([True], "seeds: invalid value True in [True]; expected distinct integers"),
    ([], "seeds: invalid value []; expected a non-empty list of distinct integers"),
    (7, "seeds: invalid value 7; expected a non-empty list of distinct integers"),
])
def test_bad_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, seeds,
                   message: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = _study(tmp_path / "s.yaml", seeds=seeds)
    assert _dry_run(capsys, path) == [f"error: {path}: {message}"]


@pytest.mark.parametrize("override, message", [
    ("train.max_steps=-5", "train.max_steps: invalid value -5; expected >= 1, or null (no cap)"),
    ("train.max_steps=0", "train.max_steps: invalid value 0; expected >= 1, or null (no cap)"),
    ("train.finetune.per_device_batch=0", "train.finetune.per_device_batch: invalid value 0; expected >= 1"),
    ("train.finetune.warmup_ratio=1.5", "train.finetune.warmup_ratio: invalid value 1.5; expected in [0, 1)"),
    ("train.finetune.epochs=-1", "train.finetune.epochs: invalid value -1.0; expected > 0, or null (= train.epochs)"),
    ("eval.limit=0", "eval.limit: invalid value 0; expected >= 1, or null (every example)"),
    ("runtime.checkpoint_every=0", "runtime.checkpoint_every: invalid value 0; expected >= 1"),
    ("runtime.keep_last=-1", "runtime.keep_last: invalid value -1; expected >= 1"),
])
def test_bad_values_fail_the_dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                     override: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = _study(tmp_path / "s.yaml", overrides=[override])
    assert _dry_run(capsys, path) == [f"error: {path}: point 'base' (seed 7): {message}"]
    assert _dry_run(capsys, _study(tmp_path / "t.yaml"), override) == [
        f"error: {tmp_path / 't.yaml'}: point 'base' (seed 7): {message}"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "two words", "x\ny"])
def test_study_name_is_a_folder_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                     name: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = _study(tmp_path / "s.yaml", study=name)
    assert _dry_run(capsys, path) == [
        f"error: {path}: study: invalid value {name!r}; expected a name of letters, digits, '.', '_', '-' "
        "(it names the folder studies/<study>/)"]


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text("study: bad\nseeds: [7, 8\nmode: points\n")
    assert _dry_run(capsys, path) == [f"error: {path}: line 3 column 5: not valid YAML (expected ',' or ']', "
                                      "but got ':')"]
    path.write_text("study: bad\n  mode: points\n")
    assert _dry_run(capsys, path) == [f"error: {path}: line 2 column 7: not valid YAML (mapping values are not "
                                      "allowed here)"]


def test_malformed_training_json_is_one_line_before_start_up(world_copy: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    instruct = world_copy / "instruct.json"
    instruct.write_text(instruct.read_text()[:-200] + ',,]')
    before = hashlib.sha256(instruct.read_bytes()).hexdigest()
    overrides = [f"{k}={v}" for k, v in TINY.items()] + [f"data.root={world_copy}", "runtime.runs_dir=runs",
                                                         f"tracking.uri=sqlite:///{tmp_path / 'ml.db'}"]
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {instruct}: malformed JSON at line 1 column ")
    assert not Path("runs").exists() and not (tmp_path / "ml.db").exists()  # nothing started, nothing written
    assert hashlib.sha256(instruct.read_bytes()).hexdigest() == before


@pytest.fixture
def world_copy(tmp_path: Path) -> Path:
    from ablate.shapes.world import write_world

    root = tmp_path / "world"
    write_world(root, 8, 0)
    json.loads((root / "instruct.json").read_text())
    return root


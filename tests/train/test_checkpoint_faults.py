"""A damaged checkpoint never stops a resume (docs/reliability.md): every file's size and SHA-256 are in the
checkpoint's manifest at save, checked at load; a truncated latest checkpoint is skipped (logged: which, and
why), set aside, and the run resumes from the newest intact one to the same final weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_toys import crashing_data, toy_cfg, toy_data, toy_model

from ablate.train import checkpoint
from ablate.train.loop import train


def _save_three(root: Path) -> list[Path]:
    model = toy_model(None)
    return [checkpoint.save(root, s, model=model, optimizer=None, scheduler=None, meta={"s": s}, keep_last=3)
            for s in (1, 2, 3)]


def test_manifest_holds_size_and_sha256_of_every_file(tmp_path: Path) -> None:
    import hashlib

    path = _save_three(tmp_path)[-1]
    files = json.loads((path / "manifest.json").read_text())["files"]
    assert sorted(files) == ["model.safetensors", "rng.safetensors", "state.json"]
    for name, info in files.items():
        data = (path / name).read_bytes()
        assert info == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_truncated_latest_is_skipped_named_and_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    step1, step2, step3 = _save_three(tmp_path)
    size = (step3 / "model.safetensors").stat().st_size
    with open(step3 / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    kept = {p.name: p.read_bytes() for p in step3.iterdir()}
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(step3, model=toy_model(None))
    assert str(err.value) == (f"{step3 / 'model.safetensors'}: 1000 bytes; expected {size} (manifest): "
                              "truncated or altered")
    with caplog.at_level(logging.WARNING, logger="ablate.train.checkpoint"):
        assert checkpoint.latest(tmp_path) == step2
    assert [r.getMessage() for r in caplog.records] == [
        f"skipping checkpoint {step3}: {err.value}; trying the previous one"]
    aside = next(tmp_path.glob(".step-3.corrupt-*"))  # nothing deleted: kept for inspection
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == kept
    assert checkpoint.step_dirs(tmp_path) == [step1, step2]
    assert checkpoint.load(step2, model=toy_model(None)) == {"s": 2}


def test_altered_bytes_of_the_same_size_are_caught_by_the_hash(tmp_path: Path) -> None:
    path = _save_three(tmp_path)[-1]
    data = bytearray((path / "rng.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "rng.safetensors").write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match=r"rng\.safetensors: SHA-256 differs from the manifest"):
        checkpoint.verify(path)


def test_resume_from_a_truncated_latest_checkpoint_falls_back_and_ends_identical(tmp_path: Path) -> None:
    cfg = toy_cfg()
    train(cfg, tmp_path / "full", build_model=toy_model, build_data=toy_data)
    crashing = crashing_data()  # inside finetune step 5, after the step-11 checkpoint

    run = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, run, build_model=toy_model, build_data=crashing)
    newest, previous = reversed(checkpoint.step_dirs(run / "checkpoints"))
    with open(newest / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    train(cfg, run, build_model=toy_model, build_data=toy_data)
    full, resumed = (load_file(str(d / "model" / "model.safetensors")) for d in (tmp_path / "full", run))
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    assert next((run / "checkpoints").glob(f".{newest.name}.corrupt-*")).is_dir()

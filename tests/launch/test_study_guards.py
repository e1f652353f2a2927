"""A finished study's manifest is never overwritten by a different design, and a command-line override of an
axis the study already varies is refused (it would relabel the points) -- docs/reliability.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablate.cli import main

TINY = {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
        "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"}


@pytest.fixture
def finished(workspace: Path, capsys: pytest.CaptureFixture) -> tuple[Path, Path, bytes]:
    """A grid study over the image axis, run to the end with the stand-in body (debug launcher)."""
    study = workspace / "img.yaml"
    study.write_text(yaml.safe_dump({"study": "img", "mode": "grid", "seeds": [7], "baseline": TINY,
                                     "axes": {"image": ["letterbox", "resize-naive"]}}))
    assert main(["sweep", str(study), "--launcher", "debug", "train.max_steps=2"]) == 0
    capsys.readouterr()
    manifest = workspace / "studies" / "img" / "manifest.json"
    return study, manifest, manifest.read_bytes()


def _runs(workspace: Path) -> dict[str, bytes]:
    return {str(p.relative_to(workspace)): p.read_bytes() for p in (workspace / "runs").rglob("*")
            if p.is_file() and "mlflow" not in p.name}


@pytest.mark.parametrize("override", ["image=letterbox,resize-naive", "image=resize-crop"])
def test_reoverriding_a_study_axis_is_refused(finished: tuple[Path, Path, bytes], workspace: Path,
                                              capsys: pytest.CaptureFixture, override: str) -> None:
    study, manifest, before = finished
    runs = _runs(workspace)
    for args in (["--dry-run"], ["--launcher", "debug"]):
        assert main(["sweep", str(study), *args, "train.max_steps=2", override]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: command line: {override}: invalid override; 'image' is already varied by study "
                       f"'img' ({study}); expected a key the study does not vary (change the study's axes instead)"]
    assert manifest.read_bytes() == before and _runs(workspace) == runs


def test_a_different_design_never_overwrites_the_manifest(finished: tuple[Path, Path, bytes], workspace: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    study, manifest, before = finished
    runs = _runs(workspace)
    assert main(["sweep", str(study), "--launcher", "debug", "train.max_steps=3"]) == 2  # other run keys
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: studies/img/manifest.json: study 'img' was submitted with a different design (2 point(s) "
                             "added (e.g. 'image=letterbox' ")
    assert err[0].endswith(f"2 removed (e.g. 'image=letterbox' {yaml.safe_load(before)['points'][0]['run_key']}));"
                           f" expected the same points and comparisons (rename the study in {study} for a new "
                           "design); nothing was submitted or overwritten")
    assert manifest.read_bytes() == before and _runs(workspace) == runs
    assert not (workspace / "studies" / "img" / "logs" / "submission-001").exists()
    # the same design re-sweeps as before: nothing to do, manifest extended with one more submission
    assert main(["sweep", str(study), "--launcher", "debug", "train.max_steps=2"]) == 0
    assert "0 jobs submitted, 2 runs done" in capsys.readouterr().out

"""The `ablate` console script: dry runs, one-line errors, and lazy imports (no torch for --help)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ABLATE = [sys.executable, "-m", "ablate.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ABLATE, *args], capture_output=True, text=True, cwd=ROOT)


def test_dry_run_lists_points_and_count() -> None:
    out = run("sweep", "sweeps/demo.yaml", "--dry-run")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    study = yaml.safe_load((ROOT / "sweeps" / "demo.yaml").read_text())
    points = 1 + sum(len(str(levels).split(",")) - 1 for levels in study["axes"].values())  # one at a time
    n = points * len(study["seeds"])
    assert n == 18 and lines[-1] == f"{n} design points, {n} unique runs"
    assert sum(1 for ln in lines if ln.startswith(("baseline", *(f"{axis}=" for axis in study["axes"])))) == 0
    assert sum(1 for ln in lines if " baseline " in ln) == 2  # two seeds


def test_dry_run_of_a_folder_dedups_models_across_studies() -> None:
    out = run("sweep", "sweeps/prismatic", "--dry-run")
    assert out.returncode == 0, out.stderr
    total, unique = (int(w) for w in out.stdout.splitlines()[-1].split() if w.isdigit())
    assert total > unique  # one-stage+7b etc. appear in several studies with one run_key
    assert out.stdout.count("one-stage+7b ") >= 3


def test_bad_axis_value_is_one_line_naming_key_value_allowed() -> None:
    out = run("sweep", "sweeps/demo.yaml", "--dry-run", "vision=not-a-backbone")
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1
    assert "vision: invalid value 'not-a-backbone'; allowed: " in err[0] and "tiny-clip" in err[0]


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "sweeps/demo.yaml", "--dry-run"]])
def test_help_and_dry_run_do_not_import_torch(argv: list[str]) -> None:
    code = (f"import sys; from ablate.cli import main\ntry: main({argv!r})\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


@pytest.mark.parametrize("sub", ["demo", "sweep", "status", "collect", "report", "train", "eval", "data"])
def test_every_subcommand_has_help(sub: str) -> None:
    out = run(sub, "--help")
    assert out.returncode == 0 and "usage: ablate " + sub in out.stdout

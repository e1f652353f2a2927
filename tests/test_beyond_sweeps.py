"""The studies beyond Prismatic (sweeps/beyond/): the dry run lists every level around Prismatic's baseline,
which keeps the run key Prismatic's own study gives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(path: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "ablate.cli", "sweep", path, "--dry-run"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def _keys(lines: list[str]) -> dict[str, str]:
    return {ln.split()[2]: ln.split()[0] for ln in lines if len(ln.split()) > 2 and ln.split()[1].isdigit()}


def test_beyond_dry_run_lists_every_level_around_the_prismatic_baseline() -> None:
    lines = _dry_run("sweeps/beyond/positions.yaml")
    study = yaml.safe_load((ROOT / "sweeps" / "beyond" / "positions.yaml").read_text())
    levels = study["axes"]["llm.image_positions"].split(",")
    assert levels == ["1d", "m-rope", "mrope-interleave", "rope-tie", "rope-tv"]
    keys = _keys(lines)
    assert set(keys) == {"baseline", *(f"llm.image_positions={lv}" for lv in levels[1:])}
    assert lines[-1] == "5 design points, 5 unique runs"
    prismatic = _keys(_dry_run("sweeps/prismatic/4.1-optimization.yaml"))
    assert keys["baseline"] == prismatic["one-stage+7b"]  # the same model as Prismatic's study: one run
    from ablate.design import DesignPoint

    old_id = DesignPoint.build("x", [f"{k}={v}" for k, v in study["baseline"].items() if k != "llm.image_positions"]
                               + ["llm.image_positions=rope-2d"], 7)
    assert keys["llm.image_positions=m-rope"] == old_id.run_key  # the old ID and the new one: one run


def test_beyond_bridges_and_the_folder_dry_run() -> None:
    keys = _keys(_dry_run("sweeps/beyond/bridges.yaml"))
    assert set(keys) == {"baseline", "projector=perceiver", "projector=qformer", "projector=gated-xattn"}
    prismatic = _keys(_dry_run("sweeps/prismatic/4.1-optimization.yaml"))
    assert keys["baseline"] == prismatic["one-stage+7b"]
    lines = _dry_run("sweeps/beyond")
    assert lines[-1] == "9 design points, 8 unique runs"  # both studies share the baseline

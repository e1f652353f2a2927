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


def test_beyond_resolution_shares_prismatics_fixed_resolution_runs() -> None:
    keys = _keys(_dry_run("sweeps/beyond/resolution.yaml"))
    assert set(keys) == {"one-stage+7b", "clip-224px+7b", "anyres-336px+7b", "anyres-224px+7b"}
    prismatic = _keys(_dry_run("sweeps/prismatic/4.2-image-and-visual-representation.yaml"))
    assert keys["one-stage+7b"] == prismatic["one-stage+7b"] and keys["clip-224px+7b"] == prismatic["clip-224px+7b"]
    assert len({keys["anyres-336px+7b"], keys["anyres-224px+7b"], keys["one-stage+7b"]}) == 3


def test_the_folder_dry_run_lists_every_point_of_every_beyond_study() -> None:
    lines = _dry_run("sweeps/beyond")
    names = {ln.split()[2] for ln in lines if len(ln.split()) > 2 and ln.split()[1].isdigit()}
    assert names == {"baseline", "one-stage+7b", "clip-224px+7b", "anyres-336px+7b", "anyres-224px+7b",
                     "projector=perceiver", "projector=qformer", "projector=gated-xattn",
                     *(f"llm.image_positions={lv}" for lv in ("m-rope", "mrope-interleave", "rope-tie", "rope-tv"))}
    # 5 positions + 4 bridges + 4 resolution points; the three studies share Prismatic's baseline run
    assert lines[-1] == "13 design points, 11 unique runs"


def test_the_cpu_study_beyond_prismatic_lists_its_levels() -> None:
    lines = _dry_run("sweeps/demo-beyond.yaml")
    keys = _keys(lines)
    assert set(keys) == {"baseline", "llm.image_positions=rope-tie", "llm.image_positions=rope-tv",
                         "llm.image_positions=m-rope", "projector=gated-xattn", "image=anyres-small"}
    assert lines[-1] == "12 design points, 12 unique runs"  # 6 points x 2 seeds
    demo = _keys(_dry_run("sweeps/demo.yaml"))
    assert keys["baseline"] == demo["baseline"]  # the demo's own baseline run

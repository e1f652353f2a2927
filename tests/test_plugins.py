"""A plug-in outside the package (tests/plugins/ablate_example_plugin: one module + one YAML) adds a projector
that `ablate list` shows, that validation accepts only with the plug-in loaded, and that trains and evaluates
through the normal `ablate train` / `ablate eval` path.  Each CLI call is its own process, as a user's is."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).resolve().parent / "plugins"
PLUGIN = "plugins=[ablate_example_plugin]"


def ablate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(PLUGINS), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ablate.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)


def test_ablate_list_shows_the_plugins_projector_only_with_the_plugin(tmp_path: Path) -> None:
    listed = ablate("list", "projectors", PLUGIN, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "projectors (projector):"
    assert [line.split()[0] for line in lines[1:]] == ["linear", "mlp", "fused-mlp", "perceiver", "qformer",
                                                       "gated-xattn", "swiglu"]
    assert lines[-1].split() == ["swiglu", "ablate_example_plugin:build_swiglu", "[plug-in", "ablate_example_plugin]"]
    assert "swiglu" not in ablate("list", "projectors", cwd=tmp_path).stdout


def test_plugin_projector_trains_one_step_and_evaluates_through_the_cli(world: Path, tmp_path: Path) -> None:
    overrides = ["projector=swiglu", "vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes",
                 "eval=shapes", f"data.root={world}", f"eval.root={world / 'eval'}", "train.max_steps=1",
                 "train.finetune.global_batch=4", "train.finetune.per_device_batch=4", "runtime.progress=false",
                 f"runtime.runs_dir={tmp_path / 'runs'}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                 f"tracking.artifact_root={tmp_path / 'art'}"]
    refused = ablate("train", *overrides, cwd=tmp_path)  # without the plug-in its option does not exist
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: projector: invalid value 'swiglu'; allowed: ")

    trained = ablate("train", PLUGIN, *overrides, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    losses = [json.loads(line)["loss"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 1 and math.isfinite(losses[0])
    shapes = {k: tuple(v.shape) for k, v in load_file(str(run_dir / "model" / "model.safetensors")).items()
              if k.startswith("projector.")}
    # tiny-clip width 64 -> 2 x 64 gated units -> tiny-llama width 64 (conf/projector/swiglu.yaml: hidden_mult 2)
    assert shapes == {"projector.gate.weight": (128, 64), "projector.up.weight": (128, 64),
                      "projector.down.weight": (64, 128)}
    assert "- ablate_example_plugin" in (run_dir / "config.yaml").read_text()  # the run remembers its plug-ins

    evaluated = ablate("eval", str(run_dir), "--benchmarks", "pope", "--limit", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert len((run_dir / "examples" / "pope.jsonl").read_text().splitlines()) == 2
    assert "pope\tparse_failure_rate\t" in evaluated.stdout


def test_the_core_has_no_branch_on_the_shapes_world() -> None:
    """models/, train/, data/ and eval/ name no tiny, synthetic or shapes piece (comments included): the shapes
    world reaches them only through the registries, as any plug-in does."""
    import re

    pattern = re.compile(r"tiny|synthetic|shapes", re.IGNORECASE)
    hits = [f"{path.relative_to(ROOT)}:{i}" for sub in ("models", "train", "data", "eval")
            for path in sorted((ROOT / "ablate" / sub).rglob("*.py"))
            for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []

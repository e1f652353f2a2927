"""Run identity (DESIGN.md §3) and study expansion over every file in sweeps/."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from prismatic_map import expected_levels

from ablate.config import ConfigError
from ablate.design import compose, design_key, expand, load_study, run_key, study_files

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "prismatic"
STUDIES = study_files(ROOT / "sweeps")


def test_run_key_is_stable_across_processes() -> None:
    code = "from ablate.design import compose, run_key; print(run_key(compose(['vision=siglip-so400m-384'])))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == run_key(compose(["vision=siglip-so400m-384"]))
    assert len(out) == 12 and int(out, 16) >= 0


@pytest.mark.parametrize("science", ["image=resize-crop", "train.finetune.lr=1e-4", "train.epochs=2",
                                     "projector=linear", "llm.image_positions=rope-2d", "eval.limit=100",
                                     "data.cotraining=false", "vision.backbones.0.pretrained=other"])
def test_science_changes_change_the_run_key(science: str) -> None:
    assert run_key(compose([science])) != run_key(compose([]))


@pytest.mark.parametrize("operational", ["data.root=/elsewhere", "eval.root=/mnt/eval", "launcher=slurm",
                                         "tracking.uri=sqlite:///x.db", "runtime.runs_dir=/scratch/runs",
                                         "runtime.log_every=1", "study=other", "eval.batch_size=1",
                                         "llm.path=/models/vicuna", "vision.backbones.0.path=/w/clip.bin"])
def test_paths_tracking_launcher_do_not_change_the_run_key(operational: str) -> None:
    assert run_key(compose([operational])) == run_key(compose([]))


def test_seed_changes_run_key_but_not_design_key() -> None:
    a, b = compose(["train.seed=1"]), compose(["train.seed=2"])
    assert run_key(a) != run_key(b)
    assert design_key(a) == design_key(b)


@pytest.mark.parametrize("path", STUDIES, ids=[str(p.relative_to(ROOT)) for p in STUDIES])
def test_every_study_expands_and_validates(path: Path) -> None:
    study = load_study(path)
    points = expand(study)
    assert points, f"{path} expands to no points"
    keys = [p.run_key for p in points]
    assert len(set(keys)) == len(keys), "two points of one study share a run_key"
    names = {p.name for p in points}
    for comp in study.comparisons:
        for a, b in comp.pairs:
            assert a in names and b in names


def test_one_at_a_time_varies_one_axis_per_point() -> None:
    study = load_study(ROOT / "sweeps" / "demo.yaml")
    points = expand(study)
    base = next(p for p in points if p.name == "baseline")
    n_levels = sum(len(v) - 1 for v in study.axes.values())
    assert len(points) == (1 + n_levels) * len(study.seeds)
    for p in points:
        diff = {k for k in p.axes if p.axes[k] != base.axes[k]}
        assert len(diff) == (0 if p.name == "baseline" else 1)
    assert {c.axis for c in study.comparisons} == set(study.axes)
    assert len({p.seed for p in points}) >= 2


def test_grid_mode_and_hydra_sweep_grammar(tmp_path: Path) -> None:
    f = tmp_path / "grid.yaml"
    f.write_text("study: g\nmode: grid\nseeds: [1]\nbaseline: {vision: tiny-clip, llm: tiny-llama, data: shapes}\n"
                 "axes:\n  image: letterbox,resize-crop\n  train.epochs: range(1,4)\n")
    points = expand(load_study(f))
    assert len(points) == 2 * 3
    assert {p.axes["train.epochs"] for p in points} == {"1", "2", "3"}
    assert {p.axes["image"] for p in points} == {"letterbox", "resize-crop"}


def test_command_line_sweep_adds_an_axis(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("study: s\nmode: points\nseeds: [1]\nbaseline: {vision: tiny-clip, llm: tiny-llama}\npoints: {a: {}}\n")
    points = expand(load_study(f), ["projector=linear,mlp", "train.max_steps=5"])
    assert sorted(p.axes["projector"] for p in points) == ["linear", "mlp"]
    assert all(p.config.train.max_steps == 5 for p in points)


@pytest.mark.parametrize(("text", "message"), [
    ("study: s\nmode: zigzag\n", "mode: invalid value 'zigzag'"),
    ("study: s\nbogus: 1\n", "unknown key 'bogus'"),
    ("study: s\nmode: one-at-a-time\naxes: {image: letterbox,resize-crop}\n", "baseline: missing axis 'image'"),
    ("study: s\nmode: points\npoints: {a: {}}\ncomparisons: {c: {pairs: [[a, nope]]}}\n", "unknown point 'nope'"),
    ("study: s\nmode: points\npoints: {a: {image: squash}}\n", "point 'a' (seed 7): image: invalid value 'squash'"),
    ("study: [unclosed\n", "not valid YAML"),
])
def test_bad_study_files_fail_clearly(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        expand(load_study(f))
    assert message in str(info.value) and str(f) in str(info.value)


@pytest.mark.skipif(not SHARED.exists(), reason=f"{SHARED} (the Prismatic model table) is not beside the repo")
def test_prismatic_studies_cover_every_model_of_the_paper() -> None:
    rows = list(csv.DictReader((SHARED / "models.csv").read_text(encoding="utf-8").splitlines()))
    by_name: dict[str, set[str]] = {}
    levels: dict[str, dict[str, str]] = {}
    for path in study_files(ROOT / "sweeps" / "prismatic"):
        for p in expand(load_study(path)):
            by_name.setdefault(p.name, set()).add(p.run_key)
            levels[p.name] = p.axes
    for row in rows:
        mid = row["model_id"]
        assert mid in by_name, f"{mid} is not a design point of sweeps/prismatic"
        assert len(by_name[mid]) == 1, f"{mid} has several run_keys across studies: {by_name[mid]}"
        want = expected_levels(row)
        got = {k: levels[mid][k] for k in want}
        assert got == want, mid


def test_list_overrides_replace_and_stay_typed() -> None:
    cfg = compose(["data=llava-v15-lvis4v", "data.finetune=[{name:p,json:p.json}]"])
    assert [s.name for s in cfg.data.finetune] == ["p"]
    assert cfg.data.finetune[0].images == "."  # the DataSource default: typed, not a bare dict
    with pytest.raises(ConfigError, match="Key 'bogus' not in 'DataSource'"):
        compose(["data.finetune=[{name:x,json:y,bogus:1}]"])

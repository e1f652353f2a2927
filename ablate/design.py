"""Design points, run identity, and study expansion.

A study file (``sweeps/*.yaml``) names a baseline (Hydra overrides), the axes it varies (Hydra override
grammar or ``hydra.sweeper.params``-style value lists), an expansion mode (``grid`` or ``one-at-a-time``
around the baseline), optional explicitly named points, seeds, and the comparisons its report tests.
``expand`` turns it into ``DesignPoint``s, each with a composed, validated config and its ``run_key``.

Run identity (DESIGN.md §3): ``run_key`` = first 12 hex digits of SHA-256 over the canonical JSON of the
resolved *science* config (everything that can change the trained model or its scores, seed included);
``design_key`` = the same without the seed.  Paths, tracking, launcher, runtime and the study name are not
science.  No torch import here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablate.compose import (  # noqa: F401  (re-exported: callers compose through ablate.design)
    _check_group_values,
    _one_line,
    apply_values,
    compose,
    group_options,
    load_plugin_overrides,
    searchpath_override,
    with_launcher,
)
from ablate.config import AXIS_GROUPS, ConfigError

# Top-level sections that never change a trained model or its scores (a plug-in's components enter the run
# identity through their IDs and config groups).
NON_SCIENCE_SECTIONS = ("study", "plugins", "launcher", "tracking", "runtime")
# Keys that hold filesystem locations wherever they appear (a path is not science).
PATH_KEYS = ("root", "path")
# Keys that change speed but not results.
NON_SCIENCE_KEYS = ("eval.batch_size", "data.max_image_pixels")  # max_image_pixels: a safety limit
SEED_KEY = "train.seed"
STUDY_KEYS = ("study", "description", "baseline", "mode", "axes", "points", "seeds", "comparisons", "overrides")
MODES = ("grid", "one-at-a-time", "points")
# a study name is a folder name (studies/<name>/) and goes into job logs' paths: no separators, no control chars
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)


# ------------------------------------------------------------------------------------------ run identity
def _strip(node: Any, prefix: str = "") -> Any:
    if isinstance(node, Mapping):
        out = {}
        for k, v in node.items():
            dotted = f"{prefix}{k}"
            if k in PATH_KEYS or dotted in NON_SCIENCE_KEYS:
                continue
            out[k] = _strip(v, dotted + ".")
        return out
    if isinstance(node, list | tuple):
        return [_strip(v, prefix) for v in node]
    return node


def science_dict(cfg: Any, *, with_seed: bool = True) -> dict[str, Any]:
    """The part of a resolved config that defines what is trained and how it is scored."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
    sci = {k: v for k, v in plain.items() if k not in NON_SCIENCE_SECTIONS}
    sci = _strip(sci)
    if isinstance(sci.get("recipe"), dict) and sci["recipe"].get("lora") is None:
        sci["recipe"].pop("lora", None)  # recipes without LoRA keep the run keys they had before the key existed
    if isinstance(sci.get("projector"), dict) and sci["projector"].get("xattn_every") is None:
        sci["projector"].pop("xattn_every", None)  # projectors without the bridge keep their run keys
    for key in ("grids", "transform"):  # image levels without tiles keep their run keys
        if isinstance(sci.get("image"), dict) and sci["image"].get(key) is None:
            sci["image"].pop(key, None)
    llm = sci.get("llm")
    if isinstance(llm, dict) and llm.get("image_positions") == "m-rope":
        llm["image_positions"] = "rope-2d"  # M-RoPE's old ID: runs made before the rename keep their key
    if isinstance(sci.get("vision"), dict):  # removed key (branch weights are per-branch paths now): keys stay
        sci["vision"] = {**sci["vision"], "weights_dir": None}
    if not with_seed:
        sci["train"] = {k: v for k, v in sci["train"].items() if k != "seed"}
    return sci


def _digest(obj: Any) -> str:
    canon = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canon.encode()).hexdigest()[:12]


def run_key(cfg: Any) -> str:
    return _digest(science_dict(cfg, with_seed=True))


def design_key(cfg: Any) -> str:
    return _digest(science_dict(cfg, with_seed=False))


def axis_levels(cfg: Any, scalar_axes: Iterable[str] = ()) -> dict[str, str]:
    """Readable axis levels of a config: each axis group's id, plus dotted scalar axes as strings."""
    from omegaconf import OmegaConf

    levels = {g: str(cfg[g].id) for g in AXIS_GROUPS}
    for key in scalar_axes:
        levels[key] = _fmt(OmegaConf.select(cfg, key))
    return levels


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------- design points
@dataclass
class DesignPoint:
    """One configuration of a study: its name, axis levels, seed, overrides, and resolved config."""

    name: str
    axes: dict[str, str]
    seed: int
    overrides: tuple[str, ...]
    config: Any = field(repr=False)
    run_key: str = ""
    design_key: str = ""

    @classmethod
    def build(cls, name: str, overrides: Sequence[str], seed: int, scalar_axes: Iterable[str] = ()) -> DesignPoint:
        ovs = (*overrides, f"{SEED_KEY}={seed}")
        return cls.from_config(compose(ovs), name, ovs, scalar_axes)

    @classmethod
    def from_config(cls, cfg: Any, name: str, overrides: Sequence[str] = (),
                    scalar_axes: Iterable[str] = ()) -> DesignPoint:
        """The point of an already composed, validated config (``ablate train``, the Hydra app, studies)."""
        from omegaconf import OmegaConf

        plain = OmegaConf.to_container(cfg, resolve=True)  # once for both keys
        return cls(name=name, axes=axis_levels(cfg, scalar_axes), seed=int(cfg.train.seed),
                   overrides=tuple(overrides), config=cfg, run_key=run_key(plain), design_key=design_key(plain))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "run_key": self.run_key, "design_key": self.design_key, "seed": self.seed,
                "axes": self.axes, "overrides": list(self.overrides)}


@dataclass
class Comparison:
    """A design decision under test: (alternate, base) pairs of point names (seeds are matched later)."""

    name: str
    pairs: list[tuple[str, str]]
    axis: str | None = None
    paper_p: float | None = None


@dataclass
class Study:
    name: str
    path: Path
    description: str
    baseline: dict[str, str]
    mode: str
    axes: dict[str, list[str]]
    points: dict[str, dict[str, str]]
    seeds: list[int]
    comparisons: list[Comparison]
    overrides: list[str]  # applied to every point (after the baseline, before the point's own)

    @property
    def scalar_axes(self) -> list[str]:
        keys = [*self.baseline, *self.axes, *(k for p in self.points.values() for k in p)]
        return sorted({k for k in keys if "." in k and k != SEED_KEY})


# ---------------------------------------------------------------------------------------- study loading
def _values(key: str, raw: Any, where: str) -> list[str]:
    """Values of one axis: a YAML list, or a Hydra sweep string (`a,b,c`, `range(1,4)`, `choice(a,b)`)."""
    if isinstance(raw, list):
        return [_fmt(v) for v in raw]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (ov,) = OverridesParser.create().parse_overrides([f"{key}={raw}"])
    except Exception as exc:
        raise ConfigError(f"{where}: axis {key!r}: invalid value {raw!r}; {_one_line(exc)}") from None
    if ov.is_sweep_override():
        return [_fmt(v) for v in ov.sweep_string_iterator()]
    return [_fmt(ov.value())]


def load_study(path: str | Path) -> Study:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: study file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or _one_line(exc)
        raise ConfigError(f"{path}:{where} not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(raw) - set(STUDY_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; allowed: {', '.join(STUDY_KEYS)}")
    mode = raw.get("mode", "one-at-a-time")
    if mode not in MODES:
        raise ConfigError(f"{path}: mode: invalid value {mode!r}; allowed: {', '.join(MODES)}")
    hp = (raw.get("hydra") or {}).get("sweeper", {}).get("params", {}) if "hydra" in raw else {}
    axes_raw = {**hp, **(raw.get("axes") or {})}
    axes = {k: _values(k, v, str(path)) for k, v in axes_raw.items()}
    baseline = {k: _fmt(v) for k, v in (raw.get("baseline") or {}).items()}
    points = {str(n): {k: _fmt(v) for k, v in (p or {}).items()} for n, p in (raw.get("points") or {}).items()}
    seeds = _seeds(raw.get("seeds", [7]), path)
    name = raw.get("study", path.stem)
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name):
        raise ConfigError(f"{path}: study: invalid value {name!r}; expected a name of letters, digits, '.', '_', "
                          "'-' (it names the folder studies/<study>/)")
    comps = []
    for name, c in (raw.get("comparisons") or {}).items():
        pairs = [(str(a), str(b)) for a, b in c.get("pairs", [])]
        comps.append(Comparison(name=str(name), pairs=pairs, axis=c.get("axis"), paper_p=c.get("paper_p")))
    study = Study(name=name, path=path, description=str(raw.get("description", "")),
                  baseline=baseline, mode=mode, axes=axes, points=points, seeds=seeds, comparisons=comps,
                  overrides=[str(o) for o in raw.get("overrides", [])])
    if mode == "one-at-a-time":
        study.comparisons += _generated_comparisons(study)
    _check_comparisons(study)
    return study


def _seeds(raw: Any, path: Path) -> list[int]:
    """The study's seeds: a non-empty list of distinct integers (one-line error naming the bad one)."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: seeds: invalid value {raw!r}; expected a non-empty list of distinct integers")
    seen: set[int] = set()
    for s in raw:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ConfigError(f"{path}: seeds: invalid value {s!r} in {raw!r}; expected distinct integers")
        if s in seen:
            raise ConfigError(f"{path}: seeds: duplicate seed {s} in {raw!r}; expected distinct integers")
        seen.add(s)
    return list(raw)


def _oat_name(axis: str, level: str) -> str:
    return f"{axis}={level}"


def _named_overrides(study: Study) -> dict[str, dict[str, str]]:
    """Point name -> axis overrides on top of the baseline, for the study's mode (seeds not included)."""
    named: dict[str, dict[str, str]] = {}
    if study.mode == "one-at-a-time":
        named["baseline"] = {}
        for axis, levels in study.axes.items():
            for level in levels:
                if level != study.baseline.get(axis):
                    named[_oat_name(axis, level)] = {axis: level}
    elif study.mode == "grid" and study.axes:
        keys = list(study.axes)
        for combo in itertools.product(*(study.axes[k] for k in keys)):
            named[",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))] = dict(zip(keys, combo, strict=True))
    named.update(study.points)
    return named


def _generated_comparisons(study: Study) -> list[Comparison]:
    comps = []
    for axis, levels in study.axes.items():
        base_level = study.baseline.get(axis)
        if base_level is None:
            raise ConfigError(f"{study.path}: baseline: missing axis {axis!r}; a one-at-a-time study needs the "
                              f"baseline level of every axis it varies")
        for level in levels:
            if level != base_level:
                comps.append(Comparison(name=f"{axis}: {level} vs {base_level}", axis=axis,
                                        pairs=[(_oat_name(axis, level), "baseline")]))
    return comps


def _check_comparisons(study: Study) -> None:
    names = set(_named_overrides(study))
    for c in study.comparisons:
        for a, b in c.pairs:
            for n in (a, b):
                if n not in names:
                    raise ConfigError(f"{study.path}: comparisons.{c.name}: unknown point {n!r}; "
                                      f"known points: {', '.join(sorted(names))}")


def _split_cli(overrides: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """CLI overrides: plain ones apply to every point; sweep ones (`a=x,y`) add grid axes."""
    plain, sweeps = [], {}
    for ov in overrides:
        key, _, value = ov.partition("=")
        vals = _values(key, value, "command line") if value else [value]
        if len(vals) > 1:
            sweeps[key] = vals
        else:
            plain.append(ov)
    return plain, sweeps


def _check_clash(study: Study, plain: Sequence[str], cli_sweeps: Mapping[str, list[str]]) -> None:
    """A command-line override of a key the study itself varies (an axis, or a named point's key) would
    relabel its points; it is refused (edit the study instead)."""
    _check_group_values([*plain, *(f"{k}={v}" for k, vals in cli_sweeps.items() for v in vals)])  # bad value first
    varied = {*study.axes, *(k for p in study.points.values() for k in p)}
    for ov in [*plain, *(f"{k}={','.join(v)}" for k, v in cli_sweeps.items())]:
        key = ov.lstrip("+~").partition("=")[0]
        if key in varied:
            raise ConfigError(f"command line: {ov}: invalid override; {key!r} is already varied by study "
                              f"{study.name!r} ({study.path}); expected a key the study does not vary "
                              "(change the study's axes instead)")


PROGRESS_FROM = 200  # studies with at least this many points show a progress bar while they expand


def expand(study: Study, overrides: Sequence[str] = (), *, keep_config: bool = True) -> list[DesignPoint]:
    """All design points of a study (every seed), composed and validated; the first error stops it all.

    ``keep_config=False`` (dry runs) drops each point's composed config once its keys are known, so a
    5,000-point grid does not hold 5,000 configs."""
    plain, cli_sweeps = _split_cli(overrides)
    _check_clash(study, plain, cli_sweeps)
    base = [f"{k}={v}" for k, v in study.baseline.items()] + study.overrides + plain
    named = _named_overrides(study)
    if cli_sweeps:
        keys = list(cli_sweeps)
        named = {(f"{n}," if n else "") + ",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True)):
                 {**ovs, **dict(zip(keys, combo, strict=True))}
                 for n, ovs in named.items() for combo in itertools.product(*(cli_sweeps[k] for k in keys))}
    scalar = sorted({*study.scalar_axes, *(k for k in cli_sweeps if "." in k)})
    points = []
    total = len(named) * len(study.seeds)
    from tqdm import tqdm

    with tqdm(total=total, desc=f"expand {study.name}", unit="point", file=sys.stderr, mininterval=1.0,
              disable=total < PROGRESS_FROM, leave=False) as bar:
        for name, ovs in named.items():
            for seed in study.seeds:
                try:
                    point = DesignPoint.build(name, [*base, *(f"{k}={v}" for k, v in ovs.items())], seed, scalar)
                except ConfigError as exc:
                    raise ConfigError(f"{study.path}: point {name!r} (seed {seed}): {exc}") from None
                if not keep_config:
                    point.config = None
                points.append(point)
                bar.update(1)
    return points


def study_files(path: str | Path) -> list[Path]:
    """A study file, or every study file under a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.yaml"))
        if not files:
            raise ConfigError(f"{path}: folder holds no study files (*.yaml)")
        return files
    if not path.exists():
        raise ConfigError(f"{path}: study file not found")
    return [path]


def load_studies(path: str | Path) -> list[Study]:
    return [load_study(p) for p in study_files(path)]


def manifest(study: Study, points: Sequence[DesignPoint]) -> dict[str, Any]:
    """A JSON-able record of a study's expansion: points, run_keys, comparisons."""
    return {
        "study": study.name,
        "path": str(study.path),
        "mode": study.mode,
        "axes": sorted({k for p in points for k in p.axes}),
        "points": [p.to_dict() for p in points],
        "comparisons": [{"name": c.name, "axis": c.axis, "pairs": [list(p) for p in c.pairs], "paper_p": c.paper_p}
                        for c in study.comparisons],
    }

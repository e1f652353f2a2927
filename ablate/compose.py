"""Composing a config: conf/ (and the plug-ins' config groups) with Hydra overrides, resolved and validated.

Why it exists: every entry point (a study's expansion, ``ablate train``/``describe``/``eval``, the Hydra app)
composes configs the same way; group choices go through Hydra (cached per choice), value overrides through
Hydra's grammar onto a copy of the typed config (``apply_values``, the one override path).  No torch import.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from functools import cache
from typing import Any

from ablate.config import ALL_GROUPS, CONF_DIR, ConfigError, validate
from ablate.registry import conf_dirs, group_files


def group_options(group: str) -> tuple[str, ...]:
    """The option names of a config group (the YAML files under conf/<group>/ and the plug-ins' conf dirs)."""
    return tuple(group_files(group))


def _check_group_values(overrides: Sequence[str]) -> None:
    """Fail with one line when an override names an unknown option of a config group."""
    for ov in overrides:
        key, _, value = ov.lstrip("+~").partition("=")
        if key in ALL_GROUPS and value not in group_options(key):
            raise ConfigError(f"{key}: invalid value {value!r}; allowed: {', '.join(group_options(key))}")


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    head = msg[0] if msg else type(exc).__name__
    details = [m.strip() for m in msg[1:] if m.strip().startswith(("full_key", "object_type"))]
    return " ".join([head, *details])


@cache
def _compose_groups(group_overrides: tuple[str, ...]) -> Any:
    """Hydra composition for one choice of config-group options (cached: it is the slow part, ~0.3 s)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ablate.config import register_configs

    register_configs()
    if not GlobalHydra.instance().is_initialized():
        initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="ablate")
    return hydra_compose(config_name="config", overrides=list(group_overrides))


def searchpath_override() -> list[str]:
    """``hydra.searchpath=[...]`` naming the loaded plug-ins' config folders (none: no override)."""
    extra = conf_dirs()[1:]
    return [f"hydra.searchpath=[{','.join(f'file://{d}' for d in extra)}]"] if extra else []


def load_plugin_overrides(overrides: Sequence[str]) -> list[str]:
    """The modules a ``plugins=[...]`` (or ``+plugins=``) override names, loaded before anything composes."""
    from ablate.registry import load_plugins

    names: list[str] = []
    for ov in overrides:
        key, _, _ = ov.lstrip("+").partition("=")
        if key == "plugins":
            value = _parsed(ov.lstrip("+")).value()
            names += [str(v) for v in (value if isinstance(value, list) else [value])]
    load_plugins(names)
    return names


@cache
def _base_bytes(group_overrides: tuple[str, ...]) -> bytes:
    """The composed config of one group choice, pickled once: unpickling a copy is ~4x faster than
    ``copy.deepcopy`` of a DictConfig (the bulk of expanding a large value-only grid)."""
    return pickle.dumps(_compose_groups(group_overrides))


@cache
def _parsed(value_override: str) -> Any:
    """One value override parsed by Hydra's grammar (cached: a grid repeats every level many times)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (ov,) = OverridesParser.create().parse_overrides([value_override])
    return ov


def _is_group_override(ov: str) -> bool:
    key = ov.partition("=")[0]
    return ov[:1] in "+~" or key.split("@")[0] in ALL_GROUPS or key.startswith("hydra")


def apply_values(cfg: Any, values: Sequence[str]) -> Any:
    """Set value overrides (``a.b=v``, Hydra's grammar) on ``cfg`` in place: the one override path of
    ``compose`` and of ``ablate eval`` (on a run's saved config)."""
    import copy

    from omegaconf import OmegaConf

    for ov in map(_parsed, values):
        if ov.is_sweep_override():
            raise ConfigError(f"{ov.key_or_group}: invalid value {ov.input_line!r}; expected one value, "
                              "not a sweep (sweeps belong in a study's axes)")
        value = copy.deepcopy(ov.value())  # the parsed override is cached: never share its containers
        # containers merge into their typed nodes (a list of dicts becomes a list of DataSource, ...)
        OmegaConf.update(cfg, ov.key_or_group, value, merge=isinstance(value, dict | list))
    return cfg


def with_launcher(overrides: Sequence[str], launcher: str | None) -> list[str]:
    """The overrides of ``ablate sweep [--launcher L]``: ``--launcher`` is the ``launcher=L`` group choice."""
    return list(overrides) + ([f"launcher={launcher}"] if launcher else [])


def compose(overrides: Sequence[str] = (), *, check: bool = True) -> Any:
    """Compose conf/config.yaml with Hydra overrides into a resolved DictConfig; validate it.

    Group choices (``vision=...``) go through Hydra's composition (cached per choice); value overrides
    (``train.seed=3``) are parsed with Hydra's override grammar and set on a copy of the typed config, so
    expanding a 1,000-point study composes each group combination once.
    """

    from omegaconf import OmegaConf

    overrides = list(overrides)
    load_plugin_overrides(overrides)
    _check_group_values(overrides)
    groups = (*searchpath_override(), *(o for o in overrides if _is_group_override(o)))
    values = [o for o in overrides if not _is_group_override(o)]
    try:
        cfg = apply_values(pickle.loads(_base_bytes(groups)), values)
        OmegaConf.resolve(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra/OmegaConf errors: re-raise as one clear line
        raise ConfigError(f"overrides {overrides}: {_one_line(exc)}") from None
    if check:
        validate(cfg)
    return cfg

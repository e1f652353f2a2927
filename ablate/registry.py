"""The one registry per component family: string ID -> lazy ``"module:attr"`` target, and the plug-ins.

Every allowed value of a component ID (a vision family, a projector, an image transform, a prompt format, a
benchmark, an executor, an in-process tokenizer, a vision arch with its own builder) is listed here or added
by a plug-in, and nowhere else: config validation and its one-line errors, ``ablate list`` and the builders all
read these registries.  Targets are strings, so listing and validating IDs never imports torch; ``get`` imports
the target on first use.

A plug-in is a module that calls ``REGISTRY.register(id, "module:attr")`` when imported and may set
``CONF_DIR`` (a folder of config-group YAML files, added to Hydra's search path so ``projector=<its id>``
composes).  Plug-ins are loaded from ``BUILTIN_PLUGINS`` (the shapes world), the ``ablate.plugins``
entry-point group (installed packages), and a config's ``plugins:`` list (``plugins=[my_module]``), before
anything is composed or validated.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

BUILTIN_PLUGINS = ("ablate.shapes.plugin",)
ENTRY_POINT_GROUP = "ablate.plugins"


class Registry:
    """One family's IDs, in registration order; each ID maps to a ``"module:attr"`` target (or an object).  Reads
    like a mapping (``reg[id]``, ``in``, iteration over IDs, ``items()``); an unknown ID is a ``ConfigError``."""

    def __init__(self, family: str, kind: str, key: str, entries: dict[str, str] | None = None) -> None:
        self.family = family  # the `ablate list FAMILY` name, e.g. "projectors"
        self.kind = kind  # readable singular, e.g. "projector"
        self.key = key  # the config key whose values it holds, e.g. "projector"
        self._targets: dict[str, Any] = {}
        self._objects: dict[str, Any] = {}  # targets imported so far
        self._origin: dict[str, str] = {}
        for name, target in (entries or {}).items():
            self.register(name, target, origin="ablate")

    def register(self, name: str, target: Any, *, origin: str | None = None) -> None:
        """Add ``name`` -> ``target`` (a ``"module:attr"`` string or the object itself); IDs are unique."""
        if name in self._targets:
            raise ValueError(f"{self.kind} {name!r} registered twice ({self._origin[name]} and "
                             f"{origin or _caller_module()})")
        self._targets[name] = target
        self._origin[name] = origin or _caller_module()

    def names(self) -> list[str]:
        load_plugins()
        return list(self._targets)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def values(self) -> list[Any]:
        """Every registered object, in registration order (imports their targets)."""
        return [self.get(n) for n in self.names()]

    def items(self) -> list[tuple[str, Any]]:
        return [(n, self.get(n)) for n in self.names()]

    def origin(self, name: str) -> str:
        """Who registered ``name``: ``ablate`` (built in) or the plug-in module."""
        return self._origin[name]

    def target(self, name: str) -> str:
        """The ``"module:attr"`` the ID resolves to (without importing it)."""
        self.check(name)
        t = self._targets[name]
        return t if isinstance(t, str) else f"{getattr(t, '__module__', '?')}:{getattr(t, '__qualname__', t)}"

    def check(self, name: Any, key: str | None = None) -> None:
        """Raise ``ConfigError`` (one line: key, value, allowed IDs) when ``name`` is not registered."""
        from ablate.config import ConfigError

        if name not in self:
            raise ConfigError(f"{key or self.key}: invalid value {name!r}; allowed: {', '.join(self.names())}")

    def get(self, name: str) -> Any:
        """The registered object of ``name`` (its target imported on first use)."""
        self.check(name)
        if name not in self._objects:
            t = self._targets[name]
            if isinstance(t, str):
                module, _, attr = t.partition(":")
                t = importlib.import_module(module)
                for part in attr.split("."):
                    t = getattr(t, part)
            self._objects[name] = t
        return self._objects[name]


def _caller_module() -> str:
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "?")) if frame is not None else "?"


def _at(module: str, attrs: str) -> dict[str, str]:
    """Built-in entries of one module: ``"id=attr id=attr ..."`` -> ``{id: "module:attr"}``."""
    return {i: f"{module}:{a}" for i, _, a in (pair.partition("=") for pair in attrs.split())}


VISION_FAMILIES = Registry("vision-families", "vision backbone family", "vision.backbones[].family", _at(
    "ablate.models.vision", "open_clip=build_open_clip hf-clip=build_hf_clip hf-siglip=build_hf_siglip "
    "hf-dinov2=build_hf_dinov2 timm=build_timm patch-embed=build_patch_embed"))
# "<family>/<arch>" -> a builder of that one arch (it wins over the family's builder); filled by plug-ins
VISION_ARCHS = Registry("vision-archs", "vision arch", "vision.backbones[].arch")
PROJECTORS = Registry("projectors", "projector", "projector", _at(
    "ablate.models.projector", "linear=build_linear mlp=build_mlp fused-mlp=build_fused_mlp "
    "perceiver=build_perceiver qformer=build_qformer gated-xattn=build_gated_xattn"))
IMAGE_TRANSFORMS = Registry("image-transforms", "image transform", "image", {**_at(
    "ablate.data.transforms", "letterbox=letterbox resize-naive=resize_naive resize-crop=resize_crop"),
    **_at("ablate.data.anyres", "anyres=AnyresTiling")})
PROMPT_FORMATS = Registry("prompt-formats", "prompt format", "llm.prompt_format", _at(
    "ablate.models.prompts", "base=base vicuna-v1.5=vicuna_v15 llama-2-chat=llama_2_chat "
    "mistral-instruct=mistral_instruct phi-2=phi_2 tokenizer=chat_template_format"))
# in-process tokenizers (llm.tokenizer; null = the tokenizer saved with the weights): filled by plug-ins
TOKENIZERS = Registry("tokenizers", "in-process tokenizer", "llm.tokenizer")
_B = "ablate.eval.benchmarks"
BENCHMARKS = Registry("benchmarks", "benchmark", "eval.benchmarks", {
    **_at(f"{_B}.vqav2", "vqav2=VQAv2"), **_at(f"{_B}.gqa", "gqa=GQA"), **_at(f"{_B}.vizwiz", "vizwiz=VizWiz"),
    **_at(f"{_B}.textvqa", "textvqa=TextVQA textvqa-ocr=TextVQAWithOCR"),
    **_at(f"{_B}.grounding", "refcoco=RefCOCO refcoco-plus=RefCOCOPlus refcocog=RefCOCOg ocid-ref=OCIDRef"),
    **_at(f"{_B}.closed_set", "vsr=VSR pope=POPE tallyqa=TallyQA ai2d=AI2D"),
    # hallucination (issue 23): CHAIR captions, LRV negative instructions
    **_at(f"{_B}.captioning", "chair=CHAIRBenchmark"), **_at(f"{_B}.negative", "lrv-neg=NegativeInstructions")})
EXECUTORS = Registry("executors", "executor", "launcher", _at(
    "ablate.launch", "slurm=slurm_executor local=local_executor debug=debug_executor"))

REGISTRIES: dict[str, Registry] = {r.family: r for r in (
    VISION_FAMILIES, VISION_ARCHS, PROJECTORS, IMAGE_TRANSFORMS, PROMPT_FORMATS, TOKENIZERS, BENCHMARKS, EXECUTORS,
)}

_loaded: dict[str, Path | None] = {}  # plug-in module -> its CONF_DIR
_loading = False
_discovered = False


def load_plugins(names: Iterable[str] = ()) -> None:
    """Import the built-in, entry-point and named plug-in modules (each once); a missing one is a one-line
    ``ConfigError`` naming it."""
    global _loading, _discovered
    names = [n for n in names if n not in _loaded]
    if _loading or (_discovered and not names):  # a plug-in's own registrations call back into names()/check()
        return
    _loading = True
    try:
        wanted = list(names)
        if not _discovered:  # the built-in and installed plug-ins: looked up once per process
            wanted = [*BUILTIN_PLUGINS, *(ep.module for ep in entry_points(group=ENTRY_POINT_GROUP)), *wanted]
        for name in wanted:
            if name not in _loaded:
                _loaded[name] = _import_plugin(name)
        _discovered = True
    finally:
        _loading = False


def _import_plugin(name: str) -> Path | None:
    from ablate.config import ConfigError

    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise ConfigError(f"plugins: invalid value {name!r}; expected an importable module (not found on "
                              "sys.path / PYTHONPATH)") from None
        raise
    conf = getattr(module, "CONF_DIR", None)
    return Path(conf).resolve() if conf is not None else None


def plugin_conf_dirs() -> list[Path]:
    """The config folders of the loaded plug-ins, in load order (Hydra search path after conf/)."""
    load_plugins()
    return [d for d in _loaded.values() if d is not None]


def loaded_plugins() -> list[str]:
    load_plugins()
    return list(_loaded)


# ------------------------------------------------------------------------------------- config groups
def conf_dirs() -> list[Path]:
    """Where config groups live: ``conf/``, then each loaded plug-in's ``CONF_DIR`` (Hydra's search path)."""
    return [_conf_dir(), *plugin_conf_dirs()]


def group_files(group: str) -> dict[str, Path]:
    """The options of a config group: option name -> its YAML file (first folder of ``conf_dirs`` wins)."""
    files: dict[str, Path] = {}
    for d in conf_dirs():
        for path in sorted((d / group).glob("*.yaml")):
            files.setdefault(path.stem, path)
    return dict(sorted(files.items()))


def option_path(group: str, option: str) -> str:
    """The YAML file of a group option, for messages: ``conf/<group>/<option>.yaml`` or a plug-in's file
    (relative to the repository where it lies inside it)."""
    path = group_files(group).get(option, _conf_dir() / group / f"{option}.yaml")
    try:
        return str(path.relative_to(_conf_dir().parent))
    except ValueError:
        return str(path)


def _conf_dir() -> Path:
    from ablate.config import CONF_DIR

    return CONF_DIR


def family(name: str) -> Registry:
    """The registry ``ablate list`` calls ``name`` (one-line error listing the families otherwise)."""
    from ablate.config import ConfigError

    if name not in REGISTRIES:
        raise ConfigError(f"ablate list: invalid family {name!r}; allowed: {', '.join(REGISTRIES)}")
    return REGISTRIES[name]


def cli_list(args: Any) -> int:
    """``ablate list [FAMILY]``: every registered ID of one family (or of all), with its target and origin."""
    from ablate.config import ConfigError
    from ablate.design import load_plugin_overrides

    overrides = list(getattr(args, "overrides", None) or [])
    name = args.family
    if name and "=" in name:  # `ablate list plugins=[m]`: no family, an override
        name, overrides = None, [name, *overrides]
    stray = [o for o in overrides if o.partition("=")[0] != "plugins"]
    if stray:
        raise ConfigError(f"ablate list: invalid argument {stray[0]!r}; expected plugins=[module,...]")
    load_plugin_overrides(overrides)
    registries = [family(name)] if name else list(REGISTRIES.values())
    for reg in registries:
        print(f"{reg.family} ({reg.key}):")
        names = reg.names()
        width = max((len(n) for n in names), default=0)
        for n in names:
            origin = reg.origin(n)
            print(f"  {n.ljust(width)}  {reg.target(n)}" + ("" if origin == "ablate" else f"  [plug-in {origin}]"))
        if not names:
            print("  (none)")
    return 0


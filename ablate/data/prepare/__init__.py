"""``ablate data prepare NAME --from DIR [--root ROOT]``: the registry of preparers, and the command.

One preparer per benchmark family (built from the benchmark's own ``Layout``: ``benchmarks.py``) and per
training source (``training.py``: LLaVA-format releases, LRV-Instruct's raw release).  Another module
(a plug-in, a new benchmark) adds one with ``register(preparer)`` at import and lists its module in
``MODULES`` (or imports it before calling ``get``).  The engine, interface and helpers are in ``base.py``.
"""

from __future__ import annotations

import argparse
import importlib

from ablate.data.prepare.base import PrepareError, Preparer, Result, Sources, run

MODULES = ["ablate.data.prepare.benchmarks", "ablate.data.prepare.training"]
PREPARERS: dict[str, Preparer] = {}


def register(preparer: Preparer) -> Preparer:
    """Add ``preparer`` under its ``name`` (a second preparer with the same name is an error)."""
    if preparer.name in PREPARERS and PREPARERS[preparer.name] is not preparer:
        raise ValueError(f"data prepare: preparer {preparer.name!r} registered twice")
    PREPARERS[preparer.name] = preparer
    return preparer


def _load() -> dict[str, Preparer]:
    for module in MODULES:
        importlib.import_module(module)
    return PREPARERS


def names() -> list[str]:
    return list(_load())


def get(name: str) -> Preparer:
    preparers = _load()
    if name not in preparers:
        raise KeyError(f"data prepare: unknown name {name!r}; known: {', '.join(preparers)}")
    return preparers[name]


def describe() -> str:
    """What each preparer expects under --from and writes under --root (``ablate data prepare --list``)."""
    lines = []
    for kind in ("benchmark", "training"):
        lines.append(f"{kind} (default --root {'data/eval' if kind == 'benchmark' else 'data'}):")
        for p in _load().values():
            if p.kind == kind:
                lines.append(f"  {p.name}")
                lines.append(f"    --from holds: {p.expects}")
                lines.append(f"    writes:       {p.produces}")
    return "\n".join(lines)


def cli_prepare(args: argparse.Namespace) -> int:
    from ablate.config import ConfigError

    if args.list:
        print(describe())
        return 0
    if not args.names or not args.source:
        raise ConfigError("data prepare: expected NAME... --from DIR (or --list); names: " + ", ".join(names()))
    try:
        chosen = [get(n) for n in args.names]
    except KeyError as exc:
        raise ConfigError(str(exc).strip("'\"")) from None
    for preparer in chosen:
        try:
            result = run(preparer, args.source, args.root, force=args.force)
        except PrepareError as exc:
            raise ConfigError(f"data prepare {preparer.name}: {exc}") from None
        counts = ", ".join(f"{v} {k}" for k, v in result.counts.items())
        state = "up to date" if result.up_to_date else "prepared"
        print(f"{preparer.name}: {state} under {result.root} ({counts}); manifest {result.manifest}")
    return 0


__all__ = ["MODULES", "PREPARERS", "PrepareError", "Preparer", "Result", "Sources", "cli_prepare", "describe",
           "get", "names", "register", "run"]

"""Benchmark checks before submit: the loaders' own ``load()`` run on every benchmark a study's points use.

``ablate sweep`` calls ``check_points`` after expanding every study and before submitting anything, so a
missing or malformed benchmark file is one line naming the file now rather than an error after hours of
training.  The checks are the loaders themselves (``Benchmark.load``: format, unique ids, not empty, images
inside the root), so a file the loader would reject can
never pass.  An eval root that does not exist yet (data written later, e.g. by ``ablate data synth`` inside a
job) is reported as a warning line, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ablate.config import ConfigError
from ablate.eval.benchmarks import BenchmarkFormatError, get_benchmark


def check_benchmarks(root: str | Path, benchmark_ids: Iterable[str]) -> list[str]:
    """One line per benchmark whose files its loader rejects (the loader's message names the file)."""
    problems = []
    for bid in benchmark_ids:
        try:
            get_benchmark(bid, root).load()
        except (BenchmarkFormatError, ConfigError) as exc:
            problems.append(f"{bid}: {str(exc).strip(chr(39))}")
    return problems


def check_points(points: Sequence[Any]) -> tuple[list[str], list[str]]:
    """(problems, warnings) over the distinct (eval root, benchmarks) of ``points`` (DesignPoints)."""
    seen: dict[tuple[str, tuple[str, ...]], None] = {}
    for p in points:
        ev = p.config.eval
        seen.setdefault((str(ev.root), tuple(ev.benchmarks)), None)
    problems, warnings = [], []
    for root, ids in seen:
        if not Path(root).is_dir():
            warnings.append(f"{root}: eval root not found; benchmarks {', '.join(ids)} not checked before submit")
            continue
        problems += check_benchmarks(root, ids)
    return problems, warnings

"""The evaluation benchmarks: Prismatic's 12 (TextVQA twice), by string ID in ``ablate.registry.BENCHMARKS``.

``get_benchmark(id, root, closed_set_mode=...)`` builds one; unknown IDs raise with the list of known ones.
"""

from __future__ import annotations

from pathlib import Path

from ablate.eval.benchmarks.base import Benchmark, BenchmarkFormatError, Example
from ablate.registry import BENCHMARKS


def list_benchmarks() -> list[str]:
    return BENCHMARKS.names()


def get_benchmark(benchmark_id: str, root: str | Path, *, closed_set_mode: str = "prob") -> Benchmark:
    return BENCHMARKS.get(benchmark_id)(root, closed_set_mode=closed_set_mode)


__all__ = ["Benchmark", "BenchmarkFormatError", "Example", "get_benchmark", "list_benchmarks"]

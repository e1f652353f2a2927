"""Registry of the evaluation benchmarks: string ID -> Benchmark class (Prismatic's 12, TextVQA twice; CHAIR and LRV negative instructions).

``get_benchmark(id, root, closed_set_mode=...)`` builds one; unknown IDs raise with the list of known ones.
"""

from __future__ import annotations

from pathlib import Path

from ablate.eval.benchmarks.base import Benchmark, BenchmarkFormatError, Example
from ablate.eval.benchmarks.captioning import CHAIRBenchmark
from ablate.eval.benchmarks.closed_set import AI2D, POPE, VSR, TallyQA
from ablate.eval.benchmarks.gqa import GQA
from ablate.eval.benchmarks.grounding import OCIDRef, RefCOCO, RefCOCOg, RefCOCOPlus
from ablate.eval.benchmarks.negative import NegativeInstructions
from ablate.eval.benchmarks.textvqa import TextVQA, TextVQAWithOCR
from ablate.eval.benchmarks.vizwiz import VizWiz
from ablate.eval.benchmarks.vqav2 import VQAv2

BENCHMARKS: dict[str, type[Benchmark]] = {cls.id: cls for cls in (
    VQAv2, GQA, VizWiz, TextVQA, TextVQAWithOCR, RefCOCO, RefCOCOPlus, RefCOCOg, OCIDRef, VSR, POPE, TallyQA, AI2D,
    CHAIRBenchmark, NegativeInstructions,  # hallucination (issue 23): CHAIR captions, LRV negative instructions
)}


def list_benchmarks() -> list[str]:
    return list(BENCHMARKS)


def get_benchmark(benchmark_id: str, root: str | Path, *, closed_set_mode: str = "prob") -> Benchmark:
    if benchmark_id not in BENCHMARKS:
        raise KeyError(f"eval.benchmarks: unknown benchmark {benchmark_id!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[benchmark_id](root, closed_set_mode=closed_set_mode)


__all__ = ["BENCHMARKS", "Benchmark", "BenchmarkFormatError", "Example", "get_benchmark", "list_benchmarks"]

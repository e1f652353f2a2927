"""The shared shape of a benchmark: load -> examples, score one output -> record, aggregate -> metrics.

Every benchmark module subclasses ``Benchmark``.  A benchmark reads its real release files under a data root,
yields ``Example``s whose ``example_id`` is the dataset's own stable id (never a row index), and turns a
model output (generated text, or option probabilities for closed-set tasks) into a per-example record with
the columns of DESIGN.md §4 plus extras.  Malformed files raise ``BenchmarkFormatError`` naming the file,
the record and what was expected; outputs that cannot be parsed score 0 with ``parse_ok=False``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ablate.eval.benchmarks.layout import Layout


class BenchmarkFormatError(ValueError):
    """A benchmark file does not have the expected format; the message names file, record and expectation."""


@dataclass
class Example:
    """One evaluation item: the dataset's own id, the image file, the user message, and the gold answer."""

    example_id: str
    image: Path
    prompt: str  # the user message (Prismatic's prompt text); the model's prompt format wraps it
    gold: Any
    options: list[str] | None = None  # strings whose probabilities are compared (closed-set tasks)
    meta: dict[str, Any] = field(default_factory=dict)  # split/type fields copied into the record


# ----------------------------------------------------------------------------------------------- file I/O
def format_error(path: Path, where: str, expected: str) -> BenchmarkFormatError:
    return BenchmarkFormatError(f"{path}: {where}: expected {expected}")


def read_json(path: Path, top: type | None = None, what: str = "") -> Any:
    """Load a JSON file; a missing or unparsable file, or a top level that is not ``top`` (described by
    ``what``), raises BenchmarkFormatError naming it."""
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: file not found (expected the benchmark's release file here)")
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path}: line {exc.lineno}: expected valid JSON ({exc.msg})") from None
    if top is not None and not isinstance(data, top):
        raise format_error(path, "top level", f"{what}, got {type(data).__name__}")
    return data


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-empty line of a JSON-lines file."""
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: file not found (expected the benchmark's release file here)")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkFormatError(f"{path}: line {lineno}: expected one JSON object ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise format_error(path, f"line {lineno}", f"a JSON object, got {type(obj).__name__}")
            yield lineno, obj


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
               dict: "an object"}


def field_of(record: Any, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    """``record[key]`` checked for presence and type; otherwise a BenchmarkFormatError naming everything."""
    if not isinstance(record, dict):
        raise format_error(path, where, f"an object, got {type(record).__name__}")
    if key not in record:
        raise format_error(path, where, f"key {key!r}")
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass: never accept it where a number is expected
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise format_error(path, where, f"{key!r} to be {names}, got {value!r}")
    return value


def check_image_inside(root: Path, example: Example, benchmark_id: str) -> None:
    """An example's image path (built from a record's field) must stay under the benchmark data root."""
    from ablate.data.untrusted import UnsafeInputError, check_inside

    try:
        check_inside(root, example.image)
    except UnsafeInputError as exc:
        raise BenchmarkFormatError(f"{benchmark_id} example {example.example_id}: {exc}") from None


# -------------------------------------------------------------------------------------------- benchmark
class Benchmark:
    """Base class: subclasses set ``id`` and implement ``read`` and ``score_text`` (and, when closed-set,
    ``score_probs``); ``aggregate`` defaults to accuracy (mean score) plus the parse-failure rate."""

    id: ClassVar[str]
    layout: ClassVar[Layout]  # its files and image folders (ablate.eval.benchmarks.layout)
    closed_set: ClassVar[bool] = False  # True: scored by option probabilities when mode == "prob"
    # metric name -> how a hit is defined, for docs and reports
    description: ClassVar[str] = ""

    def __init__(self, root: str | Path, *, closed_set_mode: str = "prob") -> None:
        self.root = Path(root)
        if closed_set_mode not in ("prob", "generate"):
            raise ValueError(f"eval.closed_set: invalid value {closed_set_mode!r}; allowed: prob, generate")
        self.mode = closed_set_mode if self.closed_set else "generate"
        self.fingerprint: str | None = None  # set by load(): see ablate.eval.fingerprint

    # -- loading ---------------------------------------------------------------------------------------
    def read(self) -> list[Example]:
        raise NotImplementedError

    def stratum(self, example: Example) -> str:
        """Group that fixed-seed subsets balance over (POPE: the split); one group by default."""
        return ""

    def load(self, limit: int | None = None, seed: int = 0) -> list[Example]:
        """All examples (file order), or a fixed-seed subset of ``limit`` spread evenly over strata."""
        examples = self.read()
        if not examples:
            raise BenchmarkFormatError(f"{self.root}: benchmark {self.id}: no examples; expected at least one "
                                       "(an empty release file?)")
        from ablate.eval.fingerprint import fingerprint

        self.fingerprint = fingerprint(examples)  # of the whole benchmark, whatever the subset
        seen: set[str] = set()
        for ex in examples:
            check_image_inside(self.root, ex, self.id)
            if ex.example_id in seen:
                raise BenchmarkFormatError(f"{self.root}: benchmark {self.id}: duplicate example id "
                                           f"{ex.example_id!r}; expected unique ids")
            seen.add(ex.example_id)
        if limit is None or limit >= len(examples):
            return examples
        return fixed_subset(examples, limit, seed, self.stratum)

    # -- scoring ---------------------------------------------------------------------------------------
    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        raise NotImplementedError

    def score_probs(self, example: Example, probs: Sequence[float]) -> dict[str, Any]:
        raise NotImplementedError(f"{self.id} is not a closed-set benchmark")

    def score(self, example: Example, output: str | Sequence[float]) -> dict[str, Any]:
        """Per-example record: DESIGN.md §4 columns (prediction = raw output) + gold + meta extras."""
        if self.mode == "prob":
            probs = [float(p) for p in output]  # type: ignore[union-attr]
            rec = self.score_probs(example, probs)
            rec.setdefault("prediction", json.dumps(dict(zip(example.options or [], probs, strict=True))))
            rec["option_probs"] = probs
        else:
            rec = self.score_text(example, str(output))
            rec.setdefault("prediction", output)
        rec = {"example_id": example.example_id, **rec}
        rec.setdefault("correct", bool(rec["score"] >= 1.0))
        rec.setdefault("gold", example.gold)
        for key, value in example.meta.items():
            rec.setdefault(key, value)
        return rec

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean(r["score"] for r in records), **common_metrics(records)}


def mean(values: Any) -> float:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else float("nan")


def common_metrics(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Metrics every benchmark reports: the number of examples and the parse-failure rate."""
    n = len(records)
    failures = sum(1 for r in records if not r["parse_ok"])
    return {"n": float(n), "parse_failures": float(failures), "parse_failure_rate": failures / n if n else 0.0}


def grouped_accuracy(records: Sequence[dict[str, Any]], key: str, prefix: str = "accuracy_") -> dict[str, float]:
    """Mean score per value of ``record[key]`` (e.g. per answer type), as ``accuracy_<value>``."""
    groups: dict[str, list[float]] = {}
    for r in records:
        groups.setdefault(str(r[key]).replace(" ", "_").replace("/", "_"), []).append(r["score"])
    return {f"{prefix}{g}": mean(v) for g, v in sorted(groups.items())}


def fixed_subset(examples: Sequence[Example], limit: int, seed: int,
                 stratum: Callable[[Example], str]) -> list[Example]:
    """``limit`` examples chosen with ``random.Random(seed)``, spread as evenly as possible over strata,
    returned in file order; the same files, limit and seed always give the same ids."""
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(stratum(ex), []).append(i)
    rng = random.Random(seed)
    names = sorted(groups)
    quota = {g: 0 for g in names}
    remaining = limit
    while remaining > 0:  # round-robin quotas, capped by group size
        progressed = False
        for g in names:
            if remaining and quota[g] < len(groups[g]):
                quota[g] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            break
    chosen = sorted(i for g in names for i in rng.sample(groups[g], quota[g]))
    return [examples[i] for i in chosen]

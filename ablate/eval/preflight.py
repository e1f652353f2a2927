"""Data checks before submit: ``ablate data check``'s scoped check run on every point of a sweep.

``ablate sweep`` calls ``check_points`` after expanding every study and before submitting anything, so a
missing or malformed benchmark or training file is one line naming the file now rather than an error after
hours of training.  The benchmark checks are the loaders themselves (``Benchmark.load``: every file of the
benchmark's layout, unique ids, not empty, images inside the root) plus every image present, so a file the
loader would reject can never pass; training sources are checked to exist (``ablate data check`` reads
every record).  A data or eval root that does not exist yet is a warning (its files are not checked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_points(points: Sequence[Any]) -> tuple[list[str], list[str]]:
    """(problems, warnings) over the distinct data mixes and (eval root, benchmarks) of ``points``."""
    from ablate.data.check import check_scope

    report, warnings = check_scope([p.config for p in points], quick=True)
    return report.problems, warnings

"""Benchmark fingerprints: which version of a benchmark's files a run was scored on.

The same benchmark id can stand for different files (POPE's 8,910-question release that LLaVA and Prismatic
pin vs the 9,000 questions at the repository's head reuse the same ids for other content), so scores are
only comparable between runs whose benchmark fingerprints agree.  The fingerprint is the sha256 over every
example the loader reads from the release files (id, prompt, gold answer, options and image file name),
sorted by id: it changes when a question, an answer or an image name changes, not when files are moved to
another root.  ``evaluate`` records it per benchmark in ``run_dir/fingerprints.json`` (copied into
``results.json``) and as MLflow params ``fingerprint.<benchmark>``; ``ablate collect`` / ``ablate report``
refuse to compare runs whose fingerprints differ (``--allow-mixed-benchmarks`` to override).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ablate.config import ConfigError
from ablate.eval.benchmarks.base import Example

FINGERPRINTS_FILE = "fingerprints.json"
SHORT = 12  # hex digits shown in messages


def fingerprint(examples: Sequence[Example]) -> str:
    """sha256 (hex) over the examples' content and image names, independent of file order and root."""
    digest = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: e.example_id):
        row = [ex.example_id, ex.image.name, ex.prompt, ex.gold, ex.options]
        digest.update(json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def write_fingerprints(run_dir: Path, fingerprints: Mapping[str, str]) -> Path:
    """Merge ``fingerprints`` into ``run_dir/fingerprints.json`` (a later eval of one benchmark keeps the rest)."""
    path = run_dir / FINGERPRINTS_FILE
    current = read_fingerprints(run_dir)
    current.update(fingerprints)
    from ablate.rundir import write_json

    return write_json(path, current, indent=1)


def read_fingerprints(run_dir: Path) -> dict[str, str]:
    path = run_dir / FINGERPRINTS_FILE
    from ablate.jsonfiles import read_object

    data = read_object(path, ConfigError)
    if not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: expected an object benchmark -> fingerprint string")
    return dict(data)


def mixed_fingerprints(rows: Iterable[tuple[str, str, Any]]) -> list[str]:
    """Problems for (run_key, benchmark, fingerprint) rows: one line per benchmark scored on more than one
    version, naming two runs and both fingerprints.  Runs without a fingerprint (older runs) are ignored."""
    seen: dict[str, dict[str, str]] = {}
    for run_key, bench, fp in rows:
        if isinstance(fp, str) and fp:
            seen.setdefault(bench, {}).setdefault(fp, run_key)
    problems = []
    for bench, versions in sorted(seen.items()):
        if len(versions) > 1:
            (fa, ra), (fb, rb) = sorted(versions.items())[:2]
            more = f" (and {len(versions) - 2} more versions)" if len(versions) > 2 else ""
            problems.append(f"benchmark {bench}: run {ra} was scored on fingerprint {fa[:SHORT]}, run {rb} on "
                            f"{fb[:SHORT]}{more}; different benchmark files cannot be paired "
                            "(re-evaluate on one version, or pass --allow-mixed-benchmarks)")
    return problems


def refuse_mixed(rows: Iterable[tuple[str, str, Any]], allow: bool = False) -> list[str]:
    """Raise ConfigError listing every mixed benchmark unless ``allow``; returns the problems otherwise."""
    problems = mixed_fingerprints(rows)
    if problems and not allow:
        raise ConfigError("; ".join(problems))
    return problems

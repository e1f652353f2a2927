"""Reading JSON and JSON-lines files with one-line errors that name the file and line, and a file's sha256.

Why it exists: run folders (``point.json``, ``fingerprints.json``, ``results.json``), benchmark release files,
per-example records and published models' answer files are all JSON or JSON lines; each reader used to spell
the same loop and the same error handling.  The caller passes the error class its layer raises
(``ConfigError``, ``BenchmarkFormatError``, ``ExportError``), so messages stay one line wherever they surface.
Released files are often kept compressed: a ``.gz`` suffix is read through gzip.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _open(path: Path) -> IO[str]:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def iter_objects(path: str | Path, error: type[Exception], *,
                 missing: str = "file not found") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-empty line; anything but one JSON object a line is
    ``error("<path>: line <n>: ...")``; a missing file is ``error("<path>: <missing>")``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {missing}")
    with _open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}: line {lineno}: expected one JSON object per line ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise error(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_object(path: str | Path, error: type[Exception], *, missing_ok: bool = True) -> dict[str, Any]:
    """The JSON object in ``path`` (``{}`` when absent and ``missing_ok``); invalid JSON or another top-level
    type is ``error`` naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return {}
        raise error(f"{path}: file not found")
    try:
        with _open(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read in 4 MiB blocks (manifests, checkpoints, released answer files)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()

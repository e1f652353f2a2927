"""A benchmark's on-disk layout, described once: its files (path, upstream names, format, record keys and
their types) and the image folders it links.

The one description serves three readers: the benchmark's loader takes every path from it and validates
every record against its keys (``Layout.records``), ``ablate data check`` runs that loader (so it can never
pass a file the loader rejects), and ``ablate data prepare`` finds the upstream files by the names listed
here, places them at ``path`` and links the image folders.  Paths are relative to the eval root.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.eval.benchmarks.base import BenchmarkFormatError, field_of, format_error, read_json, read_jsonl

Kinds = type | tuple[type, ...]


@dataclass(frozen=True)
class FileSpec:
    """One release file.  ``records``: where the records sit -- ``"[]"`` a top-level list (or the lines of a
    JSON-lines / CSV file), ``"{}"`` the values of a top-level object keyed by id, ``"name"`` the list under
    that top-level key, ``""`` the file is one record."""

    path: str  # under the eval root
    upstream: tuple[str, ...]  # upstream names (trailing path parts), most specific first
    fmt: str = "json"  # json | jsonl | csv | pickle (pickles are read by their loader)
    records: str = "[]"
    keys: Mapping[str, Kinds] = field(default_factory=dict)  # every record has these keys, of these types
    label: str = "record"  # how a record is named in messages ("question 'ID'", "line 3", "ref 0")
    id_key: str = ""  # a key whose value is added to messages ("annotations[1] (question_id 2001)")
    only: tuple[str, ...] = ()  # benchmark ids that need this file (default: every benchmark of the layout)
    note: str = ""  # what the file is, for `ablate data prepare --list`


@dataclass(frozen=True)
class Layout:
    """Files and linked folders of one benchmark family (one ``ablate data prepare`` name)."""

    name: str
    benchmarks: tuple[str, ...]
    files: Mapping[str, FileSpec]  # role -> file
    dirs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # folder under the root -> upstream names
    # folders the loader reads before any image (AI2D's questions/): folder -> a glob the right one matches
    probes: Mapping[str, str] = field(default_factory=dict)
    source: str = ""  # where the downloads come from

    def spec(self, role: str) -> FileSpec:
        return self.files[role]

    def path(self, root: Path, role: str) -> Path:
        return Path(root) / self.files[role].path

    def files_for(self, benchmark_id: str) -> dict[str, FileSpec]:
        return {r: s for r, s in self.files.items() if not s.only or benchmark_id in s.only}

    def records(self, root: Path, role: str, data: Any = None) -> Iterator[tuple[str, Any]]:
        """(where, record) for each record of the file, each checked for the declared keys and types.
        ``data``: the already-parsed file (JSON files are parsed here otherwise)."""
        spec, path = self.files[role], self.path(root, role)
        if spec.fmt == "jsonl":
            rows: Iterator[tuple[str, Any]] = ((f"line {n}", rec) for n, rec in read_jsonl(path))
        elif spec.fmt == "csv":
            rows = _csv_rows(path)
        else:
            top = read_json(path) if data is None else data
            rows = _json_rows(top, spec.records, path, spec.label)
        n = 0
        for where, rec in rows:
            n += 1
            if spec.id_key and isinstance(rec, dict) and spec.id_key in rec:
                where = f"{where} ({spec.id_key} {rec[spec.id_key]})"
            for key, kind in spec.keys.items():
                field_of(rec, key, kind, path, where)
            yield where, rec
        if n == 0 and spec.records != "":
            label = "line" if spec.fmt in ("jsonl", "csv") else spec.label
            raise BenchmarkFormatError(f"{path}: no {label}s; expected at least one")


def _json_rows(top: Any, records: str, path: Path, label: str) -> Iterator[tuple[str, Any]]:
    if records == "":
        yield "top level", top
    elif records == "[]":
        if not isinstance(top, list):
            raise format_error(path, "top level", f"a list of records, got {type(top).__name__}")
        yield from ((f"{label} {i}", rec) for i, rec in enumerate(top))
    elif records == "{}":
        if not isinstance(top, dict):
            raise format_error(path, "top level", f"an object mapping id -> record, got {type(top).__name__}")
        yield from ((f"{label} {k!r}", rec) for k, rec in top.items())
    else:
        rows = field_of(top, records, list, path, "top level")
        yield from ((f"{records}[{i}]", rec) for i, rec in enumerate(rows))


def _csv_rows(path: Path) -> Iterator[tuple[str, Any]]:
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: file not found (expected the benchmark's release file here)")
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if row and row[0].strip():
                yield f"line {lineno}", row

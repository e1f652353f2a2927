"""Shared fixture: every benchmark written once per session in its real format under a temp root."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmark_fixture_files import write_all


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("benchmarks")
    return root, write_all(root)

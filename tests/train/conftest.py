"""Shared fixture of the training tests: one intra-op thread for every test in this folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here runs on one intra-op thread (tests/conftest.py)."""

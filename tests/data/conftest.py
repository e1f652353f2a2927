"""Shared fixtures for the data tests: a tiny composed config (the shapes world: tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def compose_tiny():
    """A function composing the tiny config with extra overrides."""
    from ablate.design import compose

    def build(*overrides: str):
        return compose(["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes",
                        *overrides])

    return build

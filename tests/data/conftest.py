"""Shared fixtures for the data tests: one small shapes world per session, and a tiny composed config."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.data.synthetic import write_world

WORLD_SIZE = 60
WORLD_SEED = 3


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_world(root, WORLD_SIZE, WORLD_SEED)
    return root


@pytest.fixture(scope="session")
def compose_tiny():
    """A function composing the tiny config with extra overrides."""
    from ablate.design import compose

    def build(*overrides: str):
        return compose(["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes",
                        *overrides])

    return build

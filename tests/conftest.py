"""Fixtures shared across test folders: one small shapes world per session (data loaders, the shapes plug-in)."""

from __future__ import annotations

from pathlib import Path

import pytest

WORLD_SIZE = 60
WORLD_SEED = 3


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ablate.shapes.world import write_world

    root = tmp_path_factory.mktemp("shapes")
    write_world(root, WORLD_SIZE, WORLD_SEED)
    return root

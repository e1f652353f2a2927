"""Fixtures shared across test folders: one small shapes world per session (data loaders, the shapes plug-in),
and one intra-op thread (autouse in the folders that train)."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a small shared CPU, 2 threads contend and are several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

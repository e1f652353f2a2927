"""Shared fixtures for the model tests: composed tiny configs and tiny VLMs (built once per module)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

from tiny_configs import BASE, tiny_cfg  # noqa: F401,E402  (re-exported for fixtures)


@pytest.fixture(scope="module")
def tiny_vlm():
    from ablate.models.vlm import build_vlm

    torch.manual_seed(0)
    return build_vlm(tiny_cfg("vision=tiny-clip", "projector=mlp")).eval()

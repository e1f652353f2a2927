"""parallelize on the real tiny VLM: frozen vision in bf16, fp32 master weights for trained parts,
activation checkpointing on each decoder layer (same state-dict keys), the blocks FSDP wraps, env-driven init."""

from __future__ import annotations

import pytest
import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from ablate.design import compose
from ablate.distributed import init_distributed
from ablate.train.strategy import parallelize, repeated_blocks

TINY = ["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes"]


@pytest.fixture(scope="module")
def build():
    from ablate.models.vlm import build_vlm

    def make(*overrides: str):
        cfg = compose([*TINY, *overrides])
        torch.manual_seed(0)
        return cfg, build_vlm(cfg)

    return make


def test_repeated_blocks_are_the_decoder_layers_and_vision_blocks(build) -> None:
    _, model = build()
    layers = repeated_blocks(model.llm)
    assert layers == list(model.llm.model.layers) and len(layers) == 2
    vision_blocks = repeated_blocks(model.vision)
    resblocks = model.vision.branches["tiny-clip"].model.transformer.resblocks  # kept up to the feature layer
    assert vision_blocks == list(resblocks) and len(vision_blocks) >= 1


def test_frozen_vision_bf16_trained_parts_fp32_and_activation_checkpointing(build) -> None:
    cfg, model = build("train.precision=bf16", "train.frozen_vision_dtype=bf16", "train.activation_checkpointing=true")
    keys = set(model.state_dict())
    model = parallelize(model, cfg, None, trainable=("projector", "llm"))
    assert {p.dtype for p in model.vision.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.projector.parameters()} | {p.dtype for p in model.llm.parameters()} == {torch.float32}
    assert all(isinstance(layer, CheckpointWrapper) for layer in model.llm.model.layers)
    assert model.llm.config.use_cache is False
    assert set(model.state_dict()) == keys  # checkpoint wrappers keep the checkpoints' parameter names


def test_trained_vision_keeps_fp32(build) -> None:
    cfg, model = build("train.frozen_vision_dtype=bf16")
    model = parallelize(model, cfg, None, trainable=("projector", "llm", "vision"))
    assert {p.dtype for p in model.vision.parameters()} == {torch.float32}
    assert not any(isinstance(m, CheckpointWrapper) for m in model.modules())  # tiny: checkpointing off


def test_single_process_without_distributed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.device.type, info.is_main) == (0, 1, "cpu", True)
    assert not torch.distributed.is_initialized()

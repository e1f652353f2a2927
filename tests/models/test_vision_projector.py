"""Every tiny vision backbone x every projector builds and gives the right shapes; fused branches with
different patch grids are rejected; missing pretrained vision weights raise an error naming what and where."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_configs import tiny_cfg

from ablate import registry
from ablate.config import ConfigError
from ablate.models.projector import build_projector, num_output_tokens
from ablate.models.vision import WeightsNotFoundError, branch_names, build_vision
from ablate.registry import group_files

TINY_VISION = [v for v in group_files("vision") if v.startswith("tiny-")]
PROJECTORS = list(group_files("projector"))
LM_WIDTH = 64


@pytest.fixture(scope="module")
def backbones():
    torch.manual_seed(0)
    return {v: (tiny_cfg(f"vision={v}"), build_vision(tiny_cfg(f"vision={v}").vision)) for v in TINY_VISION}


def _pixels(cfg, batch: int):
    x = torch.randn(batch, 3, cfg.vision.image_size, cfg.vision.image_size)
    names = branch_names(cfg.vision)
    return {n: x for n in names} if len(names) > 1 else x


def test_registries_cover_config_ids():
    assert set(PROJECTORS) == set(registry.PROJECTORS.names())
    assert registry.VISION_FAMILIES.names() == ["open_clip", "hf-clip", "hf-siglip", "hf-dinov2", "timm", "patch-embed"]


@pytest.mark.parametrize("vision", TINY_VISION)
def test_backbone_patch_features(backbones, vision):
    cfg, backbone = backbones[vision]
    grid = cfg.vision.image_size // cfg.vision.backbones[0].patch_size
    feats = backbone(_pixels(cfg, 2))
    assert feats.shape == (2, grid * grid, sum(b.width for b in cfg.vision.backbones))
    depth = sum(max(b.depth - 1, 0) for b in cfg.vision.backbones)  # last block pruned (feature_layer=-2)
    assert len(backbone.blocks()) == depth


@pytest.mark.parametrize("projector", PROJECTORS)
@pytest.mark.parametrize("vision", TINY_VISION)
def test_every_combination_builds_with_right_shapes(backbones, vision, projector):
    try:
        cfg = tiny_cfg(f"vision={vision}", f"projector={projector}")
    except ConfigError as err:  # fused-mlp is only valid for fused backbones
        assert projector == "fused-mlp" and len(tiny_cfg(f"vision={vision}").vision.backbones) == 1, err
        return
    _, backbone = backbones[vision]
    proj = build_projector(cfg.projector, backbone.embed_dim, LM_WIDTH)
    tokens = proj(backbone(_pixels(cfg, 3)))
    expected = cfg.projector.num_tokens if cfg.projector.num_tokens else backbone.num_patches
    assert tokens.shape == (3, expected, LM_WIDTH)  # gated-xattn: the cross-attention context, one per patch
    in_sequence = 0 if projector == "gated-xattn" else expected  # the bridge puts no tokens in the sequence
    assert num_output_tokens(cfg.projector, backbone.num_patches) == in_sequence


def test_feature_layer_is_second_to_last_block_without_norm(backbones):
    cfg, backbone = backbones["tiny-dinov2"]
    trunk = backbone.branches["tiny-dinov2"].model
    x = torch.randn(1, 3, 64, 64)
    h = trunk.patch_embed(x)
    h = trunk._pos_embed(h)
    h = trunk.norm_pre(h)
    for blk in trunk.blocks:  # pruned to the first depth-1 blocks
        h = blk(h)
    torch.testing.assert_close(backbone(x), h[:, trunk.num_prefix_tokens:])
    assert trunk.num_prefix_tokens == 5  # CLS + 4 registers dropped


def test_fused_mismatched_grids_rejected():
    cfg = tiny_cfg("vision=tiny-dinosiglip", check=False)
    cfg.vision.backbones[1].patch_size = 16
    with pytest.raises(ValueError, match=r"tiny-dinosiglip: fused branches have different patch grids"):
        build_vision(cfg.vision)


@pytest.mark.parametrize("vision", ["clip-vit-l-336", "dinov2-vit-l-224"])
def test_missing_vision_weights_name_what_and_where(vision, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    cfg = tiny_cfg(f"vision={vision}", check=False)
    arch = cfg.vision.backbones[0].arch
    with pytest.raises(WeightsNotFoundError, match=rf"{arch}.*not found locally \(looked for HF repo .* in "
                                                   rf"{tmp_path}\)"):
        build_vision(cfg.vision)
    cfg.vision.backbones[0].path = str(Path(tmp_path) / "nope.bin")
    with pytest.raises(WeightsNotFoundError, match=r"path .*nope\.bin.* does not exist"):
        build_vision(cfg.vision)

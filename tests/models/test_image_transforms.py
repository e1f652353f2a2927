"""Image processing: letterbox pads with the backbone's integer mean colour (per branch when fused),
resize-naive/resize-crop geometry, normalization, single vs batched calls agree."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from tiny_configs import tiny_cfg

from ablate.config import ConfigError
from ablate.data.transforms import build_image_transform, mean_colour
from ablate.registry import IMAGE_TRANSFORMS


def test_mean_colours_match_prismatic():
    assert mean_colour([0.48145466, 0.4578275, 0.40821073]) == (122, 116, 104)  # CLIP
    assert mean_colour([0.485, 0.456, 0.406]) == (123, 116, 103)  # ImageNet / DINOv2
    assert mean_colour([0.5, 0.5, 0.5]) == (127, 127, 127)  # SigLIP


def test_registry_lists_image_ids():
    assert IMAGE_TRANSFORMS.names() == ["letterbox", "resize-naive", "resize-crop"]
    with pytest.raises(ConfigError, match=r"^image: invalid value 'crop'; allowed: letterbox, resize-naive, resize-crop$"):
        build_image_transform("crop", tiny_cfg().vision)


@pytest.mark.parametrize("vision", ["tiny-clip", "tiny-dinosiglip"])
def test_letterbox_pad_is_mean_colour_exactly(vision):
    cfg = tiny_cfg(f"vision={vision}")
    transform = build_image_transform("letterbox", cfg.vision)
    wide = Image.new("RGB", (160, 40), (255, 0, 0))  # 4:1 -> content is rows 24..39 of 64
    geometric = transform.geometric([wide])
    for branch, batch in zip(cfg.vision.backbones, geometric, strict=True):
        fill = torch.tensor(mean_colour(branch.mean), dtype=torch.uint8).view(3, 1, 1)
        top, bottom = batch[0, :, :20], batch[0, :, -20:]
        assert torch.equal(top, fill.expand_as(top)) and torch.equal(bottom, fill.expand_as(bottom))
        assert torch.equal(batch[0, :, 30:34, 10:50], torch.tensor([255, 0, 0], dtype=torch.uint8)
                           .view(3, 1, 1).expand(3, 4, 40))
    out = transform(wide)
    tensors = out.values() if isinstance(out, dict) else [out]
    for branch, x in zip(cfg.vision.backbones, tensors, strict=True):
        expected = (torch.tensor(mean_colour(branch.mean)) / 255 - torch.tensor(branch.mean)) / torch.tensor(branch.std)
        torch.testing.assert_close(x[:, 0, 0], expected.float())


def test_resize_crop_cuts_edges_and_naive_keeps_them():
    cfg = tiny_cfg("vision=tiny-clip")
    image = Image.new("RGB", (128, 64), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 16, 64))  # a white band at the left edge
    crop = build_image_transform("resize-crop", cfg.vision).geometric([image])[0][0]
    naive = build_image_transform("resize-naive", cfg.vision).geometric([image])[0][0]
    assert crop.shape == naive.shape == (3, 64, 64)
    assert int(crop.max()) < 20  # the band is outside the centre crop
    assert int(naive[:, :, :6].min()) > 240  # naive resize keeps it (warped to 8 px wide)


def test_batched_equals_single_and_modes():
    cfg = tiny_cfg("vision=tiny-dinosiglip")
    transform = build_image_transform("letterbox", cfg.vision)
    images = [Image.new("RGB", (50, 90), (10, 200, 30)), Image.new("L", (70, 30), 99)]
    batch = transform(images)
    assert set(batch) == {"tiny-dinov2", "tiny-siglip"} and batch["tiny-dinov2"].shape == (2, 3, 64, 64)
    for i, im in enumerate(images):
        single = transform(im)
        for name in batch:
            torch.testing.assert_close(single[name], batch[name][i])

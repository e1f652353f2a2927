"""The image-processing axis: ``resize-naive``, ``letterbox`` and ``resize-crop`` to the backbone resolution.

``build_image_transform(image_id, vision_cfg)`` returns a callable that maps a PIL image (or a list of them)
to the normalized pixel tensor the vision backbone takes: ``(3, S, S)`` / ``(B, 3, S, S)`` for one branch, or
a dict branch name -> tensor for a fused backbone (each branch normalized with its own mean/std and, for
``letterbox``, padded with its own mean colour).  As Prismatic (timm's eval transform, bicubic):

- ``resize-naive``: resize to ``(S, S)``, aspect ratio warped;
- ``resize-crop``: resize the shorter side to ``S`` and centre-crop ``S x S`` (edges are cut off);
- ``letterbox``: pad to a centred square with the mean colour as integers ``int(mean * 255)`` (truncated:
  CLIP (122, 116, 104), ImageNet (123, 116, 103), SigLIP (127, 127, 127)), then resize to ``(S, S)``.

Work happens on uint8 tensors with ``torchvision.transforms.v2.functional`` (one resize per image and fill
colour), and normalization runs once on the stacked batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ablate.registry import IMAGE_TRANSFORMS

Geometry = Callable[[torch.Tensor, int, tuple[int, int, int]], torch.Tensor]
BICUBIC = InterpolationMode.BICUBIC


def mean_colour(mean: Sequence[float]) -> tuple[int, int, int]:
    """The letterbox fill of a backbone: its normalization mean x 255, truncated to integers."""
    r, g, b = (int(m * 255) for m in mean)
    return r, g, b


def resize_naive(image: torch.Tensor, size: int, fill: tuple[int, int, int]) -> torch.Tensor:
    return TF.resize(image, [size, size], interpolation=BICUBIC, antialias=True)


def resize_crop(image: torch.Tensor, size: int, fill: tuple[int, int, int]) -> torch.Tensor:
    return TF.center_crop(TF.resize(image, size, interpolation=BICUBIC, antialias=True), [size, size])


def letterbox(image: torch.Tensor, size: int, fill: tuple[int, int, int]) -> torch.Tensor:
    h, w = image.shape[-2:]
    side = max(h, w)
    left, top = (side - w) // 2, (side - h) // 2
    padded = TF.pad(image, [left, top, side - w - left, side - h - top], fill=list(fill))
    return TF.resize(padded, [size, size], interpolation=BICUBIC, antialias=True)


def to_uint8(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """An RGB uint8 ``(3, H, W)`` tensor from a PIL image (any mode) or a uint8 tensor."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"image tensor: expected uint8 (3, H, W), got {image.dtype} {tuple(image.shape)}")
        return image
    if image.mode != "RGB":
        image = image.convert("RGB")
    return TF.pil_to_tensor(image)


class ImageTransform:
    """PIL image(s) -> normalized tensor (one branch) or dict branch -> tensor (fused)."""

    def __init__(self, image_id: str, vision_cfg: Any) -> None:
        from ablate.models.vision import branch_names

        self.image_id = image_id
        self.geometry: Geometry = IMAGE_TRANSFORMS.get(image_id)
        self.size = int(vision_cfg.image_size)
        self.names = branch_names(vision_cfg)
        self.fills = [mean_colour(b.mean) for b in vision_cfg.backbones]
        self.means = [torch.tensor(b.mean).view(1, 3, 1, 1) for b in vision_cfg.backbones]
        self.stds = [torch.tensor(b.std).view(1, 3, 1, 1) for b in vision_cfg.backbones]
        self.fused = len(self.names) > 1

    def geometric(self, images: Sequence[Image.Image | torch.Tensor]) -> list[torch.Tensor]:
        """Per branch, the uint8 ``(B, 3, S, S)`` batch after pad/resize/crop (before normalization)."""
        arrays = [to_uint8(im) for im in images]
        by_fill: dict[tuple[int, int, int], torch.Tensor] = {}
        out = []
        for fill in self.fills:  # branches sharing a fill colour (or any non-letterbox id) share the work
            key = fill if self.image_id == "letterbox" else (0, 0, 0)
            if key not in by_fill:
                by_fill[key] = torch.stack([self.geometry(a, self.size, fill) for a in arrays])
            out.append(by_fill[key])
        return out

    def __call__(self, images: Image.Image | torch.Tensor | Sequence[Image.Image | torch.Tensor]
                 ) -> torch.Tensor | dict[str, torch.Tensor]:
        single = isinstance(images, Image.Image | torch.Tensor)
        batch = self.geometric([images] if single else list(images))
        normalized = [((x.float() / 255.0) - m) / s for x, m, s in zip(batch, self.means, self.stds, strict=True)]
        if single:
            normalized = [x[0] for x in normalized]
        if self.fused:
            return dict(zip(self.names, normalized, strict=True))
        return normalized[0]


def build_image_transform(image_id: str, vision_cfg: Any) -> ImageTransform:
    """The image transform ``image_id`` (``resize-naive`` | ``letterbox`` | ``resize-crop``) for a backbone."""
    return ImageTransform(image_id, vision_cfg)

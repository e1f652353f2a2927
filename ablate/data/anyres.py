"""The ``anyres`` image-processing level (LLaVA-NeXT, Liu et al. 2024, "LLaVA-NeXT: improved reasoning, OCR, and
world knowledge"; code: haotian-liu/LLaVA ``llava/mm_utils.py`` at c121f04): tile the image at the tower's
resolution ``S`` instead of squeezing it into one ``S x S`` input.

- The grid: from the configured set of grid layouts ``"CxR"`` (``C`` tiles wide, ``R`` tiles high, i.e. a
  canvas of ``C·S x R·S`` pixels; LLaVA-NeXT's ``image_grid_pinpoints`` divided by ``S``), pick the canvas that
  keeps the most of the image (effective resolution: the image scaled to fit the canvas, ``int``-truncated,
  capped at the original pixel count), ties broken by the least wasted canvas area, the first such shape
  winning (``select_best_resolution``).
- The canvas: the image resized to fit it with its aspect ratio kept (the fitted side exactly, the other
  ``ceil``-ed and capped), centred on black (``resize_and_pad_image``), cut into ``R x C`` tiles in row-major
  order (``divide_to_patches``).
- The overview: the whole image resized to ``S x S`` (aspect warped, as LLaVA's ``image.resize``), first.

The transform gives ``1 + R·C`` tiles per image plus the grid ``(C, R)``; ``ablate.models.tiles`` arranges their
tokens (overview, then the tile grid's patch rows, each ended by a learned separator).  Resizing is bicubic with
antialiasing (torchvision), where LLaVA's PIL ``resize`` defaults to bicubic as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ablate.config import parse_grids

BICUBIC = InterpolationMode.BICUBIC
GRID_KEY = "anyres_grid"  # the (C, R) grid in a pixel dict (beside the branches' tiles)


def select_grid(size: tuple[int, int], grids: Sequence[tuple[int, int]], tile: int) -> tuple[int, int]:
    """The grid ``(C, R)`` for an image of ``size = (width, height)``: max effective resolution, then least
    waste, then the first in ``grids`` (LLaVA-NeXT's rule on the canvases ``(C·tile, R·tile)``)."""
    width, height = size
    best, best_effective, best_waste = grids[0], -1, math.inf
    for cols, rows in grids:
        w, h = cols * tile, rows * tile
        scale = min(w / width, h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        waste = w * h - effective
        if effective > best_effective or (effective == best_effective and waste < best_waste):
            best, best_effective, best_waste = (cols, rows), effective, waste
    return best


def fit_and_pad(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``image`` (uint8 ``(3, h, w)``) resized into ``width x height`` with its aspect ratio kept and centred
    on black (LLaVA's ``resize_and_pad_image``)."""
    h, w = image.shape[-2:]
    scale_w, scale_h = width / w, height / h
    if scale_w < scale_h:
        new_w, new_h = width, min(math.ceil(h * scale_w), height)
    else:
        new_w, new_h = min(math.ceil(w * scale_h), width), height
    resized = TF.resize(image, [new_h, new_w], interpolation=BICUBIC, antialias=True)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return TF.pad(resized, [left, top, width - new_w - left, height - new_h - top], fill=0)


class AnyresTiling:
    """``tiles(image, S) -> (1 + R·C, 3, S, S)`` uint8 (overview first, tiles row-major) for the grid
    ``grid((width, height), S)`` picked from ``grids``."""

    def __init__(self, grids: Sequence[str] | None = None) -> None:
        self.grids = parse_grids(list(grids) if grids is not None else [])

    def grid(self, size: tuple[int, int], tile: int) -> tuple[int, int]:
        return select_grid(size, self.grids, tile)

    @property
    def max_tiles(self) -> int:
        return 1 + max(c * r for c, r in self.grids)

    def tiles(self, image: torch.Tensor, tile: int) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = image.shape[-2:]
        cols, rows = self.grid((w, h), tile)
        canvas = fit_and_pad(image, cols * tile, rows * tile)
        parts = canvas.unfold(1, tile, tile).unfold(2, tile, tile)  # (3, R, C, S, S)
        parts = parts.permute(1, 2, 0, 3, 4).reshape(rows * cols, 3, tile, tile)
        overview = TF.resize(image, [tile, tile], interpolation=BICUBIC, antialias=True)
        return torch.cat([overview.unsqueeze(0), parts]), (cols, rows)



def pad_tiles(stacks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image tile stacks ``(N_i, ...)`` -> ``(B, max N_i, ...)``, zero tiles after each image's own."""
    n = max(s.shape[0] for s in stacks)
    out = stacks[0].new_zeros((len(stacks), n, *stacks[0].shape[1:]))
    for i, s in enumerate(stacks):
        out[i, : s.shape[0]] = s
    return out

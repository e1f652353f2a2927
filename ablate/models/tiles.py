"""Image tokens of ``image=anyres`` (``ablate.data.anyres``): every tile is encoded and projected on its own, and
the tokens of one image are laid out as LLaVA-NeXT does (haotian-liu/LLaVA ``llava_arch.py`` at c121f04,
``mm_patch_merge_type`` ``spatial`` + ``image_newline``):

    [overview: G·G tokens] + [row y of the (R·G) x (C·G) patch map: C·G tokens, then the separator] x R·G

The tile grid's patch features are put back in their spatial layout (tile ``(i, j)``'s patch ``(y, x)`` at row
``i·G + y``, column ``j·G + x``) and every patch row ends in one learned separator token (LLaVA's
``image_newline``, initialised ``N(0, 1/d)`` as LLaVA does).  LLaVA-NeXT's ``unpad`` (dropping the feature rows
or columns that only cover the black padding) is not done, so an image's token count depends only on its grid:
``G² + R·G·(C·G + 1)`` (:func:`tokens_for_grid`).  The separator is a parameter of the projector module
(``projector.row_separator``), so it trains, shards and checkpoints with the projector; a forward hook appends
it to the projector's output as one extra token per tile, so it is read inside the projector's forward (where an
FSDP2 unit's parameters are gathered) and :func:`arrange` takes it from there.
"""

from __future__ import annotations

import torch
from torch import nn

SEPARATOR = "row_separator"


def tokens_for_grid(cols: int, rows: int, side: int) -> int:
    """Image tokens of a ``cols x rows`` tile grid with a ``side x side`` patch grid per tile."""
    return side * side + rows * side * (cols * side + 1)


def grid_tokens(grids: list[str], side: int) -> dict[str, int]:
    """Image tokens per grid shape of an ``image.grids`` list (``{"2x1": ...}``), patch grid ``side`` per tile."""
    from ablate.config import parse_grids

    return {f"{c}x{r}": tokens_for_grid(c, r, side) for c, r in parse_grids(grids)}


def add_separator(projector: nn.Module, width: int) -> None:
    """Give ``projector`` the learned row separator (``N(0, 1/width)``, on the projector's device), appended to
    its output ``(N, L, D) -> (N, L + 1, D)``."""
    device = next(projector.parameters()).device
    init = torch.randn(width) * width ** -0.5
    projector.register_parameter(SEPARATOR, nn.Parameter(init.to(device)))

    def append(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        sep = getattr(module, SEPARATOR).to(out.dtype).view(1, 1, -1).expand(out.shape[0], 1, -1)
        return torch.cat([out, sep], dim=1)
    projector.register_forward_hook(append)


def arrange(tokens: torch.Tensor, grids: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``tokens``: ``(N_tiles, G·G + 1, D)`` (the projector's output with the separator appended) for every
    image's ``1 + C·R`` tiles in turn (overview first, tiles row-major); ``grids``: ``(B, 2)`` = ``(C, R)``.
    Returns ``(B, T_max, D)`` image tokens (zeros after each image's own) and the ``(B,)`` token counts."""
    out, lengths, start = [], [], 0
    d = tokens.shape[-1]
    for cols, rows in grids.tolist():
        n = cols * rows
        overview, separator = tokens[start, :-1], tokens[start, -1]
        grid = tokens[start + 1: start + 1 + n, :-1].reshape(rows, cols, side, side, d)
        grid = grid.permute(0, 2, 1, 3, 4).reshape(rows * side, cols * side, d)
        sep = separator.view(1, 1, d).expand(rows * side, 1, d)
        seq = torch.cat([overview, torch.cat([grid, sep], dim=1).reshape(-1, d)])
        out.append(seq)
        lengths.append(seq.shape[0])
        start += 1 + n
    padded = tokens.new_zeros(len(out), max(lengths), d)
    for i, seq in enumerate(out):
        padded[i, : seq.shape[0]] = seq
    return padded, torch.tensor(lengths, device=tokens.device)

"""Position ids of a merged image+text sequence: ``1d`` (sequential) or ``rope-2d`` (M-RoPE-style).

``rope-2d`` gives each rotary frequency section its own position: text tokens get their 1-D position ``p``
in every section, so text-only input is exactly ``1d``; image patch ``(row, col)`` of an image starting at
``p`` gets ``(p, p + row, p + col)`` and the text after the image continues from ``p + grid`` (the image's
largest position + 1), as Qwen2-VL's M-RoPE.  :class:`SectionedRotary` wraps an HF rotary embedding (Llama,
Mistral, Qwen2 share its interface) so it accepts position ids of shape ``(3, B, L)``; 2-D ``(B, L)`` ids
pass straight through, so the wrapped LM behaves exactly as before for ordinary input.
"""

from __future__ import annotations

import torch
from torch import nn

SECTIONS = 3  # (sequence, row, col)


def merged_positions(attention_mask: torch.Tensor, image_index: torch.Tensor, grid: int | None,
                     mode: str) -> torch.Tensor:
    """Positions of a merged sequence: ``(B, L)`` for ``1d``, ``(3, B, L)`` for ``rope-2d``.

    ``image_index`` is ``-1`` on text/padding and ``k`` on the k-th image token; masked positions do not
    advance the position counter (left/right padding and masked image slots are skipped)."""
    attended = attention_mask.bool()
    if mode == "1d" or grid is None:
        return (attended.long().cumsum(-1) - 1).clamp(min=0)
    if mode != "rope-2d":
        raise ValueError(f"llm.image_positions: invalid value {mode!r}; allowed: 1d, rope-2d")
    is_image = (image_index >= 0) & attended
    last_image = is_image & (image_index == grid * grid - 1)
    step = torch.where(is_image, torch.zeros_like(image_index), attended.long())
    step = torch.where(last_image, torch.full_like(step, grid), step)
    base = step.cumsum(-1) - step  # exclusive cumsum: p at every token
    k = image_index.clamp(min=0)
    row = torch.where(is_image, k // grid, 0)
    col = torch.where(is_image, k % grid, 0)
    return torch.stack([base, base + row, base + col])


def next_positions(positions: torch.Tensor) -> torch.Tensor:
    """The position of the next generated token: the largest position so far + 1 (``(B,)``)."""
    return positions.amax(dim=(0, -1) if positions.dim() == 3 else -1) + 1


class SectionedRotary(nn.Module):
    """Rotary embedding that takes ``(3, B, L)`` position ids and gives each frequency section its own."""

    def __init__(self, rotary: nn.Module) -> None:
        super().__init__()
        self.rotary = rotary
        n_freq = rotary.inv_freq.numel()
        sizes = [n_freq - 2 * (3 * n_freq // 8), 3 * n_freq // 8, 3 * n_freq // 8]  # Qwen2-VL's 16/24/24 of 64
        section = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
        self.register_buffer("section", torch.cat([section, section]), persistent=False)  # cos/sin use cat(f, f)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if position_ids.dim() == 2:
            return self.rotary(x, position_ids)
        cos_sin = [self.rotary(x, position_ids[i]) for i in range(SECTIONS)]
        cos = torch.stack([c for c, _ in cos_sin])  # (3, B, L, dim)
        sin = torch.stack([s for _, s in cos_sin])
        index = self.section.to(x.device).view(1, 1, 1, -1).expand(1, *cos.shape[1:])
        return cos.gather(0, index)[0], sin.gather(0, index)[0]


def enable_rope_2d(llm: nn.Module) -> None:
    """Wrap the LM's rotary embedding so it accepts sectioned position ids (idempotent)."""
    base = llm.get_decoder() if hasattr(llm, "get_decoder") else llm.model
    if not isinstance(base.rotary_emb, SectionedRotary):
        base.rotary_emb = SectionedRotary(base.rotary_emb)

"""Position ids of a merged image+text sequence, one string ID per multimodal position encoding.

The levels (``llm.image_positions``; IDs in :data:`ablate.config.IMAGE_POSITIONS`, built here through the
:data:`POSITION_ENCODINGS` registry).  ``p`` is the position the first image token would get under ``1d``
(the number of attended tokens before it: 1 after BOS), the image is a ``G x G`` patch grid (``w = h = G``),
patch ``k`` sits at row ``r = k // G``, column ``c = k % G``.

- ``1d``: sequential, as Prismatic/LLaVA: patch ``k`` at ``p + k``, the text after at ``p + G^2``.
- ``m-rope`` (Qwen2-VL's M-RoPE, Wang et al. 2024, arXiv 2409.12191 §2.1; alias ``rope-2d``, this level's
  ID before the rename): three contiguous frequency sections (sequence, row, col) with Qwen2-VL's 16/24/24 of
  64 split; text at ``n`` gets ``(n, n, n)``, patch ``(r, c)`` gets ``(p, p + r, p + c)``, the text after
  continues at ``p + G`` (the image's largest position + 1).
- ``mrope-interleave`` (MRoPE-I, Huang et al. 2025, "Revisiting multimodal positional encoding in vision-
  language models", arXiv 2510.23095): M-RoPE's positions, but the frequencies go round-robin over the three
  axes (frequency ``i`` on axis ``i mod 3``), so every axis sees the full frequency range.  The paper's
  optional "spatial reset" is not implemented.
- ``rope-tie`` (Su Jianlin, "Transformer upgrade road 17: simple thoughts on multimodal position encoding",
  kexue.fm/archives/10040, March 2024): RoPE-2D for every token; text at ``n`` gets ``(n, n)``, patch
  ``(r, c)`` gets ``(p + r, p + c)`` (2-D positions starting after the preceding text), the text after
  continues at ``p + G``.
- ``rope-tv`` (Su Jianlin, "closed-door thoughts on multimodal (3): position encoding", kexue.fm/archives/
  10352, September 2024: RoPE-Tie-v2 / RoPE-TV).  The article's exact formula could not be read here (the
  stored translations reachable from this project gave only the introduction), so this level implements
  its three stated principles and the positions below are ablate's construction, not a quotation:
  *compatibility* — text at ``n`` gets ``(n, n)``, so text-only input is exactly RoPE-1D;
  *equivalence* — a ``w x h`` image spans ``w·h`` positions like ``w·h`` text tokens: the text after it
  continues at ``p + G^2`` (as under ``1d``), and the patch coordinates are stretched by stride ``G`` to
  cover that span: patch ``(r, c)`` gets ``(p + g + G·r, p + g + G·c)``;
  *symmetry* — the gap from the last text before (``p - 1``) to the first patch equals the gap from the
  last patch (``p + g + G(G-1)``) to the first text after (``p + G^2``): ``g + 1 = G^2 - g - G(G-1)``, so
  ``g = (G - 1) / 2`` and both gaps are ``(G + 1) / 2`` (fractional positions for even ``G``; RoPE takes real
  positions).

Frequencies: ``m-rope`` splits the LM's ``d/2`` rotary frequencies into three contiguous sections;
``mrope-interleave`` assigns frequency ``i`` to axis ``i mod 3``; the two-axis levels to axis ``i mod 2`` (interleaved, every axis sees the whole frequency range, as
RoPE-2D's alternating x/y blocks).  With all axes equal (text) every frequency sees ``n``: exactly the LM's
RoPE-1D.  :class:`SectionedRotary` wraps an HF rotary embedding (Llama, Mistral, Qwen2 share its interface)
so it accepts position ids of shape ``(S, B, L)``; ``(B, L)`` ids pass straight through, so the wrapped LM
behaves exactly as before for ordinary input.  Generation continues every axis at the largest position + 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ablate.config import IMAGE_POSITIONS, POSITION_ALIASES

SECTIONS = 3  # m-rope: (sequence, row, col)
Positions = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
POSITION_ENCODINGS: dict[str, Positions] = {}
LAYOUTS = {"m-rope": "sections", "mrope-interleave": "interleave-3", "rope-tie": "interleave-2",
           "rope-tv": "interleave-2"}


def canonical(mode: str) -> str:
    """The level an ID names (``rope-2d`` -> ``m-rope``)."""
    return POSITION_ALIASES.get(mode, mode)


def _register(name: str) -> Callable[[Positions], Positions]:
    def decorate(fn: Positions) -> Positions:
        POSITION_ENCODINGS[name] = fn
        return fn
    return decorate


def _sequential(attended: torch.Tensor, image_index: torch.Tensor, grid: int) -> torch.Tensor:
    return (attended.long().cumsum(-1) - 1).clamp(min=0)


_register("1d")(_sequential)


def _grid_parts(attended: torch.Tensor, image_index: torch.Tensor, grid: int, image_span: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(is_image, base, row, col)``: ``base`` is ``p`` on image tokens (the position after the preceding
    text) and ``n`` on text; text after an image continues ``image_span`` after ``p``."""
    is_image = (image_index >= 0) & attended
    last_image = is_image & (image_index == grid * grid - 1)
    step = torch.where(is_image, torch.zeros_like(image_index), attended.long())
    step = torch.where(last_image, torch.full_like(step, image_span), step)
    base = step.cumsum(-1) - step  # exclusive cumsum
    k = image_index.clamp(min=0)
    return is_image, base, torch.where(is_image, k // grid, 0), torch.where(is_image, k % grid, 0)


@_register("m-rope")
def _m_rope(attended: torch.Tensor, image_index: torch.Tensor, grid: int) -> torch.Tensor:
    _, base, row, col = _grid_parts(attended, image_index, grid, grid)
    return torch.stack([base, base + row, base + col])


@_register("mrope-interleave")
def _mrope_interleave(attended: torch.Tensor, image_index: torch.Tensor, grid: int) -> torch.Tensor:
    return _m_rope(attended, image_index, grid)  # M-RoPE's positions; the frequencies are what differ


@_register("rope-tie")
def _rope_tie(attended: torch.Tensor, image_index: torch.Tensor, grid: int) -> torch.Tensor:
    _, base, row, col = _grid_parts(attended, image_index, grid, grid)
    return torch.stack([base + row, base + col])


@_register("rope-tv")
def _rope_tv(attended: torch.Tensor, image_index: torch.Tensor, grid: int) -> torch.Tensor:
    is_image, base, row, col = _grid_parts(attended, image_index, grid, grid * grid)
    offset = torch.where(is_image, (grid - 1) / 2, 0.0)
    base = base.to(torch.float32) + offset
    return torch.stack([base + grid * row, base + grid * col])


assert set(POSITION_ENCODINGS) | set(POSITION_ALIASES) == set(IMAGE_POSITIONS), "config and registry disagree"


def merged_positions(attention_mask: torch.Tensor, image_index: torch.Tensor, grid: int | None,
                     mode: str) -> torch.Tensor:
    """Positions of a merged sequence: ``(B, L)`` for ``1d`` (or no image grid), ``(S, B, L)`` otherwise.

    ``image_index`` is ``-1`` on text/padding and ``k`` on the k-th image token; masked positions do not
    advance the position counter (left/right padding and masked image slots are skipped)."""
    attended = attention_mask.bool()
    level = canonical(mode)
    if level not in POSITION_ENCODINGS:
        raise ValueError(f"llm.image_positions: invalid value {mode!r}; allowed: {', '.join(IMAGE_POSITIONS)}")
    if level == "1d" or grid is None:
        return _sequential(attended, image_index, 0)
    return POSITION_ENCODINGS[level](attended, image_index, grid)


def next_positions(positions: torch.Tensor) -> torch.Tensor:
    """The position of the next generated token: the largest position so far + 1 (``(B,)``)."""
    return positions.amax(dim=(0, -1) if positions.dim() == 3 else -1) + 1


class SectionedRotary(nn.Module):
    """Rotary embedding that takes ``(S, B, L)`` position ids and gives each frequency its axis's position:
    ``sections`` = M-RoPE's three contiguous sections, ``interleave-S`` = frequency ``i`` on axis ``i mod S``."""

    def __init__(self, rotary: nn.Module, layout: str = "sections") -> None:
        super().__init__()
        self.rotary = rotary
        self.layout = layout
        n_freq = rotary.inv_freq.numel()
        if layout == "sections":
            sizes = [n_freq - 2 * (3 * n_freq // 8), 3 * n_freq // 8, 3 * n_freq // 8]  # Qwen2-VL's 16/24/24 of 64
            axis = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
        elif layout in ("interleave-2", "interleave-3"):
            axis = torch.arange(n_freq) % int(layout[-1])
        else:
            raise ValueError(f"SectionedRotary: invalid layout {layout!r}; allowed: sections, interleave-2, "
                             "interleave-3")
        self.register_buffer("section", torch.cat([axis, axis]), persistent=False)  # cos/sin use cat(f, f)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if position_ids.dim() == 2:
            return self.rotary(x, position_ids)
        cos_sin = [self.rotary(x, position_ids[i]) for i in range(position_ids.shape[0])]
        cos = torch.stack([c for c, _ in cos_sin])  # (S, B, L, dim)
        sin = torch.stack([s for _, s in cos_sin])
        index = self.section.to(x.device).view(1, 1, 1, -1).expand(1, *cos.shape[1:])
        return cos.gather(0, index)[0], sin.gather(0, index)[0]


def enable_positions(llm: nn.Module, mode: str) -> None:
    """Wrap the LM's rotary embedding so it accepts the multi-axis position ids of ``mode`` (idempotent;
    ``1d`` leaves the LM untouched)."""
    layout = LAYOUTS.get(canonical(mode))
    if layout is None:
        return
    base = llm.get_decoder() if hasattr(llm, "get_decoder") else llm.model
    rotary = base.rotary_emb
    if isinstance(rotary, SectionedRotary):
        if rotary.layout == layout:
            return
        rotary = rotary.rotary
    base.rotary_emb = SectionedRotary(rotary, layout)


def enable_rope_2d(llm: nn.Module) -> None:
    """M-RoPE sections on the LM's rotary embedding (the name before the level registry)."""
    enable_positions(llm, "m-rope")

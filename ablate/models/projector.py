"""Projectors: map vision patch features ``(B, L, D_vision)`` to LM-width tokens ``(B, T, D_lm)``.

Patch-wise maps keep ``T = L`` (``linear``; ``mlp`` = Prismatic's gelu-mlp, in -> LM -> LM; ``fused-mlp`` =
Prismatic's fused-gelu-mlp, in -> hidden_mult*in -> LM -> LM).  Resamplers output a fixed ``T = num_tokens``
from learned queries: ``perceiver`` (Flamingo-style latents that cross-attend to the patches and to
themselves, then an MLP, per layer) and ``qformer`` (BLIP-2-style queries: self-attention, cross-attention
to the patches, MLP, per layer).  ``gated-xattn`` is the Flamingo bridge (``ablate.models.bridge``): no image
tokens in the sequence, gated cross-attention inside the LM.  Resamplers first lift patches to LM width so attention runs at LM width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ablate.registry import PROJECTORS


class MLP(nn.Sequential):
    """Linear layers with GELU between them: widths ``dims[0] -> dims[1] -> ... -> dims[-1]``."""

    def __init__(self, *dims: int) -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            if i:
                layers.append(nn.GELU())
            layers.append(nn.Linear(a, b))
        super().__init__(*layers)


class Attention(nn.Module):
    """Pre-norm multi-head attention of ``queries`` over ``context`` with a residual connection."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q, kv = self.norm_q(queries), self.norm_kv(context)
        return queries + self.attn(q, kv, kv, need_weights=False)[0]


class FeedForward(nn.Module):
    def __init__(self, width: int, mult: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = MLP(width, mult * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class Resampler(nn.Module):
    """Learned queries refined by ``depth`` layers; ``self_attend`` picks the Q-Former layer (self-attn,
    cross-attn, MLP) over the Perceiver layer (cross-attn to patches + latents, MLP)."""

    def __init__(self, in_dim: int, width: int, num_tokens: int, depth: int, heads: int, *, self_attend: bool):
        super().__init__()
        if width % heads:
            raise ValueError(f"projector.heads: invalid value {heads}; expected a divisor of the LM width {width}")
        self.self_attend = self_attend
        self.lift = nn.Linear(in_dim, width)
        self.queries = nn.Parameter(torch.randn(num_tokens, width) * 0.02)
        self.self_attn = nn.ModuleList(Attention(width, heads) for _ in range(depth if self_attend else 0))
        self.cross_attn = nn.ModuleList(Attention(width, heads) for _ in range(depth))
        self.ff = nn.ModuleList(FeedForward(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        context = self.lift(features)
        x = self.queries.unsqueeze(0).expand(features.shape[0], -1, -1).to(context.dtype)
        for i, (cross, ff) in enumerate(zip(self.cross_attn, self.ff, strict=True)):
            if self.self_attend:
                x = cross(self.self_attn[i](x, x), context)
            else:  # Perceiver: latents attend to patches and to themselves in one softmax
                x = cross(x, torch.cat([context, x], dim=1))
            x = ff(x)
        return self.norm(x)


def build_linear(cfg: Any, in_dim: int, out_dim: int) -> nn.Module:
    return nn.Linear(in_dim, out_dim)


def build_mlp(cfg: Any, in_dim: int, out_dim: int) -> nn.Module:
    return MLP(in_dim, out_dim, out_dim)


def build_fused_mlp(cfg: Any, in_dim: int, out_dim: int) -> nn.Module:
    return MLP(in_dim, cfg.hidden_mult * in_dim, out_dim, out_dim)


def build_perceiver(cfg: Any, in_dim: int, out_dim: int) -> nn.Module:
    return Resampler(in_dim, out_dim, cfg.num_tokens, cfg.depth, cfg.heads, self_attend=False)


def build_qformer(cfg: Any, in_dim: int, out_dim: int) -> nn.Module:
    return Resampler(in_dim, out_dim, cfg.num_tokens, cfg.depth, cfg.heads, self_attend=True)


def build_gated_xattn(cfg: Any, in_dim: int, out_dim: int) -> nn.Module:
    from ablate.models.bridge import GatedXAttnBridge

    return GatedXAttnBridge(in_dim, out_dim, int(cfg.xattn_every), cfg.heads)


def build_projector(projector_cfg: Any, in_dim: int, out_dim: int) -> nn.Module:
    """The projector ``projector_cfg.id`` from vision width ``in_dim`` to LM width ``out_dim``."""
    return PROJECTORS.get(projector_cfg.id)(projector_cfg, in_dim, out_dim)


def num_output_tokens(projector_cfg: Any, num_patches: int) -> int:
    """How many image tokens the LM's sequence holds: ``num_tokens`` for resamplers, 0 for the cross-attention
    bridge (the image enters through ``ablate.models.bridge``), else one per patch."""
    if projector_cfg.id == "gated-xattn":
        return 0
    return int(projector_cfg.num_tokens) if projector_cfg.num_tokens else num_patches

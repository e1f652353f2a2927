"""The ``gated-xattn`` modality bridge (Flamingo, Alayrac et al. 2022, arXiv 2204.14198 §2.2 and Fig. 4): the
image does not enter the LM's sequence; tanh-gated cross-attention blocks before every ``xattn_every``-th LM
decoder layer (layers 0, k, 2k, ...) let the text attend to the image features:

    y = x + tanh(a_attn) * Attn(LN(x), V)        V = lift(vision features), keys/values from V
    y = y + tanh(a_ff)   * FFW(LN(y))

with ``a_attn = a_ff = 0`` at init, so the LM starts exactly unchanged.  The blocks live in the projector (so a
recipe that trains the projector trains them, as Flamingo trains them with a frozen LM) and are called by forward
pre-hooks on the LM's decoder layers, so the LM's own module names and weights are untouched.  Each block is an
FSDP unit (``fsdp_blocks``).  ``set_context`` is called once per sequence batch by ``VLM.merge``; a block
computes its image keys/values once per context at inference (``kv_computations`` counts them) and reuses them
for every decoding step of ``generate``; with grad enabled it computes them in each call (once per forward;
activation checkpointing recomputes them consistently).  Rows without an image get no cross-attention output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.projector import MLP


class GatedCrossAttention(nn.Module):
    def __init__(self, width: int, heads: int, bridge: GatedXAttnBridge, index: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"projector.heads: invalid value {heads}; expected a divisor of the LM width {width}")
        self.heads = heads
        self.index = index
        self.norm = nn.LayerNorm(width)
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(width, 2 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = MLP(width, 4 * width, width)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff_gate = nn.Parameter(torch.zeros(1))
        self._bridge = [bridge]  # not a submodule (the bridge owns the blocks)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, L, D = t.shape
        return t.view(B, L, self.heads, D // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bridge = self._bridge[0]
        context, row_mask = bridge.context, bridge.row_mask
        # inference: once per context, every decoding step reuses them; with grad: computed in the block's own
        # forward, so an activation-checkpointed layer recomputes exactly what its forward did
        kv = None if torch.is_grad_enabled() else bridge.kv_cache.get(self.index)
        if kv is None:
            kv = self.kv(context.to(self.kv.weight.dtype)).chunk(2, dim=-1)
            if not torch.is_grad_enabled():
                bridge.kv_cache[self.index] = kv
            bridge.kv_computations += 1
        q = self._split(self.q(self.norm(x)))
        k, v = (self._split(t.to(q.dtype)) for t in kv)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)
        keep = row_mask.to(x.dtype).view(-1, 1, 1)
        y = x + torch.tanh(self.attn_gate).to(x.dtype) * self.out(attn) * keep
        return y + torch.tanh(self.ff_gate).to(x.dtype) * self.ff(self.norm_ff(y)) * keep


class GatedXAttnBridge(nn.Module):
    """Lifts vision features to LM width (the image context) and holds the gated cross-attention blocks."""

    def __init__(self, in_dim: int, width: int, every: int, heads: int) -> None:
        super().__init__()
        self.every = every
        self.lift = MLP(in_dim, width, width)
        self.blocks = nn.ModuleDict()
        self.width, self.heads = width, heads
        self.context: torch.Tensor | None = None
        self.row_mask: torch.Tensor | None = None
        self.kv_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.kv_computations = 0

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.lift(features)

    @property
    def fsdp_blocks(self) -> list[nn.Module]:
        return list(self.blocks.values())

    def set_context(self, context: torch.Tensor | None, row_mask: torch.Tensor | None) -> None:
        self.context, self.row_mask, self.kv_cache = context, row_mask, {}

    def attach(self, llm: nn.Module) -> None:
        """Make one block per ``every``-th decoder layer of ``llm`` and hook each before its layer (once)."""
        if len(self.blocks):
            return
        layers = llm.get_decoder().layers
        for i in range(0, len(layers), self.every):
            with torch.device(self.lift[0].weight.device):  # meta skeletons stay on meta
                block = GatedCrossAttention(self.width, self.heads, self, i)
            self.blocks[str(i)] = block
            layers[i].register_forward_pre_hook(self._hook(block), with_kwargs=True)

    def _hook(self, block: nn.Module) -> Any:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            if self.context is None:
                return None
            if args:
                return (block(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": block(kwargs["hidden_states"])}
        return hook

"""Vision towers of a trained VLM as transformers' ``CLIPVisionModel`` / ``SiglipVisionModel`` (for hf-llava).

Why it exists: LLaVA-format consumers (transformers, vLLM, lmms-eval) rebuild the tower from a config of the
HF families, so a tower is exported only when one of those architectures computes *exactly* what ablate's
branch computes: ablate's branch is already pruned after its ``feature_layer`` block (blocks after it, the
final norm and the pooling head were removed when it was built), so the exported tower has exactly the kept
blocks and Llava reads ``hidden_states[-1]`` (the last kept block's output, before any final norm, as CLIP
and SigLIP capture it).  Conversions, checked module by module (anything else is :class:`Unsupported`):

- open_clip ``VisionTransformer`` (OpenAI-style CLIP: CLS token, ``ln_pre``, bias-free patch conv) ->
  ``CLIPVisionModel``; ``nn.MultiheadAttention``'s packed ``in_proj`` is split into q/k/v;
- timm ``VisionTransformer`` with SigLIP's layout (no CLS/register tokens, no ``norm_pre``, no layer scale,
  no q/k norm; open_clip's SigLIP towers are such timm trunks) -> ``SiglipVisionModel``, the packed
  ``qkv`` split into q/k/v;
- ``hf-clip`` / ``hf-siglip`` branches are HF models already: copied with the kept layer count.

The activation is read from the built module itself, by running it (QuickGELU -> ``quick_gelu``, exact GELU
-> ``gelu``, tanh GELU -> ``gelu_pytorch_tanh``), never from the backbone's name or the module's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class ExportError(ValueError):
    """An export that cannot be written as asked (one-line message; the CLI prints it and exits 2)."""


class Unsupported(ExportError):
    """The design point has a level the export format cannot express (one-line message)."""


@dataclass
class Tower:
    """An HF vision config + its state dict (the keys of transformers 5's ``CLIPVisionModel`` /
    ``SiglipVisionModel``, without the final norm and head), and how many prefix tokens ablate drops."""

    config: Any  # CLIPVisionConfig | SiglipVisionConfig
    state: dict[str, torch.Tensor]
    num_prefix_tokens: int  # tokens before the patches that ablate drops (CLS: 1, SigLIP: 0)


_HF_ACTS = ("gelu", "quick_gelu", "gelu_pytorch_tanh")


def hidden_act(act: nn.Module, what: str) -> str:
    """The HF ``hidden_act`` that computes what module ``act`` computes, found by running both on a grid of
    inputs (so any implementation of QuickGELU / GELU / tanh-GELU is recognized, whatever its class name)."""
    from transformers.activations import ACT2FN

    x = torch.linspace(-8.0, 8.0, 4001, dtype=torch.float64)
    with torch.no_grad():
        y = act(x)
        for name in _HF_ACTS:
            if torch.allclose(ACT2FN[name](x), y, rtol=0, atol=1e-7):
                return name
    raise Unsupported(f"{what}: MLP activation {type(act).__name__} has no exact HF hidden_act "
                      f"(supported: {', '.join(_HF_ACTS)})")


def _identity(module: Any) -> bool:
    return module is None or isinstance(module, nn.Identity)


def _require(ok: bool, what: str, detail: str) -> None:
    if not ok:
        raise Unsupported(f"{what}: {detail}")


def _split_qkv(prefix: str, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {}
    for name, w, b in zip(("q_proj", "k_proj", "v_proj"), weight.chunk(3, dim=0), bias.chunk(3, dim=0), strict=True):
        out[f"{prefix}.{name}.weight"] = w.clone()
        out[f"{prefix}.{name}.bias"] = b.clone()
    return out


def _copy(out: dict[str, torch.Tensor], dst: str, module: nn.Module) -> None:
    out[f"{dst}.weight"] = module.weight.detach().clone()
    if getattr(module, "bias", None) is not None:
        out[f"{dst}.bias"] = module.bias.detach().clone()


# ------------------------------------------------------------------------------------------ open_clip CLIP
def from_open_clip(visual: nn.Module, b: Any, what: str) -> Tower:
    """open_clip's OpenAI-style CLIP ``VisionTransformer`` -> ``CLIPVisionModel`` weights."""
    from transformers import CLIPVisionConfig

    blocks = list(visual.transformer.resblocks)
    first = blocks[0]
    _require(visual.conv1.bias is None, what, "patch conv has a bias (HF CLIP's has none)")
    _require(isinstance(visual.ln_pre, nn.LayerNorm), what, "no ln_pre (HF CLIP always has pre_layrnorm)")
    _require(getattr(visual, "class_embedding", None) is not None, what, "no CLS token (HF CLIP has one)")
    for i, blk in enumerate(blocks):
        _require(type(blk.attn) is nn.MultiheadAttention and blk.attn.in_proj_bias is not None, what,
                 f"block {i} attention is not a biased nn.MultiheadAttention")
        _require(_identity(blk.ls_1) and _identity(blk.ls_2), what, f"block {i} has layer scale")
        _require(not hasattr(blk, "ln_attn") or _identity(blk.ln_attn), what, f"block {i} has an inner norm")
    grid = visual.grid_size[0] if hasattr(visual, "grid_size") else b.image_size // b.patch_size
    config = CLIPVisionConfig(
        hidden_size=int(visual.conv1.out_channels), intermediate_size=int(first.mlp.c_fc.out_features),
        num_hidden_layers=len(blocks), num_attention_heads=int(first.attn.num_heads),
        image_size=int(grid * visual.conv1.kernel_size[0]), patch_size=int(visual.conv1.kernel_size[0]),
        hidden_act=hidden_act(first.mlp.gelu, what), layer_norm_eps=float(first.ln_1.eps))
    _require(all(hidden_act(blk.mlp.gelu, what) == config.hidden_act for blk in blocks), what,
             "blocks use different activations")
    state = {"embeddings.class_embedding": visual.class_embedding.detach().clone(),
             "embeddings.patch_embedding.weight": visual.conv1.weight.detach().clone(),
             "embeddings.position_embedding.weight": visual.positional_embedding.detach().clone()}
    _copy(state, "pre_layrnorm", visual.ln_pre)
    for i, blk in enumerate(blocks):
        q = f"encoder.layers.{i}"
        _copy(state, f"{q}.layer_norm1", blk.ln_1)
        state.update(_split_qkv(f"{q}.self_attn", blk.attn.in_proj_weight.detach(), blk.attn.in_proj_bias.detach()))
        _copy(state, f"{q}.self_attn.out_proj", blk.attn.out_proj)
        _copy(state, f"{q}.layer_norm2", blk.ln_2)
        _copy(state, f"{q}.mlp.fc1", blk.mlp.c_fc)
        _copy(state, f"{q}.mlp.fc2", blk.mlp.c_proj)
    return Tower(config, state, 1)


# --------------------------------------------------------------------------------------------- timm SigLIP
def from_timm_siglip(trunk: nn.Module, b: Any, what: str) -> Tower:
    """A timm ``VisionTransformer`` with SigLIP's layout -> ``SiglipVisionModel`` weights."""
    from transformers import SiglipVisionConfig

    blocks = list(trunk.blocks)
    first = blocks[0]
    _require(getattr(trunk, "cls_token", None) is None and int(getattr(trunk, "num_prefix_tokens", 0)) == 0, what,
             "has CLS/register tokens (only SigLIP-style timm towers, without prefix tokens, map to SiglipVisionModel)")
    _require(_identity(trunk.norm_pre), what, "has norm_pre (SiglipVisionModel has no pre-norm)")
    _require(_identity(getattr(trunk.patch_embed, "norm", None)) and trunk.patch_embed.proj.bias is not None, what,
             "patch embedding has a norm or no bias")
    _require(not getattr(trunk, "dynamic_img_size", False), what, "dynamic image size")
    for i, blk in enumerate(blocks):
        _require(all(_identity(getattr(blk, n, None)) for n in ("ls1", "ls2")), what, f"block {i} has layer scale")
        _require(all(_identity(getattr(blk.attn, n, None)) for n in ("q_norm", "k_norm", "norm")), what,
                 f"block {i} attention has q/k norms")
        _require(blk.attn.qkv.bias is not None and _identity(getattr(blk.mlp, "norm", None)), what,
                 f"block {i}: qkv without bias or MLP with a norm")
        _require(isinstance(blk.norm1, nn.LayerNorm) and isinstance(blk.norm2, nn.LayerNorm), what,
                 f"block {i} norm is {type(blk.norm1).__name__}, not LayerNorm")
    patch = int(trunk.patch_embed.proj.kernel_size[0])
    grid = int(trunk.patch_embed.grid_size[0])
    config = SiglipVisionConfig(
        hidden_size=int(trunk.embed_dim), intermediate_size=int(first.mlp.fc1.out_features),
        num_hidden_layers=len(blocks), num_attention_heads=int(first.attn.num_heads), image_size=grid * patch,
        patch_size=patch, hidden_act=hidden_act(first.mlp.act, what), layer_norm_eps=float(first.norm1.eps),
        vision_use_head=False)
    _require(all(hidden_act(blk.mlp.act, what) == config.hidden_act for blk in blocks), what,
             "blocks use different activations")
    state: dict[str, torch.Tensor] = {"embeddings.position_embedding.weight": trunk.pos_embed.detach()[0].clone()}
    _copy(state, "embeddings.patch_embedding", trunk.patch_embed.proj)
    for i, blk in enumerate(blocks):
        q = f"encoder.layers.{i}"
        _copy(state, f"{q}.layer_norm1", blk.norm1)
        state.update(_split_qkv(f"{q}.self_attn", blk.attn.qkv.weight.detach(), blk.attn.qkv.bias.detach()))
        _copy(state, f"{q}.self_attn.out_proj", blk.attn.proj)
        _copy(state, f"{q}.layer_norm2", blk.norm2)
        _copy(state, f"{q}.mlp.fc1", blk.mlp.fc1)
        _copy(state, f"{q}.mlp.fc2", blk.mlp.fc2)
    return Tower(config, state, 0)


# ------------------------------------------------------------------------------------------------------ HF
def from_hf(model: nn.Module, b: Any, what: str) -> Tower:
    """An ``hf-clip`` / ``hf-siglip`` branch: its own config with the kept layer count, its own weights."""
    import copy

    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(model.encoder.layers)
    n_prefix = int(b.num_prefix_tokens)
    expected = 1 if config.model_type == "clip_vision_model" else 0
    _require(n_prefix == expected, what, f"num_prefix_tokens={n_prefix}; Llava drops exactly the CLS token of "
                                         f"{config.model_type} ({expected})")
    return Tower(config, {k: v.detach().clone() for k, v in model.state_dict().items()}, n_prefix)


def convert_tower(branch: nn.Module, b: Any, what: str) -> Tower:
    """The HF tower of one ablate vision branch (``branch.model`` is the built module), or :class:`Unsupported`."""
    module = branch.model
    family = str(b.family)
    if family in ("hf-clip", "hf-siglip"):
        return from_hf(module, b, what)
    if family == "open_clip" and hasattr(module, "transformer"):
        return from_open_clip(module, b, what)
    if family in ("open_clip", "timm") and hasattr(module, "blocks") and hasattr(module, "patch_embed"):
        return from_timm_siglip(module, b, what)
    raise Unsupported(f"{what}: family {family} ({type(module).__name__}) has no CLIPVisionModel/SiglipVisionModel "
                      "equivalent")

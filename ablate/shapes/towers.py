"""The shapes world's tiny vision towers: real open_clip / timm / transformers archs shrunk to the backbone
config's size (``tiny-clip``, ``tiny-siglip``, ``tiny-dinov2``, ``tiny-vit``), registered per ``<family>/<arch>``
in ``ablate.registry.VISION_ARCHS`` (``ablate.shapes.plugin``).  Each builds at the config's width / depth /
heads / patch / resolution with its activation, random-init, or loads the branch state dict at the branch's
``path`` (safetensors, as ``ablate.shapes.pretrain`` saves it).

open_clip has no API to build a model from an in-memory config: a tiny arch's config is written once per
process to a temp folder (named by a digest of the fields) and registered with ``open_clip.add_model_config``;
tiny SigLIP towers are timm trunks inside open_clip, so a shrunk timm arch is registered with timm first.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from ablate.models.vision import (
    Branch,
    activation,
    hf_act,
    hf_branch,
    hf_classes,
    load_branch_weights,
    open_clip_branch,
    open_clip_kwargs,
    timm_branch,
)

TIMM_BASES = {  # tiny arch -> the real timm arch it shrinks
    "tiny-dinov2": "vit_small_patch14_reg4_dinov2",
    "tiny-vit": "vit_small_patch16_224",
    "tiny-siglip": "vit_base_patch16_siglip_224",
}
OPEN_CLIP_ARCHS = ("tiny-clip", "tiny-siglip")
HF_ARCHS = {"hf-clip": "tiny-clip", "hf-siglip": "tiny-siglip", "hf-dinov2": "tiny-dinov2"}
_OPEN_CLIP_DIR = Path(tempfile.gettempdir()) / "ablate-open_clip-configs"


def _timm_kwargs(b: Any) -> dict[str, Any]:
    return dict(img_size=b.image_size, patch_size=b.patch_size, embed_dim=b.width, depth=b.depth,
                num_heads=b.heads, mlp_ratio=b.mlp_ratio, num_classes=0, act_layer=activation(b))


def _with_weights(branch: Branch, b: Any) -> Branch:
    """``branch`` with the state dict at the branch's ``path`` loaded (none: random init)."""
    if b.path:
        load_branch_weights(branch, Path(b.path), f"vision backbone {b.family} {b.arch}")
    return branch


def build_timm(b: Any) -> Branch:
    import timm

    trunk = timm.create_model(TIMM_BASES[b.arch], pretrained=False, **_timm_kwargs(b))
    return _with_weights(timm_branch(trunk, b), b)


def _register_open_clip(b: Any) -> str:
    """Register an open_clip model config for a tiny arch from the backbone fields; return its name."""
    import open_clip
    import timm
    from timm.models import register_model

    fields = dict(arch=b.arch, s=b.image_size, p=b.patch_size, w=b.width, d=b.depth, h=b.heads, m=b.mlp_ratio,
                  a=activation(b))
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
    name = f"ablate-{b.arch}-{digest}"
    if name in open_clip.list_models():
        return name
    text_cfg = dict(context_length=16, vocab_size=64, width=32, heads=2, layers=1)
    if b.arch == "tiny-clip":
        vision_cfg: dict[str, Any] = dict(image_size=b.image_size, layers=b.depth, width=b.width,
                                          head_width=b.width // b.heads, mlp_ratio=b.mlp_ratio,
                                          patch_size=b.patch_size)
    else:  # tiny-siglip: SigLIP towers are timm trunks in open_clip, so register a tiny timm arch
        timm_name = f"ablate_tiny_siglip_{digest}"
        if timm_name not in timm.list_models():
            kwargs = _timm_kwargs(b)
            kwargs.pop("num_classes")

            def entry(pretrained: bool = False, **overrides: Any) -> nn.Module:
                return timm.create_model(TIMM_BASES["tiny-siglip"], pretrained=False, **{**kwargs, **overrides})
            entry.__name__ = timm_name
            register_model(entry)
        vision_cfg = dict(image_size=b.image_size, timm_model_name=timm_name, timm_model_pretrained=False,
                          timm_pool="map", timm_proj="none")
        text_cfg.update(no_causal_mask=True, pool_type="last")
    _OPEN_CLIP_DIR.mkdir(parents=True, exist_ok=True)
    path = _OPEN_CLIP_DIR / f"{name}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # per process: concurrent jobs register the same arch
    tmp.write_text(json.dumps(dict(embed_dim=b.width, vision_cfg=vision_cfg, text_cfg=text_cfg)))
    tmp.replace(path)
    open_clip.add_model_config(path)
    return name


def build_open_clip(b: Any) -> Branch:
    import open_clip

    model = open_clip.create_model(_register_open_clip(b), pretrained=None, **open_clip_kwargs(b))
    return _with_weights(open_clip_branch(model, b), b)


def build_hf(b: Any) -> Branch:
    config_cls, model_cls = hf_classes(b.family)
    config = config_cls(hidden_size=b.width, num_hidden_layers=b.depth, num_attention_heads=b.heads,
                        intermediate_size=int(b.width * b.mlp_ratio), image_size=b.image_size,
                        patch_size=b.patch_size, hidden_act=hf_act(b))
    return _with_weights(hf_branch(model_cls(config), b), b)

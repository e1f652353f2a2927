"""The shapes world's registrations: what it adds to the core's registries, through the same calls a user's
plug-in makes (``ablate.registry``), plus its packaged config groups (``CONF_DIR``: ``vision=tiny-clip``,
``llm=tiny-llama``, ``train=tiny``, ``data=shapes``, ``eval=shapes``, ...).  Importing it loads no torch."""

from __future__ import annotations

from pathlib import Path

from ablate.registry import TOKENIZERS, VISION_ARCHS

CONF_DIR = Path(__file__).resolve().parent / "conf"

_T = "ablate.shapes.towers"
for _arch in ("tiny-clip", "tiny-siglip"):
    VISION_ARCHS.register(f"open_clip/{_arch}", f"{_T}:build_open_clip")
for _arch in ("tiny-dinov2", "tiny-vit", "tiny-siglip"):
    VISION_ARCHS.register(f"timm/{_arch}", f"{_T}:build_timm")
for _family, _arch in (("hf-clip", "tiny-clip"), ("hf-siglip", "tiny-siglip"), ("hf-dinov2", "tiny-dinov2")):
    VISION_ARCHS.register(f"{_family}/{_arch}", f"{_T}:build_hf")
TOKENIZERS.register("synthetic-bpe", "ablate.shapes.tokenizer:shapes_tokenizer")

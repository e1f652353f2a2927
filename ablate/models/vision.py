"""Vision backbones: patch features ``(B, L, D)`` from one block of a ViT (or several, fused along D).

Every branch returns the output of the block ``feature_layer`` (``-2`` = second-to-last, as Prismatic) with
prefix tokens (CLS / registers) dropped and no final norm; blocks after it and the pooling head are pruned
away so they cost nothing and get no gradients.  Families are registered by string ID:

- ``open_clip``: CLIP and SigLIP through ``open_clip.create_model`` (SigLIP's tower is a timm trunk inside
  open_clip); weights from ``path`` or the local open_clip/HF cache.
- ``timm``: DINOv2 (with registers) and IN1K ViTs.
- ``hf-clip`` / ``hf-siglip`` / ``hf-dinov2``: transformers vision models (``hidden_states[feature_layer]``).
- ``patch-embed``: Fuyu-style linear embedding of raw pixel patches plus learned positions.

A plug-in may register a builder for one ``<family>/<arch>`` (``ablate.registry.VISION_ARCHS``): it wins over
the family's builder for that arch and returns a :class:`Branch` through the same ``*_branch`` helpers.

Each branch is built with the MLP activation its config names (``activation``: ``quick_gelu`` for OpenAI CLIP,
as Prismatic forces it; never inferred from the arch name), and the built module is measured (width, depth,
heads, patch, resolution, activation: ``Branch.facts``) and checked against the config: a mismatch (wrong
weights behind an ID, a stale config) is a one-line :class:`SpecMismatchError` naming the ID, the field and
both values.  Building under ``torch.device("meta")`` allocates nothing (``ablate describe``).
Nothing is downloaded: absent weights raise :class:`WeightsNotFoundError` naming what was looked for, where.
A fused backbone feeds each branch its own normalized input (a dict branch name -> tensor) and concatenates
per-patch features; branches with different patch grids are rejected when the backbone is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ablate.models.llm import SpecMismatchError, WeightsNotFoundError
from ablate.registry import VISION_ARCHS, VISION_FAMILIES, option_path

__all__ = ["VisionBackbone", "build_vision", "branch_names", "WeightsNotFoundError", "SpecMismatchError",
           "Branch", "timm_branch", "open_clip_branch", "hf_branch", "load_branch_weights"]

# activation module class names -> config activation ids (torch, open_clip, timm and transformers classes)
_ACTIVATION_CLASSES = {"QuickGELU": "quick_gelu", "QuickGELUActivation": "quick_gelu", "GELUTanh": "gelu_tanh",
                       "PytorchGELUTanh": "gelu_tanh", "GELUPytorchTanh": "gelu_tanh", "GELUActivation": "gelu",
                       "GELU": "gelu"}
# activation ids -> transformers hidden_act names
_HF_ACTS = {"gelu": "gelu", "quick_gelu": "quick_gelu", "gelu_tanh": "gelu_pytorch_tanh"}


def module_activation(module: nn.Module) -> str:
    """The first activation module inside ``module`` as a config id (``none`` when it has none)."""
    for m in module.modules():
        if isinstance(m, nn.GELU):
            return "gelu_tanh" if m.approximate == "tanh" else "gelu"
        if type(m).__name__ in _ACTIVATION_CLASSES:
            return _ACTIVATION_CLASSES[type(m).__name__]
    return "none"


def _default_device() -> torch.device:
    return torch.get_default_device() if hasattr(torch, "get_default_device") else torch.device("cpu")


def branch_names(vision_cfg: Any) -> list[str]:
    """Stable names of the branches of ``vision_cfg`` (keys of fused pixel dicts and of the module dict)."""
    names: list[str] = []
    for b in vision_cfg.backbones:
        base = re.sub(r"[^a-zA-Z0-9_-]", "_", str(b.arch))
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base}-{k}"
        names.append(name)
    return names


def block_index(depth: int, feature_layer: int) -> int:
    """0-based index of the block whose output is used (negative ``feature_layer`` counts from the end)."""
    index = depth + feature_layer if feature_layer < 0 else feature_layer
    if not 0 <= index < depth:
        raise ValueError(f"vision feature_layer: invalid value {feature_layer}; expected a block of a {depth}-block ViT")
    return index


class Branch(nn.Module):
    """One ViT branch: ``forward(pixels (B,3,S,S)) -> (B, L, D)``; ``blocks`` are its transformer blocks."""

    def __init__(self, module: nn.Module, extract: Any, blocks: list[nn.Module], width: int, grid: int,
                 facts: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = module
        self._extract = extract  # callable(model, pixels) -> (B, L, D)
        self._blocks = blocks
        self.width = width
        self.grid = grid
        # measured on the built module before pruning: width, depth, heads, patch_size, image_size, activation
        self.facts = dict(facts or {})

    def blocks(self) -> list[nn.Module]:
        return list(self._blocks)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._extract(self.model, pixels)


# ------------------------------------------------------------------------------------------- timm (+ in oc)
def _timm_extract(index: int):
    def extract(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        return model.forward_intermediates(pixels, indices=[index], norm=False, output_fmt="NLC",
                                           intermediates_only=True)[0]
    return extract


def _timm_facts(trunk: nn.Module) -> dict[str, Any]:
    pe = trunk.patch_embed
    return dict(width=int(trunk.embed_dim), depth=len(trunk.blocks), heads=int(trunk.blocks[0].attn.num_heads),
                patch_size=int(pe.patch_size[0]), image_size=int(pe.img_size[0]),
                num_prefix_tokens=int(trunk.num_prefix_tokens), activation=module_activation(trunk.blocks[0]))


def timm_branch(trunk: nn.Module, b: Any) -> Branch:
    facts = _timm_facts(trunk)
    index = block_index(len(trunk.blocks), b.feature_layer)
    trunk.prune_intermediate_layers(indices=[index], prune_norm=True, prune_head=True)
    return Branch(trunk, _timm_extract(index), list(trunk.blocks), b.width, b.image_size // b.patch_size, facts)


def activation(b: Any) -> str:
    return str(getattr(b, "activation", None) or "gelu")


def _hf_cached_file(repo_id: str, filenames: tuple[str, ...]) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return found
    return None


def _hf_cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def build_timm(b: Any) -> Branch:
    import timm

    name = f"{b.arch}.{b.pretrained}" if b.pretrained else b.arch
    kwargs: dict[str, Any] = dict(num_classes=0, img_size=b.image_size, act_layer=activation(b))
    if b.path:
        if not Path(b.path).exists():
            raise WeightsNotFoundError(f"vision backbone {b.arch}: path {b.path!r} does not exist")
        trunk = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(b.path)), **kwargs)
    elif b.pretrained:
        cfg = timm.models.get_pretrained_cfg(name)
        repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        found = repo and _hf_cached_file(repo, ("model.safetensors", "pytorch_model.bin"))
        if not found:
            raise WeightsNotFoundError(f"vision backbone timm {name}: weights not found locally (looked for HF repo "
                                       f"{repo!r} in {_hf_cache_dir()}); set vision.backbones[].path")
        trunk = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=found), **kwargs)
    else:
        trunk = timm.create_model(name, pretrained=False, **kwargs)
    return timm_branch(trunk, b)


# --------------------------------------------------------------------------------------------- open_clip
def _open_clip_weights(b: Any) -> str:
    """Local weights file for a real open_clip arch: ``path`` or the HF cache entry of its pretrained tag."""
    import open_clip

    if b.path:
        if not Path(b.path).exists():
            raise WeightsNotFoundError(f"vision backbone open_clip {b.arch}: path {b.path!r} does not exist")
        return str(b.path)
    cfg = open_clip.get_pretrained_cfg(b.arch, b.pretrained) or {}
    repo = cfg.get("hf_hub", "").rstrip("/")
    found = repo and _hf_cached_file(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
    if not found:
        raise WeightsNotFoundError(
            f"vision backbone open_clip {b.arch} (pretrained={b.pretrained!r}): weights not found locally "
            f"(looked for HF repo {repo or None!r} in {_hf_cache_dir()}); set vision.backbones[].path")
    return found


def open_clip_kwargs(b: Any) -> dict[str, Any]:
    """``open_clip.create_model`` keyword arguments of a branch: QuickGELU only where the config says so
    (open_clip's plain arch names build exact GELU even for OpenAI weights loaded from a file: only the
    `openai` tag or `-quickgelu` names switch it), on the default device."""
    return dict(force_quick_gelu=activation(b) == "quick_gelu", device=_default_device())


def build_open_clip(b: Any) -> Branch:
    import open_clip

    weights = _open_clip_weights(b) if b.pretrained or b.path else None
    return open_clip_branch(open_clip.create_model(b.arch, pretrained=weights, **open_clip_kwargs(b)), b)


def open_clip_branch(model: nn.Module, b: Any) -> Branch:
    """The branch of an open_clip model's vision tower (a timm trunk for SigLIP), pruned after ``feature_layer``."""
    visual = model.visual
    if hasattr(visual, "trunk"):  # timm-backed tower (SigLIP)
        return timm_branch(visual.trunk, b)
    blocks = visual.transformer.resblocks
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    patch = visual.patch_size if isinstance(visual.patch_size, int) else visual.patch_size[0]
    facts = dict(width=int(visual.transformer.width), depth=len(blocks), heads=int(blocks[0].attn.num_heads),
                 patch_size=int(patch), image_size=int(size), activation=module_activation(blocks[0]))
    index = block_index(len(visual.transformer.resblocks), b.feature_layer)
    visual.prune_intermediate_layers(indices=[index], prune_norm=True, prune_head=True)

    def extract(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        return model.forward_intermediates(pixels, indices=[index], intermediates_only=True,
                                           output_fmt="NLC")["image_intermediates"][0]
    return Branch(visual, extract, list(visual.transformer.resblocks), b.width, b.image_size // b.patch_size, facts)


# ----------------------------------------------------------------------------------------------- HF
_HF_FAMILIES = {  # family -> (config class, model class) names in transformers
    "hf-clip": ("CLIPVisionConfig", "CLIPVisionModel"),
    "hf-siglip": ("SiglipVisionConfig", "SiglipVisionModel"),
    "hf-dinov2": ("Dinov2Config", "Dinov2Model"),
}


def hf_classes(family: str) -> tuple[Any, Any]:
    """The transformers (config class, model class) of an ``hf-*`` family."""
    import transformers

    return tuple(getattr(transformers, n) for n in _HF_FAMILIES[family])  # type: ignore[return-value]


def hf_act(b: Any) -> str:
    """The transformers ``hidden_act`` name of a branch's activation."""
    return _HF_ACTS.get(activation(b), "gelu")


def _build_hf(b: Any, family: str) -> Branch:
    _, model_cls = hf_classes(family)
    source = b.path or b.arch
    try:
        model = model_cls.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        raise WeightsNotFoundError(f"vision backbone {family} {b.arch}: weights not found locally (looked in "
                                   f"{source!r} as a path and in {_hf_cache_dir()})") from None
    return hf_branch(model, b)


def hf_branch(model: nn.Module, b: Any) -> Branch:
    """The branch of a transformers vision model, pruned after ``feature_layer``."""
    encoder_layers = model.encoder.layer if hasattr(model.encoder, "layer") else model.encoder.layers
    c = model.config
    facts = dict(width=int(c.hidden_size), depth=len(encoder_layers), heads=int(c.num_attention_heads),
                 patch_size=int(c.patch_size), image_size=int(c.image_size),
                 activation=module_activation(encoder_layers[0]))
    index = block_index(len(encoder_layers), b.feature_layer)
    del encoder_layers[index + 1:]
    n_prefix = b.num_prefix_tokens

    def extract(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        out = model(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[index + 1][:, n_prefix:]
    return Branch(model, extract, list(encoder_layers), b.width, b.image_size // b.patch_size, facts)


def build_hf_clip(b: Any) -> Branch:
    return _build_hf(b, "hf-clip")


def build_hf_siglip(b: Any) -> Branch:
    return _build_hf(b, "hf-siglip")


def build_hf_dinov2(b: Any) -> Branch:
    return _build_hf(b, "hf-dinov2")


# ------------------------------------------------------------------------------------------- patch-embed
class PatchEmbed(nn.Module):
    """Fuyu-style: each raw ``patch x patch`` pixel patch is linearly embedded (a strided conv is exactly a
    per-patch linear map) and gets a learned position embedding."""

    def __init__(self, image_size: int, patch_size: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2, width) * 0.02)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(pixels).flatten(2).transpose(1, 2) + self.pos


def build_patch_embed(b: Any) -> Branch:
    """Random init, or the branch state dict at ``path`` (safetensors)."""
    module = PatchEmbed(b.image_size, b.patch_size, b.width)
    facts = dict(width=int(b.width), depth=0, patch_size=int(b.patch_size), image_size=int(b.image_size),
                 activation="none")
    branch = Branch(module, lambda m, x: m(x), [], b.width, b.image_size // b.patch_size, facts)
    if b.path:
        load_branch_weights(branch, Path(b.path), f"vision backbone patch-embed {b.arch}")
    return branch


# ------------------------------------------------------------------------------------------------ fused
class VisionBackbone(nn.Module):
    """One or more branches; ``forward(pixels)`` takes a tensor (single branch) or a dict name -> tensor."""

    def __init__(self, branches: dict[str, Branch], vision_id: str) -> None:
        super().__init__()
        grids = {name: br.grid for name, br in branches.items()}
        if len(set(grids.values())) != 1:
            raise ValueError(f"vision={vision_id}: fused branches have different patch grids {grids}; "
                             "expected one grid (same image_size // patch_size)")
        self.branches = nn.ModuleDict(branches)
        self.vision_id = vision_id
        self.grid = next(iter(grids.values()))
        self.num_patches = self.grid * self.grid
        self.embed_dim = sum(br.width for br in branches.values())

    @property
    def fused(self) -> bool:
        return len(self.branches) > 1

    def blocks(self) -> list[nn.Module]:
        """Transformer blocks of every branch (FSDP wrapping / activation checkpointing units)."""
        return [blk for br in self.branches.values() for blk in br.blocks()]

    def forward(self, pixels: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(pixels, torch.Tensor):
            if self.fused:
                raise ValueError(f"vision={self.vision_id}: fused backbone expects a dict of pixel tensors with keys "
                                 f"{list(self.branches)}, got one tensor")
            pixels = {next(iter(self.branches)): pixels}
        feats = []
        for name, branch in self.branches.items():
            if name not in pixels:
                raise KeyError(f"vision={self.vision_id}: pixel dict lacks branch {name!r}; got {list(pixels)}")
            x = pixels[name].to(next(branch.parameters()).dtype)
            f = branch(x)
            if f.shape[1] != self.num_patches:
                raise ValueError(f"vision={self.vision_id}: branch {name!r} gave {f.shape[1]} patch tokens; "
                                 f"expected {self.num_patches} ({self.grid}x{self.grid})")
            feats.append(f)
        return torch.cat(feats, dim=-1)


def build_vision(vision_cfg: Any, *, load_weights: bool = True) -> VisionBackbone:
    """The (possibly fused) vision backbone of ``vision_cfg``; one branch per ``vision.backbones`` entry.
    ``load_weights=False`` builds the same architecture randomly initialized (weights loaded afterwards)."""
    branches = {}
    for name, b in zip(branch_names(vision_cfg), vision_cfg.backbones, strict=True):
        if not load_weights:
            b = SimpleNamespace(**{**OmegaConf.to_container(b, resolve=True), "pretrained": None, "path": None}) \
                if isinstance(b, DictConfig) else SimpleNamespace(**{**vars(b), "pretrained": None, "path": None})
        arch = f"{b.family}/{b.arch}"
        builder = VISION_ARCHS.get(arch) if arch in VISION_ARCHS else VISION_FAMILIES.get(b.family)
        branches[name] = builder(b)
        check_branch(branches[name], b, f"vision={vision_cfg.id} branch {name}",
                     option_path("vision", str(vision_cfg.id)))
    return VisionBackbone(branches, str(vision_cfg.id))


CHECKED_FACTS = ("width", "depth", "heads", "patch_size", "image_size", "num_prefix_tokens", "activation")


def check_branch(branch: Branch, b: Any, what: str, where: str) -> None:
    """Raise :class:`SpecMismatchError` where the built branch's measured facts disagree with its config."""
    for key in CHECKED_FACTS:
        if key not in branch.facts:
            continue
        got, want = branch.facts[key], getattr(b, key, None)
        if key == "activation":
            want = activation(b)
        if want is not None and got != want:
            raise SpecMismatchError(f"{what}: the built model has {key}={got!r}; the spec ({where}) says "
                                    f"{key}={want!r}")


def load_branch_weights(branch: nn.Module, path: Path, what: str) -> None:
    """Load a branch's state dict from a safetensors file (``Branch.state_dict()`` as saved); every key must match."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise WeightsNotFoundError(f"{what}: weights file {str(path)!r} does not exist (expected a safetensors "
                                   "state dict of the branch)")
    state = load_file(str(path))
    missing, unexpected = branch.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsNotFoundError(f"{what}: {path} does not fit the architecture: missing keys {missing[:5]}, "
                                   f"unexpected keys {unexpected[:5]}")

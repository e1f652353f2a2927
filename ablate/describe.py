"""``ablate describe``: what each design point builds, read off the real modules on the meta device.

Every component is specified as data in ``conf/`` (vision: arch, dims, patch grid, activation, feature layer;
LM: ``llm.spec``), so a point's VLM builds on the meta device with no weights or tokenizer files
(``ablate.models.vlm.build_meta_vlm``) in seconds, 13B included.  ``describe_point(cfg)`` returns plain
data per component: its class, activation (measured on the built module), parameters (total; trainable per
recipe stage), the feature shape and image tokens, and the master / compute dtypes each stage uses
(float32 master weights everywhere; compute = ``train.precision`` for trained parts and the LM, the frozen
tower in ``train.frozen_vision_dtype``, as ``ablate.train.strategy`` sets them).  Vision parameter counts are
those of the pruned tower the VLM runs (blocks after ``feature_layer`` and the pooling head removed).

``ablate describe [OVERRIDES]`` describes one point, ``ablate describe --study FILE|DIR`` every point of the
studies (components built once per distinct config); ``--json`` prints the data instead of the table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

DTYPE_NAMES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}


def _count(module: Any) -> int:
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _qualname(module: Any) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _key(node: Any) -> str:
    from omegaconf import OmegaConf

    return json.dumps(OmegaConf.to_container(node, resolve=True), sort_keys=True)


def _stage_dtypes(cfg: Any, trainable: Sequence[str]) -> dict[str, dict[str, str]]:
    compute = DTYPE_NAMES[str(cfg.train.precision)]
    frozen_vision = DTYPE_NAMES[str(cfg.train.frozen_vision_dtype)]
    return {"vision": {"master": "float32" if "vision" in trainable else frozen_vision,
                       "compute": compute if "vision" in trainable else frozen_vision},
            "projector": {"master": "float32", "compute": compute},
            "llm": {"master": "float32", "compute": compute}}


def describe_point(cfg: Any, cache: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plain-data facts of the design point ``cfg`` (see the module docstring); ``cache`` (a dict kept across
    calls) reuses meta components built for identical vision / LM configs."""
    from ablate.models.projector import num_output_tokens
    from ablate.models.vlm import build_meta_vlm, meta_llm
    from ablate.train.stages import plan

    cache = {} if cache is None else cache
    llm_key, vision_key = "llm:" + _key(cfg.llm), "vision:" + _key(cfg.vision)
    if llm_key not in cache:
        cache[llm_key] = meta_llm(cfg.llm)
    model = build_meta_vlm(cfg, llm=cache[llm_key], vision=cache.get(vision_key))
    cache[vision_key] = model.vision
    vision, projector, llm = model.vision, model.projector, model.llm
    counts = {"vision": _count(vision), "projector": _count(projector), "llm": _count(llm)}
    tokens = num_output_tokens(cfg.projector, vision.num_patches)
    per_grid = None
    if model.tiled:  # anyres: tokens per image depend on its grid; the sequence is sized for the largest
        from ablate.models.tiles import grid_tokens

        per_grid = grid_tokens(list(cfg.image.grids), vision.grid)
        tokens = max(per_grid.values())
    branches = []
    for (name, branch), b in zip(vision.branches.items(), cfg.vision.backbones, strict=True):
        facts = branch.facts
        branches.append({"name": name, "family": str(b.family), "arch": str(b.arch), "class": _qualname(branch.model),
                         "activation": facts.get("activation"), "width": facts.get("width"),
                         "depth": facts.get("depth"), "heads": facts.get("heads"),
                         "patch_size": facts.get("patch_size"), "image_size": facts.get("image_size"),
                         "feature_layer": int(b.feature_layer), "params": _count(branch)})
    c = llm.config
    spec = cfg.llm.get("spec")
    stages = []
    for stage in plan(cfg):
        stages.append({"name": stage.name, "trainable": list(stage.trainable),
                       "trainable_params": sum(counts[k] for k in stage.trainable),
                       "dtypes": _stage_dtypes(cfg, stage.trainable)})
    rope = getattr(c, "rope_parameters", None) or {}
    return {
        "vision": {"id": str(cfg.vision.id), "class": _qualname(vision), "params": counts["vision"],
                   "feature_shape": [vision.num_patches, vision.embed_dim], "patch_grid": [vision.grid, vision.grid],
                   "branches": branches},
        "projector": {"id": str(cfg.projector.id), "class": _qualname(projector), "params": counts["projector"],
                      "image_tokens": tokens, "output_shape": [tokens, llm.get_input_embeddings().weight.shape[1]],
                      "image_tokens_per_grid": per_grid},
        "llm": {"id": str(cfg.llm.id), "class": _qualname(llm), "model_type": c.model_type, "params": counts["llm"],
                "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
                "num_attention_heads": c.num_attention_heads,
                "num_key_value_heads": getattr(c, "num_key_value_heads", None) or c.num_attention_heads,
                "vocab_rows": llm.get_input_embeddings().weight.shape[0],
                "rope_theta": getattr(c, "rope_theta", None) or rope.get("rope_theta"),
                "max_position_embeddings": c.max_position_embeddings,
                "weights_dtype": str(spec.weights_dtype) if spec is not None else "float32",
                "prompt_format": str(cfg.llm.prompt_format)},
        "params": sum(counts.values()),
        "stages": stages,
    }


def _human(n: int) -> str:
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}K"


def format_point(name: str, facts: dict[str, Any]) -> str:
    """The human-readable block of one point."""
    v, p, m = facts["vision"], facts["projector"], facts["llm"]
    lines = [f"{name}: {_human(facts['params'])} parameters"]
    for b in v["branches"]:
        lines.append(f"  vision    {b['arch']} ({b['family']}, {b['class']}): activation {b['activation']}, width "
                     f"{b['width']}, depth {b['depth']}, patch {b['patch_size']} @ {b['image_size']}px, feature "
                     f"layer {b['feature_layer']}, {_human(b['params'])}")
    lines.append(f"  features  {v['feature_shape'][0]} x {v['feature_shape'][1]} ({v['id']}, grid "
                 f"{v['patch_grid'][0]}x{v['patch_grid'][1]})")
    lines.append(f"  projector {p['id']} ({p['class']}): {p['image_tokens']} image tokens x {p['output_shape'][1]}, "
                 f"{_human(p['params'])}")
    if p.get("image_tokens_per_grid"):
        grids = ", ".join(f"{g} {n}" for g, n in p["image_tokens_per_grid"].items())
        lines.append(f"  image     anyres: image tokens per tile grid (columns x rows; + overview, row separators): "
                     f"{grids}; up to {p['image_tokens']}")
    lines.append(f"  llm       {m['id']} ({m['class']}): {_human(m['params'])}, {m['num_hidden_layers']} layers, "
                 f"hidden {m['hidden_size']}, heads {m['num_attention_heads']}/{m['num_key_value_heads']} kv, vocab "
                 f"{m['vocab_rows']}, rope {m['rope_theta']}, max positions {m['max_position_embeddings']}, ships "
                 f"{m['weights_dtype']}, prompt {m['prompt_format']}")
    for s in facts["stages"]:
        dt = ", ".join(f"{k} {d['master']}/{d['compute']}" for k, d in s["dtypes"].items())
        lines.append(f"  stage     {s['name']}: trains {'+'.join(s['trainable'])} ({_human(s['trainable_params'])}); "
                     f"master/compute {dt}")
    return "\n".join(lines)


def describe(overrides: Sequence[str] = (), study: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(name, facts)`` for the point of ``overrides``, or for every unique run of the studies at ``study``."""
    from ablate.design import compose, expand, load_studies

    cache: dict[str, Any] = {}
    if study is None:
        return [("point", describe_point(compose(list(overrides)), cache))]
    out, seen = [], set()
    for s in load_studies(study):
        for point in expand(s, list(overrides)):
            if point.run_key in seen:
                continue
            seen.add(point.run_key)
            out.append((f"{s.name}/{point.name}", describe_point(point.config, cache)))
    return out


def cli_describe(args: argparse.Namespace) -> int:
    """``ablate describe [OVERRIDES] | --study FILE [--json]``."""
    import logging

    logging.getLogger("root").setLevel(logging.ERROR)  # open_clip warns that a meta model has no weights
    described = describe(list(args.overrides), args.study)
    if args.json:
        print(json.dumps([{"name": n, **f} for n, f in described], indent=1))
    else:
        print("\n\n".join(format_point(n, f) for n, f in described))
    return 0

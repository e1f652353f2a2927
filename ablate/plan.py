"""``ablate plan``: what each point of a study will cost on N GPUs, before anything is submitted.

Why it exists: a 7B/13B study is hundreds of GPU-hours; a point that does not fit in GPU memory should be
found here, not after hours in a queue.  Per point and stage: parameters (vision blocks up to the feature
layer, projector, LM; LoRA adapters), memory per GPU under FSDP full sharding over ``--gpus`` (weights,
gradients and AdamW state of the trained parameters in fp32, frozen ones in their dtype, sharded; plus
activations at ``per_device_batch`` with and without activation checkpointing), model FLOPs per step and per
run, and GPU-hours at ``--mfu`` of the GPU's dense bf16 peak.  Nothing is built or read: counts come from the
config's shapes (vision backbones) and the LM's published architecture (``LM_SHAPES``, or
``llm.random_init``).

Assumptions (printed): sequence = image tokens (``img-tok``: per image; ``image=anyres``: its largest grid's,
whose tiles + overview all pass the tower) + ``--text-tokens`` (LLaVA-1.5 averages), dataset sizes of
``DATASET_SIZES`` (else ``--examples``), per-layer activations of 34·s·b·h bytes in bf16 with a fused
attention kernel (Korthikanti et al. 2022, without the s² term), 2·s·b·h per layer when checkpointed plus one
layer's full set, fp32 logits twice; frozen towers store no activations.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import image_transform_id, parse_grids

GPUS = {"a100-80gb": (80, 312e12), "h100-80gb": (80, 989e12)}  # memory GB, dense bf16 FLOP/s
GIB = 2**30
# hf_id -> (hidden, layers, intermediate, vocab, kv_heads, heads) from each model's config.json
LM_SHAPES = {
    "lmsys/vicuna-7b-v1.5": (4096, 32, 11008, 32000, 32, 32),
    "lmsys/vicuna-13b-v1.5": (5120, 40, 13824, 32000, 40, 40),
    "meta-llama/Llama-2-7b-hf": (4096, 32, 11008, 32000, 32, 32),
    "meta-llama/Llama-2-7b-chat-hf": (4096, 32, 11008, 32000, 32, 32),
    "meta-llama/Llama-2-13b-hf": (5120, 40, 13824, 32000, 40, 40),
    "meta-llama/Llama-2-13b-chat-hf": (5120, 40, 13824, 32000, 40, 40),
    "mistralai/Mistral-7B-v0.1": (4096, 32, 14336, 32000, 8, 32),
    "mistralai/Mistral-7B-Instruct-v0.1": (4096, 32, 14336, 32000, 8, 32),
    "microsoft/phi-2": (2560, 32, 10240, 51200, 32, 32),
}
DATASET_SIZES = {"llava-laion-cc-sbu-558k": 558_128, "llava-v15-665k": 665_298}
TEXT_TOKENS = {"align": 64, "finetune": 320}  # mean text tokens per example (LLaVA-1.5 data, approximate)


@dataclass
class StageCost:
    point: str
    stage: str
    params: dict[str, int]
    trainable: int
    steps: int
    memory_gb: dict[str, float]
    flops_step: float
    flops_run: float
    gpu_hours: float
    fits: bool
    image_tokens: int = 0  # per image in the sequence (anyres: the largest grid's)


def _vision(cfg: Any) -> tuple[int, int]:
    """(parameters up to the feature layer, patch tokens) of the (fused) tower."""
    total = 0
    for b in cfg.vision.backbones:
        w, depth = int(b.width), int(b.depth)
        kept = depth + int(b.get("feature_layer", -2)) + 1 if int(b.get("feature_layer", -2)) < 0 else \
            int(b.feature_layer) + 1
        per_block = 4 * w * w + 2 * int(w * float(b.mlp_ratio)) * w + 9 * w
        total += kept * per_block + 3 * int(b.patch_size) ** 2 * w + (int(b.image_size) // int(b.patch_size)) ** 2 * w
    grid = int(cfg.vision.image_size) // int(cfg.vision.backbones[0].patch_size)
    return total, grid * grid


def _lm_shape(cfg: Any) -> tuple[int, int, int, int, int, int]:
    llm = cfg.llm
    if llm.random_init is not None:
        r = llm.random_init
        return (int(r.hidden_size), int(r.num_hidden_layers), int(r.intermediate_size), 1024,
                int(r.get("num_key_value_heads") or r.num_attention_heads), int(r.num_attention_heads))
    if llm.hf_id in LM_SHAPES:
        return LM_SHAPES[str(llm.hf_id)]
    raise ValueError(f"llm={llm.id}: shape of {llm.hf_id or llm.path!r} unknown to ablate plan; known: "
                     f"{', '.join(sorted(LM_SHAPES))} or llm.random_init")


def _lm_params(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(total, per decoder layer, embeddings + head)."""
    h, n_layers, ff, vocab, kv, heads = shape
    attn = 2 * h * h + 2 * h * (h * kv // heads)
    layer = attn + 3 * h * ff + 2 * h
    emb = 2 * vocab * h
    return n_layers * layer + emb + h, layer, emb


def _lora_params(cfg: Any, shape: tuple[int, ...]) -> int:
    lc = cfg.recipe.get("lora")
    if lc is None:
        return 0
    h, n_layers, ff, _, kv, heads = shape
    dims = {"q_proj": (h, h), "k_proj": (h, h * kv // heads), "v_proj": (h, h * kv // heads), "o_proj": (h, h),
            "gate_proj": (h, ff), "up_proj": (h, ff), "down_proj": (ff, h)}
    r = int(lc.rank)
    return n_layers * sum(r * (i + o) for name, (i, o) in dims.items() if name in lc.target_modules)


def _examples(cfg: Any, split: str, default: int | None) -> int:
    """Examples of a split: ``--examples``, else known sizes, else the nominal count in a source's name
    (``lvis-instruct4v-220k`` -> 220,000)."""
    import re

    from ablate.config import ConfigError

    if default is not None:
        return default
    if cfg.data.synthetic is not None:
        return int(cfg.data.synthetic.get("size", 1000))
    total = 0
    for s in cfg.data[split]:
        nominal = re.search(r"(\d+)k$", str(s.name))
        if s.name not in DATASET_SIZES and nominal is None:
            raise ConfigError(f"data={cfg.data.id}: size of source {s.name!r} unknown to ablate plan; pass --examples")
        total += DATASET_SIZES.get(str(s.name)) or int(nominal.group(1)) * 1000
    return total


def stage_costs(cfg: Any, name: str, *, gpus: int, gpu: str, mfu: float, examples: int | None = None,
                text_tokens: dict[str, int] | None = None) -> list[StageCost]:
    from ablate.train.stages import plan

    mem_gb, peak = GPUS[gpu]
    vision, patches = _vision(cfg)
    shape = _lm_shape(cfg)
    lm, layer, emb = _lm_params(shape)
    h, n_layers, _, vocab, _, _ = shape
    d_v = sum(int(b.width) for b in cfg.vision.backbones)
    projector = d_v * h + h * h + 2 * h if cfg.projector.id != "linear" else d_v * h + h
    lora = _lora_params(cfg, shape)
    image_tokens = int(cfg.projector.num_tokens or patches)
    tiles = 1  # images the tower and projector encode per example (anyres: the largest grid's tiles + overview)
    if image_transform_id(cfg.image) == "anyres":
        from ablate.models.tiles import grid_tokens

        grid_side = int(cfg.vision.image_size) // int(cfg.vision.backbones[0].patch_size)
        image_tokens = max(grid_tokens(list(cfg.image.grids), grid_side).values())
        tiles = 1 + max(c * r for c, r in parse_grids(list(cfg.image.grids)))
        projector += h  # the learned row separator (ablate.models.tiles)
    xattn = 0  # gated-xattn (ablate.models.bridge): no image tokens in the sequence, blocks inside the LM
    if cfg.projector.id == "gated-xattn":
        blocks = math.ceil(n_layers / int(cfg.projector.xattn_every))
        xattn = blocks * (12 * h * h + 9 * h + 2)  # q, kv, out, 4h FFW, two LayerNorms, two gates per block
        projector = d_v * h + h * h + 2 * h + xattn
        image_tokens = 0
    frozen_bytes = {"bf16": 2, "fp16": 2, "fp32": 4}[str(cfg.train.frozen_vision_dtype)]
    out = []
    for stage in plan(cfg):
        trains = set(stage.trainable)
        use_lora = lora and "llm" in trains
        trained = projector + (vision if "vision" in trains else 0) + (lora if use_lora else lm if "llm" in trains else 0)
        frozen_vision = 0 if "vision" in trains else vision
        frozen_lm = lm if ("llm" not in trains or use_lora) else 0
        states = (16 * trained + frozen_bytes * frozen_vision + 4 * frozen_lm) / gpus  # fp32 w + g + Adam (m, v)
        seq = image_tokens + (text_tokens or TEXT_TOKENS)[stage.data]
        b = stage.per_device_batch
        act_layer = 34 * seq * b * h
        logits = 2 * 4 * b * seq * vocab
        vis_act = (34 * patches * tiles * b * d_v * sum(int(x.depth) for x in cfg.vision.backbones)) \
            if "vision" in trains else 0
        gathered = 2 * 2 * max(layer, emb // 2)  # two units' bf16 parameters all-gathered at a time
        act_full = n_layers * act_layer + logits + vis_act
        act_ac = n_layers * 2 * seq * b * h + act_layer + logits + vis_act / 8
        memory = {"weights+grads+optimizer": states / GIB, "all-gather": gathered / GIB,
                  "activations": act_full / GIB, "activations (AC)": act_ac / GIB}
        n = _examples(cfg, stage.data, examples)
        steps = max(1, math.ceil(stage.epochs * math.ceil(n / stage.global_batch) - 1e-9))
        if stage.max_steps is not None:
            steps = min(steps, int(stage.max_steps))
        tokens = stage.global_batch * seq
        lm_factor = 6 if ("llm" in trains and not use_lora) else 4  # frozen LM: activation gradients only
        encoded = stage.global_batch * patches * tiles  # patches through the tower and projector per step
        flops = lm_factor * (lm - emb / 2) * tokens + 2 * vision * encoded * (3 if "vision" in trains else 1) + \
            6 * (projector - xattn) * encoded + \
            6 * xattn * tokens  # the bridge's blocks run per text token (their image K/V: per patch, ignored)
        total_flops = flops * steps
        hours = total_flops / (gpus * peak * mfu) / 3600 * gpus
        need = states + gathered + (act_ac if cfg.train.activation_checkpointing else act_full)
        out.append(StageCost(name, stage.name, {"vision": vision, "projector": projector, "llm": lm, "lora": lora},
                             trained, steps, memory, flops, total_flops, hours, need / GIB <= 0.9 * mem_gb,
                             image_tokens))
    return out


def _points(target: list[str]) -> list[tuple[str, Any]]:
    from ablate.design import compose, expand, load_studies

    if target and Path(target[0]).exists():
        return [(p.name, p.config) for s in load_studies(target[0]) for p in expand(s, target[1:])]
    return [(",".join(target) or "baseline", compose(target))]


def cli_plan(args: argparse.Namespace) -> int:
    """``ablate plan STUDY|OVERRIDES --gpus N --gpu a100-80gb|h100-80gb [--mfu 0.4]``."""
    text = dict(TEXT_TOKENS)
    total_hours, unfit = 0.0, 0
    print(f"{args.gpus} x {args.gpu} at MFU {args.mfu:g}; FSDP full sharding; text tokens per example "
          f"{text} (+ image tokens); memory in GiB per GPU")
    header = (f"{'point':<34} {'stage':<9} {'img-tok':>7} {'params':>7} {'trained':>7} {'steps':>6} {'states':>6} {'act':>6} "
              f"{'act-AC':>6} {'PFLOP/step':>10} {'GPU-h':>7}  fits")
    print(header)
    for name, cfg in _points(list(args.target)):
        for c in stage_costs(cfg, name, gpus=args.gpus, gpu=args.gpu, mfu=args.mfu, examples=args.examples):
            total = sum(v for k, v in c.params.items() if k != "lora")
            m = c.memory_gb
            print(f"{c.point[:34]:<34} {c.stage:<9} {c.image_tokens:>7} {total / 1e9:>6.2f}B {c.trainable / 1e9:>6.2f}B {c.steps:>6} "
                  f"{m['weights+grads+optimizer'] + m['all-gather']:>6.1f} {m['activations']:>6.1f} "
                  f"{m['activations (AC)']:>6.1f} {c.flops_step / 1e15:>10.1f} {c.gpu_hours:>7.1f}  "
                  f"{'yes' if c.fits else 'NO: does not fit'}")
            total_hours += c.gpu_hours
            unfit += not c.fits
    print(f"total: {total_hours:.1f} GPU-hours ({total_hours / args.gpus:.1f} h wall on {args.gpus} GPUs); "
          f"{unfit} stage(s) do not fit")
    return 1 if unfit else 0

"""The model of each stage and the final model, built on the meta device and loaded once.

Why it exists: building the whole model on CPU on every rank at every stage (and again at the end) makes host
memory and disk reads grow with world size x model size.  Here every rank builds the *skeleton*
(parameters on the meta device, ``strategy.meta_parameters``), freezes/wraps it for the stage, shards it
(``parallelize``) and allocates only its shards (``strategy.materialize``); the weights then come in once:

- a stage after the first (or a resumed run): each rank reads only its slices of the previous stage-end
  checkpoint (sharded: ``ablate.train.sharded``; a full checkpoint is read whole);
- the first stage of a fresh run: rank 0 builds the initial model (seeded random init / pretrained towers
  and LM) and broadcasts it into the shards (``broadcast_from_rank0``);
- one process: the same skeleton, materialized on the device.

The final model is materialized by rank 0 alone from the last checkpoint (LoRA adapters merged) and saved
as one HF-style folder; the other ranks build nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ablate.distributed import DistInfo
from ablate.train import checkpoint, lora, sharded
from ablate.train.stages import Stage, apply
from ablate.train.strategy import materialize, meta_parameters, parallelize

ModelBuilder = Callable[[Any], nn.Module]


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_skeleton(cfg: Any) -> nn.Module:
    """The VLM's architecture without reading any weights: towers random-init, the LM from its config."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from ablate.models.llm import build_llm, build_tokenizer, padded_vocab_size, weights_source
    from ablate.models.vlm import assemble

    tokenizer = build_tokenizer(cfg.llm)
    if cfg.llm.random_init is not None:
        llm = build_llm(cfg.llm, tokenizer)
    else:
        config = AutoConfig.from_pretrained(weights_source(cfg.llm), local_files_only=True)
        config.vocab_size = padded_vocab_size(tokenizer, cfg.llm.pad_to_multiple_of)
        config.pad_token_id = tokenizer.pad_token_id
        llm = AutoModelForCausalLM.from_config(config)
    return assemble(cfg, tokenizer, llm, load_vision_weights=False)


def skeleton(cfg: Any, build_model: ModelBuilder | None) -> nn.Module:
    """The model with its parameters on the meta device (buffers real)."""
    with meta_parameters():
        return build_model(cfg) if build_model is not None else default_skeleton(cfg)


def load_checkpoint_weights(path: Path, model: nn.Module, *, key_map: Any = None, no_dist: bool = False) -> None:
    """Model weights of a stage checkpoint (sharded or full format) into a plain or sharded model."""
    if sharded.is_sharded(path):
        sharded.load_weights(path / sharded.SHARDS, model, key_map=key_map, no_dist=no_dist)
    else:
        checkpoint.load(path, model=model, restore_rng=False)


def load_checkpoint(path: Path, **kwargs: Any) -> dict[str, Any]:
    """Resume state (model, optimizer, scheduler, RNG) from either checkpoint format; return its meta."""
    if sharded.is_sharded(path):
        return sharded.load(path, **kwargs)
    return checkpoint.load(path, **kwargs)


def stage_model(cfg: Any, stage: Stage, info: DistInfo, mesh: Any, *, build_model: ModelBuilder | None,
                weights_from: Path | None, resuming: bool) -> tuple[nn.Module, dict[str, int]]:
    """The stage's model, frozen/wrapped, parallelized, on the device, with its starting weights (none when
    ``resuming``: the mid-stage checkpoint restores them); and its parameter counts."""
    seed = int(cfg.train.seed)
    use_lora = lora.uses_lora(cfg, stage.trainable)
    compile_blocks = bool(cfg.runtime.get("compile", False)) if hasattr(cfg, "runtime") else False
    if mesh is None:  # one process: build (fresh) or materialize + load, then freeze/wrap
        if weights_from is None and not resuming:
            seed_everything(seed)
            model = build_model(cfg) if build_model is not None else _default_full(cfg)
        else:
            model = materialize(skeleton(cfg, build_model), torch.device("cpu"))
            if weights_from is not None and not resuming:
                load_checkpoint_weights(weights_from, model, no_dist=True)
        counts = apply(model, stage)
        if use_lora:
            lora.wrap(model, cfg)
            lora.init_adapters(model, seed + 104_729 * (stage.index + 1))
            counts = _counts(model)
        model = parallelize(model, cfg, None, trainable=stage.trainable, device=info.device,
                            compile_blocks=compile_blocks)
        return model, counts

    model = skeleton(cfg, build_model)
    counts = apply(model, stage)
    if use_lora:
        lora.wrap(model, cfg)
        counts = _counts(model)
    model = parallelize(model, cfg, mesh, trainable=stage.trainable, device=info.device,
                        compile_blocks=compile_blocks)
    materialize(model, info.device)
    if not resuming:
        if weights_from is not None:
            load_checkpoint_weights(weights_from, model, key_map=lora.base_key if use_lora else None)
        else:
            _broadcast_initial(cfg, model, info, build_model, strict=not use_lora)
        if use_lora:
            lora.init_adapters(model, seed + 104_729 * (stage.index + 1))
    return model, counts


def _counts(model: nn.Module) -> dict[str, int]:
    from ablate.train.stages import count_parameters

    return count_parameters(model)


def _default_full(cfg: Any) -> nn.Module:
    from ablate.models.vlm import build_vlm

    return build_vlm(cfg)


def _broadcast_initial(cfg: Any, model: nn.Module, info: DistInfo, build_model: ModelBuilder | None, *,
                       strict: bool) -> None:
    """Rank 0 builds the initial model (seeded) and broadcasts it into every rank's shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    full: dict[str, torch.Tensor] = {}
    if info.is_main:
        seed_everything(int(cfg.train.seed))
        initial = build_model(cfg) if build_model is not None else _default_full(cfg)
        full = {k: v.detach() for k, v in initial.state_dict().items()}
        if lora.is_wrapped(model):
            full = {_wrapped_key(model, k): v for k, v in full.items()}
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True,
                                                               strict=strict))


def _wrapped_key(model: nn.Module, key: str) -> str:
    """An unwrapped FQN as the LoRA-wrapped model names it."""
    names = getattr(model, "_ablate_wrapped_names", None)
    if names is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        names = {lora.base_key(k): k for k in get_model_state_dict(model) if lora.base_key(k) is not None}
        model._ablate_wrapped_names = names  # type: ignore[attr-defined]
    return names.get(key, key)


def final_model(cfg: Any, build_model: ModelBuilder | None, last: Path, *, lora_last_stage: bool) -> nn.Module:
    """Rank 0's plain model from the last checkpoint (adapters merged), on CPU, in eval mode."""
    model = materialize(skeleton(cfg, build_model), torch.device("cpu"))
    if lora_last_stage:
        lora.wrap(model, cfg)
    load_checkpoint_weights(last, model, no_dist=True)
    return lora.merge(model).eval()


def stage_parameter_counts(cfg: Any, build_model: ModelBuilder | None = None) -> dict[str, dict[str, int]]:
    """``{stage: {"trainable", "frozen"}}`` of each stage of ``cfg.recipe`` (LoRA adapters included), from
    meta-device skeletons: nothing allocated or read (``ablate describe`` shows them)."""
    from ablate.train.stages import plan

    counts = {}
    for stage in plan(cfg):
        model = skeleton(cfg, build_model)
        apply(model, stage)
        if lora.uses_lora(cfg, stage.trainable):
            lora.wrap(model, cfg)
        counts[stage.name] = _counts(model)
    return counts

"""The model of each stage and the final model, built on the meta device and loaded once.

Why it exists: building the whole model on CPU on every rank at every stage (and again at the end) makes host
memory and disk reads grow with world size x model size.  Here every rank builds the *skeleton*
(parameters on the meta device, ``strategy.meta_parameters``), freezes/wraps it for the stage, shards it
(``parallelize``) and allocates only its shards (``strategy.materialize``); the weights then come in once:

- a stage after the first (or a resumed run): each rank reads only its slices of the previous stage-end
  checkpoint (sharded: ``ablate.train.sharded``; a full checkpoint is read whole);
- the first stage of a fresh run: an LM with local safetensors is read slice by slice on every rank like a
  checkpoint; rank 0 builds the rest one component at a time (the LM when it must be resized or is random
  init, the tower, the projector: seeded, in ``build_vlm``'s order, so the values are the one-process
  build's) and broadcasts each into the shards (``broadcast_from_rank0``) before building the next;
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

from ablate.train import checkpoint, lora, sharded
from ablate.train.stages import Stage, apply
from ablate.train.strategy import DistInfo, materialize, meta_parameters, parallelize

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
    """The first stage's weights into every rank's shards, one component at a time.

    The default VLM is built as ``build_vlm`` builds it (seeded, same order, so the same values): an LM with
    local safetensors of the skeleton's shapes is read slice by slice on every rank (nothing whole anywhere);
    otherwise rank 0 builds the LM, then the tower, then the projector, each broadcast into the shards and
    dropped before the next, so rank 0 holds one component at a time.  A custom ``build_model`` (tests' toy
    models) is built whole on rank 0 and broadcast."""
    if build_model is not None:
        full: dict[str, torch.Tensor] = {}
        if info.is_main:
            seed_everything(int(cfg.train.seed))
            full = {k: v.detach() for k, v in build_model(cfg).state_dict().items()}
        _broadcast(model, full, strict=strict)
        return
    from ablate.models.llm import build_llm, build_tokenizer
    from ablate.models.projector import build_projector
    from ablate.models.vision import build_vision

    expected = set(_model_keys(model))
    loaded: set[str] = set()
    seed_everything(int(cfg.train.seed))
    tokenizer = build_tokenizer(cfg.llm)  # as build_vlm: the tokenizer first (its RNG use included)
    llm_folder = direct_llm_folder(cfg, model)
    if llm_folder is not None:
        loaded |= _read_llm(llm_folder, model)
    else:
        loaded |= _broadcast_part(model, "llm", lambda: build_llm(cfg.llm, tokenizer), info)
    loaded |= _broadcast_part(model, "vision", lambda: build_vision(cfg.vision), info)

    def projector() -> nn.Module:
        proj = build_projector(cfg.projector, model.vision.embed_dim,
                               model.llm.get_input_embeddings().weight.shape[1])
        if hasattr(proj, "attach"):  # gated-xattn makes its blocks from the LM's depth (VLM.__init__)
            from ablate.models.vlm import meta_llm

            proj.attach(meta_llm(cfg.llm))
        return proj

    loaded |= _broadcast_part(model, "projector", projector, info)
    missing = sorted(expected - loaded)
    if missing and strict:
        raise RuntimeError(f"initial weights: {len(missing)} model keys came from no component "
                           f"(first: {missing[0]})")


def _model_keys(model: nn.Module) -> list[str]:
    """The model's state keys as the unwrapped VLM names them (LoRA adapters left out)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    keys = list(get_model_state_dict(model))
    if not lora.is_wrapped(model):
        return keys
    return [b for k in keys if (b := lora.base_key(k)) is not None]


def _broadcast(model: nn.Module, full: dict[str, torch.Tensor], *, strict: bool) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if lora.is_wrapped(model):
        full = {_wrapped_key(model, k): v for k, v in full.items()}
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True,
                                                               strict=strict))


def _broadcast_part(model: nn.Module, prefix: str, build: Callable[[], nn.Module], info: DistInfo) -> set[str]:
    """Rank 0 builds one component; its weights go into every rank's shards under ``prefix.``; a key set that
    differs from the skeleton's is one error on every rank (never a hang or a silently partial load)."""
    part: dict[str, torch.Tensor] = {}
    problem = None
    if info.is_main:
        part = {f"{prefix}.{k}": v.detach() for k, v in build().state_dict().items()}
        want = {k for k in _model_keys(model) if k.startswith(prefix + ".")}
        extra, lacking = sorted(set(part) - want), sorted(want - set(part))
        if extra or lacking:
            problem = (f"initial weights of {prefix}: the built component and the skeleton differ "
                       f"({len(extra)} extra keys, first {extra[:1]}; {len(lacking)} missing, first {lacking[:1]})")
    box = [problem]
    torch.distributed.broadcast_object_list(box, src=0)
    if box[0] is not None:
        raise RuntimeError(box[0])
    keys = [None]
    if info.is_main:
        keys = [sorted(part)]
    torch.distributed.broadcast_object_list(keys, src=0)
    _broadcast(model, part, strict=False)
    del part
    return set(keys[0])


def direct_llm_folder(cfg: Any, model: nn.Module) -> Path | None:
    """``llm.path`` when its safetensors hold every LM tensor of the skeleton at the skeleton's shape (no
    vocabulary resize, no renamed keys): then each rank reads its slices of the LM from there."""
    from ablate.models.llm import check_spec

    if cfg.llm.random_init is not None or not cfg.llm.get("path"):
        return None
    folder = Path(cfg.llm.path)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    shapes: dict[str, list[int]] = {}
    for f in files:
        header, _ = sharded.read_header(str(f))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    for k, v in _llm_tensors(model).items():
        if k not in shapes and not _tied_head(model, k):
            return None
        if k in shapes and list(shapes[k]) != list(v.shape):
            return None
    check_spec(cfg.llm, model.llm.config, str(folder))
    return folder


def _llm_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LM's tensors of the (sharded) model by their names in the LM's own files."""
    return sharded.model_tensors(model, lambda k: _llm_name(model, k))


def _llm_name(model: nn.Module, key: str) -> str | None:
    base = lora.base_key(key) if lora.is_wrapped(model) else key
    if base is None or not base.startswith("llm."):
        return None
    return base[len("llm."):]


def _tied_head(model: nn.Module, name: str) -> bool:
    config = getattr(model.llm, "config", None)
    return name == "lm_head.weight" and bool(getattr(config, "tie_word_embeddings", False))


def _read_llm(folder: Path, model: nn.Module) -> set[str]:
    """Every rank reads its slices of the LM's safetensors (a tied head shares the embedding's shards)."""
    names = {k: v for k, v in _llm_tensors(model).items() if not _tied_head(model, k)}
    sharded.load_weights(folder, model, key_map=lambda k: n if (n := _llm_name(model, k)) in names else None)
    return {"llm." + n for n in _llm_tensors(model)}


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

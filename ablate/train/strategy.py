"""Distributed setup and FSDP2 wrapping (``fully_shard``) with per-component mixed precision.

``init_distributed`` reads torchrun/SLURM environment variables (under SLURM without torchrun it exports
them with submitit's ``TorchDistributedEnvironment``) and starts NCCL on GPU or gloo on CPU; one process
with no such variables runs unsharded.  ``parallelize`` is the one place that wraps a VLM, in torchtitan's
order: activation checkpointing on each trained block, ``torch.compile`` per block (optional), then
``fully_shard`` on each unit ``fsdp_units`` names: the blocks each component declares
(``VisionBackbone.blocks()`` for every branch of every family, the LM's decoder layers), each branch of a
fused tower, the tower, the projector and the root.  ``meta_parameters`` + ``materialize`` build a model
without allocating its weights (they are loaded once, into the shards).  Trained parts keep fp32 master weights and compute in
``train.precision`` (bf16: params all-gathered in bf16, gradients reduced in fp32); a frozen vision tower is
cast to ``train.frozen_vision_dtype`` once.  ``train.sharding``: ``full`` reshards after forward (ZeRO-3),
``grad-op`` keeps params gathered between forward and backward (ZeRO-2), ``none`` = no FSDP.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ablate.config import DIST_TIMEOUT_S

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device: invalid value {preference!r}; expected cpu or auto (no CUDA here)")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def export_slurm_environment() -> dict[str, Any]:
    """Map a SLURM task's environment (any number of nodes) to torch's: RANK = SLURM_PROCID, WORLD_SIZE =
    SLURM_NTASKS, LOCAL_RANK = SLURM_LOCALID (the device index on its node), MASTER_ADDR = the job's first
    node (the same for every task), MASTER_PORT kept from the batch script; return the mapping."""
    from submitit.helpers import TorchDistributedEnvironment

    # overwrite: a MASTER_PORT from the environment (batch script, launcher.setup) is kept by submitit
    env = TorchDistributedEnvironment()
    env.export(set_cuda_visible_devices=False, overwrite=True)
    return {"rank": env.rank, "world_size": env.world_size, "local_rank": env.local_rank,
            "master_addr": env.master_addr, "master_port": int(env.master_port)}


def init_distributed(device: str = "auto", timeout_s: float = DIST_TIMEOUT_S) -> DistInfo:
    """Join the process group described by the environment (torchrun or SLURM), or run as one process.

    ``timeout_s`` (``runtime.dist_timeout_s``) bounds the rendezvous and every collective: a rank that died
    or never joined makes the others raise after it instead of waiting torch's default 30 minutes.  A job
    body that already joined (``ablate.job.init_distributed``) keeps its group.
    """
    if "RANK" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        export_slurm_environment()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=float(timeout_s)))
        log.info("rank %d/%d joined %s process group on %s", rank, world, dist.get_backend(), dev)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def device_mesh(info: DistInfo) -> Any:
    """A 1-D data-parallel mesh over all ranks, or None for one process."""
    if info.world_size == 1:
        return None
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(info.device.type, (info.world_size,), mesh_dim_names=("dp",))


def repeated_blocks(module: nn.Module) -> list[nn.Module]:
    """The blocks of the module's main stack: the items of its largest ModuleList/Sequential of one block class
    (an LM's decoder layers; towers without declared ``blocks()``)."""
    best: list[nn.Module] = []
    best_size = -1
    for sub in module.modules():
        if isinstance(sub, nn.ModuleList | nn.Sequential) and len(sub) > 0 and len({type(m) for m in sub}) == 1:
            size = sum(p.numel() for p in sub.parameters())
            if size > best_size:
                best, best_size = list(sub), size
    return best


def component_blocks(model: nn.Module, name: str) -> list[nn.Module]:
    """The repeated blocks a component declares (``VisionBackbone.blocks()``: every branch's ViT blocks, timm's
    nn.Sequential ones included), else its largest stack of one block class (the LM's decoder layers)."""
    module = getattr(model, name)
    declared = getattr(module, "blocks", None)
    if callable(declared):
        return list(declared())
    return repeated_blocks(module)


def _branches(model: nn.Module) -> list[nn.Module]:
    branches = getattr(model.vision, "branches", None)
    return list(branches.values()) if isinstance(branches, nn.ModuleDict) else []


def fsdp_unit_modules(model: nn.Module) -> list[nn.Module]:
    """The modules ``parallelize`` shards, innermost first: vision blocks, each branch of a (fused) tower, the
    tower, the LM's decoder layers, a bridge's cross-attention blocks, the projector, the root (which holds what is left: embeddings, head)."""
    units = [*component_blocks(model, "vision"), *_branches(model), model.vision,
             *component_blocks(model, "llm"), *getattr(model.projector, "fsdp_blocks", []), model.projector, model]
    seen: set[int] = set()
    return [m for m in units if not (id(m) in seen or seen.add(id(m)))]


def _clean(name: str) -> str:
    for wrapper in ("_checkpoint_wrapped_module.", "_orig_mod."):
        name = name.replace(wrapper, "")
    return name or "<root>"


def fsdp_units(model: nn.Module) -> list[str]:
    """Names (module FQNs, ``<root>`` for the model) of the FSDP units ``parallelize`` makes, in wrapping order
    (``ablate describe`` lists them)."""
    names = {id(m): _clean(n) for n, m in model.named_modules()}
    for m in model.modules():  # an activation-checkpointed block is listed under its own name
        inner = getattr(m, "_checkpoint_wrapped_module", None)
        if inner is not None:
            names[id(inner)] = names[id(m)]
    return [names[id(m)] for m in fsdp_unit_modules(model)]


def _replace_child(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in root.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)  # ModuleList/Sequential items are named "0", "1", ...
                return
    raise ValueError(f"{type(old).__name__} is not a submodule of {type(root).__name__}")


def _apply_activation_checkpointing(model: nn.Module, blocks: list[nn.Module]) -> list[nn.Module]:
    """Wrap each block in place (non-reentrant checkpointing); return the wrappers."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    wrapped = []
    for block in blocks:
        wrapper = checkpoint_wrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
        _replace_child(model, block, wrapper)
        wrapped.append(wrapper)
    return wrapped


def parallelize(model: nn.Module, cfg: Any, mesh: Any, *, trainable: tuple[str, ...] = ("projector", "llm"),
                device: torch.device | None = None, compile_blocks: bool = False) -> nn.Module:
    """Wrap a VLM for one stage in torchtitan's order: frozen-vision dtype, activation checkpointing (trained
    blocks), ``torch.compile`` per block (``compile_blocks``), then ``fully_shard`` per unit of
    ``fsdp_unit_modules`` (no FSDP for one process or ``train.sharding=none``)."""
    t = cfg.train
    llm_config = getattr(model.llm, "config", None)
    if llm_config is not None and hasattr(llm_config, "use_cache"):
        llm_config.use_cache = False  # a KV cache is useless in training and breaks recomputation
    if "vision" not in trainable:
        model.vision.to(DTYPES[t.frozen_vision_dtype])
    units = fsdp_unit_modules(model)  # before wrapping: the blocks as the components declare them
    vision_blocks, llm_blocks = component_blocks(model, "vision"), component_blocks(model, "llm")
    checkpointed = llm_blocks + (vision_blocks if "vision" in trainable else [])
    wrappers: dict[int, nn.Module] = {}
    if t.activation_checkpointing and checkpointed:
        wrappers = {id(b): w for b, w in zip(checkpointed, _apply_activation_checkpointing(model, checkpointed),
                                             strict=True)}
        units = [wrappers.get(id(u), u) for u in units]
        log.info("activation checkpointing on %d blocks", len(wrappers))
    if compile_blocks:  # the checkpointed block as a whole (recomputation inside the graph), as torchtitan
        for block in vision_blocks + llm_blocks:
            wrappers.get(id(block), block).compile()  # in place: names and state dicts are unchanged
        log.info("torch.compile on %d blocks", len(vision_blocks + llm_blocks))
    if mesh is None or t.sharding == "none":
        return model.to(device) if device is not None else model

    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    compute = DTYPES[t.precision]
    trained_mp = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32)
    vision_mp = trained_mp if "vision" in trainable else MixedPrecisionPolicy(param_dtype=DTYPES[t.frozen_vision_dtype])
    vision_units = {id(m) for m in model.vision.modules()}
    reshard = t.sharding == "full"
    for unit in units:
        inner = getattr(unit, "_checkpoint_wrapped_module", unit)
        mp = vision_mp if id(inner) in vision_units or id(unit) in vision_units else trained_mp
        fully_shard(unit, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard)
    return model


# ------------------------------------------------------------------------------------ meta-device build
@contextlib.contextmanager
def meta_parameters() -> Iterator[None]:
    """Inside: every parameter a module registers goes to the meta device (no memory, no init cost); buffers
    stay real (rotary frequencies, position ids: computed at construction, not stored in checkpoints).
    ``Module.to`` keeps only its dtype part (libraries that end their builders with ``.to(device)``)."""
    original = nn.Module.register_parameter
    original_to = nn.Module.to

    def to(module: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        _, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        return original_to(module, dtype) if dtype is not None else module

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    nn.Module.to = to  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]
        nn.Module.to = original_to  # type: ignore[method-assign]


def materialize(model: nn.Module, device: torch.device) -> nn.Module:
    """Allocate a meta-built (and possibly sharded) model on ``device``: parameters uninitialized (weights are
    loaded next), buffers restored to the values they were built with."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers() if b.device.type != "meta"}
    tied = _tied_parameter_names(model)
    model.to_empty(device=device)
    _retie(model, tied)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name in buffers:
                b.copy_(buffers[name])
    return model


def _tied_parameter_names(model: nn.Module) -> list[list[str]]:
    """Groups of names under which one parameter is registered (a tied LM head: ``lm_head.weight`` is
    ``embed_tokens.weight``)."""
    groups: dict[int, list[str]] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        for name, p in module.named_parameters(recurse=False, remove_duplicate=False):
            full = f"{module_name}.{name}" if module_name else name
            if full not in groups.setdefault(id(p), []):
                groups[id(p)].append(full)
    return [names for names in groups.values() if len(names) > 1]


def _retie(model: nn.Module, tied: list[list[str]]) -> None:
    """``to_empty`` gives every module a new parameter, untying shared ones (the LM would then train its head
    and embedding apart, unlike the checkpoint's architecture): register the first one under every name.
    Sharded (DTensor) parameters are left to FSDP, which tracks shared parameters itself."""
    from torch.distributed.tensor import DTensor

    for names in tied:
        first = model.get_parameter(names[0])
        if isinstance(first, DTensor):
            continue
        for name in names[1:]:
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner) if owner else model, attr, first)


def unwrap_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Replace checkpoint wrappers by the layers they wrap (for saving/evaluating a plain model)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

    for sub in list(model.modules()):
        for name, child in list(sub.named_children()):
            if isinstance(child, CheckpointWrapper):
                setattr(sub, name, child._checkpoint_wrapped_module)
    return model


@contextlib.contextmanager
def autocast(cfg: Any, device: torch.device, sharded: bool) -> Iterator[None]:
    """bf16 autocast for unsharded training in bf16 (FSDP's MixedPrecisionPolicy casts sharded models)."""
    if not sharded and cfg.train.precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values

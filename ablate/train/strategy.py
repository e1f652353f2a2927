"""Distributed setup and FSDP2 wrapping (``fully_shard``) with per-component mixed precision.

``init_distributed`` reads torchrun/SLURM environment variables (under SLURM without torchrun it exports
them with submitit's ``TorchDistributedEnvironment``) and starts NCCL on GPU or gloo on CPU; one process
with no such variables runs unsharded.  ``parallelize`` is the one place that wraps a VLM, torchtitan style:
activation checkpointing on each LLM decoder layer, then ``fully_shard`` on each decoder layer, each vision
block, the vision tower, the projector and the root.  Trained parts keep fp32 master weights and compute in
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


def init_distributed(device: str = "auto", timeout_s: float = DIST_TIMEOUT_S) -> DistInfo:
    """Join the process group described by the environment (torchrun or SLURM), or run as one process.

    ``timeout_s`` (``runtime.dist_timeout_s``) bounds the rendezvous and every collective: a rank that died
    or never joined makes the others raise after it instead of waiting torch's default 30 minutes.  A job
    body that already joined (``ablate.job.init_distributed``) keeps its group.
    """
    if "RANK" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        # overwrite: a MASTER_PORT from the environment (batch script, launcher.setup) is kept by submitit
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
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
    """The blocks of the module's main stack: the items of its largest ModuleList of one block class."""
    best: list[nn.Module] = []
    best_size = -1
    for sub in module.modules():
        if isinstance(sub, nn.ModuleList) and len(sub) > 0 and len({type(m) for m in sub}) == 1:
            size = sum(p.numel() for p in sub.parameters())
            if size > best_size:
                best, best_size = list(sub), size
    return best


def _apply_activation_checkpointing(llm: nn.Module) -> int:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    blocks = repeated_blocks(llm)
    for sub in list(llm.modules()):
        if isinstance(sub, nn.ModuleList) and blocks and list(sub) == blocks:
            for i, layer in enumerate(sub):
                sub[i] = checkpoint_wrapper(layer, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
            return len(blocks)
    return 0


def parallelize(model: nn.Module, cfg: Any, mesh: Any, *, trainable: tuple[str, ...] = ("projector", "llm"),
                device: torch.device | None = None) -> nn.Module:
    """Wrap a VLM for training one stage: frozen-vision dtype, activation checkpointing, FSDP2 per component."""
    t = cfg.train
    llm_config = getattr(model.llm, "config", None)
    if llm_config is not None and hasattr(llm_config, "use_cache"):
        llm_config.use_cache = False  # a KV cache is useless in training and breaks recomputation
    if "vision" not in trainable:
        model.vision.to(DTYPES[t.frozen_vision_dtype])
    if t.activation_checkpointing:
        n = _apply_activation_checkpointing(model.llm)
        log.info("activation checkpointing on %d decoder layers", n)
    if mesh is None or t.sharding == "none":
        return model.to(device) if device is not None else model

    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    compute = DTYPES[t.precision]
    trained_mp = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32)
    vision_mp = trained_mp if "vision" in trainable else MixedPrecisionPolicy(param_dtype=DTYPES[t.frozen_vision_dtype])
    reshard = t.sharding == "full"
    for block in repeated_blocks(model.vision):
        fully_shard(block, mesh=mesh, mp_policy=vision_mp, reshard_after_forward=reshard)
    fully_shard(model.vision, mesh=mesh, mp_policy=vision_mp, reshard_after_forward=reshard)
    for layer in repeated_blocks(model.llm):
        fully_shard(layer, mesh=mesh, mp_policy=trained_mp, reshard_after_forward=reshard)
    fully_shard(model.projector, mesh=mesh, mp_policy=trained_mp, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, mp_policy=trained_mp, reshard_after_forward=reshard)
    return model


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

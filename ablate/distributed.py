"""Which task this process is, and the one ``torch.distributed`` initialisation of a multi-task run.

Why it exists: the job body, the trainer, checkpointing, the evaluator and ``ablate train`` all need the rank
(before and after a process group exists), and the job body and the trainer both join the group; one module
reads the environment (torchrun ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, SLURM ``SLURM_PROCID``/``SLURM_NTASKS``,
submitit's local ``SUBMITIT_LOCAL_*``) and joins the group once.  Importing it does not import torch.

``init_distributed(device, timeout_s)``: under SLURM (or submitit's local executor) without torchrun it
exports submitit's ``TorchDistributedEnvironment`` (``MASTER_PORT`` from the environment wins: see
``ablate.job.pick_master_port``), then starts NCCL on GPU or gloo on CPU with ``runtime.dist_timeout_s`` as
the timeout of the rendezvous and of every collective; a rendezvous that fails raises one line naming the
rank, backend, address and timeout.  One process without such variables runs unsharded.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ablate.config import DIST_TIMEOUT_S

log = logging.getLogger(__name__)

RANK_VARS = ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")  # torchrun, srun, submitit local
TASKS_VARS = ("SLURM_NTASKS", "SUBMITIT_LOCAL_NTASKS", "WORLD_SIZE")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: Any  # torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _group() -> Any:
    """``torch.distributed`` when torch is loaded and a process group exists, else None (no torch import)."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def num_tasks() -> int:
    for var in TASKS_VARS:
        if os.environ.get(var):
            return int(os.environ[var])
    return 1


def rank() -> int:
    """This process's global rank: the process group's when one exists, else the environment's (0 alone)."""
    group = _group()
    if group is not None:
        return int(group.get_rank())
    return int(next((os.environ[v] for v in RANK_VARS if os.environ.get(v)), "0"))


def is_main() -> bool:
    return rank() == 0


def task_label() -> str:
    """``rank R/W`` of this task (works before the process group exists)."""
    return f"rank {rank()}/{num_tasks()}"


def barrier() -> None:
    group = _group()
    if group is not None:
        group.barrier()


def pick_device(preference: str = "auto", local_rank: int = 0) -> Any:
    import torch

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
    """Join the process group the environment describes (torchrun, SLURM, submitit local), or run alone.

    ``timeout_s`` (``runtime.dist_timeout_s``) bounds the rendezvous (a rank that died or never started makes
    the others fail after it, not hang) and every later collective.  A process that already joined keeps
    its group (the job body joins before the trainer asks again).
    """
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ and num_tasks() > 1:  # not under torchrun: export SLURM's (submitit's) view
        export_slurm_environment()
    group = _group()
    world = int(group.get_world_size()) if group else int(os.environ.get("WORLD_SIZE", "1"))
    rank_ = int(group.get_rank()) if group else int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank_)))
    dev = pick_device(device, local_rank)
    if world > 1 and group is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
        log.info("rank %d/%d joining %s process group at %s:%s (timeout %gs)", rank_, world, backend, addr, port,
                 timeout_s)
        try:
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=float(timeout_s)))
        except Exception as exc:
            raise RuntimeError(f"rank {rank_}/{world}: could not join the {backend} process group at {addr}:{port} "
                               f"within runtime.dist_timeout_s={timeout_s:g}s ({type(exc).__name__}: {exc}); "
                               "another rank failed or never started (see its log), or the port is taken "
                               "(set MASTER_PORT in launcher.setup)") from exc
        log.info("rank %d/%d joined %s process group at %s:%s on %s", rank_, world, backend, addr, port, dev)
    return DistInfo(rank=rank_, world_size=world, local_rank=local_rank, device=dev)

"""Sharded checkpoints: every rank writes and reads only its own shards, through torch.distributed.checkpoint.

Why it exists: ``ablate.train.checkpoint`` gathers the full model and Adam state on rank 0 (for a 13B LM,
~150 GB in one process and minutes per save).  Here ``save`` is collective: each rank writes the local
shards of the model, optimizer state and its own RNG state; rank 0 adds ``state.json`` (the loop's meta:
stage, step, data position; scheduler; optimizer param groups).  The folder has the same name and
atomicity as the full format (written as ``.step-<N>.tmp``, renamed into place by rank 0 after every rank
wrote, then ``keep_last`` pruning), so ``checkpoint.latest`` / ``read_meta`` work on both::

    step-<N>/shards/shard-0000<r>-model-00001-of-00001.safetensors   one per rank (DCP offsets in the header)
    step-<N>/rng-rank<r>.safetensors, rng-rank<r>.json                one per rank
    step-<N>/state.json                                                {"format": "sharded", "meta", ...}

Tensors are safetensors written by DCP's ``HuggingFaceStorageWriter`` (no pickle anywhere: no DCP
``.metadata`` file); ``HuggingFaceStorageReader`` reassembles any sharding from the headers, so a checkpoint
loads at the same world size (each rank reads its slices), at another one, or into one unsharded process
(``no_dist``: the final model).  ``load_weights`` reads a plain safetensors folder (``VLM.save_pretrained``)
into a (sharded) model the same way: each rank reads only its slices.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from ablate.train.checkpoint import (
    CheckpointError,
    optimizer_from_files,
    optimizer_to_files,
    publish,
    rng_state,
    set_rng_state,
    step_dirs,
)

SHARDS = "shards"
FORMAT = "sharded"
OPTIM = "optim::"  # key prefix of the optimizer's tensors beside the model's ("model::") in the shards
KeyMap = Callable[[str], str | None]  # model FQN -> name in the checkpoint (None: not in it)


def _dist() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _rank() -> int:
    return torch.distributed.get_rank() if _dist() else 0


def _barrier() -> None:
    if _dist():
        torch.distributed.barrier()


def is_sharded(path: str | Path) -> bool:
    return (Path(path) / SHARDS).is_dir()


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def save(root: str | Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer | None,
         scheduler: Any | None, meta: Mapping[str, Any], keep_last: int = 2) -> Path:
    """Write ``root/step-<step>`` as per-rank shards (collective on every rank), atomically; prune old ones."""
    root = Path(root)
    final, tmp = root / f"step-{step}", root / f".step-{step}.tmp"
    rank = _rank()
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / SHARDS).mkdir(parents=True)
    _barrier()
    tensors = {f"model::{k}": v for k, v in get_model_state_dict(model).items()}
    optim_meta = None
    if optimizer is not None:
        optim_tensors, optim_meta = optimizer_to_files(get_optimizer_state_dict(model, optimizer), OPTIM)
        tensors.update(optim_tensors)
    dcp.save(tensors, storage_writer=HuggingFaceStorageWriter(str(tmp / SHARDS), save_distributed=_dist()))
    rng_tensors, rng_scalars = rng_state()
    save_file({k: v.contiguous() for k, v in rng_tensors.items()}, str(tmp / f"rng-rank{rank}.safetensors"))
    (tmp / f"rng-rank{rank}.json").write_text(json.dumps(rng_scalars))
    _barrier()
    if rank == 0:
        world = torch.distributed.get_world_size() if _dist() else 1
        state = {"format": FORMAT, "world_size": world, "meta": dict(meta), "optimizer": optim_meta,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        _fsync_tree(tmp)
        publish(tmp, final)  # manifest of every rank's files: latest() verifies it like a full checkpoint
        for stale in step_dirs(root)[: -max(keep_last, 1)]:
            shutil.rmtree(stale, ignore_errors=True)
    _barrier()
    return final


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def read_header(path: str) -> tuple[dict[str, Any], int]:
    """A safetensors file's JSON header and the offset of its data."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        return json.loads(fh.read(n)), 8 + n


class SliceReader(HuggingFaceStorageReader):
    """DCP's safetensors reader, reading each requested slice with plain file reads straight into the rank's
    shard (the stock reader maps whole files, so their pages count in the resident memory of every rank)."""

    def read_data(self, plan: Any, planner: Any) -> Any:
        per_file: dict[str, list[Any]] = {}
        for item in plan.items:
            per_file.setdefault(self.storage_data[item.storage_index].relative_path, []).append(item)
        for file_name, items in per_file.items():
            header, base = read_header(file_name)
            with open(file_name, "rb", buffering=0) as fh:
                for req in items:
                    self._read_one(fh, header[req.storage_index.fqn], base, req, planner)
        fut: torch.futures.Future = torch.futures.Future()
        fut.set_result(None)
        return fut

    @staticmethod
    def _read_one(fh: Any, entry: Mapping[str, Any], base: int, req: Any, planner: Any) -> None:
        shape, dtype = list(entry["shape"]), _DTYPES[entry["dtype"]]
        offsets, lengths = list(req.storage_offsets), list(req.lengths)
        target = planner.resolve_tensor(req).detach()
        row_items = 1
        for size in shape[1:]:
            row_items *= size
        whole_rows = all(o == 0 and n == size for o, n, size in zip(offsets[1:], lengths[1:], shape[1:], strict=True))
        if not whole_rows:  # not a run of whole rows (not how FSDP shards): read the rows, slice them
            first, count = offsets[0], lengths[0]
            rows = torch.empty([count, *shape[1:]], dtype=dtype)
            fh.seek(base + entry["data_offsets"][0] + first * row_items * rows.element_size())
            fh.readinto(rows.view(-1).view(torch.uint8).numpy())
            index = tuple(slice(o, o + n) for o, n in zip(offsets[1:], lengths[1:], strict=True))
            target.copy_(rows[(slice(None), *index)])
        else:
            direct = target.dtype == dtype and target.is_contiguous()
            out = target if direct else torch.empty(lengths, dtype=dtype)
            start = offsets[0] * row_items if shape else 0
            fh.seek(base + entry["data_offsets"][0] + start * out.element_size())
            if out.numel():
                fh.readinto(out.view(-1).view(torch.uint8).numpy())
            if not direct:
                target.copy_(out)
        planner.commit_tensor(req, target)


def _read(folder: Path, tensors: dict[str, torch.Tensor], no_dist: bool, what: str) -> None:
    try:
        dcp.load(tensors, storage_reader=SliceReader(str(folder)), no_dist=no_dist)
    except (Exception, CheckpointException) as exc:  # DCP wraps rank failures (a BaseException): keep the cause
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        cause = lines[-1] if lines else type(exc).__name__
        raise CheckpointError(f"{folder}: {what} does not fit the model: {cause[:300]}") from None


def model_tensors(model: nn.Module, key_map: KeyMap | None = None) -> dict[str, torch.Tensor]:
    """The model's state (sharded DTensors under FSDP, aliasing its parameters) by checkpoint name."""
    out = {}
    for k, v in get_model_state_dict(model).items():
        name = key_map(k) if key_map is not None else k
        if name is not None:
            out[name] = v
    return out


def load_weights(folder: str | Path, model: nn.Module, *, key_map: KeyMap | None = None,
                 no_dist: bool = False) -> None:
    """Read a safetensors folder (``VLM.save_pretrained``, or a step's ``shards/``) into the model in place;
    under FSDP each rank reads only the slices of its shards.  Every mapped key must be in the files."""
    folder = Path(folder)
    if not any(folder.glob("*.safetensors")):
        raise CheckpointError(f"{folder}: no *.safetensors files; expected a model folder or a sharded step")
    prefix = "model::" if folder.name == SHARDS else ""
    tensors = {prefix + k: v for k, v in model_tensors(model, key_map).items()}
    with torch.no_grad():
        _read(folder, tensors, no_dist, "model state")


def load(path: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
         scheduler: Any | None = None, restore_rng: bool = True, key_map: KeyMap | None = None,
         no_dist: bool = False) -> dict[str, Any]:
    """Restore a sharded checkpoint into a (sharded or plain) model, optimizer and scheduler; return its meta.
    Collective unless ``no_dist``; works at any world size."""
    path = Path(path)
    if not (path / "state.json").is_file() or not is_sharded(path):
        raise CheckpointError(f"{path}: missing state.json or {SHARDS}/; expected a folder written by "
                              "ablate.train.sharded")
    state = json.loads((path / "state.json").read_text())
    load_weights(path / SHARDS, model, key_map=key_map, no_dist=no_dist)
    if optimizer is not None:
        if state.get("optimizer") is None:
            raise CheckpointError(f"{path}: the checkpoint holds no optimizer state")
        tensors, _ = optimizer_to_files(get_optimizer_state_dict(model, optimizer), OPTIM)  # allocates the state
        with torch.no_grad():
            _read(path / SHARDS, tensors, no_dist, "optimizer state")
        set_optimizer_state_dict(model, optimizer, optimizer_from_files(tensors, state["optimizer"], OPTIM),
                                 options=StateDictOptions(strict=True))
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        rank = _rank()
        if not (path / f"rng-rank{rank}.safetensors").is_file():  # another world size: rank 0's generators
            rank = 0
        set_rng_state(load_file(str(path / f"rng-rank{rank}.safetensors")),
                      json.loads((path / f"rng-rank{rank}.json").read_text()))
    return state["meta"]

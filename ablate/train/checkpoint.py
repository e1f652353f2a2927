"""Atomic, resumable training checkpoints that never unpickle anything.

A checkpoint is a folder ``checkpoints/step-<N>/`` holding
``model.safetensors`` (full, unsharded weights by clean FQN), ``optimizer.safetensors`` + ``optimizer.json``
(per-parameter tensors by FQN; param groups and scalars as JSON), ``rng.safetensors`` (torch CPU/CUDA and
numpy generator arrays) and ``state.json`` (scheduler state, python/numpy RNG scalars, and the loop's
``meta``: stage, step, data position).  It is written under a temporary name and renamed into place, so a
job killed mid-write leaves either the previous checkpoint or the new one, never half of one; only the last
``keep_last`` are kept.  ``manifest.json`` (written last, before the rename) holds the size and SHA-256 of
every other file: ``latest`` returns the newest checkpoint that still matches it (a truncated or altered one
is logged, set aside as ``.step-<N>.corrupt-<pid>`` and the previous one used), and ``load`` verifies before it
reads.  Model and optimizer state go through ``torch.distributed.checkpoint.state_dict``,
so the same code saves and loads FSDP2-sharded and plain modules (full state gathered to rank 0, which
alone writes; every rank reads).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from ablate.distributed import barrier, rank
from ablate.jsonfiles import sha256_file

STEP_DIR = re.compile(r"^step-(\d+)$")
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
MANIFEST = "manifest.json"
log = logging.getLogger(__name__)
_VERIFIED: set[tuple] = set()  # folders (with every file's size and mtime) already hashed by this process


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing a file or holds state that does not fit the model."""




def _contiguous(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and unshared (safetensors refuses tied weights that share storage)."""
    out, seen = {}, set()
    for k, v in tensors.items():
        v = v.detach().to("cpu").contiguous()
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


# ------------------------------------------------------------------------------------- model / optimizer
def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) model state on CPU by clean FQN (collective under FSDP; empty off rank 0)."""
    return get_model_state_dict(model, options=FULL)


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load a full state into a plain or FSDP2 model; every key must match."""
    set_model_state_dict(model, dict(state), options=StateDictOptions(full_state_dict=True, strict=True))


def optimizer_to_files(osd: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state dict as flat tensors ``<prefix><fqn>::<name>`` + JSON-able scalars and groups."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for fqn, per_param in osd["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{fqn}::{name}"] = value
            else:
                scalars.setdefault(fqn, {})[name] = value
    return tensors, {"param_groups": osd["param_groups"], "scalars": scalars}


def optimizer_from_files(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                         prefix: str = "") -> dict[str, Any]:
    """The inverse of ``optimizer_to_files`` (keys without ``prefix`` are not the optimizer's)."""
    state: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            fqn, _, name = key[len(prefix):].rpartition("::")
            state.setdefault(fqn, {})[name] = value
    for fqn, scalars in meta["scalars"].items():
        state.setdefault(fqn, {}).update(scalars)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------------------- RNG
def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    return tensors, {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
                     "python": [version, list(internal), gauss_next]}


def set_rng_state(tensors: Mapping[str, torch.Tensor], scalars: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = scalars["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = scalars["python"]
    random.setstate((version, tuple(internal), gauss_next))


# ----------------------------------------------------------------------------------------- folders
def step_dirs(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _stat_key(folder: Path) -> tuple:
    """What must not change for an earlier verification (or this process's own write) to still hold."""
    return (str(folder), *((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                           for p in sorted(folder.rglob("*")) if p.is_file()))


def write_manifest(folder: str | Path) -> None:
    """Record size + SHA-256 of every file under ``folder`` (sub-folders included) in its manifest.json."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in _files(folder)}
    path = folder / MANIFEST
    path.write_text(json.dumps({"files": files}, indent=1))
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def verify(folder: str | Path) -> None:
    """Raise CheckpointError naming the first file that is missing or differs from the manifest (size, then
    SHA-256).  A checkpoint written before manifests existed is accepted when its required files exist."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        for name in ("model.safetensors", "state.json", "rng.safetensors"):
            if not (folder / name).is_file():
                raise CheckpointError(f"{folder}: missing {name}; expected a folder written by ablate.train.checkpoint")
        return
    key = _stat_key(folder)
    if key in _VERIFIED:
        return
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable manifest ({exc}); expected JSON with key 'files'") from None
    for name, want in files.items():
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing; the manifest lists it ({want['size']} bytes)")
        try:
            size = file.stat().st_size
            if size != want["size"]:
                raise CheckpointError(f"{file}: {size} bytes; expected {want['size']} (manifest): truncated or altered")
            if sha256_file(file) != want["sha256"]:
                raise CheckpointError(f"{file}: SHA-256 differs from the manifest; expected {want['sha256'][:12]}...")
        except OSError as exc:  # e.g. set aside by rank 0 while this rank was reading it
            raise CheckpointError(f"{file}: unreadable ({type(exc).__name__}: {exc.strerror or exc})") from None
    _VERIFIED.add(key)


def latest(root: str | Path) -> Path | None:
    """The newest checkpoint that verifies; newer ones that do not are logged (which, and why) and set aside
    by rank 0 as ``.step-<N>.corrupt-<pid>`` (kept for inspection, no longer counted by ``keep_last``)."""
    for path in reversed(step_dirs(root)):
        try:
            verify(path)
            return path
        except CheckpointError as exc:
            log.warning("skipping checkpoint %s: %s; trying the previous one", path, exc)
            if rank() == 0:
                try:
                    path.rename(path.with_name(f".{path.name}.corrupt-{os.getpid()}"))
                except OSError as err:
                    log.warning("could not set %s aside (%s)", path, err)
    return None


def _write_atomically(root: Path, step: int, files: Mapping[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, content in files.items():
        path = tmp / name
        if name.endswith(".safetensors"):
            save_file(_contiguous(content), str(path))
        else:
            path.write_text(json.dumps(content, indent=1))
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    return publish(tmp, final)


def publish(tmp: Path, final: Path) -> Path:
    """Seal a fully written ``tmp`` folder (manifest of every file under it) and rename it to ``final``
    atomically (a re-saved step is swapped, then the old one dropped); fsync the parent folder."""
    write_manifest(tmp)
    if final.exists():  # re-saving a step after a resume: swap, then drop the old one
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    _VERIFIED.add(_stat_key(final))  # hashed just now by write_manifest: latest() need not read it back
    return final


def save(root: str | Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer | None,
         scheduler: Any | None, meta: Mapping[str, Any], keep_last: int = 2) -> Path:
    """Write ``root/step-<step>`` atomically (rank 0 writes; collective under FSDP) and prune old ones."""
    weights = model_state(model)
    osd = get_optimizer_state_dict(model, optimizer, options=FULL) if optimizer is not None else None
    root = Path(root)
    final = root / f"step-{step}"
    if rank() == 0:
        rng_tensors, rng_scalars = rng_state()
        state = {"meta": dict(meta), "rng": rng_scalars,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None}
        files: dict[str, Any] = {"model.safetensors": weights, "rng.safetensors": rng_tensors,
                                 "state.json": state}
        if osd is not None:
            optim_tensors, optim_meta = optimizer_to_files(osd)
            files["optimizer.safetensors"] = optim_tensors
            files["optimizer.json"] = optim_meta
        final = _write_atomically(root, step, files)
        for old in step_dirs(root)[: -max(keep_last, 1)]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def read_meta(path: str | Path) -> dict[str, Any]:
    path = Path(path) / "state.json"
    try:
        return json.loads(path.read_text())["meta"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint state ({exc}); expected JSON with key 'meta'") from None


def load(path: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
         scheduler: Any | None = None, restore_rng: bool = True) -> dict[str, Any]:
    """Restore a checkpoint into a (sharded) model, optimizer and scheduler; return its ``meta``."""
    path = Path(path)
    verify(path)
    for name in ("model.safetensors", "state.json", "rng.safetensors"):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: missing {name}; expected a folder written by ablate.train.checkpoint")
    state = json.loads((path / "state.json").read_text())
    try:
        weights = load_file(str(path / "model.safetensors"))
    except Exception as exc:  # SafetensorError (a truncated file without a manifest): named, not raw
        raise CheckpointError(f"{path / 'model.safetensors'}: unreadable ({str(exc)[:200]})") from None
    try:
        load_model_state(model, weights)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path / 'model.safetensors'}: does not fit the model: {str(exc)[:300]}") from None
    if optimizer is not None:
        if not (path / "optimizer.safetensors").is_file():
            raise CheckpointError(f"{path}: missing optimizer.safetensors; the checkpoint holds no optimizer state")
        osd = optimizer_from_files(load_file(str(path / "optimizer.safetensors")),
                                    json.loads((path / "optimizer.json").read_text()))
        set_optimizer_state_dict(model, optimizer, osd, options=StateDictOptions(full_state_dict=True))
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_state(load_file(str(path / "rng.safetensors")), state["rng"])
    return state["meta"]

"""The run directory ``runs/<run_key>/``: its file names, the one atomic writer, and what is written there.

Why it exists: the job body, the launcher, ``ablate train``, the trainer, the evaluator, ``ablate status``
and the results reader all touch the same folder; each file's name, format and writer live here, so a file
is spelled (and written safely) in one place.  Torch-free: ``ablate status`` imports it.

- ``write_atomic`` / ``write_json``: temp file in the same folder, fsync, rename; readers see all or nothing.
- ``publish_folder``: the same for a folder written beside its final place (``model/``, an export).
- ``write_point`` (``point.json``), ``prepare`` (``config.yaml`` + ``point.json`` + ``attempts.jsonl``),
  ``write_results`` (``results.json``), ``mark_done`` / ``is_done`` (``DONE``), ``write_progress`` /
  ``read_progress`` / ``progress_line`` (``progress.json``, docs/contracts.md "Progress file").
- ``run_lock`` (``LOCK``: one process per run key) and ``check_writable`` (probe before long work).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"
POINT = "point.json"
RESULTS = "results.json"
DONE = "DONE"
LOCK = "LOCK"
PROGRESS = "progress.json"
PRECISION = "precision.json"
ATTEMPTS = "attempts.jsonl"
TRAIN_LOG = "train_log.jsonl"
DATA_STATS = "data_stats.json"
EXAMPLES = "examples"
MODEL = "model"
CHECKPOINTS = "checkpoints"
POINT_FIELDS = ("name", "axes", "seed", "run_key", "design_key")  # + "studies" (accumulated)


class RunDirError(RuntimeError):
    """A run directory is held by another process, or cannot be written; one line naming it and the holder."""


# ------------------------------------------------------------------------------------------ atomic writes
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``path`` so that readers see either the old file or all of the new one: a temp file in the same
    folder, fsync, rename over ``path``, fsync the folder (the rename survives a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = True,
               default: Any = None) -> Path:
    return write_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default))


def publish_folder(tmp: Path, out: Path) -> Path:
    """Move a fully written folder ``tmp`` (a sibling of ``out``) into place, replacing an older ``out``."""
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    _fsync_dir(out.parent)
    return out


def temp_folder(out: Path) -> Path:
    """A fresh, empty sibling of ``out`` to write into before ``publish_folder``."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


# ------------------------------------------------------------------------------------------------- paths
def run_dir_of(cfg: Any, run_key: str) -> Path:
    return Path(str(cfg.runtime.runs_dir)) / run_key


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).exists()


def mark_done(run_dir: Path) -> None:
    """``DONE``: written last, atomically, by rank 0 only."""
    write_atomic(Path(run_dir) / DONE, time.strftime("%Y-%m-%dT%H:%M:%S\n"))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------------- point.json, attempts
def attempt_info() -> dict[str, Any]:
    """Who runs this attempt: SLURM job id and restart count (requeues), or the local submitit job id."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": socket.gethostname(),
        "job_id": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
        "array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "restart_count": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
        "pid": os.getpid(),
    }


def write_point(run_dir: Path, point: Mapping[str, Any], study: str) -> dict[str, Any]:
    """``point.json``: the point's name, axes, seed, keys, and the studies that use this run (accumulated)."""
    path = Path(run_dir) / POINT
    info = {k: point[k] for k in POINT_FIELDS if k in point}
    studies: list[str] = list(read_json(path).get("studies", [])) if path.exists() else []
    info["studies"] = studies + ([study] if study not in studies else [])
    write_json(path, info)
    return info


def prepare(run_dir: Path, cfg: Any, point: Mapping[str, Any], study: str) -> None:
    """Write config.yaml and point.json and log this attempt (``attempts.jsonl``)."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
    write_point(run_dir, point, study)
    with (run_dir / ATTEMPTS).open("a") as f:
        f.write(json.dumps(attempt_info()) + "\n")


def attempts(run_dir: Path) -> int:
    path = Path(run_dir) / ATTEMPTS
    return len(path.read_text().splitlines()) if path.exists() else 0


# ------------------------------------------------------------------------------------------- results.json
def count_examples(run_dir: Path, benchmark: str) -> int:
    path = Path(run_dir) / EXAMPLES / f"{benchmark}.jsonl"
    if not path.exists():
        return 0
    with path.open() as f:
        return sum(1 for line in f if line.strip())


def write_results(run_dir: Path, run_key: str, scores: Mapping[str, Mapping[str, float]],
                  timings: Mapping[str, float]) -> None:
    from ablate.eval.fingerprint import read_fingerprints

    run_dir = Path(run_dir)
    data_stats_file = run_dir / DATA_STATS
    results = {
        "run_key": run_key,
        "scores": {b: {m: float(v) for m, v in s.items()} for b, s in scores.items()},
        "n": {b: count_examples(run_dir, b) for b in scores},
        "timings": dict(timings),
        "data_stats": read_json(data_stats_file) if data_stats_file.exists() else {},
        "fingerprints": {b: fp for b, fp in read_fingerprints(run_dir).items() if b in scores},
    }
    write_json(run_dir / RESULTS, results)


# ---------------------------------------------------------------------------------------- progress.json
def write_progress(run_dir: Path, phase: str, stage: str, step: int, total: int, **extra: Any) -> None:
    """``progress.json``: ``{"phase": train|eval|done, "stage": stage or benchmark, "step", "total", "time"}``
    plus ``extra`` (the evaluator adds ``benchmark``, ``index`` and ``benchmarks``)."""
    write_json(Path(run_dir) / PROGRESS, {"phase": phase, "stage": stage, "step": int(step), "total": int(total),
                                          "time": time.time(), **extra}, indent=None, sort_keys=False)


def read_progress(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = read_json(Path(run_dir) / PROGRESS)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def progress_line(run_dir: Path, default: str = "starting") -> str:
    """``train align 12/40`` or ``eval pope 120/240 (2/4 benchmarks)``: the run's last progress record."""
    p = read_progress(run_dir)
    if p is None:
        return default
    line = f"{p.get('phase', '?')} {p.get('stage', '')} {p.get('step', 0)}/{p.get('total', '?')}".strip()
    if p.get("phase") == "eval" and p.get("benchmarks"):
        line += f" ({int(p.get('index', 0)) + 1}/{p['benchmarks']} benchmarks)"
    return line


# ------------------------------------------------------------------------------------- lock, writability
def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text())
        return (f"pid {info.get('pid')} on host {info.get('host')} (job {info.get('job_id')}, since "
                f"{info.get('time')})")
    except (OSError, ValueError, AttributeError):
        return "another process (its lock file names no holder yet)"


@contextmanager
def run_lock(run_dir: str | Path, *, wait: bool = False, poll_s: float = 1.0) -> Iterator[None]:
    """Hold ``run_dir/LOCK`` (an flock: released when this process ends, even on SIGKILL or a SLURM requeue)
    while a run trains; a second process for the same run key raises RunDirError saying who holds it, or
    with ``wait`` blocks until the holder ends."""
    import fcntl

    run_dir = Path(run_dir)
    lock = run_dir / LOCK
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a+")  # noqa: SIM115 (held for the run's lifetime)
    except OSError as exc:
        raise RunDirError(f"{run_dir}: not writable ({type(exc).__name__}: {exc.strerror or exc}); expected a "
                          "folder this user can write (checkpoints and results are written there)") from None
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise RunDirError(f"{run_dir}: run is already in progress, held by {_holder(lock)} "
                                      f"(lock {lock}); expected one process per run key (wait for it to end, "
                                      "or pass --wait)") from None
                time.sleep(poll_s)
        info = attempt_info()
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({k: info[k] for k in ("host", "pid", "job_id", "time")}))
        fh.flush()
        yield
    finally:
        fh.close()  # releases the flock


def check_writable(folder: str | Path, why: str = "checkpoints and results are written there") -> None:
    """Create ``folder`` and write, fsync and delete a probe file in it; RunDirError (one line) if that fails."""
    folder = Path(folder)
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "w") as f:
            f.write("ok")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"{folder}: not writable ({type(exc).__name__}: {exc.strerror or exc}); expected a "
                          f"folder this user can write ({why})") from None

"""The job body: one design point, trained and evaluated, idempotent by ``run_key``.

Why it exists: SLURM requeues jobs (preemption, time limits) and users re-launch studies; every run must
therefore be safe to start any number of times.  ``run_point`` skips a run whose ``runs/<run_key>/DONE``
exists, otherwise (re)starts it: training resumes from ``run_dir/checkpoints`` and the MLflow run is found
again by its ``ablate.run_key`` tag.  ``DONE`` is written last, atomically, by rank 0 only.

Multi-task jobs (``launcher.tasks_per_node > 1``) initialise ``torch.distributed`` from the SLURM (or submitit
local) environment through ``submitit.helpers.TorchDistributedEnvironment``: gloo on CPU, NCCL on GPU, with
``runtime.dist_timeout_s`` as the timeout of the rendezvous and of every collective.  They fail fast instead of
hanging: a rank that raises prints ``[rank R/W] ...`` lines with its traceback to stderr and exits non-zero,
and ``ablate.launch`` runs the tasks under ``srun --kill-on-bad-exit=1`` so that SLURM then ends the others.
Only rank 0 evaluates; the other ranks end after training (they never wait in a collective for the
evaluation, which may take longer than the timeout).  ``pick_master_port`` chooses the rendezvous port in the
batch script (see ``ablate.launch``).

It is also a single-run Hydra app, so the standard Hydra path runs the same body::

    python -m ablate.job vision=tiny-clip ... --multirun hydra/launcher=submitit_slurm
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

from ablate.config import DIST_TIMEOUT_S, dist_timeout_s

log = logging.getLogger("ablate.job")

DONE = "DONE"
TrainFn = Callable[..., Any]  # train(cfg, run_dir, *, tracker) -> model
EvaluateFn = Callable[..., Mapping[str, Mapping[str, float]]]  # evaluate(model, cfg, run_dir, *, tracker)
TrackerFactory = Callable[..., AbstractContextManager]  # Tracker(cfg, *, run_key, design_key, study, point_name)


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see either nothing or all of it (write temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_dir_of(cfg: Any, run_key: str) -> Path:
    return Path(str(cfg.runtime.runs_dir)) / run_key


def is_done(run_dir: Path) -> bool:
    return (run_dir / DONE).exists()


# -------------------------------------------------------------------------------------------- distributed
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


def _num_tasks() -> int:
    for var in ("SLURM_NTASKS", "SUBMITIT_LOCAL_NTASKS"):
        if os.environ.get(var):
            return int(os.environ[var])
    return int(os.environ.get("WORLD_SIZE", "1"))


def _task_label() -> str:
    """``rank R/W`` of this task from the environment (works before the process group exists)."""
    rank = next((os.environ[v] for v in ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID") if os.environ.get(v)), "0")
    return f"rank {rank}/{_num_tasks()}"


def init_distributed(timeout_s: float = DIST_TIMEOUT_S) -> tuple[int, int]:
    """(rank, world_size); joins a process group when the job has more than one task.

    ``timeout_s`` bounds the rendezvous (a rank that died or never started makes the others fail after it,
    not hang) and every later collective of the group.  ``MASTER_PORT`` set in the environment (by the batch
    script, see ``pick_master_port``, or by ``launcher.setup``) wins over submitit's port from the job id.
    """
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if _num_tasks() <= 1:
        return 0, 1
    if "RANK" not in os.environ:  # not under torchrun: export SLURM's (submitit's) view of the job
        from submitit.helpers import TorchDistributedEnvironment

        # overwrite: a MASTER_PORT from the environment is kept by TorchDistributedEnvironment itself
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    log.info("rank %d/%d joining %s process group at %s:%s (timeout %gs)", rank, world, backend, addr, port,
             timeout_s)
    try:
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    except Exception as exc:
        raise RuntimeError(f"rank {rank}/{world}: could not join the {backend} process group at {addr}:{port} "
                           f"within runtime.dist_timeout_s={timeout_s:g}s ({type(exc).__name__}: {exc}); "
                           "another rank failed or never started (see its log), or the port is taken "
                           "(set MASTER_PORT in launcher.setup)") from exc
    log.info("rank %d/%d joined %s process group at %s:%s", rank, world, backend, addr, port)
    return rank, world


def _port_free(port: int) -> bool:
    """Whether a listening socket could bind ``port`` now (SO_REUSEADDR, as torch's TCPStore binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def pick_master_port(seed: str | None = None, *, tries: int = 64) -> int:
    """A rendezvous port (MASTER_PORT) that is free on this host now, for a multi-task job's batch script.

    submitit derives the port from the job id alone, in 20000-60000: deterministic (on a fresh cluster, the
    same job id gets the same port every time) and mostly inside the kernel's ephemeral range, where any
    outgoing connection may hold it.  This draws from the same generator seeded by the job id, but below
    the ephemeral range (when that leaves at least 1000 ports), and skips ports that are taken.  The batch
    script runs on the job's first node, which is the MASTER_ADDR submitit exports.
    """
    if seed is None:
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        seed = (f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array
                else os.environ.get("SLURM_JOB_ID", str(os.getpid())))
    low, high = 20000, 60000
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = high + 1
    if ephemeral_low - 1 - low >= 1000:
        high = min(high, ephemeral_low - 1)
    rng = random.Random(seed)
    port = rng.randint(low, high)
    for _ in range(tries):
        if _port_free(port):
            return port
        port = rng.randint(low, high)
    return port  # all taken: the rendezvous will say so


def log_failure(run_key: str, name: Any = None) -> None:
    """Print this task's rank and the current exception's traceback to stderr as ``[rank R/W] ...`` lines."""
    label = _task_label()
    head = (f"[{label}] run {run_key} ({name}) failed on {socket.gethostname()} "
            f"(pid {os.getpid()}, job {attempt_info()['job_id']}):")
    lines = [head] + [f"[{label}] {line}" for line in traceback.format_exc().rstrip().splitlines()]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------------------------- run lock, writability
LOCK = "LOCK"


class RunDirError(RuntimeError):
    """A run directory is held by another process, or cannot be written; one line naming it and the holder."""


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


# ---------------------------------------------------------------------------------------------- run dir
def prepare_run_dir(run_dir: Path, cfg: Any, point: Mapping[str, Any]) -> None:
    """Write config.yaml and point.json (the studies that use this run accumulate) and log this attempt."""
    from omegaconf import OmegaConf

    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    info = {k: point[k] for k in ("name", "axes", "seed", "run_key", "design_key") if k in point}
    studies: list[str] = []
    if (run_dir / "point.json").exists():
        studies = list(json.loads((run_dir / "point.json").read_text()).get("studies", []))
    study = str(point.get("study", cfg.study))
    info["studies"] = studies + ([study] if study not in studies else [])
    write_atomic(run_dir / "point.json", json.dumps(info, indent=2, sort_keys=True))
    with (run_dir / "attempts.jsonl").open("a") as f:
        f.write(json.dumps(attempt_info()) + "\n")


def count_examples(run_dir: Path, benchmark: str) -> int:
    path = run_dir / "examples" / f"{benchmark}.jsonl"
    if not path.exists():
        return 0
    with path.open() as f:
        return sum(1 for line in f if line.strip())


def write_results(run_dir: Path, run_key: str, scores: Mapping[str, Mapping[str, float]],
                  timings: Mapping[str, float]) -> None:
    from ablate.eval.fingerprint import read_fingerprints

    data_stats_file = run_dir / "data_stats.json"
    data_stats = json.loads(data_stats_file.read_text()) if data_stats_file.exists() else {}
    results = {
        "run_key": run_key,
        "scores": {b: {m: float(v) for m, v in s.items()} for b, s in scores.items()},
        "n": {b: count_examples(run_dir, b) for b in scores},
        "timings": dict(timings),
        "data_stats": data_stats,
        "fingerprints": {b: fp for b, fp in read_fingerprints(run_dir).items() if b in scores},
    }
    write_atomic(run_dir / "results.json", json.dumps(results, indent=2, sort_keys=True))


# ------------------------------------------------------------------------------------------------- body
def execute(point: Mapping[str, Any], *, train: TrainFn, evaluate: EvaluateFn, tracker: TrackerFactory) -> str:
    """The job body with its three steps injected (``run_point`` passes the real ones)."""
    from omegaconf import OmegaConf

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if point.get("cwd"):
        os.chdir(str(point["cwd"]))  # relative paths (runs/, data/, sqlite store) mean the submitter's cwd
    cfg = OmegaConf.create(dict(point["config"]))
    from ablate.registry import load_plugins

    load_plugins(cfg.get("plugins") or ())  # the point's plug-ins register their components in this process
    run_key = str(point["run_key"])
    run_dir = run_dir_of(cfg, run_key)
    if is_done(run_dir):
        log.info("run %s (%s) is done; skipping", run_key, point.get("name"))
        return f"skipped {run_key}"
    try:
        return _execute(point, cfg, run_dir, run_key, train=train, evaluate=evaluate, tracker=tracker)
    except Exception:
        log_failure(run_key, point.get("name"))  # plain lines in the SLURM log of this task, rank first
        raise


def _execute(point: Mapping[str, Any], cfg: Any, run_dir: Path, run_key: str, *, train: TrainFn,
             evaluate: EvaluateFn, tracker: TrackerFactory) -> str:
    rank, world = init_distributed(dist_timeout_s(cfg))
    # rank 0 holds the run's lock until DONE (a twin job of the same run key stops here, naming the holder)
    lock = run_lock(run_dir) if rank == 0 else nullcontext()
    with lock:
        return _execute_locked(point, cfg, run_dir, run_key, rank, world, train=train, evaluate=evaluate,
                               tracker=tracker)


def _execute_locked(point: Mapping[str, Any], cfg: Any, run_dir: Path, run_key: str, rank: int, world: int, *,
                    train: TrainFn, evaluate: EvaluateFn, tracker: TrackerFactory) -> str:
    if rank == 0:
        check_writable(run_dir / "checkpoints")  # now, not at the first save runtime.checkpoint_every steps in
        prepare_run_dir(run_dir, cfg, point)
        log.info("run %s (%s): start, attempt %s", run_key, point.get("name"), attempt_info())
    _barrier(world)
    study = str(point.get("study", cfg.study))
    tracking = (tracker(cfg, run_key=run_key, design_key=str(point.get("design_key", "")), study=study,
                        point_name=str(point.get("name", run_key))) if rank == 0 else nullcontext(None))
    timings: dict[str, float] = {}
    with tracking as trk:
        t0 = time.perf_counter()
        model = train(cfg, run_dir, tracker=trk)
        timings["train_s"] = time.perf_counter() - t0
        if rank != 0:  # evaluation is rank 0's (every rank writing the same example files races); the
            # others end here rather than wait in a collective that would time out on a long evaluation
            log.info("run %s: rank %d/%d trained; rank 0 evaluates", run_key, rank, world)
            return f"trained {run_key} (rank {rank})"
        t0 = time.perf_counter()
        scores = evaluate(model, cfg, run_dir, tracker=trk)
        timings["eval_s"] = time.perf_counter() - t0
        write_results(run_dir, run_key, scores, timings)
        if trk is not None:
            trk.log_artifact(run_dir / "results.json")
    write_atomic(run_dir / DONE, time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    log.info("run %s done in %.1fs", run_key, sum(timings.values()))
    return f"done {run_key}"


def run_point(point: dict) -> str:
    """The submitit job body (docs/contracts.md): DONE -> skip; else train (resume) -> evaluate -> DONE."""
    from ablate.eval.runner import evaluate
    from ablate.track import Tracker
    from ablate.train.loop import train

    return execute(point, train=train, evaluate=evaluate, tracker=Tracker)


def point_payload(point: Any, study: str, *, cwd: str | None = None) -> dict[str, Any]:
    """The picklable dict a job receives for a DesignPoint (resolved config included: jobs never recompose)."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(point.config, resolve=False)  # compose() already resolved it (3x faster)
    config["study"] = study
    return {**point.to_dict(), "study": study, "config": config, "cwd": cwd or os.getcwd()}


# ------------------------------------------------------------------------------------------ Hydra app
def _hydra_main() -> None:
    """Single-run Hydra app over conf/: compose (CLI overrides, --multirun sweeps) -> the same job body."""
    import hydra
    from omegaconf import DictConfig

    from ablate.config import CONF_DIR, register_configs, validate
    from ablate.design import axis_levels, design_key, run_key, searchpath_override

    register_configs()
    sys.argv += searchpath_override()  # the plug-ins' config groups (vision=tiny-clip, ...) compose as conf/'s

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def app(cfg: DictConfig) -> str:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        validate(cfg)
        key = run_key(cfg)
        overrides = list(HydraConfig.get().overrides.task)
        point = {"name": ",".join(overrides) or "baseline", "run_key": key, "design_key": design_key(cfg),
                 "seed": int(cfg.train.seed), "axes": axis_levels(cfg), "overrides": overrides,
                 "study": str(cfg.study), "config": OmegaConf.to_container(cfg, resolve=True),
                 "cwd": hydra.utils.get_original_cwd()}
        body = os.environ.get("ABLATE_JOB_BODY")  # tests swap in a stand-in body (module:function)
        if body:
            from ablate.launch import resolve_body

            return resolve_body(body)(point)
        return run_point(point)

    app()


if __name__ == "__main__":
    _hydra_main()

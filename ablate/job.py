"""The job body: one design point, trained and evaluated, idempotent by ``run_key``.

Why it exists: SLURM requeues jobs (preemption, time limits) and users re-launch studies; every run must
therefore be safe to start any number of times.  ``run_point`` skips a run whose ``runs/<run_key>/DONE``
exists, otherwise (re)starts it: training resumes from ``run_dir/checkpoints`` and the MLflow run is found
again by its ``ablate.run_key`` tag.  ``DONE`` is written last, atomically, by rank 0 only.

Multi-task jobs (``launcher.tasks_per_node > 1``) initialise ``torch.distributed`` from the SLURM (or submitit
local) environment with ``ablate.distributed.init_distributed``: gloo on CPU, NCCL on GPU, with
``runtime.dist_timeout_s`` as the timeout of the rendezvous and of every collective.  What the job writes
into its run directory (``config.yaml``, ``point.json``, ``results.json``, ``DONE``) is ``ablate.rundir``'s.  They fail fast instead of
hanging: a rank that raises prints ``[rank R/W] ...`` lines with its traceback to stderr and exits non-zero,
and ``ablate.launch`` runs the tasks under ``srun --kill-on-bad-exit=1`` so that SLURM then ends the others.
Only rank 0 evaluates; the other ranks end after training (they never wait in a collective for the
evaluation, which may take longer than the timeout).  ``pick_master_port`` chooses the rendezvous port in the
batch script (see ``ablate.launch``).

It is also a single-run Hydra app, so the standard Hydra path runs the same body::

    python -m ablate.job vision=tiny-clip ... --multirun hydra/launcher=submitit_slurm
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from ablate import rundir
from ablate.config import dist_timeout_s
from ablate.distributed import barrier, init_distributed, task_label
from ablate.rundir import attempt_info

log = logging.getLogger("ablate.job")

DEFAULT_BODY = "ablate.job:run_point"
TrainFn = Callable[..., Any]  # train(cfg, run_dir, *, tracker) -> model
EvaluateFn = Callable[..., Mapping[str, Mapping[str, float]]]  # evaluate(model, cfg, run_dir, *, tracker)
TrackerFactory = Callable[..., AbstractContextManager]  # Tracker(cfg, *, run_key, design_key, study, point_name)


def resolve_body(spec: str) -> Callable[[dict], str]:
    """``module:function`` -> the function (job bodies are named by string so jobs unpickle anywhere)."""
    from ablate.config import ConfigError

    module, _, func = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"job body {spec!r}: cannot import ({exc}); expected module:function") from None


# ---------------------------------------------------------------------------------------- rendezvous port
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
    label = task_label()
    head = (f"[{label}] run {run_key} ({name}) failed on {socket.gethostname()} "
            f"(pid {os.getpid()}, job {attempt_info()['job_id']}):")
    lines = [head] + [f"[{label}] {line}" for line in traceback.format_exc().rstrip().splitlines()]
    print("\n".join(lines), file=sys.stderr, flush=True)


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
    run_dir = rundir.run_dir_of(cfg, run_key)
    if rundir.is_done(run_dir):
        log.info("run %s (%s) is done; skipping", run_key, point.get("name"))
        return f"skipped {run_key}"
    try:
        return _execute(point, cfg, run_dir, run_key, train=train, evaluate=evaluate, tracker=tracker)
    except Exception:
        log_failure(run_key, point.get("name"))  # plain lines in the SLURM log of this task, rank first
        raise


def _execute(point: Mapping[str, Any], cfg: Any, run_dir: Path, run_key: str, *, train: TrainFn,
             evaluate: EvaluateFn, tracker: TrackerFactory) -> str:
    info = init_distributed(str(cfg.runtime.get("device", "auto") or "auto"), dist_timeout_s(cfg))
    # rank 0 holds the run's lock until DONE (a twin job of the same run key stops here, naming the holder)
    lock = rundir.run_lock(run_dir) if info.is_main else nullcontext()
    with lock:
        return _execute_locked(point, cfg, run_dir, run_key, info.rank, info.world_size, train=train,
                               evaluate=evaluate, tracker=tracker)


def _execute_locked(point: Mapping[str, Any], cfg: Any, run_dir: Path, run_key: str, rank: int, world: int, *,
                    train: TrainFn, evaluate: EvaluateFn, tracker: TrackerFactory) -> str:
    study = str(point.get("study", cfg.study))
    if rank == 0:
        rundir.check_writable(run_dir / rundir.CHECKPOINTS)  # now, not at the first save
        rundir.prepare(run_dir, cfg, point, study)
        log.info("run %s (%s): start, attempt %s", run_key, point.get("name"), rundir.attempt_info())
    barrier()
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
        rundir.write_results(run_dir, run_key, scores, timings)
        if trk is not None:
            trk.log_artifact(run_dir / rundir.RESULTS)
    rundir.mark_done(run_dir)
    log.info("run %s done in %.1fs", run_key, sum(timings.values()))
    return f"done {run_key}"


def run_point(point: dict) -> str:
    """The submitit job body (docs/contracts.md): DONE -> skip; else train (resume) -> evaluate -> DONE."""
    from ablate.eval.runner import evaluate
    from ablate.track import Tracker
    from ablate.train.loop import train

    return execute(point, train=train, evaluate=evaluate, tracker=Tracker)


def point_payload(point: Any, study: str, *, cwd: str | None = None) -> dict[str, Any]:
    """The picklable dict a job receives for a DesignPoint (resolved config included: jobs never recompose).
    The one way a point dict is built: studies (``ablate.launch``), the Hydra app and ``ablate train``."""
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
    from ablate.design import DesignPoint, searchpath_override

    register_configs()
    sys.argv += searchpath_override()  # the plug-ins' config groups (vision=tiny-clip, ...) compose as conf/'s

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def app(cfg: DictConfig) -> str:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        validate(cfg)
        OmegaConf.resolve(cfg)
        overrides = list(HydraConfig.get().overrides.task)
        point = DesignPoint.from_config(cfg, ",".join(overrides) or "baseline", overrides)
        payload = point_payload(point, str(cfg.study), cwd=hydra.utils.get_original_cwd())
        return resolve_body(os.environ.get("ABLATE_JOB_BODY", DEFAULT_BODY))(payload)  # tests swap the body

    app()


if __name__ == "__main__":
    _hydra_main()

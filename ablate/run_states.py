"""The state of every run of a study: DONE markers first, then SLURM accounting or local processes.

``ablate sweep`` (what to skip) and ``ablate status`` (what to show) read a study manifest's runs through
``run_states``; it owns the mapping from scheduler states to ablate's run states, and adds each unfinished
run's last ``progress.json`` record (training stage/step, or the benchmark being evaluated).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from ablate import rundir
from ablate.rundir import DONE

STATES = ("done", "running", "requeued", "pending", "failed", "not submitted")
# SLURM job states (sacct, first word) -> run state; anything else counts as failed.
SLURM_STATES = {
    "PENDING": "pending", "CONFIGURING": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
    "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running", "RESIZING": "running",
    "STAGE_OUT": "running", "SIGNALING": "running", "REQUEUED": "requeued", "COMPLETED": "completed",
    "UNKNOWN": "pending",  # submitit's answer before accounting lists a just-submitted job
}
ACTIVE = ("pending", "running", "requeued")
STDERR_TAIL = 8


def _job(launcher: str, folder: str, job_id: str) -> submitit.Job:
    # a debug job ran in this process and has no handle to rebuild (DebugJob takes a submission): a LocalJob
    # gives its folder's paths, and _job_state reports it from the run directory alone
    cls = submitit.SlurmJob if launcher == "slurm" else submitit.LocalJob
    return cls(folder=folder, job_id=job_id)


# ----------------------------------------------------------------------------------------------- states
@dataclass
class RunState:
    run_key: str
    name: str
    state: str  # one of STATES
    job_id: str | None = None
    detail: str = ""  # SLURM state / attempts
    stderr: str | None = None  # path of the last job's stderr
    error: list[str] | None = None  # last stderr lines (failures)
    progress: str = ""  # the run's progress.json (``rundir.progress_line``) while it is not done


def _tail(path: Path, n: int = STDERR_TAIL) -> list[str]:
    if not path.exists():
        return [f"(no stderr file at {path})"]
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-n:]


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _job_state(launcher: str, job: submitit.Job) -> tuple[str, str]:
    """(run state from the scheduler, raw detail) for a run that is not DONE."""
    if launcher == "slurm":
        raw = str(job.state)
        state = SLURM_STATES.get(raw.split()[0] if raw else "UNKNOWN", "failed")
        if state == "completed":  # the job ended without writing DONE: look at its result
            state = "failed"
        return state, raw
    if launcher == "local":
        if _pid_alive(job.job_id) and not job.paths.result_pickle.exists():
            return "running", "RUNNING"
        return "failed", "FINISHED" if job.paths.result_pickle.exists() else "GONE"
    return "failed", "DEBUG"


def run_states(manifest: Mapping[str, Any]) -> list[RunState]:
    """The state of every run of a study: DONE markers first, then SLURM accounting / local processes."""
    runs_dir = Path(manifest["runs_dir"])
    runs: Mapping[str, Any] = manifest.get("runs", {})
    jobs = {}
    for key, info in runs.items():  # register every job first: submitit checks them all in one sacct call
        if info.get("job_id") and not (runs_dir / key / DONE).exists():
            jobs[key] = _job(info["launcher"], info["folder"], info["job_id"])
    states = []
    for key, info in runs.items():
        run_dir = runs_dir / key
        rs = RunState(run_key=key, name=info["name"], state="not submitted", job_id=info.get("job_id"))
        if (run_dir / DONE).exists():
            rs.state = "done"
        elif key in jobs:
            job = jobs[key]
            rs.state, rs.detail = _job_state(info["launcher"], job)
            rs.stderr = str(job.paths.stderr)
            if rs.state in ("pending", "running") and rundir.attempts(run_dir) > 1:
                rs.state = "requeued"
            if rs.state == "failed":
                rs.error = _tail(job.paths.stderr)
        if rs.state != "done" and rundir.read_progress(run_dir) is not None:
            rs.progress = rundir.progress_line(run_dir)
        states.append(rs)
    return states

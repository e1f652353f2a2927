"""Submitting studies: submitit executors from ``cfg.launcher``, one job array per study, and run states.

Why it exists: ``ablate sweep`` must return as soon as the jobs are queued (hydra-submitit-launcher blocks
until the last job ends), submit only the runs that still need work, and ``ablate status`` must say what
each run is doing.  The flow:

1. expand every study and validate every point (``ablate.design.expand``) and the launcher settings --
   one bad point stops everything before a single job is submitted;
2. drop runs that are DONE (``runs/<run_key>/DONE``) or whose last job is still pending/running;
3. submit ONE array (``executor.map_array``) of ``PointJob`` -- a ``submitit.helpers.Checkpointable``, so
   preemption and time limits requeue it (up to ``launcher.max_requeues`` timeouts) and the idempotent job
   body resumes from its checkpoint;
4. write ``studies/<study>/manifest.json`` (points, run_keys, job ids, submission history).

Executors are string IDs in ``ablate.registry.EXECUTORS``: ``slurm`` (SlurmExecutor), ``local`` (LocalExecutor: one
process per job on this machine; they outlive ``ablate sweep``), ``debug`` (DebugExecutor: in-process).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable

from ablate.config import ConfigError, check_launcher_strings
from ablate.job import DONE, write_atomic
from ablate.run_states import ACTIVE, STATES, RunState, run_states

DEFAULT_BODY = "ablate.job:run_point"


# ------------------------------------------------------------------------------------------------- jobs
def resolve_body(spec: str) -> Callable[[dict], str]:
    """``module:function`` -> the function (job bodies are named by string so jobs unpickle anywhere)."""
    module, _, func = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"job body {spec!r}: cannot import ({exc}); expected module:function") from None


class PointJob(Checkpointable):
    """The submitted callable: runs the job body on one point; requeued (same point) on preemption/timeout.

    On the local executor (which starts every job of an array at once) ``slots`` caps how many bodies run
    at the same time: each job holds an flock on one of ``n_slots`` files while it works, and pins its
    torch/BLAS threads so that the jobs share the machine's cores instead of oversubscribing them.
    """

    def __init__(self, body: str = DEFAULT_BODY, *, slots: str | None = None, n_slots: int = 0,
                 threads: int = 0) -> None:
        self.body = body
        self.slots, self.n_slots, self.threads = slots, n_slots, threads

    def __call__(self, point: dict) -> str:
        if self.threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = str(self.threads)
        if not self.slots:
            return resolve_body(self.body)(point)
        with local_slot(Path(self.slots), self.n_slots):
            return resolve_body(self.body)(point)


@contextmanager
def local_slot(folder: Path, n_slots: int, poll_s: float = 0.5) -> Iterator[int]:
    """Hold one of ``n_slots`` flock-ed files in ``folder`` (released when the process ends, even on kill)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for i in range(max(1, n_slots)):
            fh = open(folder / f"slot-{i}.lock", "a")  # noqa: SIM115 (held for the job's lifetime)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            try:
                yield i
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
            return
        time.sleep(poll_s)


# -------------------------------------------------------------------------------------------- executors
# srun flags of every job step: one task exiting non-zero (an exception on any rank) ends the job's other
# tasks at once, instead of leaving them blocked in a collective until the timeout while the job stays RUNNING.
SRUN_ARGS = ("--kill-on-bad-exit=1",)


def master_port_setup() -> str:
    """The batch-script line of a multi-task job that picks MASTER_PORT on the first node (free there, below
    the ephemeral port range; ``ablate.job.pick_master_port``) unless the environment already sets it.  The
    user's ``launcher.setup`` lines run after it, so ``export MASTER_PORT=...`` there wins."""
    pick = shlex.quote("from ablate.job import pick_master_port; print(pick_master_port())")
    return (f'export MASTER_PORT="${{MASTER_PORT:-$({shlex.quote(sys.executable)} -c {pick} 2>/dev/null)}}"; '
            '[ -n "$MASTER_PORT" ] || unset MASTER_PORT')


def slurm_executor(launcher: Any, folder: Path) -> submitit.Executor:
    check_launcher_strings(launcher)  # validate() did already; the sbatch script is never written unchecked
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=int(launcher.max_requeues))
    setup = [str(s) for s in launcher.setup]
    if int(launcher.nodes) * int(launcher.tasks_per_node) > 1:
        setup.insert(0, master_port_setup())
    params: dict[str, Any] = {
        "time": int(launcher.time_min), "nodes": int(launcher.nodes),
        "ntasks_per_node": int(launcher.tasks_per_node), "cpus_per_task": int(launcher.cpus_per_task),
        "array_parallelism": int(launcher.array_parallelism), "signal_delay_s": int(launcher.signal_delay_s),
        "setup": setup, "job_name": "ablate", "srun_args": list(SRUN_ARGS),
    }
    if int(launcher.gpus_per_node):
        params["gpus_per_node"] = int(launcher.gpus_per_node)
    for key in ("partition", "account", "qos"):
        if launcher[key]:
            params[key] = str(launcher[key])
    if launcher.mem_gb:
        params["mem"] = f"{int(float(launcher.mem_gb) * 1024)}M"
    if launcher.extra:
        params["additional_parameters"] = {str(k): v for k, v in dict(launcher.extra).items()}
    ex.update_parameters(**params)
    return ex


def local_executor(launcher: Any, folder: Path) -> submitit.Executor:
    ex = submitit.LocalExecutor(folder=folder, max_num_timeout=int(launcher.max_requeues))
    ex.update_parameters(timeout_min=int(launcher.time_min), tasks_per_node=int(launcher.tasks_per_node),
                         gpus_per_node=int(launcher.gpus_per_node), signal_delay_s=int(launcher.signal_delay_s),
                         setup=[str(s) for s in launcher.setup])
    return ex


def debug_executor(launcher: Any, folder: Path) -> submitit.Executor:
    return submitit.DebugExecutor(folder=folder)


def make_executor(launcher: Any, folder: Path) -> submitit.Executor:
    """The submitit executor ``launcher.id`` names in ``ablate.registry.EXECUTORS``."""
    from ablate.registry import EXECUTORS

    return EXECUTORS.get(launcher.id)(launcher, folder)


# ------------------------------------------------------------------------------------------- validation
def validate_launcher(points: Sequence[Any], study_path: str) -> Any:
    """Every point of one array must share its launcher settings; check them against the executor."""
    from omegaconf import OmegaConf

    first = points[0].config.launcher
    ref = OmegaConf.to_container(first, resolve=True)
    for p in points[1:]:
        other = OmegaConf.to_container(p.config.launcher, resolve=True)
        if other != ref:
            key = next(k for k in ref if ref[k] != other.get(k))
            raise ConfigError(f"{study_path}: point {p.name!r}: launcher.{key}: invalid value {other.get(key)!r}; "
                              f"expected {ref[key]!r} like the study's other points (one job array per study)")
    for key in ("nodes", "tasks_per_node", "cpus_per_task", "time_min", "array_parallelism"):
        if int(first[key]) < 1:
            raise ConfigError(f"{study_path}: launcher.{key}: invalid value {first[key]!r}; expected >= 1")
    if int(first.gpus_per_node) < 0:
        raise ConfigError(f"{study_path}: launcher.gpus_per_node: invalid value {first.gpus_per_node!r}; expected >= 0")
    if first.id == "local" and int(first.nodes) != 1:
        raise ConfigError(f"{study_path}: launcher.nodes: invalid value {first.nodes!r}; launcher=local runs on 1 node")
    return first


# --------------------------------------------------------------------------------------------- manifest
def check_same_design(study: Any, points: Sequence[Any], studies_dir: str | Path) -> None:
    """A study's manifest is never overwritten with a different design: the same study name with other points
    (run keys) or comparisons is refused in one line before anything is submitted."""
    from ablate.design import manifest as design_manifest

    old = load_manifest(studies_dir, study.name)
    if not old or "points" not in old:
        return
    new = design_manifest(study, points)
    before = {(p["name"], p["run_key"]) for p in old["points"]}
    after = {(p["name"], p["run_key"]) for p in new["points"]}
    comps = [(c["name"], c["pairs"]) for c in old.get("comparisons", [])] != \
        [(c["name"], c["pairs"]) for c in new["comparisons"]]
    if before == after and not comps:
        return
    added, removed = sorted(after - before), sorted(before - after)
    what = (f"{len(added)} point(s) added (e.g. {added[0][0]!r} {added[0][1]})" if added else "") + \
        (", " if added and removed else "") + \
        (f"{len(removed)} removed (e.g. {removed[0][0]!r} {removed[0][1]})" if removed else "") or "comparisons differ"
    path = study_dir(studies_dir, study.name) / "manifest.json"
    raise ConfigError(f"{path}: study {study.name!r} was submitted with a different design ({what}); expected "
                      f"the same points and comparisons (rename the study in {study.path} for a new design); "
                      "nothing was submitted or overwritten")


def study_dir(studies_dir: str | Path, study: str) -> Path:
    return Path(studies_dir) / study


def load_manifest(studies_dir: str | Path, study: str) -> dict[str, Any] | None:
    path = study_dir(studies_dir, study) / "manifest.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None


def absolute_uri(uri: str, cwd: str) -> str:
    """A relative ``sqlite:///`` store made absolute (jobs and ``ablate collect`` may run elsewhere)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str((Path(cwd) / uri[len(prefix):]).resolve())
    return uri


# ------------------------------------------------------------------------------------------- submission
@dataclass
class Submission:
    study: str
    submitted: list[str]  # run_keys submitted now
    skipped_done: list[str]
    skipped_active: list[str]
    job_ids: list[str]
    folder: Path
    jobs: list[submitit.Job]


def _unique(points: Sequence[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for p in points:
        seen.setdefault(p.run_key, p)
    return list(seen.values())


def submit_study(study: Any, points: Sequence[Any], studies_dir: str | Path, *,
                 body: str = DEFAULT_BODY, cwd: str | None = None) -> Submission:
    """Submit the study's runs that are neither DONE nor active as one array; update its manifest."""
    from ablate.design import manifest as design_manifest
    from ablate.job import point_payload, run_dir_of

    cwd = cwd or os.getcwd()
    launcher = validate_launcher(points, str(study.path))
    check_same_design(study, points, studies_dir)
    sdir = study_dir(studies_dir, study.name).resolve()
    runs_dir = (Path(cwd) / run_dir_of(points[0].config, "x").parent).resolve()
    old = load_manifest(studies_dir, study.name) or {}
    old_runs: dict[str, Any] = old.get("runs", {})
    previous = {rs.run_key: rs for rs in run_states({"runs_dir": str(runs_dir), "runs": old_runs})} if old_runs else {}

    unique = _unique(points)
    done = [p.run_key for p in unique if (runs_dir / p.run_key / DONE).exists()]
    active = [p.run_key for p in unique if p.run_key not in done
              and previous.get(p.run_key, RunState("", "", "")).state in ACTIVE]
    todo = [p for p in unique if p.run_key not in done and p.run_key not in active]

    history = list(old.get("submissions", []))
    folder = sdir / "logs" / f"submission-{len(history):03d}"
    jobs: list[submitit.Job] = []
    if todo:
        executor = make_executor(launcher, folder / "%j")
        payloads = [point_payload(p, study.name, cwd=cwd) for p in todo]
        job = PointJob(body)
        if launcher.id == "local":  # the local executor starts all jobs at once: cap them with slots
            job = PointJob(body, slots=str(sdir / "local-slots"), n_slots=int(launcher.array_parallelism),
                           threads=int(launcher.cpus_per_task))
        try:
            jobs = executor.map_array(job, payloads)
        except Exception as exc:
            from ablate.partition import sbatch_error

            one_line = sbatch_error(exc, study.name)
            if one_line is None:
                raise
            raise one_line from None
    job_ids = [str(j.job_id) for j in jobs]

    runs = {**old_runs}
    for p in unique:
        runs.setdefault(p.run_key, {"name": p.name})["name"] = p.name
    for p, job in zip(todo, jobs, strict=True):
        runs[p.run_key].update(job_id=str(job.job_id), launcher=str(launcher.id), folder=str(folder / "%j"))
    history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "launcher": str(launcher.id),
                    "folder": str(folder), "job_ids": job_ids, "run_keys": [p.run_key for p in todo],
                    "skipped_done": done, "skipped_active": active})
    record = {**design_manifest(study, points), "runs_dir": str(runs_dir),
              "tracking_uri": absolute_uri(str(points[0].config.tracking.uri), cwd), "cwd": cwd, "runs": runs,
              "submissions": history}
    sdir.mkdir(parents=True, exist_ok=True)
    write_atomic(sdir / "manifest.json", json.dumps(record, indent=2))
    return Submission(study=study.name, submitted=[p.run_key for p in todo], skipped_done=done,
                      skipped_active=active, job_ids=job_ids, folder=folder, jobs=jobs)


def wait_for(jobs: Sequence[submitit.Job], *, poll_s: float = 2.0) -> None:
    """Block until every job has ended (tqdm progress); exceptions of failed jobs are left to status."""
    from tqdm import tqdm

    pending = list(jobs)
    with tqdm(total=len(pending), desc="runs finished", unit="run", file=sys.stderr) as bar:
        while pending:
            still = []
            for j in pending:
                if isinstance(j, submitit.DebugJob):
                    try:
                        j.result()
                    except Exception as exc:  # recorded in the job's stderr by submitit; status shows it
                        print(f"job {j.job_id} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                if not j.done(force_check=True):
                    still.append(j)
            bar.update(len(pending) - len(still))
            pending = still
            if pending:
                time.sleep(poll_s)


# -------------------------------------------------------------------------------------------------- CLI
def cli_sweep(args: argparse.Namespace) -> int:
    """``ablate sweep``: validate all points of all studies, then submit one array per study."""
    from ablate.design import expand, load_studies

    overrides = list(args.overrides) + ([f"launcher={args.launcher}"] if args.launcher else [])
    expanded = []
    for study in load_studies(args.study):  # every point of every study validated before any submit
        points = expand(study, overrides)
        if not points:
            raise ConfigError(f"{study.path}: the study expands to no design points")
        launcher = validate_launcher(points, str(study.path))
        check_same_design(study, points, args.studies_dir)
        if launcher.id == "slurm":  # a request the partition cannot serve stops here, in one line
            from ablate.partition import check

            check(launcher, str(study.path))
        expanded.append((study, points))
    from ablate.eval.preflight import check_points

    problems, warnings = check_points([p for _, points in expanded for p in points])
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    if problems:  # nothing submitted: one line per problem, each naming its file
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        raise ConfigError(f"{len(problems)} data or benchmark file problem(s); nothing submitted")
    body = os.environ.get("ABLATE_JOB_BODY", DEFAULT_BODY)
    resolve_body(body)  # fail here, not in every job
    submissions = []
    for study, points in expanded:
        sub = submit_study(study, points, args.studies_dir, body=body)
        submissions.append(sub)
        print(f"study {sub.study}: {len(sub.submitted)} jobs submitted, {len(sub.skipped_done)} runs done, "
              f"{len(sub.skipped_active)} still queued/running")
        if sub.job_ids:
            first, last = sub.job_ids[0], sub.job_ids[-1]
            print(f"  job ids: {first}" + (f" .. {last}" if last != first else ""))
            print(f"  logs: {sub.folder}/<job id>/  (stdout *_log.out, stderr *_log.err)")
        print(f"  manifest: {study_dir(args.studies_dir, sub.study) / 'manifest.json'}")
    if args.wait or any(isinstance(j, submitit.DebugJob) for s in submissions for j in s.jobs):
        wait_for([j for s in submissions for j in s.jobs])
        return max(_print_status(study.name, args.studies_dir) for study, _ in expanded)
    return 0


def _print_status(study: str, studies_dir: str | Path) -> int:
    manifest = load_manifest(studies_dir, study)
    if manifest is None:
        raise ConfigError(f"{study_dir(studies_dir, study) / 'manifest.json'}: no manifest; "
                          f"run `ablate sweep` for study {study!r} first")
    states = run_states(manifest)
    width = max([len(s.name) for s in states] + [4])
    print(f"study {study} ({len(states)} runs)")
    for s in states:
        job = f"job {s.job_id}" if s.job_id else ""
        detail = f" [{s.detail}]" if s.detail and s.state != "done" else ""
        print(f"  {s.run_key}  {s.name.ljust(width)}  {s.state:<13} {job}{detail}")
        if s.error:
            print(f"    stderr ({s.stderr}):")
            for line in s.error:
                print(f"      {line}")
    counts = Counter(s.state for s in states)
    print(f"{study}: " + ", ".join(f"{counts[k]} {k}" for k in STATES if counts[k]) + f" of {len(states)} runs")
    return 1 if counts["failed"] else 0


def _study_names(arg: str) -> list[str]:
    """``ablate status`` takes a study name, a study file or a folder of study files."""
    if Path(arg).exists():
        from ablate.design import load_studies

        return [s.name for s in load_studies(arg)]
    return [arg]


def cli_status(args: argparse.Namespace) -> int:
    """``ablate status``: one line per run, the last stderr lines of failures, a one-line summary."""
    names = _study_names(args.study)
    while True:
        rc = max(_print_status(name, args.studies_dir) for name in names)
        if not args.watch:
            return rc
        manifests = [load_manifest(args.studies_dir, name) for name in names]
        if not any(s.state in ACTIVE for m in manifests if m for s in run_states(m)):
            return rc
        time.sleep(float(args.watch))

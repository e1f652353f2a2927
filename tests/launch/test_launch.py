"""ablate sweep / ablate status against a real local SLURM cluster (and the local executor).

The must-show behaviours (demo study completes and re-sweeps to 0 jobs; requeue mid-training resumes to the
uninterrupted parameters with one MLflow run; 2-task FSDP matches the 1-task loss curve) run the REAL job body
(ablate.train.loop.train + ablate.eval.runner.evaluate).  Machinery tests (failures, local executor, Hydra
path) run the fast stand-in steps of jobs_fixture through the same ``ablate.job.execute``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from ablate.cli import main
from ablate.design import expand, load_study

REPO = Path(__file__).resolve().parents[2]
# SLURM settings that fit the 1-node test cluster (slurm.yaml asks for 8 GPUs).
SLURM_SMALL = ["launcher.gpus_per_node=0", "launcher.tasks_per_node=1", "launcher.cpus_per_task=1",
               "launcher.time_min=20", "launcher.signal_delay_s=5"]
TINY = {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
        "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"}


def write_study(path: Path, name: str, *, seeds: tuple[int, ...] = (7,), points: dict | None = None,
                overrides: tuple[str, ...] = ()) -> Path:
    import yaml

    body = {"study": name, "mode": "points", "seeds": list(seeds), "baseline": TINY,
            "points": points or {"base": {}}, "overrides": list(overrides)}
    path.write_text(yaml.safe_dump(body))
    return path


def sweep(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    rc = main(["sweep", *args])
    return rc, capsys.readouterr().out


def status(capsys: pytest.CaptureFixture, study: str) -> tuple[int, str]:
    rc = main(["status", study])
    return rc, capsys.readouterr().out


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.5,
               diagnose: Callable[[], str] | None = None) -> None:
    """Poll ``cond``; on timeout fail with ``diagnose()`` (e.g. ``slurm_report``) in the message."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f"\n{diagnose()}" if diagnose else ""))
        time.sleep(poll)


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({' '.join(cmd)}: {exc})"
    return (proc.stdout + proc.stderr).rstrip() or "(no output)"


def slurm_report(*study_dirs: str | Path, tail: int = 40) -> str:
    """What a failed or stuck real-SLURM test needs to be diagnosed from its log alone: ``squeue``,
    ``sacct`` of the studies' jobs (ids from their manifests) and the last ``tail`` lines of every submitit
    log (``<study dir>/logs/submission-<n>/<job id>/*.out|*.err``: one pair per task)."""
    job_ids: list[str] = []
    for d in map(Path, study_dirs):
        if (d / "manifest.json").exists():
            for sub in json.loads((d / "manifest.json").read_text()).get("submissions", []):
                job_ids += [j.split("_")[0] for j in sub["job_ids"]]
    parts = ["---- squeue", _run(["squeue", "-o", "%.12i %.9P %.8j %.2t %.10M %.6D %R"])]
    if job_ids:
        ids = ",".join(dict.fromkeys(job_ids))
        parts += [f"---- sacct -j {ids}",
                  _run(["sacct", "-j", ids, "--format=JobID,State,ExitCode,Elapsed"])]
    for d in map(Path, study_dirs):
        for log in sorted([*d.rglob("*.out"), *d.rglob("*.err")]):
            lines = log.read_text(errors="replace").splitlines()
            parts += [f"---- {log} (last {min(tail, len(lines))} of {len(lines)} lines)", *lines[-tail:]]
    return "\n".join(parts)


def manifest(study: str) -> dict:
    return json.loads(Path("studies", study, "manifest.json").read_text())


def all_ended(capsys: pytest.CaptureFixture, study: str) -> bool:
    _, out = status(capsys, study)
    last = out.strip().splitlines()[-1]
    return not any(s in last for s in ("pending", "running", "requeued"))


def summary(out: str) -> str:
    return out.strip().splitlines()[-1]


def squeue_count() -> int:
    return len(subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.splitlines())


# -------------------------------------------------------------------------------------- no cluster needed
@pytest.mark.parametrize("bad, message", [
    ({"broken": {"projector": "fused-mlp"}}, "point 'broken'"),
    ({"two-tasks": {"launcher.tasks_per_node": 2}}, "launcher.tasks_per_node"),
])
def test_invalid_point_fails_before_any_submit(workspace: Path, capsys: pytest.CaptureFixture,
                                               bad: dict, message: str) -> None:
    study = write_study(workspace / "bad.yaml", "bad", points={"ok": {}, **bad})
    before = squeue_count() if subprocess.run(["which", "squeue"], capture_output=True).returncode == 0 else 0
    rc = main(["sweep", str(study), "--launcher", "slurm", *SLURM_SMALL])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and str(study) in err and len(err.strip().splitlines()) == 1
    assert not Path("studies/bad").exists(), "nothing may be written or submitted"
    assert not Path("runs").exists()
    if before:
        assert squeue_count() == before


def test_local_executor_runs_and_skips_done(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    study = write_study(workspace / "loc.yaml", "loc", seeds=(1, 2))
    rc, out = sweep(capsys, str(study), "--launcher", "local", "--wait", "train.max_steps=4")
    assert rc == 0, out
    assert "2 jobs submitted" in out
    assert summary(out) == "loc: 2 done of 2 runs"
    for key in manifest("loc")["runs"]:
        results = json.loads(Path("runs", key, "results.json").read_text())
        assert results["run_key"] == key and results["n"] == {"shapes": 16}
        assert 0.0 <= results["scores"]["shapes"]["accuracy"] <= 1.0
    rc, out = sweep(capsys, str(study), "--launcher", "local", "train.max_steps=4")
    assert "0 jobs submitted, 2 runs done" in out
    rc, out = status(capsys, str(study))  # a study file names its study too
    assert rc == 0 and summary(out) == "loc: 2 done of 2 runs"
    assert main(["status", "no-such-study"]) == 2
    assert "studies/no-such-study/manifest.json: no manifest" in capsys.readouterr().err


def _sbatch_text(tasks: int, setup: list[str]) -> str:
    from omegaconf import OmegaConf

    from ablate.launch import slurm_executor

    launcher = OmegaConf.load(REPO / "conf" / "launcher" / "slurm.yaml")
    launcher.tasks_per_node, launcher.setup = tasks, setup
    return slurm_executor(launcher, Path("logs/%j"))._make_submission_file_text("python -m x", "uid")


def test_slurm_jobs_end_every_task_when_one_fails_and_pick_a_free_master_port(slurm_cluster: str,
                                                                            workspace: Path) -> None:
    multi, single = _sbatch_text(2, ["echo user-setup"]), _sbatch_text(1, [])
    for text in (multi, single):
        srun = next(line for line in text.splitlines() if line.startswith("srun "))
        assert "--kill-on-bad-exit=1" in srun
    assert "MASTER_PORT" not in single
    setup = multi.split("# setup\n")[1].split("\n\n")[0].splitlines()
    assert "MASTER_PORT" in setup[0] and setup[1] == "echo user-setup", "the user's setup runs last (and wins)"
    env = {k: v for k, v in os.environ.items() if k != "MASTER_PORT"}
    run = [("", "SLURM_JOB_ID=41"), ("MASTER_PORT=12345", "SLURM_JOB_ID=41")]
    ports = [subprocess.run(["bash", "-c", f"export {pre} {job}; {setup[0]}; echo $MASTER_PORT"], env=env,
                            capture_output=True, text=True, check=True).stdout.strip() for pre, job in run]
    assert ports[0].isdigit() and ports[1] == "12345", ports


def test_pick_master_port_is_free_below_the_ephemeral_range() -> None:
    import socket

    from ablate.job import pick_master_port

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    port = pick_master_port("19")
    assert port == pick_master_port("19") and 20000 <= port < (low if low - 20000 > 1000 else 60001)
    with socket.socket() as taken:
        taken.bind(("", port))
        taken.listen()
        assert pick_master_port("19") != port


def test_a_rank_that_never_joins_fails_the_others_after_the_timeout(tmp_path: Path) -> None:
    """Rank 0 of 2 whose peer never starts: a clear error after runtime.dist_timeout_s, not a 30-minute hang."""
    from ablate.job import pick_master_port

    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(pick_master_port("never-joins")), "CUDA_VISIBLE_DEVICES": ""}
    code = "from ablate.distributed import init_distributed; init_distributed(timeout_s=3)"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and time.monotonic() - t0 < 60
    assert "rank 0/2: could not join the gloo process group at 127.0.0.1:" in proc.stderr, proc.stderr[-2000:]
    assert "within runtime.dist_timeout_s=3s" in proc.stderr


def test_a_failing_rank_prints_its_rank_and_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    from contextlib import nullcontext

    from ablate.job import execute

    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SUBMITIT_LOCAL_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")

    def train(cfg: object, run_dir: Path, *, tracker: object = None) -> None:
        raise RuntimeError("boom in train")

    point = {"name": "base", "run_key": "k1", "cwd": str(tmp_path),
             "config": {"study": "s", "runtime": {"runs_dir": "runs", "dist_timeout_s": 5}}}
    with pytest.raises(RuntimeError, match="boom in train"):
        execute(point, train=train, evaluate=lambda *a, **k: {}, tracker=lambda *a, **k: nullcontext(None))
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[rank 0/1] run k1 (base) failed on ")
    assert "[rank 0/1] Traceback (most recent call last):" in err and err[-1] == "[rank 0/1] RuntimeError: boom in train"


# ------------------------------------------------------------------------------------------ real SLURM
# The demo study at test size, run by the REAL job body (ablate.train.loop.train + ablate.eval.runner.evaluate).
DEMO_TEST_SIZE = ["data.synthetic.size=32", "train.max_steps=2", "eval.limit=4", "eval.max_new_tokens=4",
                  "eval.benchmarks=[vqav2,pope]", "runtime.progress=false"]


@pytest.mark.slurm
def test_demo_study_on_slurm_completes_and_resweep_submits_nothing(
        slurm_cluster: str, workspace: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from ablate.shapes.world import write_world

    monkeypatch.delenv("ABLATE_JOB_BODY")  # the real body
    demo = REPO / "sweeps" / "demo.yaml"
    args = [str(demo), "--launcher", "slurm", *SLURM_SMALL, *DEMO_TEST_SIZE]
    n_points = len({p.run_key for p in expand(load_study(demo), args[3:])})
    write_world(workspace / "data" / "shapes", 32, 0)  # once, instead of in every job
    rc, out = sweep(capsys, *args)
    assert rc == 0, out
    assert f"{n_points} jobs submitted" in out and "job ids:" in out and "logs:" in out
    m = manifest("demo")
    assert len(m["runs"]) == n_points == len(m["submissions"][0]["job_ids"])
    assert len({j.split("_")[0] for j in m["submissions"][0]["job_ids"]}) == 1, "one job array per study"
    report = functools.partial(slurm_report, "studies/demo")
    wait_until(lambda: all_ended(capsys, "demo"), 900, "the demo study to finish", poll=3, diagnose=report)
    rc, out = status(capsys, "demo")
    assert rc == 0 and summary(out) == f"demo: {n_points} done of {n_points} runs", f"{out}\n{report()}"
    for key in manifest("demo")["runs"]:
        results = json.loads(Path("runs", key, "results.json").read_text())
        assert set(results["scores"]) == {"vqav2", "pope"} and results["n"] == {"vqav2": 4, "pope": 4}
        assert (Path("runs", key, "model")).is_dir()
    rc, out = sweep(capsys, *args)
    assert rc == 0 and f"0 jobs submitted, {n_points} runs done" in out
    assert manifest("demo")["submissions"][-1]["job_ids"] == []


@pytest.mark.slurm
def test_failed_job_shows_error_and_relaunch_reruns_only_it(
        slurm_cluster: str, workspace: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    study = write_study(workspace / "fl.yaml", "fl", seeds=(7, 13))
    args = [str(study), "--launcher", "slurm", *SLURM_SMALL, "train.max_steps=4"]
    monkeypatch.setenv("ABLATE_TEST_FAIL_SEEDS", "13")
    rc, out = sweep(capsys, *args)
    assert rc == 0 and "2 jobs submitted" in out
    report = functools.partial(slurm_report, "studies/fl")
    wait_until(lambda: all_ended(capsys, "fl"), 180, "both runs to end", diagnose=report)
    rc, out = status(capsys, "fl")
    assert rc == 1 and summary(out) == "fl: 1 done, 1 failed of 2 runs", f"{out}\n{report()}"
    assert "RuntimeError: stand-in training failed on purpose for seed 13" in out
    failed_key = next(k for k in manifest("fl")["runs"] if json.loads(Path("runs", k, "point.json").read_text())["seed"] == 13)

    monkeypatch.delenv("ABLATE_TEST_FAIL_SEEDS")
    rc, out = sweep(capsys, *args)
    assert rc == 0 and "1 jobs submitted, 1 runs done" in out
    assert manifest("fl")["submissions"][-1]["run_keys"] == [failed_key]
    wait_until(lambda: all_ended(capsys, "fl"), 180, "the relaunched run to end", diagnose=report)
    rc, out = status(capsys, "fl")
    assert rc == 0 and summary(out) == "fl: 2 done of 2 runs", f"{out}\n{report()}"


def _train_losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in sorted(records, key=lambda r: r["step"])]


@pytest.mark.slurm
def test_two_task_fsdp_run_matches_single_task_loss_curve(
        slurm_cluster: str, workspace: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The REAL body with launcher.tasks_per_node=2: FSDP over 2 gloo ranks (SLURM srun tasks) follows the
    loss curve of the same run as one task (same global batch: 2 ranks x 2 vs 1 task x 2 x 2 accumulation).

    A short ``runtime.dist_timeout_s``: a rank that dies or never joins makes the job fail (srun
    --kill-on-bad-exit ends the other task) well inside the wait below, and a failed job fails the test at
    once with squeue/sacct and every task's log in the message."""
    from ablate.shapes.world import write_world

    monkeypatch.delenv("ABLATE_JOB_BODY")
    write_world(workspace / "data" / "shapes", 32, 0)
    size = ["data.synthetic.size=32", "train.finetune.global_batch=4", "train.finetune.per_device_batch=2",
            "train.max_steps=5", "train.sharding=full", "eval.limit=2", "eval.max_new_tokens=2",
            "eval.benchmarks=[pope]", "runtime.progress=false", "runtime.dist_timeout_s=120"]
    for tasks in (1, 2):
        study = write_study(workspace / f"t{tasks}.yaml", f"t{tasks}")
        rc, out = sweep(capsys, str(study), "--launcher", "slurm", *SLURM_SMALL, f"launcher.tasks_per_node={tasks}",
                        *size, f"runtime.runs_dir=runs{tasks}", f"tracking.uri=sqlite:///runs{tasks}/mlflow.db",
                        "--studies-dir", f"studies{tasks}")
        assert rc == 0 and "1 jobs submitted" in out, out
    report = functools.partial(slurm_report, "studies1/t1", "studies2/t2")
    for tasks in (1, 2):
        wait_until(lambda t=tasks: ended_ok_in(capsys, f"t{t}", f"studies{t}", report), 600, f"the {tasks}-task run",
                   poll=2, diagnose=report)
    (one,), (two,) = (list(Path(f"runs{t}").glob("*/DONE")) for t in (1, 2))
    assert one.parent.name == two.parent.name, "tasks_per_node is not part of the run identity"
    joined = (workspace / "studies2").rglob("*_log.err")
    assert any("rank 1/2 joined gloo process group" in f.read_text() for f in joined), "2 gloo ranks trained"
    single, sharded = _train_losses(one.parent), _train_losses(two.parent)
    assert len(single) == len(sharded) == 5
    torch.testing.assert_close(torch.tensor(sharded), torch.tensor(single), rtol=1e-3, atol=1e-4)


def ended_ok_in(capsys: pytest.CaptureFixture, study: str, studies_dir: str, report: Callable[[], str]) -> bool:
    """True once every run of the study is done; a failed run fails the test now (not at the timeout)."""
    rc = main(["status", study, "--studies-dir", studies_dir])
    out = capsys.readouterr().out
    if rc not in (0, 1) or "failed" in summary(out):
        raise AssertionError(f"study {study} has a failed run (ablate status rc={rc}):\n{out}\n{report()}")
    return "done of" in summary(out) and not any(s in summary(out) for s in ("pending", "running", "requeued"))


@pytest.mark.slurm
def test_hydra_multirun_with_submitit_slurm_launcher_runs_the_job_body(slurm_cluster: str, workspace: Path) -> None:
    cmd = [sys.executable, "-m", "ablate.job", *(f"{k}={v}" for k, v in TINY.items()), "train.max_steps=3",
           "train.seed=1,2", "--multirun", "hydra/launcher=submitit_slurm", f"hydra.sweep.dir={workspace / 'multirun'}",
           "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10",
           "hydra.launcher.mem_gb=1"]
    cmd.insert(3, cmd.pop(cmd.index("--multirun")))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = sorted(p.parent.name for p in Path("runs").glob("*/DONE"))
    assert len(done) == 2
    seeds = sorted(json.loads(Path("runs", k, "point.json").read_text())["seed"] for k in done)
    assert seeds == [1, 2]


def _safetensors(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for f in sorted(model_dir.rglob("*.safetensors")):
        tensors.update({f"{f.relative_to(model_dir)}:{k}": v for k, v in load_file(f).items()})
    return tensors


@pytest.mark.slurm
def test_real_body_requeued_mid_training_ends_with_uninterrupted_parameters(
        slurm_cluster: str, workspace: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """`scontrol requeue` of the REAL job body mid-training: it resumes from its checkpoint, reaches the
    parameters of an uninterrupted run of the same config, and MLflow holds one run for it."""
    from ablate.shapes.world import write_world
    from ablate.train.loop import train

    monkeypatch.delenv("ABLATE_JOB_BODY")
    write_world(workspace / "data" / "shapes", 32, 0)
    study = write_study(workspace / "rqreal.yaml", "rqreal")
    # long enough (~10 s at ~30 ms per step with a checkpoint each) that the signals surely land mid-training:
    # at 14 steps the whole run took 0.5 s on a quiet machine and ended before SIGTERM reached it
    steps = 240
    size = ["data.synthetic.size=32", "train.finetune.global_batch=2", "train.finetune.per_device_batch=2",
            "train.epochs=15", f"train.max_steps={steps}", "runtime.checkpoint_every=1", "eval.limit=2",
            "eval.max_new_tokens=2", "eval.benchmarks=[pope]", "runtime.progress=false"]
    rc, out = sweep(capsys, str(study), "--launcher", "slurm", *SLURM_SMALL, *size)
    assert rc == 0, out
    (key, info), = manifest("rqreal")["runs"].items()
    run_dir = Path("runs", key)
    report = functools.partial(slurm_report, "studies/rqreal")
    # any checkpoint: with keep_last=2, step-2 is pruned ~60 ms after it appears (a 0.1 s poll can miss it)
    wait_until(lambda: any((run_dir / "checkpoints").glob("step-*")), 300, "a first checkpoint", poll=0.1,
               diagnose=report)
    # preemption as SLURM delivers it (SIGTERM, then USR2): submitit checkpoints and requeues the job at once.
    # USR2 goes only after the job has seen SIGTERM: a late SIGTERM would also hit its `scontrol requeue`.
    def job_log() -> str:
        return "".join(f.read_text() for f in Path("studies/rqreal/logs").rglob("*_log.out"))
    subprocess.run(["scancel", str(info["job_id"]), "--signal", "SIGTERM"], check=True)
    wait_until(lambda: "Bypassing signal SIGTERM" in job_log(), 60, "the job to see SIGTERM", poll=0.1,
               diagnose=report)
    subprocess.run(["scancel", str(info["job_id"]), "--signal", "USR2"], check=True)
    assert not (run_dir / "model").exists(), "the run must still be training when it is requeued"
    wait_until(lambda: len((run_dir / "attempts.jsonl").read_text().splitlines()) == 2, 300, "the second attempt",
               diagnose=report)
    rc, out = status(capsys, "rqreal")
    assert "requeued" in out or (run_dir / "DONE").exists(), out
    wait_until(lambda: all_ended(capsys, "rqreal"), 600, "the requeued run to finish", poll=2, diagnose=report)
    rc, out = status(capsys, "rqreal")
    assert rc == 0 and summary(out) == "rqreal: 1 done of 1 runs", f"{out}\n{report()}"
    attempts = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
    assert [a["restart_count"] for a in attempts] == [0, 1]
    logged = [json.loads(line)["step"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert logged.count(1) == 1 and sorted(set(logged)) == list(range(1, steps + 1)), f"resumed, not restarted: {logged}"

    from omegaconf import OmegaConf

    torch.set_num_threads(1)
    train(OmegaConf.load(run_dir / "config.yaml"), workspace / "reference")  # uninterrupted, same config
    resumed, reference = _safetensors(run_dir / "model"), _safetensors(workspace / "reference" / "model")
    assert resumed and resumed.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)

    client = MlflowClient(tracking_uri=manifest("rqreal")["tracking_uri"])
    exp = client.get_experiment_by_name("rqreal")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`ablate.run_key` = '{key}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_debug_sweep_with_a_failed_run_reports_it(workspace: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A debug array runs in this process; its status after a failure is read from the run directories
    (rebuilding a DebugJob handle raised TypeError before)."""
    study = write_study(workspace / "dbg.yaml", "dbg", seeds=(7, 13))
    monkeypatch.setenv("ABLATE_TEST_FAIL_SEEDS", "13")
    rc, out = sweep(capsys, str(study), "--launcher", "debug", "train.max_steps=2")
    assert rc == 1 and summary(out) == "dbg: 1 done, 1 failed of 2 runs", out

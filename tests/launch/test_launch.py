"""ablate sweep / ablate status against a real local SLURM cluster (and the local executor).

The must-show behaviours (demo study completes and re-sweeps to 0 jobs; requeue mid-training resumes to the
uninterrupted parameters with one MLflow run; 2-task FSDP matches the 1-task loss curve) run the REAL job body
(ablate.train.loop.train + ablate.eval.runner.evaluate).  Machinery tests (failures, local executor, Hydra
path) run the fast stand-in steps of jobs_fixture through the same ``ablate.job.execute``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import submitit
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


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


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


# ------------------------------------------------------------------------------------------ real SLURM
# The demo study at test size, run by the REAL job body (ablate.train.loop.train + ablate.eval.runner.evaluate).
DEMO_TEST_SIZE = ["data.synthetic.size=32", "train.max_steps=2", "eval.limit=4", "eval.max_new_tokens=4",
                  "eval.benchmarks=[vqav2,pope]", "runtime.progress=false"]


@pytest.mark.slurm
def test_demo_study_on_slurm_completes_and_resweep_submits_nothing(
        slurm_cluster: str, workspace: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from ablate.data.synthetic import write_world

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
    wait_until(lambda: all_ended(capsys, "demo"), 900, "the demo study to finish", poll=3)
    rc, out = status(capsys, "demo")
    assert rc == 0 and summary(out) == f"demo: {n_points} done of {n_points} runs", out
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
    wait_until(lambda: all_ended(capsys, "fl"), 180, "both runs to end")
    rc, out = status(capsys, "fl")
    assert rc == 1 and summary(out) == "fl: 1 done, 1 failed of 2 runs", out
    assert "RuntimeError: stand-in training failed on purpose for seed 13" in out
    failed_key = next(k for k in manifest("fl")["runs"] if json.loads(Path("runs", k, "point.json").read_text())["seed"] == 13)

    monkeypatch.delenv("ABLATE_TEST_FAIL_SEEDS")
    rc, out = sweep(capsys, *args)
    assert rc == 0 and "1 jobs submitted, 1 runs done" in out
    assert manifest("fl")["submissions"][-1]["run_keys"] == [failed_key]
    wait_until(lambda: all_ended(capsys, "fl"), 180, "the relaunched run to end")
    rc, out = status(capsys, "fl")
    assert rc == 0 and summary(out) == "fl: 2 done of 2 runs", out


def _train_losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in sorted(records, key=lambda r: r["step"])]


@pytest.mark.slurm
def test_two_task_fsdp_run_matches_single_task_loss_curve(
        slurm_cluster: str, workspace: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The REAL body with launcher.tasks_per_node=2: FSDP over 2 gloo ranks (SLURM srun tasks) follows the
    loss curve of the same run as one task (same global batch: 2 ranks x 2 vs 1 task x 2 x 2 accumulation)."""
    from ablate.data.synthetic import write_world

    monkeypatch.delenv("ABLATE_JOB_BODY")
    write_world(workspace / "data" / "shapes", 32, 0)
    size = ["data.synthetic.size=32", "train.finetune.global_batch=4", "train.finetune.per_device_batch=2",
            "train.max_steps=5", "train.sharding=full", "eval.limit=2", "eval.max_new_tokens=2",
            "eval.benchmarks=[pope]", "runtime.progress=false"]
    for tasks in (1, 2):
        study = write_study(workspace / f"t{tasks}.yaml", f"t{tasks}")
        rc, out = sweep(capsys, str(study), "--launcher", "slurm", *SLURM_SMALL, f"launcher.tasks_per_node={tasks}",
                        *size, f"runtime.runs_dir=runs{tasks}", f"tracking.uri=sqlite:///runs{tasks}/mlflow.db",
                        "--studies-dir", f"studies{tasks}")
        assert rc == 0 and "1 jobs submitted" in out, out
    for tasks in (1, 2):
        wait_until(lambda t=tasks: all_ended_in(capsys, f"t{t}", f"studies{t}"), 600, f"the {tasks}-task run", poll=2)
    (one,), (two,) = (list(Path(f"runs{t}").glob("*/DONE")) for t in (1, 2))
    assert one.parent.name == two.parent.name, "tasks_per_node is not part of the run identity"
    joined = (workspace / "studies2").rglob("*_log.err")
    assert any("rank 1/2 joined gloo process group" in f.read_text() for f in joined), "2 gloo ranks trained"
    single, sharded = _train_losses(one.parent), _train_losses(two.parent)
    assert len(single) == len(sharded) == 5
    torch.testing.assert_close(torch.tensor(sharded), torch.tensor(single), rtol=1e-3, atol=1e-4)


def all_ended_in(capsys: pytest.CaptureFixture, study: str, studies_dir: str) -> bool:
    rc = main(["status", study, "--studies-dir", studies_dir])
    out = capsys.readouterr().out
    assert rc in (0, 1)
    return "done of" in summary(out) and not any(s in summary(out) for s in ("pending", "running", "requeued", "failed"))


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
    from ablate.data.synthetic import write_world
    from ablate.train.loop import train

    monkeypatch.delenv("ABLATE_JOB_BODY")
    write_world(workspace / "data" / "shapes", 32, 0)
    study = write_study(workspace / "rqreal.yaml", "rqreal")
    size = ["data.synthetic.size=32", "train.finetune.global_batch=2", "train.finetune.per_device_batch=2",
            "train.max_steps=14", "runtime.checkpoint_every=1", "eval.limit=2",
            "eval.max_new_tokens=2", "eval.benchmarks=[pope]", "runtime.progress=false"]
    rc, out = sweep(capsys, str(study), "--launcher", "slurm", *SLURM_SMALL, *size)
    assert rc == 0, out
    (key, info), = manifest("rqreal")["runs"].items()
    run_dir = Path("runs", key)
    wait_until(lambda: (run_dir / "checkpoints" / "step-2").exists(), 300, "checkpoint step-2", poll=0.1)
    # preemption as SLURM delivers it (SIGTERM, then USR2): submitit checkpoints and requeues the job at once
    submitit.SlurmJob(folder=info["folder"], job_id=info["job_id"])._interrupt()
    assert not (run_dir / "model").exists(), "the run must still be training when it is requeued"
    wait_until(lambda: len((run_dir / "attempts.jsonl").read_text().splitlines()) == 2, 300, "the second attempt")
    rc, out = status(capsys, "rqreal")
    assert "requeued" in out or (run_dir / "DONE").exists(), out
    wait_until(lambda: all_ended(capsys, "rqreal"), 600, "the requeued run to finish", poll=2)
    rc, out = status(capsys, "rqreal")
    assert rc == 0 and summary(out) == "rqreal: 1 done of 1 runs", out
    attempts = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
    assert [a["restart_count"] for a in attempts] == [0, 1]
    steps = [json.loads(line)["step"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1 and sorted(set(steps)) == list(range(1, 15)), f"resumed, not restarted: {steps}"

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

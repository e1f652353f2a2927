"""A run directory is one process's (docs/reliability.md): a second ``ablate train`` / job of the same run key
says who holds it (host, pid) and exits, or waits with ``--wait``; an unwritable run directory is found before
training starts, not at the first checkpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.job import RunDirError, check_writable, execute, run_lock

TINY = ["vision=tiny-clip", "image=letterbox", "projector=mlp", "llm=tiny-llama", "recipe=single-stage",
        "data=shapes", "train=tiny", "eval=shapes"]


def _holder(run_dir: Path) -> subprocess.Popen:
    """Another process holding the run's lock until killed."""
    code = ("import sys, time; from ablate.job import run_lock\n"
            f"with run_lock({str(run_dir)!r}):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout.readline().strip() == "held"
    return proc


def _run_key(tmp_path: Path, world: Path) -> tuple[list[str], Path]:
    from ablate.design import compose, run_key

    overrides = [*TINY, f"data.root={world}", f"runtime.runs_dir={tmp_path / 'runs'}",
                 f"tracking.uri=sqlite:///{tmp_path / 'ml.db'}"]
    return overrides, tmp_path / "runs" / run_key(compose(overrides))


def test_twin_ablate_train_names_the_holder_and_exits(tmp_path: Path, world: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    overrides, run_dir = _run_key(tmp_path, world)
    proc = _holder(run_dir)
    try:
        (run_dir / "config.yaml").write_text("the first process's config\n")
        before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
        assert main(["train", *overrides]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert err[0].startswith(f"error: {run_dir}: run is already in progress, held by pid {proc.pid} on host "
                                 f"{socket.gethostname()} (job None, since ")
        assert err[0].endswith(f"(lock {run_dir / 'LOCK'}); expected one process per run key (wait for it to end, "
                               "or pass --wait)")
        assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # nothing written, nothing lost
        assert not (tmp_path / "ml.db").exists()  # no MLflow run started
    finally:
        proc.kill()
        proc.wait()


def test_twin_job_fails_before_touching_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "abc123"
    proc = _holder(run_dir)
    called = []
    point = {"run_key": "abc123", "name": "p", "config": {"runtime": {"runs_dir": str(tmp_path / "runs")},
                                                            "study": "s"}}
    try:
        with pytest.raises(RunDirError, match=rf"abc123: run is already in progress, held by pid {proc.pid}"):
            execute(point, train=lambda *a, **k: called.append(1), evaluate=lambda *a, **k: {},
                    tracker=lambda *a, **k: None)
        assert called == [] and sorted(p.name for p in run_dir.iterdir()) == ["LOCK"]  # no attempt logged
    finally:
        proc.kill()
        proc.wait()
    with run_lock(run_dir):  # the holder's death released the lock (as SIGKILL / a requeue does)
        pass


def test_wait_blocks_until_the_holder_ends(tmp_path: Path) -> None:
    got = threading.Event()

    def waiter() -> None:
        with run_lock(tmp_path, wait=True, poll_s=0.05):
            got.set()

    with run_lock(tmp_path):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)
        assert not got.is_set()  # still waiting while the lock is held
    thread.join(5)
    assert got.is_set()


@pytest.mark.parametrize("how", ["file-in-the-way", "read-only"])
def test_unwritable_run_dir_fails_before_training(tmp_path: Path, world: Path, capsys: pytest.CaptureFixture,
                                                  how: str) -> None:
    overrides, run_dir = _run_key(tmp_path, world)
    run_dir.mkdir(parents=True)
    if how == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the file-in-the-way case covers this machine")
        run_dir.chmod(0o500)
    else:
        (run_dir / "checkpoints").write_text("not a folder")
    with pytest.raises(RunDirError, match=rf"^{run_dir / 'checkpoints'}: not writable \("):
        check_writable(run_dir / "checkpoints")
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir / 'checkpoints'}: not writable (")
    assert err[0].endswith("expected a folder this user can write (checkpoints and results are written there)")
    assert not (run_dir / "config.yaml").exists() and not (tmp_path / "ml.db").exists()

"""``ablate status`` shows what a running run is doing: its progress.json (training stage/step, or the
benchmark being evaluated), read through ``ablate.rundir`` from a real run directory of a live local job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ablate import rundir
from ablate.cli import main


@pytest.fixture
def live_job(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _manifest(tmp_path: Path, job_id: int) -> Path:
    studies = tmp_path / "studies"
    runs = tmp_path / "runs"
    (studies / "s").mkdir(parents=True)
    record = {"study": "s", "runs_dir": str(runs), "points": [], "runs": {
        "k1": {"name": "p1", "job_id": str(job_id), "launcher": "local", "folder": str(tmp_path / "logs" / "%j")},
        "k2": {"name": "p2"}}}
    (studies / "s" / "manifest.json").write_text(json.dumps(record))
    return studies


def test_status_row_shows_the_runs_progress(tmp_path: Path, live_job, capsys) -> None:
    studies = _manifest(tmp_path, live_job.pid)
    run_dir = tmp_path / "runs" / "k1"
    rundir.write_progress(run_dir, "train", "align", 12, 40)
    assert main(["status", "s", "--studies-dir", str(studies)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "k1" in line)
    assert "running" in row and row.endswith("train align 12/40"), row

    rundir.write_progress(run_dir, "eval", "pope", 120, 240, benchmark="pope", index=1, benchmarks=4)
    assert main(["status", "s", "--studies-dir", str(studies)]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if "k1" in line)
    assert row.endswith("eval pope 120/240 (2/4 benchmarks)"), row
    other = next(line for line in out if "k2" in line)  # no run directory yet: no progress shown
    assert other.rstrip().endswith("not submitted")


def test_a_done_run_shows_no_progress(tmp_path: Path, live_job, capsys) -> None:
    studies = _manifest(tmp_path, live_job.pid)
    run_dir = tmp_path / "runs" / "k1"
    rundir.write_progress(run_dir, "eval", "pope", 240, 240, benchmark="pope", index=3, benchmarks=4)
    rundir.mark_done(run_dir)
    assert main(["status", "s", "--studies-dir", str(studies)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "k1" in line)
    assert "done" in row and "pope" not in row, row

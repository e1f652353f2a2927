"""`ablate demo --size small`: the whole study end to end; Ctrl-C keeps finished runs, a re-run redoes none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _done(out: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime for p in (out / "runs").glob("*/DONE")}


@pytest.mark.slow
def test_interrupted_demo_resumes_without_redoing_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "ablate.cli", "demo", "--size", "small", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 900
    while not _done(out) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(1)
    assert _done(out), f"no run finished: {(tmp_path / 'first.log').read_text()[-3000:]}"
    first.send_signal(signal.SIGINT)  # Ctrl-C
    assert first.wait(timeout=120) == 130
    finished = _done(out)
    manifest = json.loads((out / "studies" / "demo" / "manifest.json").read_text())
    total = len(manifest["runs"])
    assert 1 <= len(finished) < total, "the interrupt should land mid-study"

    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1500)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"{len(finished)} already done" in second.stdout
    after = _done(out)
    assert len(after) == total
    for key, mtime in finished.items():  # finished runs were not redone
        assert after[key] == mtime
        attempts = (out / "runs" / key / "attempts.jsonl").read_text().splitlines()
        assert len(attempts) == 1
    assert "Design decisions" in second.stdout and "resize-crop vs letterbox" in second.stdout
    report = out / "report"
    assert (report / "report.html").stat().st_size > 10_000
    assert (report / "tests.csv").exists() and list(report.glob("*.png"))

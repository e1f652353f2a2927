"""`ablate demo --size small`: the whole study end to end; Ctrl-C (or `kill`) keeps finished runs, a re-run
redoes none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _done(out: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime for p in (out / "runs").glob("*/DONE")}


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (the local jobs run ``submitit`` on a folder under it)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupted_demo_resumes_without_redoing_finished_runs(tmp_path: Path, interrupt: signal.Signals) -> None:
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "ablate.cli", "demo", "--size", "small", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 900
    while not _done(out) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(1)
    assert _done(out), f"no run finished: {(tmp_path / 'first.log').read_text()[-3000:]}"
    first.send_signal(interrupt)  # Ctrl-C, or `kill`: both cancel the local jobs
    assert first.wait(timeout=120) == 130
    deadline = time.monotonic() + 60  # its local jobs were cancelled, not left training as orphans
    while _processes_mentioning(str(out / "studies")) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _processes_mentioning(str(out / "studies"))
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
    # the base-vs-chat axis: its pooled row and its hallucination / verbosity rows (CHAIR, length, lrv-neg)
    assert "tiny-llama-chat vs tiny-llama" in second.stdout and "Base vs chat LM" in second.stdout
    assert "negative-instruction accuracy" in second.stdout and "words per answer" in second.stdout
    report = out / "report"
    assert (report / "report.html").stat().st_size > 10_000
    assert (report / "tests.csv").exists() and list(report.glob("*.png"))

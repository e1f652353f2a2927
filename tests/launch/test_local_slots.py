"""The local executor's concurrency cap: at most n jobs hold a slot at once, and a killed holder frees it."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from ablate.launch import local_slot


def _hold(folder: str, n: int, seconds: float) -> tuple[int, float, float]:
    with local_slot(Path(folder), n, poll_s=0.05) as slot:
        start = time.monotonic()
        time.sleep(seconds)
        return slot, start, time.monotonic()


def test_at_most_n_jobs_run_at_once(tmp_path: Path) -> None:
    with mp.get_context("fork").Pool(5) as pool:
        spans = pool.starmap(_hold, [(str(tmp_path), 2, 0.3)] * 5)
    events = sorted([(s, 1) for _, s, _ in spans] + [(e, -1) for _, _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    assert {slot for slot, _, _ in spans} == {0, 1}


def test_a_killed_holder_releases_its_slot(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    holder = ctx.Process(target=_hold, args=(str(tmp_path), 1, 60))
    holder.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "slot-0.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    t = time.monotonic()
    with local_slot(tmp_path, 1, poll_s=0.05) as slot:
        assert slot == 0
    assert time.monotonic() - t < 5

"""Median wall time of `ablate --help` (goal < 0.5 s): the CLI must not import torch to print help."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

N = 15


def main() -> None:
    exe = shutil.which("ablate") or str(__import__("pathlib").Path(sys.executable).with_name("ablate"))
    times = []
    for _ in range(N):
        t = time.perf_counter()
        subprocess.run([exe, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"ablate --help: median {med * 1000:.0f} ms over {N} runs (goal < 500 ms) {'OK' if med < 0.5 else 'SLOW'}")


if __name__ == "__main__":
    main()

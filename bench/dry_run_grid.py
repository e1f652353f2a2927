"""Wall time and peak memory of ``ablate sweep --dry-run`` on a 5,000-point value-only grid (issue 18).

Why it exists: a large grid of value-only overrides (lr x weight decay x warmup x epochs over one config-group
choice) must expand cheaply and show progress.  Goal: < 40 s and < 200 MB on the 2-core development machine.
Run: ``python bench/dry_run_grid.py``.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STUDY = {
    "study": "grid5k", "mode": "grid", "seeds": [7],
    "baseline": {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
                 "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"},
    "axes": {"train.finetune.lr": "range(1,11)",
             "train.finetune.weight_decay": [round(0.01 * i, 2) for i in range(10)],
             "train.finetune.warmup_ratio": [round(0.01 * i, 2) for i in range(5)],
             "train.epochs": list(range(1, 11))},
}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid5k.yaml"
        path.write_text(yaml.safe_dump(STUDY))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ablate.cli", "sweep", str(path), "--dry-run"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    print(f"dry run, 5,000-point value grid: {wall:.1f} s wall, peak RSS {peak_mb:.0f} MB ({last}); "
          "goal < 40 s, < 200 MB")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

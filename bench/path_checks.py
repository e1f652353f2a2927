"""Per-record cost of the image-path confinement check (``ablate.data.untrusted.check_inside``) that every
training record and benchmark example passes when a mix is read, with the folders' ``realpath`` cached once
per process (as shipped) vs resolved for every record.  Figure: seconds per 558K records (LLaVA's align set).

    .venv/bin/python bench/path_checks.py [--records 100000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ablate.data import untrusted


def seconds(base: Path, path: Path, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        untrusted.check_inside(base, path)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "images"
        (base / "00000").mkdir(parents=True)
        path = base / "00000" / "000000001.jpg"
        path.touch()
        cached = seconds(base, path, args.records)
        real_folder, untrusted._real_folder = untrusted._real_folder, os.path.realpath
        try:
            plain = seconds(base, path, args.records)
        finally:
            untrusted._real_folder = real_folder
    scale = 558_128 / args.records
    print(f"check_inside per 558K records: {cached * scale:.1f} s with the folders' realpath cached, "
          f"{plain * scale:.1f} s resolving them per record (ratio {cached / plain:.2f}; goal: < 1)")


if __name__ == "__main__":
    main()

"""Synthetic world speed: wall and CPU seconds of ``write_world`` (target: --size 2000 in < 60 s on 2 cores),
``ablate data check`` on the result, and one epoch of tokenize + collate over instruct.json.

Usage:  OMP_NUM_THREADS=2 .venv/bin/python bench/data_synth.py [--size 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ablate.data.check import check_root
from ablate.shapes.world import crop_cut_fraction, format_crop_cut, write_world


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shapes"
        counts, wall, cpu = timed(write_world, root, args.size, args.seed)
        print(f"write_world size {args.size}: {wall:.1f} s wall, {cpu:.1f} s CPU; {counts['eval images']} eval images")
        report, wall, cpu = timed(check_root, root)
        print(f"check_root: {wall:.1f} s wall, {cpu:.1f} s CPU; {len(report.problems)} problems")
        print(format_crop_cut(crop_cut_fraction(root / "eval")))

        import torch

        from ablate.data.llava import Collator, LlavaDataset, read_records
        from ablate.models.prompts import get_prompt_format
        from ablate.shapes.tokenizer import shapes_tokenizer

        tok = shapes_tokenizer()
        records = read_records(root / "instruct.json", root / "images", source="shapes-instruct")
        ds = LlavaDataset(records, tok, get_prompt_format("base", tok), lambda img: torch.zeros(3, 64, 64),
                          max_length=256)
        collate = Collator(tok.pad_token_id)
        _, wall, cpu = timed(lambda: [collate([ds[j] for j in range(i, min(i + 16, len(ds)))])
                                      for i in range(0, len(ds), 16)])
        print(f"tokenize + collate {len(ds)} examples: {wall:.1f} s wall ({len(ds) / wall:.0f} examples/s), "
              f"{cpu:.1f} s CPU; {ds.stats.truncated} truncated at 256 tokens")


if __name__ == "__main__":
    main()

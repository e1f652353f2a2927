"""Examples/s of the training input pipeline (JPEG decode + the demo's image transform + tokenization +
collation, through ``ablate.train.feed``'s DataLoader) on 640x480 JPEGs: 2 workers vs 0.  Goal: ratio >= 1.6
on 2 cores.

The images are smooth colour fields with noise (they compress like photos, not like flat shapes), the
records are LLaVA instruct records with one image each, the transform is the demo's
(``vision=tiny-dinosiglip image=letterbox``: two normalized 64 px views per image); per-device batch 16.

Measured as a training stage sees it: the workers persist over the stage, so each pass is timed from its
first micro-batch on (worker start-up and the first batch excluded, for 0 workers too).  The two settings
alternate for ``--rounds`` rounds (so a change in the machine's load hits both) and the median of the
per-round ratios is the figure; each pass also reports the CPU cores it used (CPU seconds of the process and
its workers / wall seconds): a ratio below 1.6 with fewer than ~1.8 cores used means other processes held
the cores, not that the workers idle.

    python bench/dataloader.py [--images 1024] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    for i in range(n):
        a, b, c = rng.uniform(0.005, 0.03, 3)
        base = np.stack([np.sin(xx * a + i), np.cos(yy * b), np.sin((xx + yy) * c)], axis=-1) * 100 + 128
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


class _Plan:
    """All examples in order, 16 per micro-batch (one rank)."""

    def __init__(self, n: int, batch: int) -> None:
        self.batches = [[list(range(s, min(s + batch, n)))] for s in range(0, n, batch)]

    def global_batches(self, epoch: int) -> list[list[list[int]]]:
        return self.batches


def measure(paths: list[Path], workers: int, batch: int) -> tuple[float, float]:
    """(examples/s, CPU cores used) of one pass over ``paths``."""
    from ablate.data.llava import Collator, LlavaDataset, Record
    from ablate.data.transforms import build_image_transform
    from ablate.design import compose
    from ablate.models.prompts import get_prompt_format
    from ablate.shapes.tokenizer import shapes_tokenizer
    from ablate.train.feed import StepBatches, loader, micro_batches

    cfg = compose(["vision=tiny-dinosiglip", "projector=fused-mlp", "image=letterbox", "llm=tiny-llama",
                   "train=tiny", "data=shapes", "eval=shapes"])
    tok = shapes_tokenizer()
    conv = (("user", "<image>\nWhat colour is the large shape at the top left of the image?"),
            ("assistant", "The large shape at the top left is a red circle next to a blue square."))
    records = [Record(f"ex{i}", p, conv, "bench", i) for i, p in enumerate(paths)]
    ds = LlavaDataset(records, tok, get_prompt_format("base", tok), build_image_transform(cfg.image.id, cfg.vision),
                      max_length=256)
    plan = _Plan(len(records), batch)
    steps = StepBatches(plan, steps_per_epoch=len(plan.batches), start=0, total=len(plan.batches), rank=0,
                        world=1, per_step=1)
    data = loader(ds, Collator(0), steps, num_workers=workers, pin_memory=False)
    batches = iter(micro_batches(ds, data))
    next(batches)  # workers started and warm (persistent over a stage)
    pids = [w.pid for w in getattr(data._iterator, "_workers", [])]
    cpu0, tic = _cpu_seconds(pids), time.perf_counter()
    n = sum(len(b["example_ids"]) for b in batches)
    wall = time.perf_counter() - tic
    cores = (_cpu_seconds(pids) - cpu0) / wall
    del batches, data
    return n / wall, cores


def _cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of this process and of the live workers ``pids`` (read from /proc: a worker's time is not
    reliably in ``os.times().children_*`` after the loader shuts it down)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import gc
    import statistics

    import torch

    torch.set_num_threads(1)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp) / "img", args.images)
        measure(paths[: args.batch * 4], 0, args.batch)  # warm: imports, tokenizer, page cache
        for r in range(args.rounds):
            load = os.getloadavg()[0]
            zero, zero_cores = measure(paths, 0, args.batch)
            gc.collect()
            many, many_cores = measure(paths, args.workers, args.batch)
            gc.collect()
            ratios.append(many / zero)
            print(f"round {r + 1}: load average {load:.1f}; 0 workers {zero:.1f} examples/s ({zero_cores:.2f} "
                  f"cores used); {args.workers} workers {many:.1f} examples/s ({many_cores:.2f} cores); "
                  f"ratio {many / zero:.2f}", flush=True)
    print(f"{os.cpu_count()} cores; load average now {os.getloadavg()[0]:.2f}")
    print(f"ratio {statistics.median(ratios):.2f} median of {len(ratios)} rounds (min {min(ratios):.2f}, max "
          f"{max(ratios):.2f}; goal >= 1.6 with 2 workers on 2 cores)")


if __name__ == "__main__":
    main()

"""Examples/s of the training input pipeline (JPEG decode + the demo's image transform + tokenization +
collation, through ``ablate.train.feed``'s DataLoader) on 640x480 JPEGs: 2 workers vs 0.  Goal: ratio >= 1.6
on 2 cores.

The images are smooth colour fields with noise (they compress like photos, not like flat shapes), the
records are LLaVA instruct records with one image each, the transform is the demo's
(``vision=tiny-dinosiglip image=letterbox``: two normalized 64 px views per image); per-device batch 16.

    python bench/dataloader.py [--images 1024] [--workers 2]
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


def measure(paths: list[Path], workers: int, batch: int) -> float:
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
    tic = time.perf_counter()
    n = sum(len(b["example_ids"]) for b in micro_batches(ds, loader(ds, Collator(0), steps, num_workers=workers,
                                                                    pin_memory=False)))
    return n / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp) / "img", args.images)
        measure(paths[: args.batch * 2], 0, args.batch)  # warm: imports, tokenizer, page cache
        zero = measure(paths, 0, args.batch)
        many = measure(paths, args.workers, args.batch)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"0 workers: {zero:.1f} examples/s; {args.workers} workers: {many:.1f} examples/s")
    print(f"ratio {many / zero:.2f} (goal >= 1.6 with 2 workers on 2 cores)")


if __name__ == "__main__":
    main()

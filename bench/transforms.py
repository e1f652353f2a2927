"""Images/s of ablate's image processing vs the PIL + torchvision chain Prismatic uses.

Prismatic's letterbox: ``torchvision.transforms.functional.pad`` on the PIL image with the mean colour, then
timm's eval transform (Resize(S, bicubic) -> CenterCrop(S) -> ToTensor -> Normalize), one image at a time.
Ours: ``build_image_transform("letterbox", vision_cfg)`` on the whole list (uint8 tensors, one resize per
image, one normalization for the batch).  Same images (COCO-sized random photos-like noise), same output
shape; prints images/s of each, the ratio (goal >= 1.5) and the max abs difference of the outputs.

    OMP_NUM_THREADS=2 .venv/bin/python bench/transforms.py [--vision clip-vit-l-336] [--n 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TVF

from ablate.data.transforms import build_image_transform, mean_colour
from ablate.design import compose


def prismatic_chain(size: int, mean, std):
    fill = mean_colour(mean)
    timm_eval = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                           T.ToTensor(), T.Normalize(mean, std)])

    def letterbox(image: Image.Image) -> torch.Tensor:
        w, h = image.size
        side = max(w, h)
        left, top = (side - w) // 2, (side - h) // 2
        padded = TVF.pad(image, [left, top, side - w - left, side - h - top], fill=fill, padding_mode="constant")
        return timm_eval(padded)

    return lambda images: torch.stack([letterbox(im) for im in images])


def best_time(fn, images, repeat: int) -> float:
    fn(images[:2])
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(images)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vision", default="clip-vit-l-336")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg = compose([f"vision={args.vision}", "image=letterbox"])
    rng = np.random.default_rng(0)
    sizes = [(640, 480), (480, 640), (640, 427), (500, 375)]
    images = []
    for i in range(args.n):  # smooth random images (noise upsampled), like photos in cost
        w, h = sizes[i % len(sizes)]
        small = rng.integers(0, 256, size=(h // 16, w // 16, 3), dtype=np.uint8)
        images.append(Image.fromarray(small).resize((w, h), Image.BILINEAR))
    b = cfg.vision.backbones[0]
    ours = build_image_transform("letterbox", cfg.vision)
    theirs = prismatic_chain(cfg.vision.image_size, list(b.mean), list(b.std))
    t_theirs = best_time(theirs, images, args.repeat)
    t_ours = best_time(ours, images, args.repeat)
    out_ours, out_theirs = ours(images), theirs(images)
    out_ours = out_ours if isinstance(out_ours, torch.Tensor) else next(iter(out_ours.values()))
    print(f"vision={args.vision} S={cfg.vision.image_size} images={args.n} threads={torch.get_num_threads()}")
    print(f"ours (uint8 tensors, v2 functional): {args.n / t_ours:8.1f} images/s")
    print(f"prismatic (PIL pad + timm eval)    : {args.n / t_theirs:8.1f} images/s")
    print(f"ratio ours/prismatic: {t_theirs / t_ours:.2f}   max |diff| of outputs: "
          f"{(out_ours - out_theirs).abs().max():.3f} (normalized units)")


if __name__ == "__main__":
    main()

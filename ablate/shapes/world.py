"""The synthetic "shapes" world: training data and every benchmark, in the real on-disk formats.

Why it exists: the demo study and the tests need data that (1) goes through exactly the loaders the real
LLaVA mixes and benchmarks go through, and (2) makes the design axes matter for a tiny model.  So scenes are
coloured shapes placed in a coarse grid of *slots* on wide (16:9), tall (9:16) and square canvases:

- objects in the edge slots of wide/tall canvases are cut away by ``resize-crop`` (shorter side -> S, centre
  crop), and POPE / RefCOCO targets are biased towards those slots;
- small objects and rendered words (PIL's default font) need resolution and fine-grained features;
- slots make boxes learnable (a box answer is one of a few dozen layouts), and counts are small integers.

``write_world(out, size, seed)`` writes ``align.json``, ``instruct.json`` and ``presence.json`` (LLaVA chat JSON), ``images/``,
and under ``eval/`` VQAv2, GQA, VizWiz, TextVQA (+ OCR jsonl), POPE, RefCOCO/+/g, OCID-Ref, VSR, TallyQA and
AI2D with the layout of docs/contracts.md.  ``eval/scenes.json`` keeps every eval image's object boxes, from
which ``crop_cut_fraction`` computes how many POPE / RefCOCO targets resize-crop loses.  Everything is a pure
function of ``(size, seed)``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ablate.data.untrusted import safe_pickle_load
from ablate.shapes.benchmarks import EVAL_WRITERS, REFER_DATASETS, EvalWriter
from ablate.shapes.scene import dump_json
from ablate.shapes.training import write_training


# ------------------------------------------------------------------------------------ crop geometry
def center_crop_window(width: float, height: float) -> tuple[float, float, float, float]:
    """The part of a (width x height) image that resize-crop keeps: the centred min-side square."""
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return x0, y0, x0 + side, y0 + side


def visible_fraction(box: Iterable[float], width: float, height: float) -> float:
    """Fraction of an xyxy box's area inside the resize-crop window."""
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = center_crop_window(width, height)
    inter = max(0.0, min(x2, cx2) - max(x1, cx1)) * max(0.0, min(y2, cy2) - max(y1, cy1))
    area = max(1e-9, (x2 - x1) * (y2 - y1))
    return inter / area


def crop_cut_fraction(eval_root: str | Path, *, min_visible: float = 0.5) -> dict[str, float]:
    """Fraction of targets that resize-crop cuts out of the image (less than ``min_visible`` of the box left):
    POPE's "yes" objects (boxes from ``scenes.json``) and RefCOCO/+/g val targets (from the real
    ``instances.json`` + refs pickles)."""
    root = Path(eval_root)
    out: dict[str, float] = {}
    scenes = json.loads((root / "scenes.json").read_text())
    cut = total = 0
    for split in ("random", "popular", "adversarial"):
        for line in (root / f"pope/coco/coco_pope_{split}.json").read_text().splitlines():
            row = json.loads(line)
            if row["label"] != "yes":
                continue
            scene = scenes[f"pope/val2014/{row['image']}"]
            name = row["text"].removeprefix("Is there a ").removesuffix(" in the image?")
            box = next(o["box"] for o in scene["objects"] if o["name"] == name)
            total += 1
            cut += visible_fraction(box, scene["width"], scene["height"]) < min_visible
    out["pope"] = cut / max(1, total)
    for dataset, (pickle_name, _) in REFER_DATASETS.items():
        inst = json.loads((root / "refer" / dataset / "instances.json").read_text())
        sizes = {im["id"]: (im["width"], im["height"]) for im in inst["images"]}
        boxes = {a["id"]: a["bbox"] for a in inst["annotations"]}
        refs = [r for r in safe_pickle_load(root / "refer" / dataset / pickle_name) if r["split"] == "val"]
        hits = 0
        for r in refs:
            x, y, bw, bh = boxes[r["ann_id"]]
            hits += visible_fraction((x, y, x + bw, y + bh), *sizes[r["image_id"]]) < min_visible
        out[dataset] = hits / max(1, len(refs))
    return out


def format_crop_cut(fractions: dict[str, float]) -> str:
    return "targets cut out by resize-crop: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in fractions.items())




# ------------------------------------------------------------------------------------------------ entry
def write_world(out: str | Path, size: int = 2000, seed: int = 0, *, progress: bool = False) -> dict[str, int]:
    """Write the whole shapes world under ``out`` (training data + ``eval/``); returns counts per file."""
    from tqdm import tqdm

    if size < 1:
        raise ValueError(f"--size: invalid value {size!r}; expected a positive number of training images")
    out = Path(out)
    counts = write_training(out, size, seed, progress)
    writer = EvalWriter(out / "eval", seed, max(24, size // 10))
    from ablate.shapes.hallucination import HALLUCINATION_WRITERS

    writers = [*EVAL_WRITERS.values(), *HALLUCINATION_WRITERS.values()]  # + CHAIR, negative instructions
    for write in tqdm(writers, desc="synth eval", disable=not progress):
        counts.update(write(writer))
    dump_json(out / "eval/scenes.json", writer.scenes)
    counts["eval images"] = len(writer.scenes)
    return counts


def ensure_world(data_cfg: Any) -> Path:
    """Write the world of a data config (``data.synthetic``: size, seed) under ``data.root`` unless one is
    there; beside the root and renamed, so concurrent writers never leave a half-written world.  Returns root."""
    root = Path(data_cfg.root)
    if (root / "instruct.json").exists():
        return root
    syn = data_cfg.get("synthetic") if hasattr(data_cfg, "get") else getattr(data_cfg, "synthetic", None)
    if not syn:
        raise ValueError(f"data={data_cfg.id}: no data.synthetic (size, seed) to generate {str(root)!r} from")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    write_world(tmp, int(syn.get("size", 2000)), int(syn.get("seed", 0)))
    try:
        os.rename(tmp, root)
    except OSError:  # another writer finished first (or root is a non-empty folder without instruct.json)
        shutil.rmtree(tmp, ignore_errors=True)
    if not (root / "instruct.json").exists():
        raise FileNotFoundError(f"data.root: {str(root)!r} exists without instruct.json; expected an empty or "
                                "missing folder to generate the shapes world into")
    return root


def cli_synth(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    counts = write_world(args.out, args.size, args.seed, progress=True)
    for k, v in counts.items():
        print(f"{k:28s} {v}")
    print(format_crop_cut(crop_cut_fraction(Path(args.out) / "eval")))
    print(f"wrote {args.out} (size {args.size}, seed {args.seed}) in {time.perf_counter() - t0:.1f} s")
    return 0

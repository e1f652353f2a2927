"""The shapes world's hallucination benchmarks, with exact ground truth: CHAIR captions and LRV-style
negative instructions, in the same real formats the COCO CHAIR and LRV loaders read.

Why it exists: issue 23's base-vs-chat axis needs object hallucination measured on the demo's own world.
Every eval scene's object list is known exactly, so

- ``write_chair`` writes ``chair/annotations/instances_val2014.json`` (COCO instances: one category per
  colour-shape name, one annotation per drawn object with its pixel ``bbox``), ``captions_val2014.json`` (each
  scene's exact caption), ``chair/image_ids.txt``,
  ``chair/synonyms.txt`` (the 30 colour-shape names, one a line, in the reference's synonyms.txt format) and
  the images: a caption naming a colour-shape that is not drawn is a hallucinated object;
- ``write_negative`` writes ``lrv/negative_eval.json`` in LRV-Instruction's instruction format
  (``{image_id, question, answer, task}``) and ``lrv/images/``: per image a positive question and LRV's three
  negative levels -- a nonexistent object, an existing object with a wrong colour, and wrong knowledge
  (a present shape with the wrong number of corners) -- each answer exact from the scene.
"""

from __future__ import annotations

import random
from typing import Any

from ablate.shapes.benchmarks import EvalWriter, _eval_scene
from ablate.shapes.questions import SIDES, caption
from ablate.shapes.scene import COLORS, SHAPES, Scene, dump_json

OBJECT_NAMES = tuple(f"{c} {s}" for c in COLORS for s in SHAPES)
NEGATIVE_TASKS = ("positive", "negative-nonexistent", "negative-existent-attribute", "negative-knowledge")


def write_chair(w: EvalWriter) -> dict[str, int]:
    rng = w.rng("chair")
    images, annotations, captions = [], [], []
    for i in range(w.n):
        scene = _eval_scene(rng, lo=1, hi=5)
        captions.append(caption(scene))
        image_id = 500000 + i
        file_name = f"COCO_val2014_{image_id:012d}.jpg"
        w.image(scene, f"chair/val2014/{file_name}")
        images.append({"id": image_id, "file_name": file_name, "width": scene.width, "height": scene.height})
        for k, o in enumerate(scene.objects):
            x1, y1, x2, y2 = o.box
            annotations.append({"id": image_id * 100 + k, "image_id": image_id, "iscrowd": 0,
                                "category_id": OBJECT_NAMES.index(o.name) + 1, "area": float((x2 - x1) * (y2 - y1)),
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(OBJECT_NAMES)]
    base = w.root / "chair"
    dump_json(base / "annotations/instances_val2014.json",
              {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": categories})
    # COCO captions too (the CHAIR reference reads both): each scene's exact caption, so no object is added
    dump_json(base / "annotations/captions_val2014.json",
              {"info": {}, "licenses": [], "images": images,
               "annotations": [{"id": k, "image_id": im["id"], "caption": c}
                               for k, (im, c) in enumerate(zip(images, captions, strict=True))]})
    (base / "image_ids.txt").write_text("".join(f"{im['id']}\n" for im in images))
    (base / "synonyms.txt").write_text("".join(f"{n}\n" for n in OBJECT_NAMES))
    return {"chair images": len(images)}


def negative_questions(scene: Scene, rng: random.Random) -> list[dict[str, str]]:
    """A positive question and one per negative level LRV defines, for one scene (exact answers)."""
    present = scene.objects
    absent = [n for n in OBJECT_NAMES if scene.find(n) is None]
    out: list[dict[str, str]] = []
    t = rng.choice(present)
    out.append({"task": "positive", "question": f"Is there a {t.name} in the image?",
                "answer": f"Yes, there is a {t.name} in the image."})
    a = rng.choice(absent)
    out.append({"task": "negative-nonexistent", "question": f"Is there a {a} in the image?",
                "answer": f"No, there is no {a} in the image."})
    unique = [o for o in present if scene.count(o.shape) == 1]
    if unique:
        o = rng.choice(unique)
        wrong = rng.choice([c for c in COLORS if c != o.color])
        out.append({"task": "negative-existent-attribute", "question": f"Is the {o.shape} in the image {wrong}?",
                    "answer": f"No, the {o.shape} is {o.color}."})
    cornered = [o for o in present if SIDES[o.shape] > 0]
    if cornered:
        o = rng.choice(cornered)
        wrong = rng.choice([n for n in (3, 4, 5, 6) if n != SIDES[o.shape]])
        out.append({"task": "negative-knowledge",
                    "question": f"Is the {o.name} with {wrong} corners in the image?",
                    "answer": f"No, a {o.shape} has {SIDES[o.shape]} corners, not {wrong}."})
    return out


def write_negative(w: EvalWriter) -> dict[str, int]:
    rng = w.rng("lrv-neg")
    rows: list[dict[str, Any]] = []
    for i in range(max(1, w.n // 3)):
        scene = _eval_scene(rng, lo=1, hi=5)
        image_id = str(2400000 + i)  # Visual Genome-style ids
        w.image(scene, f"lrv/images/{image_id}.jpg")
        rows += [{"image_id": image_id, **q} for q in negative_questions(scene, rng)]
    dump_json(w.root / "lrv/negative_eval.json", rows)
    return {f"lrv-neg {t}": sum(r["task"] == t for r in rows) for t in NEGATIVE_TASKS}


HALLUCINATION_WRITERS = {"chair": write_chair, "lrv-neg": write_negative}

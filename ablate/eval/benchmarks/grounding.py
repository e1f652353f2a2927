"""Referring-expression grounding: RefCOCO / RefCOCO+ / RefCOCOg (Acc@IoU>=0.5) and OCID-Ref (Acc@IoU>=0.25).

The model answers with a normalized ``[x1, y1, x2, y2]`` box; Prismatic's strict parser (``parse_box``,
variant ``tri``) accepts only a Python list of 4 numbers in [0, 1] with x1<x2, y1<y2; anything else is a
miss counted as a parse failure.  Gold boxes are xyxy normalized by the image size and rounded to 2
decimals, as Prismatic's harness does.

RefCOCO family (the REFER release): ``refer/<dataset>/refs(<splitBy>).p`` (pickled list of refs
``{ref_id, ann_id, image_id, split, sentences: [{sent_id, sent}]}``) + ``refer/<dataset>/instances.json``
(COCO ``images`` with width/height, ``annotations`` with ``bbox`` [x, y, w, h]); images
``refer/train2014/COCO_train2014_%012d.jpg``.  The ``val`` split, one example per sentence; id = ``sent_id``.

OCID-Ref (the OCID-Ref release read by Prismatic's harness): ``ocid-ref/val_expressions.json`` =
``{id: {scene_path, sentence, bbox: "[x1, y1, x2, y2]" (a JSON string, pixels), take_id, ...}}``; images
``ocid-ref/OCID-dataset/<scene_path>``.  Split by clutter from ``take_id``: 0-9 minimum, 10-16 medium,
17-20 maximum.  Id = the expression id (the dict key).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from ablate.data.untrusted import PickleRefusedError, safe_pickle_load
from ablate.eval.benchmarks.base import (
    Benchmark,
    BenchmarkFormatError,
    Example,
    common_metrics,
    field_of,
    format_error,
    grouped_accuracy,
    mean,
    read_json,
)
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.benchmarks.prompts import bbox_prompt
from ablate.eval.scoring import box_iou, parse_box


def normalized_xyxy(xyxy: list[float], width: float, height: float) -> list[float]:
    """Pixel xyxy -> [0, 1] xyxy rounded to 2 decimals (Prismatic's ``box_xyxy2normalized``)."""
    x1, y1, x2, y2 = xyxy
    return [round(x1 / width, 2), round(y1 / height, 2), round(x2 / width, 2), round(y2 / height, 2)]


class GroundingBenchmark(Benchmark):
    """Shared scoring of box outputs; subclasses read their release format."""

    iou_threshold: ClassVar[float] = 0.5
    group_key: ClassVar[str | None] = None

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        box = parse_box(output, variant="tri")
        if box is None:
            return {"parsed": None, "parse_ok": False, "score": 0.0, "correct": False, "iou": 0.0}
        iou = float(box_iou(box, example.gold))
        hit = iou >= self.iou_threshold
        return {"parsed": list(box), "parse_ok": True, "score": float(hit), "correct": hit, "iou": iou}

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        groups = grouped_accuracy(records, self.group_key) if self.group_key else {}
        return {"accuracy": mean(r["score"] for r in records), "mean_iou": mean(r["iou"] for r in records),
                **groups, **common_metrics(records)}


def refer_layout(benchmark_id: str, folder: str, refs_file: str) -> Layout:
    """One REFER dataset: its refs pickle and COCO-style instances, images from COCO train2014."""
    return Layout(
        name=benchmark_id, benchmarks=(benchmark_id,),
        source=f"the REFER release {folder}.zip (lichengunc/refer) + COCO train2014",
        files={"refs": FileSpec(f"refer/{folder}/{refs_file}", (f"{folder}/{refs_file}",), fmt="pickle", label="ref",
                                keys={"ref_id": int, "ann_id": int, "image_id": int, "split": str,
                                      "sentences": list}),
               "instances": FileSpec(f"refer/{folder}/instances.json", (f"{folder}/instances.json",), records="",
                                     keys={"images": list, "annotations": list})},
        dirs={"refer/train2014": ("train2014",)},
    )


class RefCOCO(GroundingBenchmark):
    id = "refcoco"
    folder: ClassVar[str] = "refcoco"
    refs_file: ClassVar[str] = "refs(unc).p"
    layout = refer_layout("refcoco", "refcoco", "refs(unc).p")
    split: ClassVar[str] = "val"
    description = "Acc@IoU>=0.5 of the predicted box (val split)"

    def _refs(self, path: Path) -> list[dict]:
        if not path.is_file():
            raise BenchmarkFormatError(f"{path}: file not found (expected the REFER release's refs pickle here)")
        try:
            refs = safe_pickle_load(path)
        except PickleRefusedError as exc:  # a class/function reference: refused, nothing was run
            raise BenchmarkFormatError(str(exc)) from None
        except Exception as exc:  # any unpickling failure is a format error of this file
            raise BenchmarkFormatError(f"{path}: expected a pickled list of refs ({type(exc).__name__}: {exc})") from None
        if not isinstance(refs, list):
            raise format_error(path, "top level", f"a pickled list of refs, got {type(refs).__name__}")
        return refs

    def read(self) -> list[Example]:
        rpath, ipath = self.layout.path(self.root, "refs"), self.layout.path(self.root, "instances")
        refs = self._refs(rpath)
        instances = read_json(ipath)
        for _ in self.layout.records(self.root, "instances", instances):
            pass
        for _ in self.layout.records(self.root, "refs", refs):
            pass
        images = {field_of(im, "id", int, ipath, f"images[{i}]"): im
                  for i, im in enumerate(field_of(instances, "images", list, ipath, "top level"))}
        anns = {field_of(a, "id", int, ipath, f"annotations[{i}]"): (i, a)
                for i, a in enumerate(field_of(instances, "annotations", list, ipath, "top level"))}
        examples = []
        for r, ref in enumerate(refs):
            where = f"ref {r}"
            if field_of(ref, "split", str, rpath, where) != self.split:
                continue
            ann_id = field_of(ref, "ann_id", int, rpath, where)
            image_id = field_of(ref, "image_id", int, rpath, where)
            if ann_id not in anns:
                raise format_error(ipath, f"annotation id {ann_id} (ref {r} of {rpath.name})", "an annotation per ref")
            if image_id not in images:
                raise format_error(ipath, f"image id {image_id} (ref {r} of {rpath.name})", "an image per ref")
            i, ann = anns[ann_id]
            bbox = field_of(ann, "bbox", list, ipath, f"annotations[{i}]")
            if len(bbox) != 4 or not all(isinstance(v, int | float) for v in bbox):
                raise format_error(ipath, f"annotations[{i}]", f"'bbox' = [x, y, w, h], got {bbox!r}")
            im = images[image_id]
            width = field_of(im, "width", int, ipath, f"image {image_id}")
            height = field_of(im, "height", int, ipath, f"image {image_id}")
            x, y, w, h = bbox
            gold = normalized_xyxy([x, y, x + w, y + h], width, height)
            for s, sent in enumerate(field_of(ref, "sentences", list, rpath, where)):
                swhere = f"{where} sentences[{s}]"
                examples.append(Example(
                    example_id=str(field_of(sent, "sent_id", int, rpath, swhere)),
                    image=self.root / "refer" / "train2014" / f"COCO_train2014_{image_id:012d}.jpg",
                    prompt=bbox_prompt(field_of(sent, "sent", str, rpath, swhere)),
                    gold=gold,
                    meta={"ref_id": ref.get("ref_id"), "split": self.split},
                ))
        return examples


class RefCOCOPlus(RefCOCO):
    id = "refcoco-plus"
    folder = "refcoco+"
    layout = refer_layout("refcoco-plus", "refcoco+", "refs(unc).p")


class RefCOCOg(RefCOCO):
    id = "refcocog"
    folder = "refcocog"
    refs_file = "refs(umd).p"
    layout = refer_layout("refcocog", "refcocog", "refs(umd).p")


CLUTTER = ("minimum", "medium", "maximum")


def clutter_of(take_id: int) -> str:
    """OCID's clutter level from the take index (0-9 free, 10-16 touching, 17-20 stacked)."""
    return CLUTTER[bisect_left([9, 16, 20], take_id)]


class OCIDRef(GroundingBenchmark):
    id = "ocid-ref"
    iou_threshold = 0.25
    group_key = "clutter"
    layout = Layout(
        name="ocid-ref", benchmarks=("ocid-ref",), source="OCID-Ref val_expressions.json + the OCID dataset",
        files={"expressions": FileSpec("ocid-ref/val_expressions.json", ("val_expressions.json",), records="{}",
                                       label="expression", keys={"scene_path": str, "sentence": str, "bbox": str, "take_id": int})},
        dirs={"ocid-ref/OCID-dataset": ("OCID-dataset",)}, probes={"ocid-ref/OCID-dataset": "*"},  # read opens images
    )
    description = "Acc@IoU>=0.25 of the predicted box (OCID-Ref val), also per clutter level"

    def read(self) -> list[Example]:
        path = self.layout.path(self.root, "expressions")
        data = read_json(path, dict, "an object mapping expression id -> expression")
        sizes: dict[Path, tuple[int, int]] = {}
        examples = []
        for (where, ex), key in zip(self.layout.records(self.root, "expressions", data), data, strict=True):
            image = self.root / "ocid-ref" / "OCID-dataset" / field_of(ex, "scene_path", str, path, where)
            raw_box = field_of(ex, "bbox", str, path, where)
            try:
                xyxy = json.loads(raw_box)
            except json.JSONDecodeError:
                xyxy = None
            if not (isinstance(xyxy, list) and len(xyxy) == 4 and all(isinstance(v, int | float) for v in xyxy)):
                raise format_error(path, where, f"'bbox' to be a JSON string \"[x1, y1, x2, y2]\", got {raw_box!r}")
            take_id = field_of(ex, "take_id", int, path, where)
            if not 0 <= take_id <= 20:
                raise format_error(path, where, f"'take_id' in 0..20, got {take_id}")
            if image not in sizes:
                if not image.is_file():
                    raise BenchmarkFormatError(f"{path}: {where}: image {image} not found")
                with Image.open(image) as im:
                    sizes[image] = im.size
            width, height = sizes[image]
            if not (xyxy[0] < xyxy[2] <= width and xyxy[1] < xyxy[3] <= height):
                raise format_error(path, where, f"'bbox' x1<x2<={width}, y1<y2<={height} (pixels), got {xyxy}")
            examples.append(Example(
                example_id=str(key),
                image=image,
                prompt=bbox_prompt(field_of(ex, "sentence", str, path, where)),
                gold=normalized_xyxy(xyxy, width, height),
                meta={"clutter": clutter_of(take_id)},
            ))
        return examples

"""Object hallucination in captions: the CHAIR benchmark (Rohrbach et al., 2018) on COCO val2014.

The model captions each image; ``ablate.eval.chair`` matches the caption's object words through the MSCOCO
synonym lists against the image's objects.  One record per caption (``chair_i``, ``chair_s``, mentioned and
hallucinated objects), so paired tests run per caption; ``score`` = 1 - chair_s (a caption with no
hallucinated object scores 1; ``accuracy`` = 1 - CHAIR_s), ``chair_i`` / ``chair_s`` are the aggregates.

Files (under ``eval.root``, written by ``ablate data prepare``): ``chair/annotations/instances_val2014.json``
(COCO instances: ``images`` [{id, file_name}], ``annotations`` [{image_id, category_id}], ``categories``
[{id, name}]), optionally ``chair/annotations/captions_val2014.json`` (COCO captions; like the reference,
objects its human captions name count as present too), optionally ``chair/image_ids.txt`` (the subset: one
image id a line; default the CHAIR-500 list shipped in ablate/eval/data), optionally
``chair/synonyms.txt`` (object lists in the reference's synonyms.txt format; default the packaged MSCOCO
lists -- a generated world writes its own object names), images ``chair/val2014/<file_name>``.  Example
id = the COCO image id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ablate.eval.benchmarks import base
from ablate.eval.benchmarks.base import Benchmark, BenchmarkFormatError, Example
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.chair import (
    DATA,
    Vocabulary,
    caption_objects,
    chair_aggregate,
    chair_record,
    coco_vocabulary,
    node_words,
    read_vocabulary,
)

CHAIR_500_IDS = DATA / "chair_500_image_ids.txt"  # the default subset (see ablate/eval/data/README.md)
IMAGES = "chair/val2014"  # the linked COCO val2014 folder, under the eval root
CHAIR_LAYOUT = Layout(
    name="chair", benchmarks=("chair",),
    source="COCO 2014 annotations (instances_val2014.json; captions_val2014.json optional) and val2014 images; "
           "the CHAIR-500 image id list ships with ablate (ablate/eval/data)",
    files={"instances": FileSpec("chair/annotations/instances_val2014.json",
                                 ("annotations/instances_val2014.json", "instances_val2014.json"), records="",
                                 keys={"images": list, "annotations": list, "categories": list}),
           "captions": FileSpec("chair/annotations/captions_val2014.json",
                                ("annotations/captions_val2014.json", "captions_val2014.json"), records="",
                                keys={"annotations": list}, only=("chair-with-captions",),
                                note="optional: its human captions' objects count as present"),
           # optional: a subset and object lists of the root's own (a generated world writes both)
           "image_ids": FileSpec("chair/image_ids.txt", ("chair/image_ids.txt",), fmt="txt", records="",
                                 only=("chair-own-subset",), note="optional: default the CHAIR-500 ids"),
           "synonyms": FileSpec("chair/synonyms.txt", ("chair/synonyms.txt",), fmt="txt", records="",
                                only=("chair-own-objects",), note="optional: default the MSCOCO synonym lists")},
    dirs={IMAGES: ("val2014",)},
)

# the CHAIR-500 set's instruction (yuezih/less-is-more chair-500.jsonl; LLaVA's "detail" prompt)
CAPTION_PROMPT = "\nPlease describe this image in detail."


def read_id_list(path: Path) -> list[int]:
    """One integer image id a line (blank lines skipped); anything else is an error naming the line."""
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: file not found (expected the benchmark's image id list here; "
                                   "`ablate data prepare` writes it)")
    ids = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ids.append(int(line.strip()))
        except ValueError:
            raise base.format_error(path, f"line {lineno}", f"one integer image id, got {line.strip()!r}") from None
    return ids


class CHAIRBenchmark(Benchmark):
    """COCO-format object annotations + an image id list -> captions scored by CHAIR."""

    id = "chair"
    layout = CHAIR_LAYOUT
    description = "CHAIR_i / CHAIR_s of generated captions (lower is better); score = 1 - CHAIR_s per caption"
    prompt: ClassVar[str] = CAPTION_PROMPT

    def vocabulary(self) -> Vocabulary:
        """``chair/synonyms.txt`` of the data root when it has one (a generated world writes its objects'),
        else the packaged MSCOCO lists."""
        own = self.layout.path(self.root, "synonyms")
        return read_vocabulary(own) if own.is_file() else coco_vocabulary()

    def read(self) -> list[Example]:
        vocab = self.vocabulary()
        ipath = self.layout.path(self.root, "instances")
        inst = base.read_json(ipath, dict, "a COCO instances object")
        names = {}
        for i, cat in enumerate(base.field_of(inst, "categories", list, ipath, "top level")):
            names[base.field_of(cat, "id", int, ipath, f"categories[{i}]")] = base.field_of(cat, "name", str, ipath,
                                                                                 f"categories[{i}]")
        files = {}
        for i, im in enumerate(base.field_of(inst, "images", list, ipath, "top level")):
            files[base.field_of(im, "id", int, ipath, f"images[{i}]")] = base.field_of(im, "file_name", str, ipath,
                                                                            f"images[{i}]")
        own_ids = self.layout.path(self.root, "image_ids")  # a subset of the root's own, else CHAIR-500
        wanted = read_id_list(own_ids if own_ids.is_file() else CHAIR_500_IDS)
        objects: dict[int, set[str]] = {i: set() for i in wanted}
        for i, ann in enumerate(base.field_of(inst, "annotations", list, ipath, "top level")):
            where = f"annotations[{i}]"
            image_id = base.field_of(ann, "image_id", int, ipath, where)
            if image_id in objects:
                cat = base.field_of(ann, "category_id", int, ipath, where)
                if cat not in names:
                    raise base.format_error(ipath, where, f"'category_id' to be one of the categories, got {cat}")
                objects[image_id] |= node_words([names[cat]], vocab, where=f"{ipath}: {where}")
        cpath = self.layout.path(self.root, "captions")
        if cpath.is_file():  # the reference adds the objects human captions name
            caps = base.read_json(cpath, dict, "a COCO captions object")
            for i, ann in enumerate(base.field_of(caps, "annotations", list, cpath, "top level")):
                image_id = base.field_of(ann, "image_id", int, cpath, f"annotations[{i}]")
                if image_id in objects:
                    text = base.field_of(ann, "caption", str, cpath, f"annotations[{i}]")
                    objects[image_id] |= {node for _, node in caption_objects(text, vocab)}
        examples = []
        for image_id in wanted:
            if image_id not in files:
                raise base.format_error(own_ids if own_ids.is_file() else CHAIR_500_IDS, f"image id {image_id}",
                                   f"an image of {ipath.name} with that id")
            examples.append(Example(example_id=str(image_id), image=self.root / IMAGES / files[image_id],
                                    prompt=self.prompt, gold=sorted(objects[image_id])))
        return examples

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        rec = chair_record(output, set(example.gold), self.vocabulary())
        return {"parsed": output.strip(), "parse_ok": bool(output.strip()), "score": 1.0 - float(rec["chair_s"]),  # type: ignore[arg-type]
                "correct": rec["chair_s"] == 0.0, **rec}

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        # accuracy = share of captions without a hallucinated object = 1 - CHAIR_s (every benchmark reports one)
        return {"accuracy": base.mean(r["score"] for r in records), **chair_aggregate(records), **base.common_metrics(records)}

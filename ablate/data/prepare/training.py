"""Training-data preparers: the LLaVA-format releases (558K align, 665K finetune, LVIS-Instruct-4V and two
subsets of the 665K) and LRV-Instruct from its raw release, placed where ``conf/data/*.yaml`` read them.

Targets follow Prismatic's layout (``prismatic/conf/datasets.py``, ``scripts/additional-datasets/``) under
the data root: ``download/llava-laion-cc-sbu-558k/chat.json`` and ``download/llava-v1.5-instruct/*.json``,
with each record's image path resolving under the source's image folder through linked folders
(``coco/train2017``, ``gqa/images``, ``lrv/lrv-vg``, ...).  LRV's raw records ``{image_id, question,
answer, task}`` become one single-turn LLaVA record each, as Prismatic's ``lrv_instruct.py`` writes them
(id = the image id, or the chart file's stem; ``<image>\\n`` + question; answer), giving
``lrv_instruct_343k.json`` -- the file ``conf/data/llava-v15-lrv.yaml`` reads, which Prismatic's script only
ever wrote merged into its 1008K/1231K mixes.  Validation runs the training reader on the result with
``on_bad_example=fail``, so a prepared file is one the training jobs accept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ablate.data.prepare import register
from ablate.data.prepare.base import PrepareError, Preparer, Sources, link_images, place_file, write_json

INSTRUCT = "download/llava-v1.5-instruct"


def _load_list(path: Path, what: str) -> list[Any]:
    from ablate.data.llava import BadDataError, load_json

    try:
        data = load_json(path)
    except BadDataError as exc:
        raise PrepareError(str(exc)) from None
    if not isinstance(data, list):
        raise PrepareError(f"{path}: top level: expected a JSON list of {what}, got {type(data).__name__}")
    return data


def _images_of(records: list[Any], path: Path, base: str) -> list[str]:
    out = []
    for i, rec in enumerate(records):
        if isinstance(rec, dict) and "image" in rec:
            if not isinstance(rec["image"], str):
                raise PrepareError(f"{path}: record {i}: expected 'image' to be a relative path string, "
                                   f"got {rec['image']!r}")
            out.append(f"{base}/{rec['image']}")
    return out


def _validate_llava(json_path: Path, images: Path, name: str) -> None:
    from ablate.data.llava import BadDataError, read_records

    try:
        read_records(json_path, images, source=name, on_bad_example="fail")
    except BadDataError as exc:
        raise PrepareError(str(exc)) from None


@dataclass
class LlavaPreparer(Preparer):
    """A LLaVA-format release file (optionally a subset of its records) and its image folders."""

    name: str
    upstream: tuple[str, ...]  # the release's file names
    target: str  # the JSON under the data root
    images: str  # the image folder its record paths are relative to
    source: str  # where it is downloaded from
    dirs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # linked folder -> upstream names
    keep: Callable[[dict], bool] | None = None  # a subset of the records
    subset: str = ""
    kind = "training"

    def __post_init__(self) -> None:
        self.expects = f"{' or '.join(self.upstream)} and the image folders its records name  [{self.source}]"
        self.produces = f"{self.target}{f' ({self.subset})' if self.subset else ''}, image folders under {self.images}/"

    def build(self, src: Sources, out: Path) -> dict[str, int]:
        path = src.file(self.upstream, f"the LLaVA-format file {self.upstream[0]} ({self.source})")
        assert path is not None
        records = _load_list(path, "LLaVA records")
        if self.keep is not None:
            records = [r for r in records if isinstance(r, dict) and self.keep(r)]
            write_json(out / self.target, records)
        else:
            place_file(path, out / self.target)
        images = _images_of(records, path, self.images)
        links = link_images(out, images, src, {f"{self.images}/{k}": v for k, v in self.dirs.items()},
                            f"the images of {path.name}")
        return {"records": len(records), "with image": len(images), "language-only": len(records) - len(images),
                "image folders": len(links)}

    def validate(self, out: Path) -> None:
        _validate_llava(out / self.target, out / self.images, self.name)


LRV_VG = ("filter_cap1.json", "filter_cap_more1.json")  # Visual Genome images, {image_id}.jpg
LRV_CHART = "chart_release_update.json"  # chart images, image_id = a file name
LRV_KEYS = ("image_id", "question", "answer")


def lrv_records(raw: list[Any], path: Path, image_prefix: str, chart: bool) -> list[dict[str, Any]]:
    """LRV raw records -> LLaVA records (Prismatic's conversion); a malformed record is an error naming it."""
    out = []
    for i, rec in enumerate(raw):
        if not isinstance(rec, dict):
            raise PrepareError(f"{path}: record {i}: expected an object {{image_id, question, answer, task}}, "
                               f"got {type(rec).__name__}")
        for key in LRV_KEYS:
            if not isinstance(rec.get(key), str):
                raise PrepareError(f"{path}: record {i}: expected {key!r} to be a string (LRV-Instruct's raw "
                                   f"release {{image_id, question, answer, task}}), got {rec.get(key)!r}")
        image_id = rec["image_id"]
        image = f"{image_prefix}/{image_id}" if chart else f"{image_prefix}/{image_id}.jpg"
        out.append({"id": PurePosixPath(image_id).stem if chart else image_id, "image": image,
                    "conversations": [{"from": "human", "value": f"<image>\n{rec['question'].strip()}"},
                                      {"from": "gpt", "value": rec["answer"].strip()}]})
    return out


class LRVPreparer(Preparer):
    """LRV-Instruct (342,799 records) from its raw release: two Visual Genome files + the chart file."""

    name = "lrv-instruct"
    kind = "training"
    target = f"{INSTRUCT}/lrv_instruct_343k.json"
    expects = (f"{', '.join(LRV_VG)}, {LRV_CHART}, folder image (Visual Genome images as LRV hosts them, "
               "image.tar.gz) and folder chart_image (chart_image.zip)  [FuxiaoLiu/LRV-Instruction download.txt]")
    produces = f"{target}, {INSTRUCT}/lrv/lrv-vg and lrv/lrv-chart (links)"

    def build(self, src: Sources, out: Path) -> dict[str, int]:
        records: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for name in (*LRV_VG, LRV_CHART):
            path = src.file((name,), "a file of LRV-Instruct's raw release (FuxiaoLiu/LRV-Instruction download.txt)")
            assert path is not None
            chart = name == LRV_CHART
            converted = lrv_records(_load_list(path, "LRV records"), path, "lrv/lrv-chart" if chart else "lrv/lrv-vg",
                                    chart)
            counts[name] = len(converted)
            records += converted
        write_json(out / self.target, records)
        link_images(out, [f"{INSTRUCT}/{r['image']}" for r in records], src,
                    {f"{INSTRUCT}/lrv/lrv-vg": ("lrv-vg", "image"), f"{INSTRUCT}/lrv/lrv-chart": ("lrv-chart", "chart_image")},
                    "LRV-Instruct's images")
        counts["records"] = len(records)
        return counts

    def validate(self, out: Path) -> None:
        _validate_llava(out / self.target, out / INSTRUCT, self.name)


HF = "huggingface.co/datasets/liuhaotian"


def _has_image(rec: dict) -> bool:
    return "image" in rec


def _language_only(rec: dict) -> bool:
    return "image" not in rec


PREPARERS: Sequence[Preparer] = (
    LlavaPreparer("llava-laion-cc-sbu-558k", ("blip_laion_cc_sbu_558k.json",),
                  "download/llava-laion-cc-sbu-558k/chat.json", "download/llava-laion-cc-sbu-558k",
                  f"{HF}/LLaVA-Pretrain (blip_laion_cc_sbu_558k.json + images.zip)"),
    LlavaPreparer("llava-v15-665k", ("llava_v1_5_mix665k.json",), f"{INSTRUCT}/llava_v1_5_mix665k.json", INSTRUCT,
                  f"{HF}/LLaVA-Instruct-150K + COCO train2017, GQA, OCR-VQA, TextVQA, Visual Genome images"),
    LlavaPreparer("lvis-instruct4v-220k", ("lvis_instruct4v_220k.json",), f"{INSTRUCT}/lvis_instruct4v_220k.json",
                  INSTRUCT, "huggingface.co/datasets/X2FD/LVIS-Instruct4V + COCO train2017/val2017"),
    LlavaPreparer("llava-v15-language-only", ("llava_v1_5_mix665k.json",),
                  f"{INSTRUCT}/llava_v1_5_language_only.json", INSTRUCT, f"{HF}/LLaVA-Instruct-150K",
                  keep=_language_only, subset="the 665K's language-only (ShareGPT) records"),
    LlavaPreparer("llava-v15-stripped625k", ("llava_v1_5_mix665k.json",),
                  f"{INSTRUCT}/llava_v1_5_stripped625k.json", INSTRUCT, f"{HF}/LLaVA-Instruct-150K + its images",
                  keep=_has_image, subset="the 665K without language-only records (Prismatic's stripped625k)"),
    LRVPreparer(),
)
for _p in PREPARERS:
    register(_p)

"""``ablate data check DIR``: validate a data root before any job is submitted.

Checks the LLaVA training files (schema of every record, images present), and every benchmark of
docs/contracts.md "Benchmarks on disk" (files present, parseable in the real format, fields of each record,
referenced images present and decodable).  Prints counts per file; returns non-zero with every problem
listed (the first few per file, then a count).  DIR may be a shapes root (training files + ``eval/``), a
real data root (the ``conf/data`` sources found under it), or an eval root.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablate.config import CONF_DIR
from ablate.data.llava import DataStats, read_records
from ablate.data.untrusted import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    PickleRefusedError,
    UnsafeInputError,
    check_inside,
    open_image,
    safe_pickle_load,
)
from ablate.shapes.world import crop_cut_fraction, format_crop_cut

MAX_PROBLEMS_PER_FILE = 5
DECODE = ("sample", "all", "none")  # which training images `data check` decodes (benchmark images: all)
DECODE_SAMPLE = 1000  # training images decoded per file with --decode sample (fixed seed)
LLAVA_SKIP = ("scenes.json",)  # JSON files at a shapes root that are not LLaVA files


@dataclass
class Report:
    """Counts per file and problems found."""

    counts: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    image_root: Path | None = None  # benchmark images must stay under it (set by check_root)
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    _per_file: dict[str, int] = field(default_factory=dict)

    def problem(self, file: Path | str, msg: str) -> None:
        key = str(file)
        self._per_file[key] = self._per_file.get(key, 0) + 1
        if self._per_file[key] <= MAX_PROBLEMS_PER_FILE:
            self.problems.append(f"{file}: {msg}")
        elif self._per_file[key] == MAX_PROBLEMS_PER_FILE + 1:
            self.problems.append(f"{file}: ... more problems (see the count below)")

    def finish(self) -> None:
        for key, n in self._per_file.items():
            if n > MAX_PROBLEMS_PER_FILE:
                self.problems.append(f"{key}: {n} problems in all")


def _load(report: Report, path: Path, kind: str = "json") -> Any:
    if not path.is_file():
        report.problem(path, "missing")
        return None
    try:
        if kind == "jsonl":
            rows = []
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        report.problem(path, f"line {n}: malformed JSON ({err.msg})")
            return rows
        if kind == "pickle":
            return safe_pickle_load(path)
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        report.problem(path, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}")
    except PickleRefusedError as err:  # refused before anything was built: nothing ran
        report.problem(path, str(err).removeprefix(f"{path}: "))
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError) as err:
        report.problem(path, f"unreadable {kind}: {err}")
    return None


def _image_ok(report: Report, source: Path, where: str, image: Path, seen: set[Path]) -> None:
    if image in seen:
        return
    seen.add(image)
    if report.image_root is not None:
        try:
            check_inside(report.image_root, image)
        except UnsafeInputError as err:
            report.problem(source, f"{where}: {err}")
            return
    if not image.is_file():
        report.problem(source, f"{where}: image {image} missing")
        return
    decode_ok(report, source, where, image)


def decode_ok(report: Report, source: Path, where: str, image: Path) -> bool:
    """Decode ``image`` fully (``verify()`` misses truncated files), within the pixel limit."""
    try:
        open_image(image, report.max_pixels)
    except ImageTooLargeError as err:
        report.problem(source, f"{where}: {err}")
        return False
    except Exception as err:  # noqa: BLE001 - any decoder error means a corrupt image
        report.problem(source, f"{where}: image {image} corrupt ({type(err).__name__}: {str(err)[:80]})")
        return False
    return True


def _fields(report: Report, source: Path, where: str, row: Any, keys: Iterable[str]) -> bool:
    if not isinstance(row, dict):
        report.problem(source, f"{where}: expected an object, got {type(row).__name__}")
        return False
    missing = [k for k in keys if k not in row]
    if missing:
        report.problem(source, f"{where}: missing key(s) {', '.join(missing)}")
        return False
    return True


def _rows(report: Report, source: Path, data: Any, keys: tuple[str, ...], image: Callable[[dict], Path] | None,
          seen: set[Path], label: str = "record") -> int:
    """Check each row's keys and image; returns the number of rows."""
    rows = list(data.items()) if isinstance(data, dict) else list(enumerate(data))
    if not rows:
        report.problem(source, f"no {label}s; expected at least one")
    for i, row in rows:
        if _fields(report, source, f"{label} {i}", row, keys) and image is not None:
            _image_ok(report, source, f"{label} {i}", image(row), seen)
    return len(rows)


# ----------------------------------------------------------------------------------------- benchmarks
def check_vqav2(root: Path, r: Report, seen: set[Path]) -> None:
    qf, af = root / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json", root / "vqav2/v2_mscoco_val2014_annotations.json"
    q, a = _load(r, qf), _load(r, af)
    if q is None or a is None:
        return
    img = lambda row: root / f"vqav2/val2014/COCO_val2014_{row['image_id']:012d}.jpg"  # noqa: E731
    r.counts[str(qf)] = f"{_rows(r, qf, q.get('questions', []), ('image_id', 'question', 'question_id'), img, seen)} questions"
    n = _rows(r, af, a.get("annotations", []), ("question_id", "answers", "answer_type"), None, seen, "annotation")
    for i, ann in enumerate(a.get("annotations", [])):
        ids = [x.get("answer_id") for x in ann.get("answers", [])]
        if len(ids) != 10 or len(set(ids)) != 10:
            r.problem(af, f"annotation {i}: expected 10 answers with unique answer_id, got {ids}")
    if {x["question_id"] for x in q.get("questions", [])} != {x["question_id"] for x in a.get("annotations", [])}:
        r.problem(af, "question ids differ from the questions file")
    r.counts[str(af)] = f"{n} annotations"


def check_gqa(root: Path, r: Report, seen: set[Path]) -> None:
    f = root / "gqa/testdev_balanced_questions.json"
    if (d := _load(r, f)) is not None:
        n = _rows(r, f, d, ("question", "answer", "imageId", "isBalanced", "types"),
                  lambda row: root / f"gqa/images/{row['imageId']}.jpg", seen, "question")
        r.counts[str(f)] = f"{n} questions ({sum(bool(v.get('isBalanced')) for v in d.values())} balanced)"


def check_vizwiz(root: Path, r: Report, seen: set[Path]) -> None:
    f = root / "vizwiz/Annotations/val.json"
    if (d := _load(r, f)) is not None:
        n = _rows(r, f, d, ("image", "question", "answers", "answerable"),
                  lambda row: root / "vizwiz/val" / row["image"], seen)
        r.counts[str(f)] = f"{n} questions ({sum(x.get('answerable') == 0 for x in d)} unanswerable)"


def check_textvqa(root: Path, r: Report, seen: set[Path]) -> None:
    f, of = root / "textvqa/TextVQA_0.5.1_val.json", root / "textvqa/textvqa_val_v051_ocr.jsonl"
    if (d := _load(r, f)) is not None:
        data = d.get("data", [])
        r.counts[str(f)] = f"{_rows(r, f, data, ('question', 'image_id', 'answers', 'question_id'), lambda row: root / 'textvqa/train_images' / (row['image_id'] + '.jpg'), seen)} questions"
        for i, row in enumerate(data):
            if len(row.get("answers", [])) != 10:
                r.problem(f, f"record {i}: expected 10 answers, got {len(row.get('answers', []))}")
    if (o := _load(r, of, "jsonl")) is not None:
        r.counts[str(of)] = f"{_rows(r, of, o, ('question_id', 'image', 'text'), None, seen, 'line')} questions"


def check_pope(root: Path, r: Report, seen: set[Path]) -> None:
    for split in ("adversarial", "popular", "random"):
        f = root / f"pope/coco/coco_pope_{split}.json"
        if (d := _load(r, f, "jsonl")) is not None:
            n = _rows(r, f, d, ("question_id", "image", "text", "label"), lambda row: root / "pope/val2014" / row["image"],
                      seen, "line")
            bad = [i for i, x in enumerate(d) if x.get("label") not in ("yes", "no")]
            if bad:
                r.problem(f, f"lines {bad[:5]}: label not 'yes'/'no'")
            r.counts[str(f)] = f"{n} questions"


REFER = {"refcoco": "refs(unc).p", "refcoco+": "refs(unc).p", "refcocog": "refs(umd).p"}


def check_refer(root: Path, r: Report, seen: set[Path]) -> None:
    for dataset, pickle_name in REFER.items():
        pf, inf = root / "refer" / dataset / pickle_name, root / "refer" / dataset / "instances.json"
        refs, inst = _load(r, pf, "pickle"), _load(r, inf)
        if refs is None or inst is None:
            continue
        images = {im["id"]: im for im in inst.get("images", [])}
        anns = {a["id"]: a for a in inst.get("annotations", [])}
        n = _rows(r, pf, refs, ("ref_id", "ann_id", "image_id", "split", "sentences"), None, seen, "ref")
        for i, ref in enumerate(refs):
            if ref.get("ann_id") not in anns or ref.get("image_id") not in images:
                r.problem(pf, f"ref {i}: ann_id {ref.get('ann_id')} / image_id {ref.get('image_id')} not in {inf.name}")
            else:
                _image_ok(r, pf, f"ref {i}", root / "refer/train2014" / images[ref["image_id"]]["file_name"], seen)
        val = [x for x in refs if x.get("split") == "val"]
        r.counts[str(pf)] = f"{n} refs ({len(val)} val, {sum(len(x['sentences']) for x in val)} val sentences)"
        r.counts[str(inf)] = f"{len(images)} images, {len(anns)} annotations"


def check_ocid(root: Path, r: Report, seen: set[Path]) -> None:
    f = root / "ocid-ref/val_expressions.json"
    if (d := _load(r, f)) is None:
        return
    n = _rows(r, f, d, ("sentence", "scene_path", "bbox", "take_id"),
              lambda row: root / "ocid-ref/OCID-dataset" / row["scene_path"], seen, "expression")
    for k, row in d.items():
        try:
            box = json.loads(row["bbox"])
            assert len(box) == 4 and box[0] < box[2] and box[1] < box[3]
        except (KeyError, TypeError, ValueError, AssertionError):
            r.problem(f, f"expression {k}: bbox {row.get('bbox')!r}; expected a JSON string '[x1, y1, x2, y2]'")
    r.counts[str(f)] = f"{n} expressions"


def check_vsr(root: Path, r: Report, seen: set[Path]) -> None:
    f = root / "vsr/test.jsonl"
    if (d := _load(r, f, "jsonl")) is not None:
        r.counts[str(f)] = f"{_rows(r, f, d, ('image', 'caption', 'label'), lambda row: root / 'vsr/images' / row['image'], seen, 'line')} captions"


def check_tallyqa(root: Path, r: Report, seen: set[Path]) -> None:
    f = root / "tallyqa/test.json"
    if (d := _load(r, f)) is not None:
        r.counts[str(f)] = f"{_rows(r, f, d, ('image', 'question', 'answer', 'question_id', 'issimple'), lambda row: root / 'tallyqa' / row['image'], seen)} questions"


def check_ai2d(root: Path, r: Report, seen: set[Path]) -> None:
    idf = root / "ai2d/ai2d_test_ids.csv"
    if not idf.is_file():
        r.problem(idf, "missing")
        return
    ids = [row[0] for row in csv.reader(idf.read_text().splitlines()) if row]
    n_q = 0
    for img_id in ids:
        qf = root / f"ai2d/questions/{img_id}.png.json"
        if (d := _load(r, qf)) is None or not _fields(r, qf, "file", d, ("imageName", "questions")):
            continue
        _image_ok(r, qf, "imageName", root / "ai2d/images" / d["imageName"], seen)
        for text, q in d["questions"].items():
            if _fields(r, qf, f"question {text!r}", q, ("questionId", "answerTexts", "correctAnswer")) and \
                    not 0 <= q["correctAnswer"] < len(q["answerTexts"]):
                r.problem(qf, f"question {text!r}: correctAnswer {q['correctAnswer']} outside answerTexts")
            n_q += 1
    r.counts[str(idf)] = f"{len(ids)} diagrams, {n_q} questions"


BENCHMARK_CHECKS: dict[str, Callable[[Path, Report, set[Path]], None]] = {
    "vqav2": check_vqav2, "gqa": check_gqa, "vizwiz": check_vizwiz, "textvqa": check_textvqa, "pope": check_pope,
    "refer": check_refer, "ocid-ref": check_ocid, "vsr": check_vsr, "tallyqa": check_tallyqa, "ai2d": check_ai2d,
}


# ------------------------------------------------------------------------------------------- training
def training_files(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, json, image dir) of LLaVA files under ``root``: top-level JSON files (shapes roots) and the
    ``conf/data`` mix sources that exist there."""
    found: dict[Path, tuple[str, Path, Path]] = {}
    images = root / "images" if (root / "images").is_dir() else root
    for path in sorted(root.glob("*.json")):
        if path.name not in LLAVA_SKIP:
            found[path] = (path.stem, path, images)
    for conf in sorted((CONF_DIR / "data").glob("*.yaml")):
        spec = yaml.safe_load(conf.read_text()) or {}
        for src in [*spec.get("align", []), *spec.get("finetune", [])]:
            path = root / src["json"]
            if path.is_file():
                found.setdefault(path, (src["name"], path, root / src.get("images", ".")))
    return list(found.values())


def check_training(root: Path, r: Report, decode: str = "sample") -> None:
    for name, path, images in training_files(root):
        stats = DataStats()
        try:
            records = read_records(path, images, source=name, stats=stats)
        except ValueError as err:  # BadDataError: malformed JSON / not a list
            r.problem(path, str(err).removeprefix(f"{path}: "))
            continue
        for problem in stats.examples:
            r.problem(path, problem.split(f"{path}: ", 1)[-1])
        with_image = [x for x in records if x.image is not None]
        if not records:
            r.problem(path, "no usable records; expected at least one")
        chosen = with_image
        if decode == "none":
            chosen = []
        elif decode == "sample" and len(with_image) > DECODE_SAMPLE:
            chosen = random.Random(0).sample(with_image, DECODE_SAMPLE)
        bad = sum(not decode_ok(r, path, f"record {x.index} (id {x.example_id!r})", x.image) for x in chosen)
        r.counts[str(path)] = (f"{stats.read[name]} records ({len(with_image)} with image, "
                               f"{len(records) - len(with_image)} language-only, {sum(stats.skipped.values()) + bad} "
                               f"bad; {len(chosen)} images decoded)")


def check_root(root: str | Path, *, decode: str = "sample",
               max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Report:
    root = Path(root)
    report = Report(max_pixels=max_pixels)
    if not root.is_dir():
        report.problem(root, "not a directory")
        return report
    check_training(root, report, decode)
    eval_root = root / "eval" if (root / "eval").is_dir() else root
    present = [b for b in BENCHMARK_CHECKS if (eval_root / b).exists()]
    if present or (root / "eval").is_dir():
        seen: set[Path] = set()
        report.image_root = eval_root
        for check in BENCHMARK_CHECKS.values():
            check(eval_root, report, seen)
        report.counts[f"{eval_root} (images)"] = f"{len(seen)} distinct images checked"
    if not report.counts and not report.problems:
        report.problem(root, "no LLaVA training files and no benchmarks found")
    report.finish()
    return report


def cli_check(args: argparse.Namespace) -> int:
    max_pixels = getattr(args, "max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)
    report = check_root(args.root, decode=getattr(args, "decode", "sample"), max_pixels=max_pixels or None)
    width = max((len(k) for k in report.counts), default=0)
    for key, value in report.counts.items():
        print(f"{key.ljust(width)}  {value}")
    eval_root = Path(args.root) / "eval"
    if (eval_root / "scenes.json").is_file() and not report.problems:
        print(format_crop_cut(crop_cut_fraction(eval_root)))
    if report.problems:
        print(f"\n{len(report.problems)} problem(s):")
        for p in report.problems:
            print(f"  {p}")
        return 1
    print("ok")
    return 0

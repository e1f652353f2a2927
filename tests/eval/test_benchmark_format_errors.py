"""Malformed benchmark files raise BenchmarkFormatError naming the file, the record and what was expected."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from benchmark_fixture_files import write_all

from ablate.eval.benchmarks import BenchmarkFormatError, get_benchmark


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_all(tmp_path)
    return tmp_path


def edit_json(path: Path, change: Callable) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_lines(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


def expect(root: Path, benchmark_id: str, *patterns: str) -> None:
    with pytest.raises(BenchmarkFormatError) as info:
        get_benchmark(benchmark_id, root).load()
    msg = str(info.value)
    assert "\n" not in msg
    for p in patterns:
        assert re.search(p, msg), f"{p!r} not in {msg!r}"


def test_vqav2_missing_answers(root: Path) -> None:
    edit_json(root / "vqav2/v2_mscoco_val2014_annotations.json", lambda d: d["annotations"][1].pop("answers"))
    expect(root, "vqav2", r"v2_mscoco_val2014_annotations\.json", r"annotations\[1\] \(question_id 2001\)",
           "expected key 'answers'")


def test_vqav2_question_without_annotation(root: Path) -> None:
    edit_json(root / "vqav2/v2_mscoco_val2014_annotations.json", lambda d: d["annotations"].pop(0))
    expect(root, "vqav2", "annotations.json: question_id 1000", "an annotation for every question")


def test_vqav2_wrong_type(root: Path) -> None:
    edit_json(root / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
              lambda d: d["questions"][2].__setitem__("question_id", "1002"))
    expect(root, "vqav2", r"questions\.json: questions\[2\]", "'question_id' to be an integer, got '1002'")


def test_invalid_json_names_line(root: Path) -> None:
    (root / "gqa/testdev_balanced_questions.json").write_text('{\n"1": {\n  "question": ,\n}}')
    expect(root, "gqa", r"testdev_balanced_questions\.json: line 3: expected valid JSON")


def test_gqa_missing_image_id(root: Path) -> None:
    edit_json(root / "gqa/testdev_balanced_questions.json", lambda d: d["20000001"].pop("imageId"))
    expect(root, "gqa", "question '20000001'", "key 'imageId'")


def test_missing_file(root: Path) -> None:
    (root / "vizwiz/Annotations/val.json").unlink()
    expect(root, "vizwiz", r"vizwiz/Annotations/val\.json: file not found")


def test_vizwiz_bad_answerable(root: Path) -> None:
    edit_json(root / "vizwiz/Annotations/val.json", lambda d: d[1].__setitem__("answerable", 2))
    expect(root, "vizwiz", "record 1", "'answerable' to be 0 or 1, got 2")


def test_textvqa_ocr_missing_question(root: Path) -> None:
    path = root / "textvqa/textvqa_val_v051_ocr.jsonl"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    expect(root, "textvqa-ocr", r"textvqa_val_v051_ocr\.jsonl: question_id 34602", "a line for every question")


def test_pope_bad_jsonl_line_and_label(root: Path) -> None:
    path = root / "pope/coco/coco_pope_popular.json"
    edit_lines(path, 2, '{"question_id": 2, "image": "x.jpg", "text": "Is there a car?", "label": "maybe"}')
    expect(root, "pope", r"coco_pope_popular\.json: line 2", "'label' to be 'yes' or 'no', got 'maybe'")
    edit_lines(path, 2, '{"question_id": 2, "image": "x.jpg",')
    expect(root, "pope", r"coco_pope_popular\.json: line 2: expected one JSON object")


def test_pope_duplicate_ids(root: Path) -> None:
    edit_lines(root / "pope/coco/coco_pope_random.json", 2,
               '{"question_id": 1, "image": "x.jpg", "text": "Is there a tv?", "label": "no"}')
    expect(root, "pope", "duplicate example id 'random-1'")


def test_refcoco_bad_pickle_and_bbox(root: Path) -> None:
    (root / "refer/refcoco/refs(unc).p").write_bytes(b"not a pickle")
    expect(root, "refcoco", r"refs\(unc\)\.p: expected a pickled list of refs")
    with (root / "refer/refcoco+/refs(unc).p").open("wb") as f:
        pickle.dump([{"ref_id": 0, "ann_id": 10, "image_id": 1, "split": "val"}], f, protocol=2)
    expect(root, "refcoco-plus", r"refs\(unc\)\.p: ref 0", "key 'sentences'")
    edit_json(root / "refer/refcocog/instances.json", lambda d: d["annotations"][0].__setitem__("bbox", [1, 2]))
    expect(root, "refcocog", r"refcocog/instances\.json: annotations\[0\]", r"'bbox' = \[x, y, w, h\]")


def test_refcoco_dangling_annotation(root: Path) -> None:
    edit_json(root / "refer/refcoco/instances.json", lambda d: d["annotations"].pop(1))
    expect(root, "refcoco", r"instances\.json: annotation id 11 \(ref 1 of refs\(unc\)\.p\)")


def test_ocid_bbox_string(root: Path) -> None:
    edit_json(root / "ocid-ref/val_expressions.json", lambda d: d["7"].__setitem__("bbox", [30, 2, 60, 30]))
    expect(root, "ocid-ref", r"val_expressions\.json: expression '7'", "'bbox' to be a string")
    edit_json(root / "ocid-ref/val_expressions.json", lambda d: d["7"].__setitem__("bbox", "[30, 2, 90, 30]"))
    expect(root, "ocid-ref", "expression '7'", r"x1<x2<=64")


def test_vsr_tallyqa_ai2d_records(root: Path) -> None:
    edit_lines(root / "vsr/test.jsonl", 2, '{"image": "a.jpg", "caption": "x", "label": true}')
    expect(root, "vsr", r"test\.jsonl: line 2", "'label' to be an integer, got True")
    edit_json(root / "tallyqa/test.json", lambda d: d[1].__setitem__("answer", 17))
    expect(root, "tallyqa", r"tallyqa/test\.json: record 1", r"'answer' a count in 0\.\.15, got 17")
    edit_json(root / "ai2d/questions/12.png.json",
              lambda d: d["questions"]["What stage is E?"].__setitem__("correctAnswer", 4))
    expect(root, "ai2d", r"12\.png\.json: question 'What stage is E\?'", "'correctAnswer' an index")


def test_ai2d_bad_test_ids(root: Path) -> None:
    (root / "ai2d/ai2d_test_ids.csv").write_text("12\nabc\n")
    expect(root, "ai2d", r"ai2d_test_ids\.csv: line 2: expected an integer image id, got 'abc'")
    shutil.rmtree(root / "ai2d/questions")
    expect(root, "ai2d", "questions: folder not found")

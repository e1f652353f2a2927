"""``ablate data check``: counts per file on a valid root; every problem listed, non-zero exit otherwise."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace
from pathlib import Path

import pytest

from ablate.data.check import check_root, cli_check


@pytest.fixture
def copy(world: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(world, dst)
    return dst


def test_valid_root_prints_counts_per_file(world: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_check(Namespace(root=str(world))) == 0
    out = capsys.readouterr().out
    n_align = len(json.loads((world / "align.json").read_text()))
    assert "align.json" in out and f"{n_align} records ({n_align} with image" in out
    for rel in ("vqav2/v2_mscoco_val2014_annotations.json", "gqa/testdev_balanced_questions.json",
                "pope/coco/coco_pope_adversarial.json", "refer/refcocog/refs(umd).p", "ocid-ref/val_expressions.json",
                "vsr/test.jsonl", "tallyqa/test.json", "ai2d/ai2d_test_ids.csv", "textvqa/textvqa_val_v051_ocr.jsonl",
                "vizwiz/Annotations/val.json"):
        assert str(world / "eval" / rel) in out, rel
    assert out.rstrip().endswith("ok")


def test_problems_are_all_listed_with_file_and_record(copy: Path, capsys: pytest.CaptureFixture) -> None:
    ev = copy / "eval"
    (ev / "gqa/testdev_balanced_questions.json").write_text('{"1": {"question": "x",}')
    ann_file = ev / "vqav2/v2_mscoco_val2014_annotations.json"
    ann = json.loads(ann_file.read_text())
    del ann["annotations"][0]["answer_type"]
    ann_file.write_text(json.dumps(ann))
    row = json.loads((ev / "pope/coco/coco_pope_random.json").read_text().splitlines()[0])
    (ev / "pope/val2014" / row["image"]).unlink()
    (ev / "tallyqa/test.json").unlink()
    instruct = json.loads((copy / "instruct.json").read_text())
    instruct[3]["conversations"] = instruct[3]["conversations"][:1]
    (copy / "instruct.json").write_text(json.dumps(instruct))
    corrupt = ev / "vsr/images" / json.loads((ev / "vsr/test.jsonl").read_text().splitlines()[0])["image"]
    corrupt.write_bytes(b"garbage")

    report = check_root(copy)
    text = "\n".join(report.problems)
    assert f"{ev / 'gqa/testdev_balanced_questions.json'}: line 1: expected valid JSON" in text
    qid = ann["annotations"][0]["question_id"]
    assert f"{ann_file}: annotations[0] (question_id {qid}): expected key 'answer_type'" in text
    assert "pope: 1 of " in text and f"{row['image']} (example " in text
    assert f"{ev / 'tallyqa/test.json'}: file not found" in text  # tallyqa/ is there: the benchmark is checked
    assert "instruct.json: record 3" in text and "no assistant" in text
    assert f"{corrupt.name} corrupt" in text
    assert cli_check(Namespace(root=str(copy))) == 1
    assert "problem(s):" in capsys.readouterr().out


def test_absent_benchmarks_are_not_problems_in_dir_mode(copy: Path) -> None:
    for name in ("gqa", "tallyqa", "refer", "textvqa"):
        shutil.rmtree(copy / "eval" / name)
    report = check_root(copy)
    assert report.problems == []
    assert "gqa" not in report.counts and "refcoco" not in report.counts and "pope" in report.counts


def test_empty_directory_is_a_problem(tmp_path: Path) -> None:
    assert check_root(tmp_path).problems == [f"{tmp_path}: no LLaVA training files and no benchmarks found"]
    assert check_root(tmp_path / "nope").problems == [f"{tmp_path / 'nope'}: not a directory"]

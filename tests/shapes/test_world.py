"""The shapes world: deterministic, real on-disk formats, annotations that match the pixels, disjoint eval
images, the resize-crop figure, and the benchmark loaders reading it."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ablate.shapes.scene import COLORS, GRID
from ablate.shapes.world import (
    center_crop_window,
    cli_synth,
    crop_cut_fraction,
    visible_fraction,
    write_world,
)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_world_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    write_world(tmp_path / "a", 12, 5)
    write_world(tmp_path / "b", 12, 5)
    write_world(tmp_path / "c", 12, 6)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a["instruct.json"] != c["instruct.json"]
    assert a["images/000000.jpg"] != c["images/000000.jpg"]


def test_eval_images_are_disjoint_from_training_images(world: Path) -> None:
    digests = _digest(world)
    train = {h for k, h in digests.items() if k.startswith("images/")}
    evals = {h for k, h in digests.items() if k.startswith("eval/") and k.endswith((".jpg", ".png"))}
    assert len(train) > 50 and len(evals) > 100
    assert not train & evals


def _pixel(img: Image.Image, box: list[float]) -> tuple[int, int, int]:
    x1, y1, x2, y2 = box
    return img.getpixel((int((x1 + x2) / 2), int((y1 + y2) / 2 + (y2 - y1) * 0.1)))


def _close(rgb: tuple[int, ...], color: str, tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, COLORS[color], strict=True))


def test_refcoco_boxes_are_pixel_xywh_on_non_square_images_and_cover_their_object(world: Path) -> None:
    root = world / "eval/refer"
    inst = json.loads((root / "refcoco/instances.json").read_text())
    shapes = {c["id"]: c["name"] for c in inst["categories"]}
    images = {im["id"]: im for im in inst["images"]}
    assert any(im["width"] != im["height"] for im in images.values())
    with open(root / "refcoco/refs(unc).p", "rb") as f:
        refs = pickle.load(f)
    anns = {a["id"]: a for a in inst["annotations"]}
    assert {r["split"] for r in refs} >= {"val"}
    for ref in refs:
        ann, im = anns[ref["ann_id"]], images[ref["image_id"]]
        x, y, w, h = ann["bbox"]
        assert 0 <= x < x + w <= im["width"] and 0 <= y < y + h <= im["height"]
        colour, shape = ref["sentences"][0]["sent"].split()[:2]
        assert shapes[ann["category_id"]] == shape
        with Image.open(root / "train2014" / im["file_name"]) as img:
            assert _close(_pixel(img.convert("RGB"), [x, y, x + w, y + h]), colour)
    assert (root / "refcocog/refs(umd).p").is_file() and (root / "refcoco+/refs(unc).p").is_file()


def test_pope_splits_are_balanced_jsonl_and_yes_objects_are_drawn(world: Path) -> None:
    scenes = json.loads((world / "eval/scenes.json").read_text())
    for split in ("random", "popular", "adversarial"):
        rows = [json.loads(x) for x in (world / f"eval/pope/coco/coco_pope_{split}.json").read_text().splitlines()]
        assert [r["question_id"] for r in rows] == list(range(1, len(rows) + 1))
        assert sum(r["label"] == "yes" for r in rows) == sum(r["label"] == "no" for r in rows)
        for r in rows:
            name = re.fullmatch(r"Is there a (.+) in the image\?", r["text"]).group(1)
            present = {o["name"] for o in scenes[f"pope/val2014/{r['image']}"]["objects"]}
            assert (name in present) == (r["label"] == "yes")


def test_vqa_family_formats(world: Path) -> None:
    ev = world / "eval"
    ann = json.loads((ev / "vqav2/v2_mscoco_val2014_annotations.json").read_text())["annotations"]
    assert all(sorted(a["answer_id"] for a in x["answers"]) == list(range(1, 11)) for x in ann)
    gqa = json.loads((ev / "gqa/testdev_balanced_questions.json").read_text())
    assert any(not q["isBalanced"] for q in gqa.values())
    assert any(q["types"]["structural"] == "query" for q in gqa.values())
    assert all((ev / "gqa/images" / f"{q['imageId']}.jpg").is_file() for q in gqa.values())
    viz = json.loads((ev / "vizwiz/Annotations/val.json").read_text())
    assert any(v["answerable"] == 0 and v["answer_type"] == "unanswerable" for v in viz)
    tv = json.loads((ev / "textvqa/TextVQA_0.5.1_val.json").read_text())["data"]
    assert all(len(x["answers"]) == 10 for x in tv)
    ocr = [json.loads(x) for x in (ev / "textvqa/textvqa_val_v051_ocr.jsonl").read_text().splitlines()]
    assert [o["question_id"] for o in ocr] == [x["question_id"] for x in tv]
    scenes = json.loads((ev / "scenes.json").read_text())
    for x in tv:  # the majority answer is one of the words rendered in that image
        words = {w["text"] for w in scenes[f"textvqa/train_images/{x['image_id']}.jpg"]["words"]}
        assert max(set(x["answers"]), key=x["answers"].count) in words


def test_ocid_tally_vsr_ai2d_formats(world: Path) -> None:
    ev = world / "eval"
    ocid = json.loads((ev / "ocid-ref/val_expressions.json").read_text())
    for ref in ocid.values():
        x1, y1, x2, y2 = json.loads(ref["bbox"])
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 and 0 <= ref["take_id"] <= 20
        with Image.open(ev / "ocid-ref/OCID-dataset" / ref["scene_path"]) as img:
            assert img.size == (640, 480)
    tally = json.loads((ev / "tallyqa/test.json").read_text())
    assert {type(t["answer"]) for t in tally} == {int} and {t["issimple"] for t in tally} == {True, False}
    vsr = [json.loads(x) for x in (ev / "vsr/test.jsonl").read_text().splitlines()]
    assert {v["label"] for v in vsr} == {0, 1}
    ids = (ev / "ai2d/ai2d_test_ids.csv").read_text().split()
    q = json.loads((ev / f"ai2d/questions/{ids[0]}.png.json").read_text())
    assert q["imageName"] == f"{ids[0]}.png" and (ev / "ai2d/images" / q["imageName"]).is_file()
    for item in q["questions"].values():
        assert len(item["answerTexts"]) == 4 and 0 <= item["correctAnswer"] < 4


def test_crop_geometry() -> None:
    assert center_crop_window(192, 108) == (42.0, 0.0, 150.0, 108.0)
    assert center_crop_window(108, 192) == (0.0, 42.0, 108.0, 150.0)
    assert visible_fraction((0, 0, 40, 40), 192, 108) == 0.0
    assert visible_fraction((40, 0, 60, 20), 192, 108) == pytest.approx(0.9)
    assert visible_fraction((10, 10, 50, 50), 128, 128) == 1.0
    # the world's edge slots of wide canvases lie (almost) entirely outside the crop
    cols, _ = GRID["wide"]
    assert 192 / cols < 42 + 0.2 * 192 / cols


def test_crop_cut_fraction_counts_edge_targets(world: Path) -> None:
    fractions = crop_cut_fraction(world / "eval")
    assert set(fractions) == {"pope", "refcoco", "refcoco+", "refcocog"}
    # targets sit near the edges of wide/tall images often, but not always
    assert all(0.15 < v < 0.8 for v in fractions.values()), fractions
    # everything counts as kept when any sliver is enough, and as cut when the whole box is required
    assert all(v < fractions[k] or fractions[k] == 0 for k, v in crop_cut_fraction(world / "eval", min_visible=0.01).items())
    assert all(v >= fractions[k] for k, v in crop_cut_fraction(world / "eval", min_visible=1.0).items())


def test_cli_synth_prints_counts_and_the_crop_figure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_synth(Namespace(out=str(tmp_path / "w"), size=8, seed=1)) == 0
    out = capsys.readouterr().out
    assert re.search(r"^instruct\.json\s+\d+$", out, re.M)
    assert re.search(r"targets cut out by resize-crop: pope \d+\.\d%, refcoco \d+\.\d%", out)


def test_world_round_trips_through_the_benchmark_loaders(world: Path) -> None:
    """Every benchmark loads from the synthetic eval root; scoring the gold answer as output is a hit."""
    from ablate.eval.benchmarks import get_benchmark, list_benchmarks

    expected = {"vqav2": 2, "pope": 3, "tallyqa": 1}
    for bid in list_benchmarks():
        bench = get_benchmark(bid, world / "eval", closed_set_mode="generate")
        examples = bench.load()
        assert len(examples) >= expected.get(bid, 1) * 4, bid
        assert all(ex.image.is_file() for ex in examples), bid
        ex = examples[0]
        gold = ex.gold
        if isinstance(gold, list) and gold and isinstance(gold[0], float):
            output = "[" + ", ".join(f"{v:.2f}" for v in gold) + "]"
        elif isinstance(gold, list):
            output = max(set(gold), key=gold.count)
        else:
            output = str(gold)
        assert bench.score(ex, output)["score"] > 0.5, (bid, output, gold)


def _has_colour(img: Image.Image, rgb: tuple[int, int, int], min_pixels: int = 20) -> bool:
    distance = np.abs(np.asarray(img, dtype=np.int32) - np.array(rgb)).sum(-1)
    return int((distance < 60).sum()) >= min_pixels


def test_presence_records_ask_about_colours_the_image_shows_or_lacks(world: Path) -> None:
    rows = json.loads((world / "presence.json").read_text())
    images = {r["image"] for r in rows}
    assert len(images) == len(list((world / "images").glob("*.jpg")))  # every training image
    answers, pictures = [], {}
    for r in rows:
        (human, gpt) = r["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        colour = re.fullmatch(r"<image>\nIs there a (\w+) object in the image\?\nAnswer the question using a "
                              r"single word or phrase\.", human["value"]).group(1)
        if r["image"] not in pictures:  # three questions per image: decode it once
            pictures[r["image"]] = Image.open(world / "images" / r["image"]).convert("RGB")
        img = pictures[r["image"]]
        assert gpt["value"] == ("Yes" if _has_colour(img, COLORS[colour]) else "No"), (r["id"], colour)
        answers.append(gpt["value"])
    assert 0.4 < answers.count("Yes") / len(answers) < 0.6
    per_image = [sum(r["image"] == i for r in rows) for i in sorted(images)]
    assert set(per_image) == {3}


def test_ensure_world_writes_the_data_configs_world_once(tmp_path: Path) -> None:
    from ablate.data.mixes import build_mix
    from ablate.design import compose
    from ablate.shapes.world import ensure_world

    root = tmp_path / "fresh"
    cfg = compose(["data=shapes", f"data.root={root}", "data.synthetic.size=6", "data.synthetic.seed=1"])
    assert ensure_world(cfg.data) == root
    assert len(build_mix(cfg, "align").records) == 6 and (root / "eval/pope/coco/coco_pope_random.json").is_file()
    stamp = (root / "instruct.json").stat().st_mtime_ns
    ensure_world(cfg.data)
    assert (root / "instruct.json").stat().st_mtime_ns == stamp


def test_ensure_world_refuses_a_foreign_non_empty_root(tmp_path: Path) -> None:
    from ablate.design import compose
    from ablate.shapes.world import ensure_world

    root = tmp_path / "busy"
    root.mkdir()
    (root / "notes.txt").write_text("not a shapes world")
    with pytest.raises(FileNotFoundError, match="exists without instruct.json"):
        ensure_world(compose(["data=shapes", f"data.root={root}", "data.synthetic.size=2"]).data)
    assert not list(tmp_path.glob(".busy.tmp-*"))

"""Tiny fixtures of every benchmark in its real on-disk release format (tiny PIL images), for loader tests.

``write_all(root)`` writes them under ``root`` (the layout of docs/contracts.md "Benchmarks on disk") and
returns the example ids each benchmark must yield, in file order.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

from PIL import Image


def image(path: Path, size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def ten(answers: list[str]) -> list[dict]:
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]


def write_vqav2(root: Path) -> list[str]:
    qs = [{"image_id": 1, "question": "What color is the square?", "question_id": 1000},
          {"image_id": 2, "question": "How many circles?", "question_id": 2001},
          {"image_id": 1, "question": "Is it red?", "question_id": 1002}]
    anns = [{"question_id": 1000, "image_id": 1, "question_type": "what color", "answer_type": "other",
             "multiple_choice_answer": "red", "answers": ten(["red"] * 9 + ["orange"])},
            {"question_id": 2001, "image_id": 2, "question_type": "how many", "answer_type": "number",
             "multiple_choice_answer": "2", "answers": ten(["2"] * 2 + ["two"] * 2 + ["3"] * 6)},
            {"question_id": 1002, "image_id": 1, "question_type": "is it", "answer_type": "yes/no",
             "multiple_choice_answer": "yes", "answers": ten(["yes"] * 10)}]
    dump(root / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
         {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "license": {},
          "questions": qs})
    dump(root / "vqav2/v2_mscoco_val2014_annotations.json",
         {"info": {}, "license": {}, "data_type": "mscoco", "data_subtype": "val2014", "annotations": anns})
    for i in (1, 2):
        image(root / f"vqav2/val2014/COCO_val2014_{i:012d}.jpg")
    return ["1000", "2001", "1002"]


def gqa_question(question: str, answer: str, image_id: str, balanced: bool, structural: str) -> dict:
    return {"question": question, "answer": answer, "fullAnswer": f"{answer}.", "imageId": image_id,
            "isBalanced": balanced, "types": {"structural": structural, "semantic": "rel", "detailed": "relVerify"},
            "semantic": [{"operation": "select", "argument": "cup (1)", "dependencies": []}], "semanticStr": "",
            "groups": {"global": None, "local": "13-cup_left"}, "entailed": [], "equivalent": [],
            "annotations": {"question": {}, "answer": {}, "fullAnswer": {}}}


def write_gqa(root: Path) -> list[str]:
    dump(root / "gqa/testdev_balanced_questions.json", {
        "201307251": gqa_question("Is the cup on the left?", "yes", "n161313", True, "verify"),
        "20000001": gqa_question("What is on the table?", "cup", "n161313", True, "query"),
        "20000002": gqa_question("Unbalanced?", "no", "n161313", False, "verify"),
    })
    image(root / "gqa/images/n161313.jpg")
    return ["201307251", "20000001"]


def write_vizwiz(root: Path) -> list[str]:
    rows = [{"image": "VizWiz_val_00000000.jpg", "question": "What is this?",
             "answers": [{"answer": "unanswerable", "answer_confidence": "yes"}] * 10,
             "answer_type": "unanswerable", "answerable": 0},
            {"image": "VizWiz_val_00000001.jpg", "question": "What color is this?",
             "answers": [{"answer": "red", "answer_confidence": "yes"}] * 8
             + [{"answer": "pink", "answer_confidence": "maybe"}] * 2,
             "answer_type": "other", "answerable": 1}]
    dump(root / "vizwiz/Annotations/val.json", rows)
    for r in rows:
        image(root / "vizwiz/val" / r["image"])
    return ["VizWiz_val_00000000.jpg", "VizWiz_val_00000001.jpg"]


def write_textvqa(root: Path) -> list[str]:
    data = [{"question": "what brand is this?", "image_id": "0054c91397f2fe05", "image_classes": [],
             "answers": ["nikon"] * 7 + ["nikon camera"] * 3, "question_id": 34602, "image_width": 32,
             "image_height": 24, "set_name": "val"},
            {"question": "what number is shown?", "image_id": "00685bc495504d61", "image_classes": [],
             "answers": ["12"] * 10, "question_id": 34603, "image_width": 32, "image_height": 24, "set_name": "val"}]
    dump(root / "textvqa/TextVQA_0.5.1_val.json",
         {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data})
    jsonl(root / "textvqa/textvqa_val_v051_ocr.jsonl", [
        {"question_id": 34603, "image": "00685bc495504d61.jpg", "category": "default",
         "text": "what number is shown?\nReference OCR token: 12, sale\nAnswer the question using a single word or phrase."},
        {"question_id": 34602, "image": "0054c91397f2fe05.jpg", "category": "default",
         "text": "what brand is this?\nReference OCR token: NIKON\nAnswer the question using a single word or phrase."},
    ])
    for d in data:
        image(root / "textvqa/train_images" / f"{d['image_id']}.jpg")
    return ["34602", "34603"]


POPE_ROWS = {
    "adversarial": [("COCO_val2014_000000310196.jpg", "snowboard", "yes"), ("COCO_val2014_000000310196.jpg", "dog", "no")],
    "popular": [("COCO_val2014_000000310196.jpg", "snowboard", "yes"), ("COCO_val2014_000000000042.jpg", "car", "no")],
    "random": [("COCO_val2014_000000000042.jpg", "person", "yes"), ("COCO_val2014_000000310196.jpg", "tv", "no"),
               ("COCO_val2014_000000000042.jpg", "cat", "yes")],
}


def write_pope(root: Path) -> list[str]:
    ids = []
    for split, rows in POPE_ROWS.items():
        jsonl(root / f"pope/coco/coco_pope_{split}.json",
              [{"question_id": i + 1, "image": img, "text": f"Is there a {obj} in the image?", "label": label}
               for i, (img, obj, label) in enumerate(rows)])
        ids += [f"{split}-{i + 1}" for i in range(len(rows))]
        for img, _, _ in rows:
            image(root / "pope/val2014" / img)
    return ids


def write_refer(root: Path) -> dict[str, list[str]]:
    """RefCOCO / RefCOCO+ / RefCOCOg; image 64x32 (non-square, so x/y mix-ups surface)."""
    instances = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "width": 64, "height": 32}],
                 "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "bbox": [8, 4, 16, 16], "area": 256,
                                  "iscrowd": 0, "segmentation": [[8, 4, 24, 4, 24, 20, 8, 20]]},
                                 {"id": 11, "image_id": 1, "category_id": 1, "bbox": [40, 8, 20, 20], "area": 400,
                                  "iscrowd": 0, "segmentation": [[40, 8, 60, 8, 60, 28, 40, 28]]}],
                 "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    refs = [{"ref_id": 0, "ann_id": 10, "image_id": 1, "category_id": 1, "split": "val",
             "file_name": "COCO_train2014_000000000001_10.jpg", "sent_ids": [0, 1],
             "sentences": [{"sent_id": 0, "sent": "left man", "raw": "Left man", "tokens": ["left", "man"]},
                           {"sent_id": 1, "sent": "man on left", "raw": "man on left", "tokens": ["man", "on", "left"]}]},
            {"ref_id": 1, "ann_id": 11, "image_id": 1, "category_id": 1, "split": "val",
             "file_name": "COCO_train2014_000000000001_11.jpg", "sent_ids": [2],
             "sentences": [{"sent_id": 2, "sent": "right man", "raw": "right man", "tokens": ["right", "man"]}]},
            {"ref_id": 2, "ann_id": 11, "image_id": 1, "category_id": 1, "split": "testA",
             "file_name": "COCO_train2014_000000000001_11.jpg", "sent_ids": [3],
             "sentences": [{"sent_id": 3, "sent": "other man", "raw": "other man", "tokens": ["other", "man"]}]}]
    out = {}
    for bench, folder, refs_file in (("refcoco", "refcoco", "refs(unc).p"), ("refcoco-plus", "refcoco+", "refs(unc).p"),
                                     ("refcocog", "refcocog", "refs(umd).p")):
        (root / "refer" / folder).mkdir(parents=True, exist_ok=True)
        with (root / "refer" / folder / refs_file).open("wb") as f:
            pickle.dump(refs, f, protocol=2)
        dump(root / "refer" / folder / "instances.json", instances)
        out[bench] = ["0", "1", "2"]
    image(root / "refer/train2014/COCO_train2014_000000000001.jpg", size=(64, 32))
    return out


def write_ocid(root: Path) -> list[str]:
    scene = "ARID20/table/top/seq08/rgb/result_2018-08-21-14-44-31.png"
    data = {"23": {"take_id": 3, "scene_path": scene, "sentence": "the red box on the left", "bbox": "[4, 8, 20, 24]",
                   "class": "box", "scene_instance_id": 1, "sequence_path": "ARID20/table/top/seq08"},
            "7": {"take_id": 18, "scene_path": scene, "sentence": "the ball", "bbox": "[30, 2, 60, 30]",
                  "class": "ball", "scene_instance_id": 2, "sequence_path": "ARID20/table/top/seq08"}}
    dump(root / "ocid-ref/val_expressions.json", data)
    image(root / "ocid-ref/OCID-dataset" / scene, size=(64, 32))
    return ["23", "7"]


def write_vsr(root: Path) -> list[str]:
    jsonl(root / "vsr/test.jsonl", [
        {"image": "000000085637.jpg", "caption": "The cat is behind the laptop.", "label": 1, "relation": "behind",
         "subj": "cat", "obj": "laptop"},
        {"image": "000000085637.jpg", "caption": "The cat is in front of the laptop.", "label": 0,
         "relation": "in front of", "subj": "cat", "obj": "laptop"},
    ])
    image(root / "vsr/images/000000085637.jpg")
    return ["000000085637-", "000000085637-"]  # prefixes: the rest is a caption digest


def write_tallyqa(root: Path) -> list[str]:
    dump(root / "tallyqa/test.json", [
        {"image": "VG_100K_2/1.jpg", "question": "How many dogs?", "answer": 2, "question_id": 7, "image_id": 1,
         "data_source": "amt", "issimple": True},
        {"image": "VG_100K_2/1.jpg", "question": "How many dogs are left of the red car?", "answer": 0,
         "question_id": 9, "image_id": 1, "data_source": "amt", "issimple": False},
    ])
    image(root / "tallyqa/VG_100K_2/1.jpg")
    return ["7", "9"]


def write_ai2d(root: Path) -> list[str]:
    dump(root / "ai2d/questions/0.png.json", {"imageName": "0.png", "questions": {
        "Which is a producer?": {"questionId": "0.png-0", "answerTexts": ["fox", "grass", "hawk", "snake"],
                                 "correctAnswer": 1, "abcLabel": False},
        "Which eats grass?": {"questionId": "0.png-1", "answerTexts": ["rabbit", "hawk", "sun", "rock"],
                              "correctAnswer": 0, "abcLabel": False}}})
    dump(root / "ai2d/questions/12.png.json", {"imageName": "12.png", "questions": {
        "What stage is E?": {"questionId": "12.png-0", "answerTexts": ["egg", "larva", "pupa", "adult"],
                             "correctAnswer": 3, "abcLabel": True}}})
    with (root / "ai2d/ai2d_test_ids.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["12"], ["99"]])
    for name in ("0.png", "12.png"):
        image(root / "ai2d/images" / name)
    return ["0.png-0", "0.png-1", "12.png-0"]


def write_coco(root: Path, *, captions: bool = True) -> list[str]:
    """Three images of the CHAIR-500 list with COCO-schema instances (real category ids and names)."""
    cats = [{"supercategory": "person", "id": 1, "name": "person"},
            {"supercategory": "animal", "id": 18, "name": "dog"},
            {"supercategory": "sports", "id": 34, "name": "frisbee"},
            {"supercategory": "outdoor", "id": 15, "name": "bench"},
            {"supercategory": "sports", "id": 38, "name": "kite"}]
    images = [{"license": 3, "file_name": f"COCO_val2014_{i:012d}.jpg", "coco_url": "", "height": 24, "width": 32,
               "date_captured": "2013-11-14 16:28:13", "flickr_url": "", "id": i} for i in (2239, 2302, 3001)]
    anns = []
    for k, (image_id, cat) in enumerate([(2239, 1), (2239, 18), (2239, 18), (2239, 34), (2302, 15), (3001, 1)]):
        anns.append({"segmentation": [[1.0, 1.0, 9.0, 1.0, 9.0, 9.0]], "area": 32.0, "iscrowd": 0,
                     "image_id": image_id, "bbox": [1.0, 1.0, 8.0, 8.0], "category_id": cat, "id": 900 + k})
    base = root / "chair"
    dump(base / "annotations/instances_val2014.json",
         {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats})
    if captions:  # a human caption of 3001 names a kite the instances do not have
        dump(base / "annotations/captions_val2014.json", {"info": {}, "licenses": [], "images": images,
             "annotations": [{"image_id": 3001, "id": 1, "caption": "A person flying a kite on a beach."}]})
    (base / "image_ids.txt").write_text("2239\n2302\n3001\n")
    for im in images:
        image(base / "val2014" / im["file_name"])
    return ["2239", "2302", "3001"]


LRV_ROWS = [
    # LRV's README instruction line (tests/fixtures/lrv) and two in its format
    {"image_id": "2392588", "question": "Can you see a blue teapot on the white electric stove in the kitchen?",
     "answer": "There is no mention of a teapot on the white electric stove in the kitchen.", "task": "negative"},
    {"image_id": "2412946", "question": "Is the woman surfing on a green surfboard?",
     "answer": "Yes, she is surfing on a green surfboard.", "task": "positive"},
]


def write_lrv(root: Path, rows: list[dict] | None = None) -> list[str]:
    rows = LRV_ROWS if rows is None else rows
    dump(root / "lrv/negative_eval.json", rows)
    for r in rows:
        image(root / "lrv/images" / f"{r['image_id']}.jpg")
    return [f"{r['image_id']}-{i}" for i, r in enumerate(rows)]


def write_all(root: Path) -> dict[str, list[str]]:
    text = write_textvqa(root)
    return {"vqav2": write_vqav2(root), "gqa": write_gqa(root), "vizwiz": write_vizwiz(root), "textvqa": text,
            "textvqa-ocr": text, **write_refer(root), "ocid-ref": write_ocid(root), "vsr": write_vsr(root),
            "pope": write_pope(root), "tallyqa": write_tallyqa(root), "ai2d": write_ai2d(root),
            "chair": write_coco(root), "lrv-neg": write_lrv(root)}

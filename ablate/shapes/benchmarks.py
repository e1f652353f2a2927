"""The shapes world's benchmarks under ``eval/``: VQAv2, GQA, VizWiz, TextVQA (+ OCR jsonl), POPE,
RefCOCO/+/g, OCID-Ref, VSR, TallyQA and AI2D in the real on-disk formats of docs/contracts.md, so they go
through exactly the loaders the real benchmarks go through.  Every release file's path comes from the
benchmark's ``Layout`` (``EvalWriter.file``), the description its loader, ``ablate data check`` and
``ablate data prepare`` read."""

from __future__ import annotations

import csv
import json
import pickle
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.shapes.questions import (
    QA,
    QA_FAMILIES,
    SHORT,
    plural,
    qa_color,
    qa_relation,
    qa_unanswerable,
    qa_word,
    referring_expression,
    similar_absent,
)
from ablate.shapes.scene import (
    COLORS,
    SHAPES,
    WORDS,
    Scene,
    _edge_slots,
    dump_json,
    render,
    sample_scene,
    save,
    write_jsonl,
)


# ----------------------------------------------------------------------------------------- benchmarks
@dataclass
class EvalWriter:
    """Writes eval images under ``root`` and remembers each one's scene (for ``scenes.json``)."""

    root: Path
    seed: int
    n: int  # questions per benchmark (roughly)
    scenes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rng(self, benchmark: str) -> random.Random:
        return random.Random(f"{self.seed}/eval/{benchmark}")

    def file(self, benchmark_id: str, role: str) -> Path:
        """Where a benchmark's release file goes: its loader's own layout description (one source of paths)."""
        from ablate.eval.benchmarks import BENCHMARKS

        return BENCHMARKS[benchmark_id].layout.path(self.root, role)

    def image(self, scene: Scene, rel: str) -> None:
        save(render(scene), self.root / rel)
        self.scenes[rel] = scene.to_json()


def _vqa_answers(rng: random.Random, answer: str, family: str) -> list[dict[str, Any]]:
    """10 human answers with unique answer_ids: mostly ``answer``, a few plausible disagreements."""
    if family == "presence":
        alt = ["no" if answer == "yes" else "yes"]
    elif family == "count":
        alt = [str(max(0, int(answer) + d)) for d in (-1, 1) if int(answer) + d >= 0]
    elif family == "color":
        alt = [c for c in COLORS if c != answer]
    elif family == "shape":
        alt = [s for s in SHAPES if s != answer]
    else:
        alt = [w for w in WORDS if w != answer]
    n_right = rng.choice((10, 10, 9, 9, 8, 7, 4))
    answers = [answer] * n_right + [rng.choice(alt) for _ in range(10 - n_right)]
    rng.shuffle(answers)
    return [{"answer": a, "answer_confidence": rng.choice(("yes", "yes", "maybe")), "answer_id": i + 1}
            for i, a in enumerate(answers)]


VQA_TYPES = {"presence": ("is there a", "yes/no"), "count": ("how many", "number"),
             "color": ("what color is the", "other"), "shape": ("what shape is the", "other"),
             "word": ("what word is", "other")}


def _eval_scene(rng: random.Random, *, words: int = 0, edge: bool = False, lo: int = 1, hi: int = 5) -> Scene:
    aspect = rng.choices(("wide", "tall", "square"), (0.45, 0.3, 0.25) if edge else (0.4, 0.3, 0.3))[0]
    group = rng.randint(2, 5) if rng.random() < 0.25 else 0
    return sample_scene(rng, aspect, rng.randint(lo, hi), n_words=words, group=group,
                        edge_target=edge and rng.random() < 0.7)


def _questions(scene: Scene, rng: random.Random, families: tuple[str, ...], k: int) -> list[QA]:
    out: list[QA] = []
    for _ in range(4 * k):
        if len(out) == k:
            break
        qa = QA_FAMILIES[rng.choice(families)](scene, rng)
        if qa is not None and all(q.question != qa.question for q in out):
            out.append(qa)
    return out


def write_vqav2(w: EvalWriter) -> dict[str, int]:
    rng, questions, annotations = w.rng("vqav2"), [], []
    for i in range(max(1, w.n // 3)):
        image_id = 100000 + i
        scene = _eval_scene(rng, words=int(rng.random() < 0.2))
        w.image(scene, f"vqav2/val2014/COCO_val2014_{image_id:012d}.jpg")
        for k, qa in enumerate(_questions(scene, rng, tuple(VQA_TYPES), 3)):
            qid = image_id * 10 + k
            answers = _vqa_answers(rng, qa.answer, qa.family)
            qtype, atype = VQA_TYPES[qa.family]
            questions.append({"image_id": image_id, "question": qa.question, "question_id": qid})
            annotations.append({"question_id": qid, "image_id": image_id, "question_type": qtype,
                                "answer_type": atype,
                                "multiple_choice_answer": Counter(a["answer"] for a in answers).most_common(1)[0][0],
                                "answers": answers})
    head = {"info": {"description": "ablate synthetic shapes world"}, "license": {}, "data_type": "mscoco",
            "data_subtype": "val2014"}
    dump_json(w.file("vqav2", "questions"),
          {**head, "task_type": "Open-Ended", "questions": questions})
    dump_json(w.file("vqav2", "annotations"), {**head, "annotations": annotations})
    return {"vqav2 questions": len(questions)}


GQA_TYPES = {"presence": ("verify", "obj", "existC"), "color": ("query", "attr", "queryAttr"),
             "shape": ("query", "attr", "queryObject"), "relation": ("verify", "rel", "relVerify"),
             "choose": ("choose", "attr", "chooseAttr")}


def _gqa_item(scene: Scene, rng: random.Random) -> tuple[str, str, str, str, list[dict[str, Any]]] | None:
    """(question, answer, fullAnswer, family, semantic program) for a GQA-style question."""
    family = rng.choice(tuple(GQA_TYPES))
    if family == "choose":
        qa = qa_color(scene, rng)
        if qa is None:
            return None
        other = rng.choice([c for c in COLORS if c != qa.answer])
        a, b = rng.sample([qa.answer, other], 2)
        q = f"Is the {qa.target.shape} {a} or {b}?"
        prog = [{"operation": "select", "argument": f"{qa.target.shape} (0)", "dependencies": []},
                {"operation": "choose color", "argument": f"{a}|{b}", "dependencies": [0]}]
        return q, qa.answer, f"The {qa.target.shape} is {qa.answer}.", family, prog
    if family == "relation":
        qa = qa_relation(scene, rng)
        if qa is None:
            return None
        m = qa.meta
        q = f"Is the {m['subj']} {m['relation']} the {m['obj']}?"
        ans = "yes" if qa.answer == "true" else "no"
        prog = [{"operation": "select", "argument": f"{m['obj']} (1)", "dependencies": []},
                {"operation": "relate", "argument": f"{m['subj']},{m['relation']},s (0)", "dependencies": [0]},
                {"operation": "verify rel", "argument": m["relation"], "dependencies": [1]}]
        return q, ans, f"{ans.capitalize()}, it is{'' if ans == 'yes' else ' not'}.", family, prog
    qa = QA_FAMILIES[family](scene, rng)
    if qa is None:
        return None
    full = {"presence": f"{qa.answer.capitalize()}, there is{'' if qa.answer == 'yes' else ' no'} such object.",
            "color": f"The object is {qa.answer}.", "shape": f"It is a {qa.answer}."}[family]
    prog = [{"operation": "select", "argument": qa.question.split(" the ")[-1].rstrip("?"), "dependencies": []},
            {"operation": {"presence": "exist", "color": "query color", "shape": "query name"}[family],
             "argument": "", "dependencies": [0]}]
    return qa.question, qa.answer, full, family, prog


def write_gqa(w: EvalWriter) -> dict[str, int]:
    rng, items = w.rng("gqa"), {}
    for i in range(max(1, w.n // 3)):
        image_id = f"n{500000 + i}"
        scene = _eval_scene(rng, lo=2)
        w.image(scene, f"gqa/images/{image_id}.jpg")
        n_made = 0
        for k in range(6):
            made = _gqa_item(scene, rng) if n_made < 3 else None
            if made is None:
                continue
            n_made += 1
            q, ans, full, family, prog = made
            qid = str(20100000 + i * 10 + k)
            structural, semantic, detailed = GQA_TYPES[family]
            items[qid] = {"question": q, "answer": ans, "fullAnswer": full, "imageId": image_id,
                          "isBalanced": rng.random() > 0.12,
                          "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
                          "semantic": prog, "semanticStr": " ".join(f"{p['operation']}: {p['argument']}" for p in prog),
                          "groups": {"global": None, "local": f"{family}-{ans}"}, "entailed": [],
                          "equivalent": [qid], "annotations": {"question": {}, "answer": {}, "fullAnswer": {}}}
    dump_json(w.file("gqa", "questions"), items)
    return {"gqa questions": len(items), "gqa balanced": sum(x["isBalanced"] for x in items.values())}


def write_vizwiz(w: EvalWriter) -> dict[str, int]:
    rng, rows = w.rng("vizwiz"), []
    for i in range(w.n):
        scene = _eval_scene(rng)
        name = f"VizWiz_val_{i:08d}.jpg"
        w.image(scene, f"vizwiz/val/{name}")
        qa = qa_unanswerable(scene, rng) if rng.random() < 0.25 else None
        if qa is not None:
            answers = [{"answer": "unanswerable", "answer_confidence": "yes"} for _ in range(10)]
            rows.append({"image": name, "question": qa.question, "answers": answers,
                         "answer_type": "unanswerable", "answerable": 0})
            continue
        qa = _questions(scene, rng, ("presence", "count", "color", "shape"), 1)[0]
        answers = [{k: v for k, v in a.items() if k != "answer_id"} for a in _vqa_answers(rng, qa.answer, qa.family)]
        rows.append({"image": name, "question": qa.question, "answers": answers,
                     "answer_type": VQA_TYPES[qa.family][1], "answerable": 1})
    dump_json(w.file("vizwiz", "annotations"), rows)
    return {"vizwiz questions": len(rows), "vizwiz unanswerable": sum(r["answerable"] == 0 for r in rows)}


def write_textvqa(w: EvalWriter) -> dict[str, int]:
    rng, data, ocr = w.rng("textvqa"), [], []
    for i in range(w.n):
        scene = _eval_scene(rng, words=rng.choice((1, 2, 2)), hi=3)
        image_id = f"{rng.getrandbits(64):016x}"
        w.image(scene, f"textvqa/train_images/{image_id}.jpg")
        qa = qa_word(scene, rng)
        qid = 34000 + i
        answers = [a["answer"] for a in _vqa_answers(rng, qa.answer, "word")]
        data.append({"question": qa.question, "image_id": image_id, "image_classes": ["shape"],
                     "flickr_original_url": "", "flickr_300k_url": "", "image_width": scene.width,
                     "image_height": scene.height, "answers": answers,
                     "question_tokens": qa.question.lower().rstrip("?").split(), "question_id": qid,
                     "set_name": "val"})
        tokens = ", ".join(wd.word for wd in sorted(scene.words, key=lambda x: x.center))
        ocr.append({"question_id": qid, "image": f"{image_id}.jpg",
                    "text": f"{qa.question}\nReference OCR token: {tokens}{SHORT}", "category": "default"})
    dump_json(w.file("textvqa", "questions"),
          {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data})
    write_jsonl(w.file("textvqa-ocr", "ocr"), ocr)
    return {"textvqa questions": len(data)}


def _cooccurrence_rank(name: str, present: list[str], co: Counter) -> tuple[int, str]:
    return (-sum(co[(p, name)] for p in present), name)


def write_pope(w: EvalWriter) -> dict[str, int]:
    """POPE: per image 3 present objects (yes) and 3 absent ones (no) per split; negatives drawn at random,
    from the most frequent objects (popular) or from objects sharing a shape/colour with present ones and
    co-occurring most (adversarial)."""
    rng = w.rng("pope")
    scenes: list[tuple[str, Scene]] = []
    for i in range(max(2, w.n // 2)):  # many images: an edge effect shows per image, not per question
        scene = _eval_scene(rng, edge=True, lo=3)
        name = f"COCO_val2014_{300000 + i:012d}.jpg"
        w.image(scene, f"pope/val2014/{name}")
        scenes.append((name, scene))
    freq = Counter(o.name for _, s in scenes for o in s.objects)
    co = Counter((a.name, b.name) for _, s in scenes for a in s.objects for b in s.objects if a is not b)
    all_names = [f"{c} {s}" for c in COLORS for s in SHAPES]
    splits: dict[str, list[dict[str, Any]]] = {"random": [], "popular": [], "adversarial": []}
    for name, scene in scenes:
        edge = _edge_slots(scene.aspect)
        present = sorted(scene.objects, key=lambda o: (o.slot not in edge, rng.random()))[:3]
        absent = [n for n in all_names if scene.find(n) is None]
        names = [o.name for o in scene.objects]
        similar = similar_absent(scene, absent)
        negatives = {"random": rng.sample(absent, 3),
                     "popular": sorted(absent, key=lambda n: (-freq[n], n))[:3],
                     "adversarial": sorted(similar or absent, key=lambda n: _cooccurrence_rank(n, names, co))[:3]}
        for split, rows in splits.items():
            for pos, neg in zip(present, negatives[split], strict=False):
                for obj, label in ((pos.name, "yes"), (neg, "no")):
                    rows.append({"question_id": len(rows) + 1, "image": name,
                                 "text": f"Is there a {obj} in the image?", "label": label})
    for split, rows in splits.items():
        write_jsonl(w.file("pope", split), rows)
    return {f"pope {k}": len(v) for k, v in splits.items()}


REFER_DATASETS = {"refcoco": ("refs(unc).p", ("testA", "testB")), "refcoco+": ("refs(unc).p", ("testA", "testB")),
                  "refcocog": ("refs(umd).p", ("test",))}


def write_refer(w: EvalWriter) -> dict[str, int]:
    """RefCOCO / RefCOCO+ / RefCOCOg: shared non-square images, COCO instances with pixel xywh boxes, and
    pickled refs per dataset (most in split "val"; some in the test splits, which loaders must skip)."""
    rng = w.rng("refer")
    images, annotations, per_image = [], [], []
    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]
    for i in range(max(1, w.n // 2)):
        image_id = 200000 + i
        scene = _eval_scene(rng, edge=True, lo=2)
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        w.image(scene, f"refer/train2014/{file_name}")
        images.append({"id": image_id, "file_name": file_name, "width": scene.width, "height": scene.height})
        ann_ids = []
        for k, o in enumerate(scene.objects):
            x1, y1, x2, y2 = o.box
            ann_id = image_id * 100 + k
            ann_ids.append(ann_id)
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": SHAPES.index(o.shape) + 1,
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0,
                                "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]})
        per_image.append((image_id, scene, ann_ids))
    instances = {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    counts = {}
    for dataset, (_, test_splits) in REFER_DATASETS.items():
        refs, sent_id = [], 0
        for image_id, scene, ann_ids in per_image:
            for k in rng.sample(range(len(scene.objects)), min(len(scene.objects), rng.randint(1, 2))):
                t = scene.objects[k]
                sentences = []
                for _ in range(rng.randint(1, 2)):
                    raw = referring_expression(scene, t, rng, dataset)
                    sentences.append({"sent_id": sent_id, "sent": raw.lower(), "raw": raw, "tokens": raw.lower().split()})
                    sent_id += 1
                split = "val" if rng.random() < 0.85 else rng.choice(test_splits)
                refs.append({"ref_id": len(refs), "ann_id": ann_ids[k], "image_id": image_id,
                             "category_id": SHAPES.index(t.shape) + 1, "split": split,
                             "file_name": f"COCO_train2014_{image_id:012d}_{ann_ids[k]}.jpg",
                             "sent_ids": [s["sent_id"] for s in sentences], "sentences": sentences})
        bid = {"refcoco": "refcoco", "refcoco+": "refcoco-plus", "refcocog": "refcocog"}[dataset]
        w.file(bid, "refs").parent.mkdir(parents=True, exist_ok=True)
        with open(w.file(bid, "refs"), "wb") as f:
            pickle.dump(refs, f, protocol=2)
        dump_json(w.file(bid, "instances"), instances)
        counts[f"{dataset} val sentences"] = sum(len(r["sentences"]) for r in refs if r["split"] == "val")
    return counts


OCID_CLUTTER = ((range(0, 10), (4, 7), 1.0), (range(10, 17), (8, 12), 1.2), (range(17, 21), (13, 18), 1.35))


def write_ocid(w: EvalWriter) -> dict[str, int]:
    """OCID-Ref: 640x480 table-top scenes whose clutter grows with ``take_id`` (free 0-9, touching 10-16,
    stacked 17-20); ``val_expressions.json`` maps ref id -> {sentence, scene_path, bbox "[x1, y1, x2, y2]", ...}."""
    rng, refs = w.rng("ocid-ref"), {}
    for i in range(max(3, w.n // 3)):
        takes, (lo, hi), factor = OCID_CLUTTER[i % 3]
        take_id = rng.choice(list(takes))
        scene = sample_scene(rng, "ocid", rng.randint(lo, hi), size_factor=factor, small_prob=0.2)
        seq = f"ARID20/table/top/seq{i // 3 + 1:02d}"
        scene_path = f"{seq}/rgb/result_2018-08-21-{10 + i // 60:02d}-{i % 60:02d}-{take_id:02d}.png"
        w.image(scene, f"ocid-ref/OCID-dataset/{scene_path}")
        for k in rng.sample(range(len(scene.objects)), min(3, len(scene.objects))):
            t = scene.objects[k]
            ref_id = len(refs)
            refs[str(ref_id)] = {"ref_id": ref_id, "sentence": referring_expression(scene, t, rng, "refcoco"),
                                 "scene_path": scene_path, "sequence_path": seq, "take_id": take_id,
                                 "bbox": json.dumps(list(t.box)), "class": t.shape, "scene_instance_id": k + 1,
                                 "sub_index": 0, "instance_id": i * 100 + k, "anno_id": ref_id}
    dump_json(w.file("ocid-ref", "expressions"), refs)
    return {"ocid-ref expressions": len(refs)}


def write_vsr(w: EvalWriter) -> dict[str, int]:
    rng, rows = w.rng("vsr"), []
    while len(rows) < w.n:
        scene = _eval_scene(rng, lo=2, hi=4)
        name = f"{400000 + len(rows):012d}.jpg"
        made = [qa for qa in (qa_relation(scene, rng) for _ in range(2)) if qa is not None]
        if not made:
            continue
        w.image(scene, f"vsr/images/{name}")
        for qa in {q.question: q for q in made}.values():
            rows.append({"image": name, "caption": qa.question, "label": int(qa.answer == "true"),
                         "relation": qa.meta["relation"], "subj": qa.meta["subj"], "obj": qa.meta["obj"]})
    write_jsonl(w.file("vsr", "test"), rows)
    return {"vsr captions": len(rows)}


def write_tallyqa(w: EvalWriter) -> dict[str, int]:
    rng, rows = w.rng("tallyqa"), []
    for i in range(w.n):
        aspect = rng.choice(("wide", "tall", "square"))
        k = rng.randint(0, 6)
        scene = sample_scene(rng, aspect, k + rng.randint(0, 2), group=k)
        rel = f"VG_100K_2/{i + 1}.jpg"
        w.image(scene, f"tallyqa/{rel}")
        if rng.random() < 0.7:
            shape = Counter(o.shape for o in scene.objects).most_common(1)[0][0] if k > 1 else rng.choice(SHAPES)
            q, ans, simple = f"How many {plural(shape)} are there?", scene.count(shape), True
        else:
            q, ans, simple = "How many shapes are in the picture?", len(scene.objects), False
        rows.append({"image": rel, "question": q, "answer": ans, "question_id": 700000 + i, "image_id": i + 1,
                     "data_source": "amt" if simple else "imported_genome", "issimple": simple})
    dump_json(w.file("tallyqa", "test"), rows)
    return {"tallyqa questions": len(rows)}


def write_ai2d(w: EvalWriter) -> dict[str, int]:
    rng, ids, n_q = w.rng("ai2d"), [], 0
    for i in range(max(1, w.n // 2)):
        img_id = str(1000 + i)
        scene = sample_scene(rng, "square", rng.randint(2, 5))
        w.image(scene, f"ai2d/images/{img_id}.png")
        questions = {}
        for k, qa in enumerate(_questions(scene, rng, ("choice",), 2)):
            questions[qa.question] = {"questionId": f"{img_id}.png-{k}", "answerTexts": qa.meta["options"],
                                      "correctAnswer": "ABCD".index(qa.answer), "abcLabel": False}
        n_q += len(questions)
        dump_json(w.root / f"ai2d/questions/{img_id}.png.json", {"imageName": f"{img_id}.png", "questions": questions})
        ids.append(img_id)
    with open(w.file("ai2d", "test_ids"), "w", newline="") as f:
        csv.writer(f).writerows([i] for i in ids)
    return {"ai2d questions": n_q}


EVAL_WRITERS: dict[str, Callable[[EvalWriter], dict[str, int]]] = {
    "vqav2": write_vqav2, "gqa": write_gqa, "vizwiz": write_vizwiz, "textvqa": write_textvqa, "pope": write_pope,
    "refer": write_refer, "ocid-ref": write_ocid, "vsr": write_vsr, "tallyqa": write_tallyqa, "ai2d": write_ai2d,
}

"""VQAv2 val (Prismatic: the full 10 answers, TRI's VQA-accuracy variant; official-2021 stored alongside).

Files (under ``eval.root``): ``vqav2/v2_OpenEnded_mscoco_val2014_questions.json`` (``{"questions": [{image_id,
question, question_id}]}``), ``vqav2/v2_mscoco_val2014_annotations.json`` (``{"annotations": [{question_id,
answer_type, question_type, answers: [{answer, answer_confidence, answer_id} x 10]}]}``), images
``vqav2/val2014/COCO_val2014_%012d.jpg``.  Example id = ``question_id``.
"""

from __future__ import annotations

from typing import Any

from ablate.eval.benchmarks.base import (
    Benchmark,
    Example,
    common_metrics,
    field_of,
    format_error,
    grouped_accuracy,
    mean,
)
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.benchmarks.prompts import vqa_prompt
from ablate.eval.scoring import vqa_accuracy


def answer_strings(record: dict, path: Any, where: str) -> list[str]:
    """The answer strings of a VQA-style ``answers`` list of ``{"answer": ...}`` objects."""
    answers = field_of(record, "answers", list, path, where)
    return [field_of(a, "answer", str, path, f"{where} answers[{i}]") for i, a in enumerate(answers)]


LAYOUT = Layout(
    name="vqav2", benchmarks=("vqav2",), source="visualqa.org (v2 val questions + annotations) and COCO val2014",
    files={
        "questions": FileSpec("vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
                              ("v2_OpenEnded_mscoco_val2014_questions.json", "v2_val2014_questions.json"),
                              records="questions", keys={"question_id": int, "image_id": int, "question": str}),
        "annotations": FileSpec("vqav2/v2_mscoco_val2014_annotations.json",
                                ("v2_mscoco_val2014_annotations.json", "v2_val2014_annotations.json"),
                                records="annotations", id_key="question_id", keys={"question_id": int, "answers": list,
                                                             "answer_type": str, "question_type": str}),
    },
    dirs={"vqav2/val2014": ("val2014", "images_val2014")},
)


class VQAv2(Benchmark):
    id = "vqav2"
    layout = LAYOUT
    description = "VQA accuracy (TRI variant), mean over questions"

    def read(self) -> list[Example]:
        qpath, apath = LAYOUT.path(self.root, "questions"), LAYOUT.path(self.root, "annotations")
        by_qid: dict[int, tuple[str, dict]] = {}
        for where, ann in LAYOUT.records(self.root, "annotations"):
            by_qid[ann["question_id"]] = (where, ann)
        examples = []
        for where, q in LAYOUT.records(self.root, "questions"):
            qid, image_id, question = q["question_id"], q["image_id"], q["question"]
            if qid not in by_qid:
                raise format_error(apath, f"question_id {qid} (from {qpath.name} {where})",
                                   "an annotation for every question")
            awhere, ann = by_qid[qid]
            examples.append(Example(
                example_id=str(qid),
                image=self.root / "vqav2" / "val2014" / f"COCO_val2014_{image_id:012d}.jpg",
                prompt=vqa_prompt(question),
                gold=answer_strings(ann, apath, awhere),
                meta={"answer_type": field_of(ann, "answer_type", str, apath, awhere),
                      "question_type": field_of(ann, "question_type", str, apath, awhere)},
            ))
        return examples

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        score = vqa_accuracy(output, example.gold, variant="tri")
        return {"parsed": output.strip(), "parse_ok": bool(output.strip()), "score": score,
                "correct": score >= 1.0, "score_official": vqa_accuracy(output, example.gold, variant="official")}

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean(r["score"] for r in records),
                "accuracy_official": mean(r["score_official"] for r in records),
                **grouped_accuracy(records, "answer_type"), **common_metrics(records)}


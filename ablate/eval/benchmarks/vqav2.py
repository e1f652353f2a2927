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
    read_json,
)
from ablate.eval.benchmarks.prompts import vqa_prompt
from ablate.eval.scoring import vqa_accuracy


def answer_strings(record: dict, path: Any, where: str) -> list[str]:
    """The answer strings of a VQA-style ``answers`` list of ``{"answer": ...}`` objects."""
    answers = field_of(record, "answers", list, path, where)
    return [field_of(a, "answer", str, path, f"{where} answers[{i}]") for i, a in enumerate(answers)]


class VQAv2(Benchmark):
    id = "vqav2"
    description = "VQA accuracy (TRI variant), mean over questions"

    def read(self) -> list[Example]:
        qpath = self.root / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json"
        apath = self.root / "vqav2" / "v2_mscoco_val2014_annotations.json"
        questions = field_of(read_json(qpath), "questions", list, qpath, "top level")
        annotations = field_of(read_json(apath), "annotations", list, apath, "top level")
        by_qid: dict[int, tuple[int, dict]] = {}
        for i, ann in enumerate(annotations):
            qid = field_of(ann, "question_id", int, apath, f"annotations[{i}]")
            by_qid[qid] = (i, ann)
        examples = []
        for i, q in enumerate(questions):
            where = f"questions[{i}]"
            qid = field_of(q, "question_id", int, qpath, where)
            image_id = field_of(q, "image_id", int, qpath, where)
            question = field_of(q, "question", str, qpath, where)
            if qid not in by_qid:
                raise format_error(apath, f"question_id {qid} (from {qpath.name} {where})",
                                   "an annotation for every question")
            j, ann = by_qid[qid]
            awhere = f"annotations[{j}] (question_id {qid})"
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


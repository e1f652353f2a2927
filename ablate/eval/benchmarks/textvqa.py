"""TextVQA val, with (``textvqa-ocr``) and without (``textvqa``) OCR tokens in the prompt; m4c scoring.

Files: ``textvqa/TextVQA_0.5.1_val.json`` (``{"data": [{question, image_id, answers: [10 str], question_id}]}``),
``textvqa/textvqa_val_v051_ocr.jsonl`` (LLaVA's prompt file, lines ``{question_id, image, text, category}``
whose ``text`` holds the question plus ``Reference OCR token: …``), images ``textvqa/train_images/<image_id>.jpg``.
As in Prismatic's harness, the OCR prompt is Prismatic's VQA prompt around the OCR file's ``text``; the
plain prompt uses the question alone.  Example id = ``question_id``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ablate.eval.benchmarks.base import (
    Benchmark,
    Example,
    common_metrics,
    field_of,
    format_error,
    mean,
    read_json,
    read_jsonl,
)
from ablate.eval.benchmarks.prompts import vqa_prompt
from ablate.eval.scoring import vqa_accuracy


class TextVQA(Benchmark):
    id = "textvqa"
    with_ocr: ClassVar[bool] = False
    description = "VQA accuracy (m4c / EvalAI answer processor), mean over questions"

    def _ocr_texts(self) -> dict[int, str]:
        path = self.root / "textvqa" / "textvqa_val_v051_ocr.jsonl"
        texts: dict[int, str] = {}
        for lineno, rec in read_jsonl(path):
            qid = field_of(rec, "question_id", int, path, f"line {lineno}")
            texts[qid] = field_of(rec, "text", str, path, f"line {lineno}")
        return texts

    def read(self) -> list[Example]:
        path = self.root / "textvqa" / "TextVQA_0.5.1_val.json"
        data = field_of(read_json(path), "data", list, path, "top level")
        ocr = self._ocr_texts() if self.with_ocr else {}
        examples = []
        for i, q in enumerate(data):
            where = f"data[{i}]"
            qid = field_of(q, "question_id", int, path, where)
            question = field_of(q, "question", str, path, where)
            answers = field_of(q, "answers", list, path, where)
            if not all(isinstance(a, str) for a in answers):
                raise format_error(path, where, f"'answers' to be a list of strings, got {answers!r}")
            if self.with_ocr:
                if qid not in ocr:
                    raise format_error(self.root / "textvqa" / "textvqa_val_v051_ocr.jsonl",
                                       f"question_id {qid}", "a line for every question of TextVQA_0.5.1_val.json")
                question = ocr[qid]
            examples.append(Example(
                example_id=str(qid),
                image=self.root / "textvqa" / "train_images" / f"{field_of(q, 'image_id', str, path, where)}.jpg",
                prompt=vqa_prompt(question),
                gold=list(answers),
            ))
        return examples

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        score = vqa_accuracy(output, example.gold, variant="m4c")
        return {"parsed": output.strip(), "parse_ok": bool(output.strip()), "score": score, "correct": score >= 1.0}

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean(r["score"] for r in records), **common_metrics(records)}


class TextVQAWithOCR(TextVQA):
    id = "textvqa-ocr"
    with_ocr = True

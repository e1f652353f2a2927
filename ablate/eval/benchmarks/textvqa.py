"""TextVQA val, with (``textvqa-ocr``) and without (``textvqa``) OCR tokens in the prompt; m4c scoring.

Files: ``textvqa/TextVQA_0.5.1_val.json`` (``{"data": [{question, image_id, answers: [10 str], question_id}]}``),
``textvqa/textvqa_val_v051_ocr.jsonl`` (the OCR prompt file, lines ``{question_id, image, text, category}``
whose ``text`` holds the question plus ``Reference OCR token: …``), images ``textvqa/train_images/<image_id>.jpg``.
The OCR file is read in either released form: vlm-evaluation's (``question_id`` = TextVQA's integer id) or
LLaVA's ``llava_textvqa_val_v051_ocr.jsonl`` (``question_id`` = the image id as a string, shared by the
questions of one image, which follow TextVQA's order): those lines join TextVQA's questions of that image in
order, each checked to ask the same question.  A trailing "Answer the question using a single word or
phrase." in the file's text is dropped, so Prismatic's VQA prompt adds it exactly once.  Example id =
TextVQA's ``question_id``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ablate.eval.benchmarks.base import (
    Benchmark,
    Example,
    common_metrics,
    format_error,
    mean,
)
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.benchmarks.prompts import SHORT_ANSWER, vqa_prompt
from ablate.eval.scoring import vqa_accuracy

LAYOUT = Layout(
    name="textvqa", benchmarks=("textvqa", "textvqa-ocr"),
    source="TextVQA_0.5.1_val.json + train_val_images.zip (textvqa.org); OCR prompts: LLaVA's eval.zip "
           "(textvqa/llava_textvqa_val_v051_ocr.jsonl) or vlm-evaluation's textvqa_val_v051_ocr.jsonl",
    files={
        "questions": FileSpec("textvqa/TextVQA_0.5.1_val.json", ("TextVQA_0.5.1_val.json",), records="data",
                              keys={"question_id": int, "question": str, "image_id": str, "answers": list}),
        "ocr": FileSpec("textvqa/textvqa_val_v051_ocr.jsonl",
                        ("llava_textvqa_val_v051_ocr.jsonl", "textvqa_val_v051_ocr.jsonl"), fmt="jsonl",
                        keys={"question_id": (int, str), "text": str}, only=("textvqa-ocr",)),
    },
    dirs={"textvqa/train_images": ("train_images",)},
)


def _question_of(text: str) -> str:
    """The question part of an OCR prompt text (before ``Reference OCR token:``), normalized for matching."""
    return text.split("\nReference OCR token:")[0].strip().lower()


class TextVQA(Benchmark):
    id = "textvqa"
    layout = LAYOUT
    with_ocr: ClassVar[bool] = False
    description = "VQA accuracy (m4c / EvalAI answer processor), mean over questions"

    def _ocr_texts(self, questions: list[dict]) -> dict[int, str]:
        """TextVQA question id -> OCR prompt text (without the short-answer instruction)."""
        path = LAYOUT.path(self.root, "ocr")
        by_image: dict[str, list[dict]] = {}
        for q in questions:
            by_image.setdefault(q["image_id"], []).append(q)
        taken: dict[str, int] = {}
        texts: dict[int, str] = {}
        for where, rec in LAYOUT.records(self.root, "ocr"):
            text = rec["text"].removesuffix(SHORT_ANSWER)
            key = rec["question_id"]
            if isinstance(key, int):  # vlm-evaluation's file: TextVQA's own question id
                texts[key] = text
                continue
            # LLaVA's file: the image id; the k-th line of an image is TextVQA's k-th question of that image
            k = taken.get(key, 0)
            candidates = by_image.get(key, [])
            if k >= len(candidates):
                raise format_error(path, f"{where} (question_id {key!r})",
                                   f"at most {len(candidates)} line(s) for image {key!r} "
                                   "(one per question of TextVQA_0.5.1_val.json on that image)")
            q = candidates[k]
            if _question_of(text) != q["question"].strip().lower():
                raise format_error(path, f"{where} (question_id {key!r})", f"the question {q['question']!r} "
                                   f"(TextVQA question_id {q['question_id']}), got {_question_of(text)!r}")
            taken[key] = k + 1
            texts[q["question_id"]] = text
        return texts

    def read(self) -> list[Example]:
        path = LAYOUT.path(self.root, "questions")
        rows = list(LAYOUT.records(self.root, "questions"))
        ocr = self._ocr_texts([q for _, q in rows]) if self.with_ocr else {}
        examples = []
        for where, q in rows:
            qid, question, answers = q["question_id"], q["question"], q["answers"]
            if len(answers) != 10 or not all(isinstance(a, str) for a in answers):
                raise format_error(path, where, f"'answers' to be a list of 10 strings (m4c scores against 10), "
                                                f"got {answers!r}")
            if self.with_ocr:
                if qid not in ocr:
                    raise format_error(LAYOUT.path(self.root, "ocr"), f"question_id {qid}",
                                       "a line for every question of TextVQA_0.5.1_val.json")
                question = ocr[qid]
            examples.append(Example(
                example_id=str(qid),
                image=self.root / "textvqa" / "train_images" / f"{q['image_id']}.jpg",
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

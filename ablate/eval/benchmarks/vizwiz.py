"""VizWiz val: VQA accuracy (VizWiz API: normalized prediction vs raw answers) + unanswerable AP/F1.

File: ``vizwiz/Annotations/val.json`` = ``[{image, question, answers: [{answer, answer_confidence} x 10],
answer_type, answerable: 0/1}]``; images ``vizwiz/val/<image>``.  VizWiz has one question per image, so the
example id is the image file name (e.g. ``VizWiz_val_00000000.jpg``).  The prompt carries LLaVA-1.5's
"respond with 'Unanswerable'" trigger, as Prismatic's.
"""

from __future__ import annotations

from typing import Any

from ablate.eval.benchmarks.base import (
    Benchmark,
    Example,
    common_metrics,
    field_of,
    format_error,
    mean,
    read_json,
)
from ablate.eval.benchmarks.prompts import vqa_prompt
from ablate.eval.benchmarks.vqav2 import answer_strings
from ablate.eval.scoring import VIZWIZ_VARIANT, is_unanswerable, unanswerable_metrics, vqa_accuracy


class VizWiz(Benchmark):
    id = "vizwiz"
    description = "VQA accuracy (VizWiz API) + AP/F1 of predicting 'unanswerable'"

    def read(self) -> list[Example]:
        path = self.root / "vizwiz" / "Annotations" / "val.json"
        data = read_json(path, list, "a list of questions")
        examples = []
        for i, q in enumerate(data):
            where = f"record {i}"
            image = field_of(q, "image", str, path, where)
            answerable = field_of(q, "answerable", int, path, where)
            if answerable not in (0, 1):
                raise format_error(path, where, f"'answerable' to be 0 or 1, got {answerable!r}")
            examples.append(Example(
                example_id=image,
                image=self.root / "vizwiz" / "val" / image,
                prompt=vqa_prompt(field_of(q, "question", str, path, where), uncertainty_aware=True),
                gold=answer_strings(q, path, where),
                meta={"answer_type": field_of(q, "answer_type", str, path, where), "answerable": answerable},
            ))
        return examples

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        score = vqa_accuracy(output, example.gold, variant=VIZWIZ_VARIANT)
        return {"parsed": output.strip(), "parse_ok": bool(output.strip()), "score": score, "correct": score >= 1.0,
                "pred_unanswerable": is_unanswerable(output)}

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        unans = unanswerable_metrics([r["pred_unanswerable"] for r in records],
                                     [r["answerable"] == 0 for r in records])
        return {"accuracy": mean(r["score"] for r in records),
                **{f"unanswerable_{k}": float(v) for k, v in unans.items()}, **common_metrics(records)}

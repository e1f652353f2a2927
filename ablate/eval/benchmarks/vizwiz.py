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
)
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.benchmarks.prompts import vqa_prompt
from ablate.eval.benchmarks.vqav2 import answer_strings
from ablate.eval.scoring import VIZWIZ_VARIANT, is_unanswerable, unanswerable_metrics, vqa_accuracy

LAYOUT = Layout(
    name="vizwiz", benchmarks=("vizwiz",), source="VizWiz_final: vqa_data/Annotations.zip and images/val.zip",
    files={"annotations": FileSpec("vizwiz/Annotations/val.json", ("Annotations/val.json", "val.json"),
                                   keys={"image": str, "question": str, "answers": list, "answerable": int,
                                         "answer_type": str})},
    dirs={"vizwiz/val": ("val", "val_images")},
)


class VizWiz(Benchmark):
    id = "vizwiz"
    layout = LAYOUT
    description = "VQA accuracy (VizWiz API) + AP/F1 of predicting 'unanswerable'"

    def read(self) -> list[Example]:
        path = LAYOUT.path(self.root, "annotations")
        examples = []
        for where, q in LAYOUT.records(self.root, "annotations"):
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

"""GQA test-dev balanced (Prismatic: TRI's prediction normalization, raw gold, exact match).

File: ``gqa/testdev_balanced_questions.json`` = ``{qid: {question, answer, imageId, isBalanced, types:
{structural, semantic, detailed}, ...}}``; images ``gqa/images/<imageId>.jpg``.  Only ``isBalanced``
questions are evaluated (as the official eval.py).  Example id = the question id (the dict key).
Open questions are ``types.structural == "query"``; the rest are binary.
"""

from __future__ import annotations

from typing import Any

from ablate.eval.benchmarks.base import (
    Benchmark,
    Example,
    common_metrics,
    field_of,
    grouped_accuracy,
    mean,
    read_json,
)
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.benchmarks.prompts import vqa_prompt
from ablate.eval.scoring import gqa_match

LAYOUT = Layout(
    name="gqa", benchmarks=("gqa",), source="GQA questions1.2.zip (testdev balanced) and images.zip",
    files={"questions": FileSpec("gqa/testdev_balanced_questions.json", ("testdev_balanced_questions.json",),
                                 records="{}", label="question", keys={"question": str, "answer": str, "imageId": str,
                                                     "isBalanced": bool, "types": dict})},
    dirs={"gqa/images": ("images",)},
)


class GQA(Benchmark):
    id = "gqa"
    layout = LAYOUT
    description = "exact match after TRI's normalization (punctuation removed, lowercased)"

    def read(self) -> list[Example]:
        path = LAYOUT.path(self.root, "questions")
        data = read_json(path, dict, "an object mapping question id -> question")
        examples = []
        for (where, q), qid in zip(LAYOUT.records(self.root, "questions", data), data, strict=True):
            if not field_of(q, "isBalanced", bool, path, where):
                continue
            structural = field_of(field_of(q, "types", dict, path, where), "structural", str, path,
                                  f"{where} types")
            examples.append(Example(
                example_id=str(qid),
                image=self.root / "gqa" / "images" / f"{field_of(q, 'imageId', str, path, where)}.jpg",
                prompt=vqa_prompt(field_of(q, "question", str, path, where)),
                gold=field_of(q, "answer", str, path, where),
                meta={"structural": structural, "kind": "open" if structural == "query" else "binary"},
            ))
        return examples

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        hit = bool(gqa_match(output, example.gold, variant="tri"))
        return {"parsed": output, "parse_ok": bool(output.strip()), "score": float(hit), "correct": hit}

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean(r["score"] for r in records), **grouped_accuracy(records, "kind"),
                **common_metrics(records)}

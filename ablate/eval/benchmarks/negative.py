"""Negative instructions (LRV-Instruction, Liu et al. 2023): questions whose premise is false -- an object that
is not in the image, an existing object with a wrong attribute, or a false piece of knowledge -- beside
positive questions about the same images.

Why it exists: a model that accepts a false premise ("Yes, the blue teapot is on the stove") hallucinates;
one that rejects it ("There is no teapot") does not.  LRV's own evaluation (GAVIE) is GPT-4 scoring, which
ablate cannot run offline; its non-GPT numbers are yes/no accuracy in POPE's way.  So ablate scores every
answer by POPE's official first-sentence rule (``pope_parse``: "no" if No/not/no is a word of the first
sentence, else "yes": an answer that does not reject the premise accepts it) against the same rule applied
to LRV's gold answer; metrics as POPE's (accuracy, precision, recall, F1 with positive = "yes", yes_ratio)
plus accuracy per ``task`` and on the negative (premise false) and positive questions.

File (under ``eval.root``): ``lrv/negative_eval.json`` = a JSON list of records in LRV-Instruction's released
instruction format ``{"image_id": str, "question": str, "answer": str, "task": str}`` (LRV's README shows
``{'image_id': '2392588', 'question': 'Can you see a blue teapot ...?', 'answer': 'There is no mention of a
teapot ...', 'task': 'negative'}``); images ``lrv/images/<image_id>.jpg`` (Visual Genome ids).  LRV's
``Evaluation/evaluation_set.json`` (``{image_id, question}``, no answers) carries no ground truth and is
refused with a message saying so.  Example id = ``<image_id>-<index in file>`` (LRV reuses image ids).
"""

from __future__ import annotations

from typing import Any

from ablate.eval.benchmarks import base
from ablate.eval.benchmarks.base import Benchmark, Example
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.scoring import pope_metrics, pope_parse

IMAGES = "lrv/images"  # the linked Visual Genome images, under the eval root
LRV_NEG_LAYOUT = Layout(
    name="lrv-neg", benchmarks=("lrv-neg",),
    source="labelled records in LRV-Instruction's instruction format (FuxiaoLiu/LRV-Instruction) and their Visual "
           "Genome images",
    files={"eval": FileSpec("lrv/negative_eval.json", ("negative_eval.json",), keys={"question": str, "task": str},
                            note="a JSON list of {image_id, question, answer, task}")},
    dirs={IMAGES: ("VG_100K", "images")},
)


class NegativeInstructions(Benchmark):
    id = "lrv-neg"
    layout = LRV_NEG_LAYOUT
    description = "premise accepted/rejected (POPE's rule) vs LRV's gold answer: accuracy, F1, per task"

    def read(self) -> list[Example]:
        path = self.layout.path(self.root, "eval")
        rows = base.read_json(path, list, "a JSON list of LRV instruction records")
        examples = []
        for i, rec in enumerate(rows):
            where = f"record {i}"
            if isinstance(rec, dict) and "answer" not in rec and "question" in rec:
                raise base.format_error(path, where, "key 'answer' (LRV's evaluation_set.json has no answers: "
                                   "GAVIE scores it with GPT-4; ablate needs records with LRV's gold 'answer')")
            image_id = base.field_of(rec, "image_id", (str, int), path, where)
            answer = base.field_of(rec, "answer", str, path, where)
            examples.append(Example(
                example_id=f"{image_id}-{i}",
                image=self.root / IMAGES / f"{image_id}.jpg",
                prompt="\n" + base.field_of(rec, "question", str, path, where),
                gold=pope_parse(answer, variant="official"),
                meta={"task": base.field_of(rec, "task", str, path, where), "gold_answer": answer},
            ))
        return examples

    def stratum(self, example: Example) -> str:
        return example.meta["task"]

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        parsed = pope_parse(output, variant="official") if output.strip() else None
        hit = parsed == example.gold
        return {"parsed": parsed, "parse_ok": parsed is not None, "score": float(hit), "correct": hit}

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        preds = [r["parsed"] or "unparsed" for r in records]
        out = {k: float(v) for k, v in pope_metrics(preds, [r["gold"] for r in records]).items()}
        for polarity, name in (("no", "accuracy_negative"), ("yes", "accuracy_positive")):
            rows = [r["score"] for r in records if r["gold"] == polarity]
            if rows:
                out[name] = base.mean(rows)
        return {**out, **base.grouped_accuracy(records, "task", "accuracy_task_"), **base.common_metrics(records)}

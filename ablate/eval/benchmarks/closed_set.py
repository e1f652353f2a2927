"""Closed-set benchmarks: POPE (yes/no), VSR (true/false), TallyQA (counts 0-15 as A-P), AI2D (A-D).

Scored as Prismatic does by default (``eval.closed_set=prob``): the model's normalized probabilities of the
option strings; the prediction is the first argmax (ties go to the first option, as ``np.argmax``).  With
``eval.closed_set=generate`` the model generates and the output is parsed by the reference parsers of
``ablate.eval.scoring``; an output that names no option scores 0 with ``parse_ok=False`` (never guessed).

Files:
- POPE: ``pope/coco/coco_pope_{adversarial,popular,random}.json`` (JSON lines ``{question_id, image, text,
  label}``), images ``pope/val2014/<image>``; id = ``<split>-<question_id>`` (question ids restart per split).
- VSR: ``vsr/test.jsonl`` (``{image, caption, label: 0/1, relation, ...}``), images ``vsr/images/<image>``.
  VSR rows carry no id; the id is ``<image stem>-<first 10 hex of SHA-1(caption)>``, stable across orderings.
- TallyQA: ``tallyqa/test.json`` (``[{image, question, answer: int, question_id, issimple}]``), images
  ``tallyqa/<image>``; id = ``question_id``.
- AI2D: ``ai2d/questions/<img>.json`` (``{imageName, questions: {text: {questionId, answerTexts: [4],
  correctAnswer}}}``), images ``ai2d/images/<imageName>``, ``ai2d/ai2d_test_ids.csv`` (one image id per row);
  id = ``questionId``.  Like Prismatic's harness, every question file is evaluated and ``accuracy`` pools
  the test and the other (val) questions; ``accuracy_test`` / ``accuracy_val`` split them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ablate.eval.benchmarks.base import (
    Benchmark,
    BenchmarkFormatError,
    Example,
    common_metrics,
    field_of,
    format_error,
    grouped_accuracy,
    mean,
    read_json,
)
from ablate.eval.benchmarks.layout import FileSpec, Layout
from ablate.eval.benchmarks.prompts import mc_prompt, option_letters, true_false_prompt, vqa_prompt
from ablate.eval.scoring import extract_choice, pope_metrics, pope_parse, vsr_parse


def first_argmax(values: Sequence[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


class ClosedSetBenchmark(Benchmark):
    """Gold and predictions are option strings; subclasses implement ``read`` and ``parse``."""

    closed_set = True

    def parse(self, example: Example, output: str) -> str | None:
        """The option named by a generated output, or None when it names none."""
        raise NotImplementedError

    def _record(self, example: Example, parsed: str | None) -> dict[str, Any]:
        hit = parsed is not None and parsed == example.gold
        return {"parsed": parsed, "parse_ok": parsed is not None, "score": float(hit), "correct": hit}

    def score_probs(self, example: Example, probs: Sequence[float]) -> dict[str, Any]:
        options = example.options or []
        if len(probs) != len(options):
            raise ValueError(f"{self.id} {example.example_id}: {len(probs)} option probabilities for "
                             f"{len(options)} options {options}")
        return self._record(example, options[first_argmax(probs)])

    def score_text(self, example: Example, output: str) -> dict[str, Any]:
        return self._record(example, self.parse(example, output))


# ------------------------------------------------------------------------------------------------- POPE
POPE_SPLITS = ("adversarial", "popular", "random")
_YES_NO_WORD = re.compile(r"\b(yes|no|not)\b", re.IGNORECASE)


POPE_LAYOUT = Layout(
    name="pope", benchmarks=("pope",),
    source="AoiDragon/POPE output/coco/coco_pope_*.json (LLaVA/Prismatic pin e3e3926) and COCO val2014",
    files={split: FileSpec(f"pope/coco/coco_pope_{split}.json", (f"coco_pope_{split}.json",), fmt="jsonl",
                           keys={"question_id": int, "image": str, "text": str, "label": str})
           for split in POPE_SPLITS},
    dirs={"pope/val2014": ("val2014", "val_images")},
)


class POPE(ClosedSetBenchmark):
    id = "pope"
    layout = POPE_LAYOUT
    description = "accuracy per split (adversarial/popular/random); accuracy = mean over the 3 splits"

    def read(self) -> list[Example]:
        examples = []
        for split in POPE_SPLITS:
            path = POPE_LAYOUT.path(self.root, split)
            for where, rec in POPE_LAYOUT.records(self.root, split):
                label = rec["label"]
                if label not in ("yes", "no"):
                    raise format_error(path, where, f"'label' to be 'yes' or 'no', got {label!r}")
                examples.append(Example(
                    example_id=f"{split}-{rec['question_id']}",
                    image=self.root / "pope" / "val2014" / rec["image"],
                    prompt=vqa_prompt(rec["text"]),
                    gold=label.capitalize(),
                    options=["Yes", "No"],
                    meta={"split": split},
                ))
        return examples

    def stratum(self, example: Example) -> str:
        return example.meta["split"]

    def parse(self, example: Example, output: str) -> str | None:
        # The reference decides 'no' if No/not/no is a word of the first sentence, else 'yes' -- even for
        # outputs that say neither; ablate applies the reference rule only when a yes/no word is present.
        if not _YES_NO_WORD.search(output):
            return None
        return pope_parse(output, variant="official").capitalize()

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        out: dict[str, float] = {}
        per_split: dict[str, dict[str, float]] = {}
        for split in POPE_SPLITS:
            rows = [r for r in records if r["split"] == split]
            if not rows:
                continue
            preds = [(r["parsed"] or "unparsed").lower() for r in rows]
            per_split[split] = {k: float(v) for k, v in pope_metrics(preds, [r["gold"].lower() for r in rows]).items()}
            out.update({f"{split}_{k}": v for k, v in per_split[split].items()})
        for metric in ("accuracy", "f1"):
            out[metric] = mean(m[metric] for m in per_split.values())
        return {**out, **common_metrics(records)}


# -------------------------------------------------------------------------------------------------- VSR
VSR_LAYOUT = Layout(
    name="vsr", benchmarks=("vsr",),
    source="cambridgeltl/visual-spatial-reasoning data/splits/zeroshot/test.jsonl (= HF vsr_zeroshot) + images",
    files={"test": FileSpec("vsr/test.jsonl", ("zeroshot/test.jsonl", "vsr_zeroshot/test.jsonl", "test.jsonl"),
                            fmt="jsonl", keys={"image": str, "caption": str, "label": int})},
    dirs={"vsr/images": ("images", "vsr_images")},
)


class VSR(ClosedSetBenchmark):
    id = "vsr"
    layout = VSR_LAYOUT
    description = "accuracy of True/False for the caption (zero-shot test split)"

    def read(self) -> list[Example]:
        path = VSR_LAYOUT.path(self.root, "test")
        examples = []
        for where, rec in VSR_LAYOUT.records(self.root, "test"):
            image, caption, label = rec["image"], rec["caption"], rec["label"]
            if label not in (0, 1):
                raise format_error(path, where, f"'label' to be 0 or 1, got {label!r}")
            digest = hashlib.sha1(caption.encode("utf-8")).hexdigest()[:10]
            examples.append(Example(
                example_id=f"{Path(image).stem}-{digest}",
                image=self.root / "vsr" / "images" / image,
                prompt=true_false_prompt(caption),
                gold="True" if label == 1 else "False",
                options=["True", "False"],
                meta={"relation": rec.get("relation")},
            ))
        return examples

    def parse(self, example: Example, output: str) -> str | None:
        verdict = vsr_parse(output)
        return None if verdict is None else ("True" if verdict else "False")


# ---------------------------------------------------------------------------------------- multiple choice
class MultipleChoice(ClosedSetBenchmark):
    """Options are letters; ``meta['choices']`` maps letter -> choice text for generation parsing."""

    def parse(self, example: Example, output: str) -> str | None:
        return extract_choice(output, example.meta["choices"], variant="vlmevalkit")

    def mc_example(self, example_id: str, image: Path, question: str, choices: list[str], answer_index: int,
                   **meta: Any) -> Example:
        letters = option_letters(len(choices))
        return Example(example_id=example_id, image=image, prompt=mc_prompt(question, choices),
                       gold=letters[answer_index], options=letters,
                       meta={"choices": dict(zip(letters, choices, strict=True)), **meta})


TALLY_COUNTS = 16  # counts 0..15 as options A..P


TALLY_LAYOUT = Layout(
    name="tallyqa", benchmarks=("tallyqa",), source="TallyQA test.json (tallyqa.zip) + Visual Genome and COCO",
    files={"test": FileSpec("tallyqa/test.json", ("tallyqa/test.json", "test.json"),
                            keys={"image": str, "question": str, "answer": int, "question_id": int,
                                  "issimple": bool})},
    dirs={"tallyqa/VG_100K": ("VG_100K",), "tallyqa/VG_100K_2": ("VG_100K_2",),
          "tallyqa/train2014": ("train2014",), "tallyqa/val2014": ("val2014",)},
)


class TallyQA(MultipleChoice):
    id = "tallyqa"
    layout = TALLY_LAYOUT
    description = "accuracy of the count (0-15 as options A-P); also simple / complex"

    def read(self) -> list[Example]:
        path = TALLY_LAYOUT.path(self.root, "test")
        examples = []
        for where, q in TALLY_LAYOUT.records(self.root, "test"):
            answer = q["answer"]
            if not 0 <= answer < TALLY_COUNTS:
                raise format_error(path, where, f"'answer' a count in 0..{TALLY_COUNTS - 1}, got {answer}")
            examples.append(self.mc_example(
                str(field_of(q, "question_id", int, path, where)),
                self.root / "tallyqa" / field_of(q, "image", str, path, where),
                field_of(q, "question", str, path, where),
                [str(n) for n in range(TALLY_COUNTS)], answer,
                kind="simple" if field_of(q, "issimple", bool, path, where) else "complex",
                answer=answer,
            ))
        return examples

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean(r["score"] for r in records), **grouped_accuracy(records, "kind"),
                **common_metrics(records)}


AI2D_LAYOUT = Layout(
    name="ai2d", benchmarks=("ai2d",), source="ai2d-all.zip (questions/, images/) + ai2d_test_ids.csv",
    files={"test_ids": FileSpec("ai2d/ai2d_test_ids.csv", ("ai2d_test_ids.csv",), fmt="csv",
                                note="one image id per row")},
    dirs={"ai2d/questions": ("questions",), "ai2d/images": ("images",)}, probes={"ai2d/questions": "*.png.json"},
)


class AI2D(MultipleChoice):
    id = "ai2d"
    layout = AI2D_LAYOUT
    description = "4-way multiple-choice accuracy (test and val questions pooled, as Prismatic)"

    def _test_ids(self) -> set[int]:
        path = AI2D_LAYOUT.path(self.root, "test_ids")
        ids = set()
        for where, row in AI2D_LAYOUT.records(self.root, "test_ids"):
            if not row[0].strip().isdigit():
                raise format_error(path, where, f"an integer image id, got {row[0]!r}")
            ids.add(int(row[0]))
        return ids

    def read(self) -> list[Example]:
        folder = self.root / "ai2d" / "questions"
        if not folder.is_dir():
            raise BenchmarkFormatError(f"{folder}: folder not found (expected AI2D's questions/<img>.json files)")
        test_ids = self._test_ids()
        examples = []
        for path in sorted(folder.glob("*.json"), key=lambda p: (len(p.name), p.name)):
            stem = path.name.split(".")[0]
            if not stem.isdigit():
                raise BenchmarkFormatError(f"{path}: expected a file named <image id>.png.json")
            data = read_json(path)
            image = self.root / "ai2d" / "images" / field_of(data, "imageName", str, path, "top level")
            for text, q in field_of(data, "questions", dict, path, "top level").items():
                where = f"question {text!r}"
                choices = field_of(q, "answerTexts", list, path, where)
                correct = field_of(q, "correctAnswer", int, path, where)
                if not all(isinstance(c, str) for c in choices) or not 0 <= correct < len(choices):
                    raise format_error(path, where, f"'answerTexts' strings and 'correctAnswer' an index into them, "
                                                    f"got {choices!r} / {correct!r}")
                examples.append(self.mc_example(
                    field_of(q, "questionId", str, path, where), image, text, choices, correct,
                    split="test" if int(stem) in test_ids else "val",
                ))
        return examples

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean(r["score"] for r in records), **grouped_accuracy(records, "split"),
                **common_metrics(records)}

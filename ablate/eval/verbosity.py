"""Verbosity of generated answers: words and tokens per answer, and whether an answer is longer than asked.

Why it exists: Prismatic (Fig. 11) calls instruct-tuned LMs "more verbose"; this makes that a number per
example that paired tests can use.  Every generated answer gets ``answer_words`` (whitespace-separated words),
``answer_tokens`` (the model's own tokenizer, no special tokens) and, when the prompt asks for a short
answer, ``length_limit`` and ``over_length`` (1.0 when the answer has more words than the instruction allows,
0.0 otherwise; absent when the prompt sets no limit).  The limits (``LENGTH_INSTRUCTIONS``) are ablate's
reading of the reference instructions: "a single word or phrase" allows 3 words, "the option's letter ...
directly" and '"True" or "False" directly' allow 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ablate.eval.benchmarks.prompts import MC_TRIGGER, SHORT_ANSWER

LENGTH_INSTRUCTIONS: tuple[tuple[str, int], ...] = (
    (SHORT_ANSWER.strip(), 3),
    (MC_TRIGGER.strip(), 1),
    ('Respond with "True" or "False" directly.', 1),
)
FIELDS = ("answer_words", "answer_tokens", "length_limit", "over_length")


def length_limit(prompt: str) -> int | None:
    """The most words the prompt's instruction allows (the strictest one present), or None."""
    limits = [n for marker, n in LENGTH_INSTRUCTIONS if marker in prompt]
    return min(limits) if limits else None


def verbosity_fields(prompt: str, answer: str, tokenizer: Any = None) -> dict[str, Any]:
    words = len(answer.split())
    out: dict[str, Any] = {"answer_words": words}
    if tokenizer is not None:
        out["answer_tokens"] = len(tokenizer(answer, add_special_tokens=False)["input_ids"]) if answer else 0
    limit = length_limit(prompt)
    if limit is not None:
        out["length_limit"] = limit
        out["over_length"] = float(words > limit)
    return out


def verbosity_metrics(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean words and tokens per answer and the share of answers longer than asked (over those with a limit)."""
    out: dict[str, float] = {}
    for key, name in (("answer_words", "words_per_answer"), ("answer_tokens", "tokens_per_answer")):
        vals = [float(r[key]) for r in records if key in r]
        if vals:
            out[name] = sum(vals) / len(vals)
    over = [float(r["over_length"]) for r in records if "over_length" in r]
    if over:
        out["over_length_rate"] = sum(over) / len(over)
    return out

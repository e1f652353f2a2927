"""Parsers of model outputs whose reference harnesses disagree: referring-expression boxes (TRI's strict
parser, lmms-eval, VLMEvalKit) with IoU, multiple-choice letters (AI2D, TallyQA-as-letters, MMBench-style)
and counts (TallyQA).  Each is a named variant of one reference; an unparseable output gives ``None``.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Callable, Mapping, Sequence

from ablate.eval.normalizers import Box, lookup, remove_punctuation

# ---------------------------------------------------------------------------------------------------
# Referring-expression boxes (RefCOCO family, OCID-Ref)
# ---------------------------------------------------------------------------------------------------

REC_IOU_THRESHOLD = 0.5
OCIDREF_IOU_THRESHOLD = 0.25


def _parse_box_tri(output: str, image_size: tuple[int, int] | None) -> Box | None:
    """Prismatic: ``ast.literal_eval`` must give a list of 4 numbers in [0, 1] with x1 < x2, y1 < y2."""
    try:
        value = ast.literal_eval(output)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not (isinstance(value, list) and len(value) == 4):
        return None
    try:
        valid = all(0 <= c <= 1 for c in value) and value[0] < value[2] and value[1] < value[3]
    except TypeError:
        return None
    return (float(value[0]), float(value[1]), float(value[2]), float(value[3])) if valid else None


_LMMS_NUMBER = r"(-?\d+(?:\.\d+)?)"
_LMMS_BOX = re.compile(r"\[\s*" + r",\s*".join([_LMMS_NUMBER] * 4) + r"\s*\]")


def _parse_box_lmms(output: str, image_size: tuple[int, int] | None) -> Box | None:
    """lmms-eval: first ``[a, b, c, d]`` match, no validation (its [0,0,0,0] fallback is None here)."""
    match = _LMMS_BOX.search(output)
    if match is None:
        return None
    x1, y1, x2, y2 = (float(g) for g in match.groups())
    return (x1, y1, x2, y2)


_VLMEK_NUMBER = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"
_VLMEK_BOX = re.compile(r"\[\s*" + r"\s*,\s*".join([f"({_VLMEK_NUMBER})"] * 4) + r"\s*\]")
_VLMEK_ANY_NUMBER = re.compile(_VLMEK_NUMBER)


def _parse_box_vlmevalkit(output: str, image_size: tuple[int, int] | None) -> Box | None:
    """VLMEvalKit RefCOCO (per scoring.md §1.6): bracketed 4 numbers, else the first 4 numbers anywhere;
    scale by max coordinate (<= 1.5 normalized, <= 1000 per-mille, else pixels of ``image_size``);
    clip to [0, 1]; swap inverted corners."""
    match = _VLMEK_BOX.search(output)
    numbers = list(match.groups()) if match else _VLMEK_ANY_NUMBER.findall(output)[:4]
    if len(numbers) < 4:
        return None
    coords = [float(n) for n in numbers]
    top = max(coords)
    if top <= 1.5:
        scale = (1.0, 1.0)
    elif top <= 1000:
        scale = (1000.0, 1000.0)
    elif image_size is not None:
        scale = (float(image_size[0]), float(image_size[1]))
    else:
        raise ValueError(f"parse_box('vlmevalkit'): pixel coordinates in {output!r} need image_size=(W, H)")
    x1, y1, x2, y2 = (min(1.0, max(0.0, c / scale[i % 2])) for i, c in enumerate(coords))
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


BOX_VARIANTS: dict[str, Callable[[str, tuple[int, int] | None], Box | None]] = {
    "tri": _parse_box_tri,
    "lmms": _parse_box_lmms,
    "vlmevalkit": _parse_box_vlmevalkit,
}


def parse_box(output: str, *, variant: str = "tri", image_size: tuple[int, int] | None = None) -> Box | None:
    """A normalized ``(x1, y1, x2, y2)`` box from model output, or None when the variant rejects it."""
    return lookup(BOX_VARIANTS, variant, "box")(output, image_size)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0.0 when the union is empty)."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_hit(
    prediction: Sequence[float] | None, target: Sequence[float], *, threshold: float = REC_IOU_THRESHOLD
) -> bool:
    """A REC hit: a parsed box with IoU >= threshold (0.5; ``OCIDREF_IOU_THRESHOLD`` for OCID-Ref)."""
    return prediction is not None and box_iou(prediction, target) >= threshold


# ---------------------------------------------------------------------------------------------------
# Multiple choice (AI2D, TallyQA-as-letters, MMBench-style) and counts (TallyQA)
# ---------------------------------------------------------------------------------------------------

_VLMEK_OPTION_CHARS = ".()[],:;!*#{}"
_VLMEK_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_VLMEK_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def _choice_vlmevalkit(output: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit ``can_infer`` (HEAD): option letter, else "answer is X", else unique option text.
    Its "Z" (no option) and False both map to None."""
    if "Failed to obtain answer via API" not in output:
        if any(refusal in output for refusal in _VLMEK_REFUSALS):
            return None
        spaced = output
        for char in _VLMEK_OPTION_CHARS:
            spaced = spaced.replace(char, " ")
        tokens = spaced.split()
        present = [letter for letter in choices if letter in tokens]
        if len(present) == 1:
            if tokens.index(present[0]) > len(tokens) - 5:
                return present[0]
        elif not present and "Z" in tokens:
            return None
        verbose = _VLMEK_ANSWER_IS.search(output)
        if verbose and verbose.group(1).upper() in choices:
            return verbose.group(1).upper()
    lowered = output.lower()
    if len(lowered) > 2 * sum(len(str(text)) for text in choices.values()):
        return None
    matches = [letter for letter, text in choices.items() if str(text).lower() in lowered]
    return matches[0] if len(matches) == 1 else None


_LMMS_LETTER_PREFIX = re.compile(r"^\s*([A-Z])\.")


def _choice_lmms(output: str, choices: Mapping[str, str]) -> str | None:
    """lmms-eval AI2D: ``^\\s*([A-Z])\\.`` filter, then exact match ignoring case and punctuation."""
    text = output.strip()
    match = _LMMS_LETTER_PREFIX.search(text)
    candidate = match.group(1) if match else text
    candidate = remove_punctuation(candidate.lower())
    return next((letter for letter in choices if remove_punctuation(letter.lower()) == candidate), None)


_LLAVA_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def _choice_llava(output: str, choices: Mapping[str, str]) -> str | None:
    """LLaVA eval_science_qa: exact letter, or "X. " prefix, or exactly one "The answer is X." match."""
    if output in choices:
        return output
    if len(output) >= 3 and output[0] in choices and output[1:3] == ". ":
        return output[0]
    found = _LLAVA_ANSWER_IS.findall(output)
    return found[0] if len(found) == 1 and found[0] in choices else None


def _choice_lmms_sqa(output: str, choices: Mapping[str, str]) -> str | None:
    """lmms-eval ScienceQA: the lowercased output equals a letter, or "X." with X upper-case."""
    text = output.strip()
    for letter in choices:
        if text.lower() == letter.lower():
            return letter
    if len(text) >= 2 and text[0].isupper() and text[1] == "." and text[0] in choices:
        return text[0]
    return None


CHOICE_VARIANTS: dict[str, Callable[[str, Mapping[str, str]], str | None]] = {
    "vlmevalkit": _choice_vlmevalkit,
    "lmms": _choice_lmms,
    "llava": _choice_llava,
    "lmms_sqa": _choice_lmms_sqa,
}


def extract_choice(output: str, choices: Mapping[str, str], *, variant: str = "vlmevalkit") -> str | None:
    """The option letter the output picks, or None (never a random guess).

    ``choices`` maps upper-case option letters to option texts, e.g. ``{"A": "cat", "B": "dog"}``.
    """
    extractor = lookup(CHOICE_VARIANTS, variant, "multiple-choice")
    bad = [letter for letter in choices if not (len(letter) == 1 and letter in string.ascii_uppercase)]
    if bad:
        raise ValueError(f"extract_choice: option keys must be single upper-case letters; got {bad!r}")
    return extractor(output, choices)


_COUNT_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip
_COUNT_PATTERN = re.compile(r"(\b([0-9]|1[0-9]|20)\b|\b(" + "|".join(_COUNT_WORDS) + r")\b)")


def _count_vlmevalkit(output: str) -> int | None:
    """VLMEvalKit TallyQA: the first integer 0-20 (digits or a number word) in the lowercased text."""
    match = _COUNT_PATTERN.search(output.lower())
    if match is None:
        return None
    found = match.group()
    return int(found) if found.isdigit() else _COUNT_WORDS.index(found)


COUNT_VARIANTS: dict[str, Callable[[str], int | None]] = {"vlmevalkit": _count_vlmevalkit}

#: TRI's TallyQA prompt shows counts 0..15 as options A..P.
TALLYQA_LETTER_CHOICES: dict[str, str] = {string.ascii_uppercase[i]: str(i) for i in range(16)}


def parse_count(output: str, *, variant: str = "vlmevalkit") -> int | None:
    """The integer count a TallyQA answer states, or None."""
    return lookup(COUNT_VARIANTS, variant, "count")(output)



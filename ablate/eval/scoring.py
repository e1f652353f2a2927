"""Answer normalizers and per-example scorers that agree exactly with the reference harnesses.

Published VLM numbers were produced by a handful of reference scorers (the VQA API, Prismatic's
vlm-evaluation "TRI", lmms-eval, VLMEvalKit, MMF/EvalAI "m4c", the VizWiz API, LLaVA's scripts), each with
its own quirks: which punctuation is deleted versus spaced, a period regex that only removes the first 32
periods, normalization skipped when all annotators agree, POPE's first-sentence rule, Prismatic's strict
box parser.  To compare with those numbers every scorer here is a *named variant* that reproduces one
reference exactly, quirks included (the rules and where they were read: ../shared/notes/scoring.md).

Everything is a small registry keyed by a string ID: text normalizers (``NORMALIZERS``), VQA-accuracy
variants, GQA / POPE / box / multiple-choice / count / true-false parsers.  An unknown variant raises
``ValueError`` naming it and the allowed ones.  Parsers never guess: an unparseable output gives ``None``
(or ``"unknown"`` where the reference has that class), which the caller scores 0 and counts.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

Box = tuple[float, float, float, float]
_T = TypeVar("_T")


def _lookup(registry: Mapping[str, _T], variant: str, what: str) -> _T:
    """The registry entry for ``variant``, or a ValueError naming it and the allowed IDs."""
    try:
        return registry[variant]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} variant {variant!r}; expected one of {sorted(registry)}") from None


# ---------------------------------------------------------------------------------------------------
# VQA answer-normalization primitives (VQA API vqaEval.py; identical tables in TRI/lmms/VLMEvalKit/m4c)
# ---------------------------------------------------------------------------------------------------

#: The 21 characters processPunctuation handles; ``.`` ``'`` ``:`` ``*`` ``#`` ``$`` ``%`` ``&`` are NOT here.
VQA_PUNCTUATION: tuple[str, ...] = tuple(';/[]"{}()=+\\_-><@`,?!')
#: Number words mapped to digits (nothing above ten).
DIGIT_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})
#: The reference contraction map, applied to whole tokens after lowercasing (so the capitalised keys
#: ``Im``, ``Ive``, ``Id've`` ... can never match; ``somebody'd`` -> ``somebodyd`` is in the reference).
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock",
    "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've",
    "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip

# The VizWiz API's map is the 2017 VQA map whose apostrophes are typographic (Qing Li's API: U+2019;
# TRI's copy: backticks) except for these entries, so its contractions never equal ASCII ground truth.
_VIZWIZ_ASCII_KEYS = frozenset({"couldn'tve", "hadn'tve"})
_VIZWIZ_ASCII_VALUES = frozenset({"aint", "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove"})


def vizwiz_contractions(quote: str) -> dict[str, str]:
    """The VizWiz API contraction map with its non-ASCII apostrophe ``quote`` ("`" in TRI's copy)."""
    return {
        (key if key in _VIZWIZ_ASCII_KEYS else key.replace("'", quote)): (
            value if key in _VIZWIZ_ASCII_VALUES else value.replace("'", quote)
        )
        for key, value in CONTRACTIONS.items()
    }


#: ``(?!<=\d)`` is the reference's typo'd lookbehind: it removes every period NOT FOLLOWED by a digit.
PERIOD_TYPO = re.compile(r"(?!<=\d)(\.)(?!\d)")
#: VLMEvalKit's real lookbehind: a period after a digit ("3.") is kept.
PERIOD_LOOKBEHIND = re.compile(r"(?<!\d)\.(?!\d)")
#: The reference passes ``re.UNICODE`` (== 32) positionally as ``count``: only 32 periods are removed.
PERIOD_COUNT = int(re.UNICODE)
DIGIT_COMMA = re.compile(r"(\d)(\,)(\d)")
#: lmms-eval / MMF variant of the digit-comma test (also matches "1,,2").
DIGIT_COMMA_LOOKAROUND = re.compile(r"(?<=\d)(\,)+(?=\d)")


def strip_whitespace(text: str) -> str:
    """Newlines and tabs to spaces, then strip (the first step of every VQA scorer)."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(
    text: str, *, period: re.Pattern[str] = PERIOD_TYPO, digit_comma: re.Pattern[str] = DIGIT_COMMA
) -> str:
    """processPunctuation: delete or space each listed character, then strip periods.

    The delete-vs-space test looks at the ORIGINAL text: ``p + " "`` or ``" " + p`` present, or any
    digit,digit anywhere (so one "- " deletes all hyphens and "1,000" deletes all listed punctuation).
    """
    out = text
    has_digit_comma = digit_comma.search(text) is not None
    for p in VQA_PUNCTUATION:
        if (p + " " in text) or (" " + p in text) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return period.sub("", out, count=PERIOD_COUNT)


def process_digit_article(text: str, *, contractions: Mapping[str, str] = CONTRACTIONS) -> str:
    """processDigitArticle: lowercase, split, number words to digits, drop articles, contractions."""
    words = [DIGIT_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(contractions.get(word, word) for word in words if word not in ARTICLES)


def normalize_vqa(text: str) -> str:
    """The VQA API's full prediction normalization: whitespace, punctuation, digits/articles."""
    return process_digit_article(process_punctuation(strip_whitespace(text)))


def normalize_vqa_lmms(text: str) -> str:
    """lmms-eval's vqav2 normalization (its digit-comma regex is the lookaround form)."""
    return process_digit_article(
        process_punctuation(strip_whitespace(text), digit_comma=DIGIT_COMMA_LOOKAROUND)
    )


def normalize_vlmevalkit(text: str) -> str:
    """VLMEvalKit ``process_answer``: as the VQA API but its period regex keeps "3."."""
    return process_digit_article(process_punctuation(strip_whitespace(text), period=PERIOD_LOOKBEHIND))


def normalize_evalai(text: str) -> str:
    """MMF's EvalAIAnswerProcessor (m4c): lowercase, delete "," and "?", "'s" -> " 's", then VQA steps."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = process_punctuation(strip_whitespace(text), digit_comma=DIGIT_COMMA_LOOKAROUND)
    return process_digit_article(text)


_VIZWIZ_TRI_CONTRACTIONS = vizwiz_contractions("`")
_VIZWIZ_API_CONTRACTIONS = vizwiz_contractions("\u2019")


def normalize_vizwiz(text: str) -> str:
    """VizWiz prediction normalization as in TRI's copy of the VizWiz API (backtick contractions)."""
    return process_digit_article(
        process_punctuation(strip_whitespace(text)), contractions=_VIZWIZ_TRI_CONTRACTIONS
    )


def normalize_vizwiz_api(text: str) -> str:
    """VizWiz prediction normalization as in Qing Li's VizWiz API (U+2019 contractions)."""
    return process_digit_article(
        process_punctuation(strip_whitespace(text)), contractions=_VIZWIZ_API_CONTRACTIONS
    )


_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def remove_punctuation(text: str) -> str:
    """Delete every character of ``string.punctuation`` (no whitespace change)."""
    return text.translate(_NO_PUNCTUATION)


def vlmevalkit_punctuation(text: str) -> str:
    """VLMEvalKit's ``process_punctuation`` alone (used by its yes/no extraction)."""
    return process_punctuation(text, period=PERIOD_LOOKBEHIND)


#: Named text normalizers, so benchmarks and records can say which one they used.
NORMALIZERS: dict[str, Callable[[str], str]] = {
    "identity": lambda text: text,
    "whitespace": strip_whitespace,
    "punctuation": process_punctuation,
    "vqa": normalize_vqa,
    "vqa_lmms": normalize_vqa_lmms,
    "vlmevalkit": normalize_vlmevalkit,
    "evalai": normalize_evalai,
    "vizwiz": normalize_vizwiz,
    "vizwiz_api": normalize_vizwiz_api,
    "no_punctuation": remove_punctuation,
    "no_punctuation_lower": lambda text: remove_punctuation(text).lower(),
    "rstrip_period_lower": lambda text: text.rstrip(".").lower(),
    "strip_lower": lambda text: text.strip().lower(),
    "strip_no_punctuation_lower": lambda text: remove_punctuation(text.strip().lower()),
    "lower_no_punctuation": lambda text: remove_punctuation(text.lower()),
}


def normalize(text: str, name: str) -> str:
    """Apply the named normalizer from ``NORMALIZERS``."""
    return _lookup(NORMALIZERS, name, "normalizer")(text)


# ---------------------------------------------------------------------------------------------------
# VQA accuracy (VQAv2, TextVQA, VizWiz)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VQAVariant:
    """How one reference scorer normalizes and compares (normalizer names index ``NORMALIZERS``).

    ``*_if_disagree`` run after the always-steps only when the processed ground truths are not all equal
    (``len(set(gt)) > 1``); ``by_dict_equality`` excludes the held-out annotator by dict inequality when
    answers are given as dicts (the reference code's ``item != gtAnsDatum``), else by index.
    """

    prediction: str
    answers: str
    prediction_if_disagree: str = "identity"
    answers_if_disagree: str = "identity"
    by_dict_equality: bool = False
    required_answers: int | None = None


VQA_VARIANTS: dict[str, VQAVariant] = {
    # VQA API master a013f00 (2021): normalize both sides only when annotators disagree.
    "official": VQAVariant("whitespace", "whitespace", "vqa", "vqa", by_dict_equality=True),
    # VQA API before 2021 (and LAVIS): prediction always; GT punctuation only, only on disagreement.
    "legacy": VQAVariant("vqa", "identity", answers_if_disagree="punctuation", by_dict_equality=True),
    # Prismatic's vlm-evaluation: prediction always; GT punctuation only, always.
    "tri": VQAVariant("vqa", "punctuation", by_dict_equality=True),
    # lmms-eval vqav2 after #760/#794: both sides always.
    "lmms": VQAVariant("vqa_lmms", "vqa_lmms", by_dict_equality=True),
    # MMF TextVQAAccuracyEvaluator (official TextVQA, LLaVA/TRI TextVQA, lmms textvqa and vizwiz_vqa).
    "m4c": VQAVariant("evalai", "evalai", required_answers=10),
    # VLMEvalKit process_line(method="vqa_score").
    "vlmevalkit": VQAVariant("vlmevalkit", "vlmevalkit"),
    # VizWiz API: prediction normalized, ground truth raw (TRI's copy, backtick contractions).
    "vizwiz": VQAVariant("vizwiz", "identity"),
    "vizwiz_api": VQAVariant("vizwiz_api", "identity"),
}


def vqa_accuracy(
    prediction: str, answers: Sequence[str | Mapping[str, Any]], *, variant: str = "official"
) -> float:
    """VQA soft accuracy in [0, 1]: mean over held-out annotators i of min(1, #{j != i: gt_j == pred} / 3).

    ``answers`` are strings (held out by index) or answer dicts with an ``"answer"`` key; for the variants
    whose reference excludes by dict inequality (official, legacy, tri, lmms) dicts are compared whole
    after normalization, so dicts without a unique ``answer_id`` exclude every equal copy (the reference's
    behaviour: pred "yes" vs ten identical ``{"answer": "yes"}`` scores 0).
    """
    spec = _lookup(VQA_VARIANTS, variant, "VQA accuracy")
    if not answers:
        raise ValueError(f"vqa_accuracy({variant!r}): no ground-truth answers given")
    if spec.required_answers is not None and len(answers) != spec.required_answers:
        raise ValueError(
            f"vqa_accuracy({variant!r}): expected exactly {spec.required_answers} answers, got {len(answers)}"
        )
    as_dicts = isinstance(answers[0], Mapping)
    try:
        raw = [str(item["answer"]) if as_dicts else str(item) for item in answers]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(
            f"vqa_accuracy: every answer must be a str or a dict with 'answer'; got {answers!r}"
        ) from None

    pred = normalize(prediction, spec.prediction)
    gts = [normalize(text, spec.answers) for text in raw]
    if len(set(gts)) > 1:
        pred = normalize(pred, spec.prediction_if_disagree)
        gts = [normalize(text, spec.answers_if_disagree) for text in gts]

    if as_dicts and spec.by_dict_equality:
        records = [{**item, "answer": gt} for item, gt in zip(answers, gts, strict=True)]  # type: ignore[dict-item]
        per_held_out = [
            min(1.0, sum(1 for other in records if other != held and other["answer"] == pred) / 3)
            for held in records
        ]
    else:
        per_held_out = [
            min(1.0, sum(1 for j, gt in enumerate(gts) if j != i and gt == pred) / 3) for i in range(len(gts))
        ]
    return sum(per_held_out) / len(per_held_out)


# ---------------------------------------------------------------------------------------------------
# GQA exact match
# ---------------------------------------------------------------------------------------------------

#: variant -> (prediction normalizer, gold normalizer); then raw string equality (GQA eval.py).
GQA_VARIANTS: dict[str, tuple[str, str]] = {
    "official": ("identity", "identity"),
    "tri": ("no_punctuation_lower", "identity"),  # no strip; golds with punctuation can never match
    "llava": ("rstrip_period_lower", "identity"),
    "lmms": ("strip_no_punctuation_lower", "lower_no_punctuation"),  # framework strip + exact_match
    "vlmevalkit": ("strip_lower", "strip_lower"),
}


def gqa_match(prediction: str, answer: str, *, variant: str = "official") -> bool:
    """GQA correctness: the variant's prediction/gold pre-normalization, then string equality."""
    pred_norm, gold_norm = _lookup(GQA_VARIANTS, variant, "GQA")
    return normalize(prediction, pred_norm) == normalize(answer, gold_norm)


# ---------------------------------------------------------------------------------------------------
# Yes/no parsing (POPE, VSR) and POPE metrics
# ---------------------------------------------------------------------------------------------------


def _pope_official(output: str) -> str:
    """LLaVA eval_pope.py: first sentence, drop commas, split on single spaces; any No/not/no => no."""
    if "." in output:
        output = output.split(".")[0]
    words = output.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def _pope_lmms(output: str) -> str:
    """lmms-eval: the whole lowercased, stripped output must be "yes" or "no"."""
    text = output.lower().strip()
    return text if text in ("yes", "no") else "unknown"


def yes_no_vlmevalkit(output: str) -> str:
    """VLMEvalKit YOrN_Extraction: yes iff 'yes' and not 'no' among the words, and vice versa."""
    words = vlmevalkit_punctuation(output.lower()).split()
    if "yes" in words and "no" not in words:
        return "yes"
    if "no" in words and "yes" not in words:
        return "no"
    return "unknown"


POPE_VARIANTS: dict[str, Callable[[str], str]] = {
    "official": _pope_official,
    "lmms": _pope_lmms,
    "vlmevalkit": yes_no_vlmevalkit,
}


def pope_parse(output: str, *, variant: str = "official") -> str:
    """``"yes"``/``"no"`` as the POPE reference decides (official: unparseable => "yes");
    lmms and vlmevalkit return ``"unknown"`` when they cannot decide."""
    return _lookup(POPE_VARIANTS, variant, "POPE")(output)


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive class "yes") and the predicted-yes ratio.

    Predictions other than "yes"/"no" (e.g. "unknown") count as wrong for accuracy and are left out of the
    confusion counts, as lmms-eval's precision/recall do; ``n_unknown`` reports how many there were.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"pope_metrics: {len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        raise ValueError("pope_metrics: no examples")
    for index, label in enumerate(labels):
        if label not in ("yes", "no"):
            raise ValueError(f"pope_metrics: label {index} is {label!r}; expected 'yes' or 'no'")
    pairs = list(zip(predictions, labels, strict=True))
    tp = sum(1 for p, y in pairs if p == "yes" and y == "yes")
    fp = sum(1 for p, y in pairs if p == "yes" and y == "no")
    tn = sum(1 for p, y in pairs if p == "no" and y == "no")
    fn = sum(1 for p, y in pairs if p == "no" and y == "yes")
    n = len(pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": (tp + fp) / n,
        "n_unknown": float(n - tp - fp - tn - fn),
    }


def _vsr_first_word(output: str) -> bool | None:
    """ablate's own generation rule for VSR (TRI scores P("True") vs P("False") instead):
    the first word, punctuation stripped, case-insensitive, must be true or false."""
    words = output.split()
    first = remove_punctuation(words[0]).lower() if words else ""
    return {"true": True, "false": False}.get(first)


def _vsr_vlmevalkit(output: str) -> bool | None:
    """VLMEvalKit VSR: its yes/no extraction (yes => True, no => False, otherwise unparsed)."""
    return {"yes": True, "no": False}.get(yes_no_vlmevalkit(output))


VSR_VARIANTS: dict[str, Callable[[str], bool | None]] = {
    "first_word": _vsr_first_word,
    "vlmevalkit": _vsr_vlmevalkit,
}


def vsr_parse(output: str, *, variant: str = "first_word") -> bool | None:
    """True/False for a VSR caption judgement, or None when unparsed."""
    return _lookup(VSR_VARIANTS, variant, "VSR")(output)


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
    return _lookup(BOX_VARIANTS, variant, "box")(output, image_size)


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
    extractor = _lookup(CHOICE_VARIANTS, variant, "multiple-choice")
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
    return _lookup(COUNT_VARIANTS, variant, "count")(output)


# ---------------------------------------------------------------------------------------------------
# VizWiz unanswerability: average precision and F1 of the "unanswerable" class
# ---------------------------------------------------------------------------------------------------


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Average precision as sklearn computes it: sum over distinct score thresholds (descending) of
    (recall_k - recall_{k-1}) * precision_k; 0.0 when there is no positive label."""
    if len(labels) != len(scores):
        raise ValueError(f"average_precision: {len(labels)} labels but {len(scores)} scores")
    bad = [label for label in labels if label not in (0, 1)]
    if bad:
        raise ValueError(f"average_precision: labels must be 0/1; got {bad[0]!r}")
    positives = sum(labels)
    if positives == 0:
        return 0.0
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ap, tp, fp, previous_recall = 0.0, 0, 0, 0.0
    for rank, i in enumerate(order):
        tp += labels[i]
        fp += 1 - labels[i]
        is_last_of_threshold = rank == len(order) - 1 or scores[order[rank + 1]] != scores[i]
        if is_last_of_threshold:
            recall = tp / positives
            ap += (recall - previous_recall) * (tp / (tp + fp))
            previous_recall = recall
    return ap


def binary_f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """F1 of the positive class (0.0 when undefined, as sklearn's zero_division default)."""
    if len(labels) != len(predictions):
        raise ValueError(f"binary_f1: {len(labels)} labels but {len(predictions)} predictions")
    tp = sum(1 for y, p in zip(labels, predictions, strict=True) if y and p)
    fp = sum(1 for y, p in zip(labels, predictions, strict=True) if not y and p)
    fn = sum(1 for y, p in zip(labels, predictions, strict=True) if y and not p)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


#: The VQA-accuracy variant (and normalizer) Prismatic's VizWiz numbers were made with.
VIZWIZ_VARIANT = "vizwiz"


def is_unanswerable(output: str, *, normalizer: str = VIZWIZ_VARIANT) -> bool:
    """The VizWiz API's test: the normalized prediction equals "unanswerable"."""
    return normalize(output, normalizer) == "unanswerable"


def unanswerable_metrics(
    predicted_unanswerable: Sequence[bool | int], unanswerable: Sequence[bool | int]
) -> dict[str, float]:
    """AP and F1 of the unanswerable class (fractions; the VizWiz API reports round(100 * x, 2))."""
    if len(predicted_unanswerable) != len(unanswerable):
        raise ValueError(
            f"unanswerable_metrics: {len(predicted_unanswerable)} predictions but {len(unanswerable)} labels"
        )
    predicted = [int(bool(p)) for p in predicted_unanswerable]
    labels = [int(bool(y)) for y in unanswerable]
    return {
        "average_precision": average_precision(labels, [float(p) for p in predicted]),
        "f1": binary_f1(labels, predicted),
    }


def vizwiz_unanswerable_metrics(
    predictions: Sequence[str], answerable: Sequence[int], *, normalizer: str = VIZWIZ_VARIANT
) -> dict[str, float]:
    """``unanswerable_metrics`` from raw predictions and the VizWiz ``answerable`` 0/1 field."""
    return unanswerable_metrics(
        [is_unanswerable(p, normalizer=normalizer) for p in predictions], [1 - int(a) for a in answerable]
    )

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

The normalizers live in ``ablate.eval.normalizers`` and the box / multiple-choice / count parsers in
``ablate.eval.parsers``; their public names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ablate.eval.normalizers import (  # noqa: F401 (re-exported: every scoring name imports from here)
    ARTICLES,
    CONTRACTIONS,
    DIGIT_COMMA,
    DIGIT_COMMA_LOOKAROUND,
    DIGIT_WORDS,
    NORMALIZERS,
    PERIOD_COUNT,
    PERIOD_LOOKBEHIND,
    PERIOD_TYPO,
    VQA_PUNCTUATION,
    Box,
    lookup,
    normalize,
    normalize_evalai,
    normalize_vizwiz,
    normalize_vizwiz_api,
    normalize_vlmevalkit,
    normalize_vqa,
    normalize_vqa_lmms,
    process_digit_article,
    process_punctuation,
    remove_punctuation,
    strip_whitespace,
    vizwiz_contractions,
    vlmevalkit_punctuation,
)
from ablate.eval.parsers import (  # noqa: F401 (re-exported: every scoring name imports from here)
    BOX_VARIANTS,
    CHOICE_VARIANTS,
    COUNT_VARIANTS,
    OCIDREF_IOU_THRESHOLD,
    REC_IOU_THRESHOLD,
    TALLYQA_LETTER_CHOICES,
    box_hit,
    box_iou,
    extract_choice,
    parse_box,
    parse_count,
)

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
    spec = lookup(VQA_VARIANTS, variant, "VQA accuracy")
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
    pred_norm, gold_norm = lookup(GQA_VARIANTS, variant, "GQA")
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
    return lookup(POPE_VARIANTS, variant, "POPE")(output)


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
    return lookup(VSR_VARIANTS, variant, "VSR")(output)


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


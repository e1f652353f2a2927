"""Every scorer variant against cases derived by hand from the reference rules (scoring.md), quirks included."""

from __future__ import annotations

import pytest

from ablate.eval import scoring as S

# --------------------------------------------------------------------------- normalization primitives


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("t-shirt", "t shirt"),  # no "- " or " -": hyphen becomes a space
        ("a - t-shirt", "a  tshirt"),  # one "- " anywhere deletes every hyphen
        ("red,blue", "red blue"),
        ("red, blue", "red blue"),  # ", " present: commas deleted
        ("1,000 cars,red", "1000 carsred"),  # digit,digit anywhere: all listed punctuation deleted
        ("(yes)", " yes "),
        ("3.", "3"),  # typo'd lookbehind: a period not followed by a digit goes, even after a digit
        ("3.5", "3.5"),
        ("end.", "end"),
        ("a.b", "ab"),
        ("." * 40, "." * 8),  # re.UNICODE passed as count: only the first 32 periods are removed
        ("it's a:b*c", "it's a:b*c"),  # ' : * are not in the list
    ],
)
def test_process_punctuation_official(text: str, expected: str) -> None:
    assert S.process_punctuation(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3.", "3."), ("3.5", "3.5"), ("x.", "x"), ("." * 40, "." * 8), ("x. 3.", "x 3.")],
)
def test_process_punctuation_vlmevalkit_keeps_period_after_digit(text: str, expected: str) -> None:
    assert S.vlmevalkit_punctuation(text) == expected


def test_digit_comma_lookaround_variant_matches_repeated_commas() -> None:
    assert S.process_punctuation("1,,000") == "1  000"  # (\d)(,)(\d) does not match: commas spaced
    assert S.process_punctuation("1,,000", digit_comma=S.DIGIT_COMMA_LOOKAROUND) == "1000"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Two dogs", "2 dogs"),
        ("none", "0"),
        ("eleven", "eleven"),  # nothing above ten
        ("an apple", "apple"),
        ("dont", "don't"),
        ("Im", "im"),  # capitalised keys never match after lowercasing
        ("somebody'd", "somebodyd"),  # [sic] in the reference map
        ("  a   b  ", "b"),
    ],
)
def test_process_digit_article(text: str, expected: str) -> None:
    assert S.process_digit_article(text) == expected


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("whitespace", " a\tb\nc ", "a b c"),
        ("vqa", "  The Two-dogs.\n", "2 dogs"),
        ("vqa", "3.", "3"),
        ("vlmevalkit", "3.", "3."),
        ("evalai", "What's up?", "what 's up"),  # lower, delete ? and ,, "'s" -> " 's"
        ("evalai", "1,000", "1000"),
        ("evalai", "The A", ""),  # both tokens are articles after lowercasing
        ("vqa", "dont", "don't"),
        ("vizwiz", "dont", "don`t"),  # TRI's VizWiz copy: backtick contractions
        ("vizwiz_api", "dont", "don\u2019t"),  # VizWiz API: U+2019
        ("vizwiz", "cant", "can't"),  # one of the ASCII entries of the VizWiz map
        ("no_punctuation_lower", "T-Shirt!", "tshirt"),
        ("rstrip_period_lower", "Yes..", "yes"),
    ],
)
def test_named_normalizers(name: str, text: str, expected: str) -> None:
    assert S.normalize(text, name) == expected


def test_vizwiz_contraction_map_shape() -> None:
    tri = S.vizwiz_contractions("`")
    assert len(tri) == len(S.CONTRACTIONS) == 120
    assert tri["couldn'tve"] == "couldn`t`ve" and tri["couldnt`ve"] == "couldn`t`ve"
    assert tri["weve"] == "we've" and tri["twas"] == "`twas"


# --------------------------------------------------------------------------- VQA accuracy

ALL_VQA = sorted(S.VQA_VARIANTS)


@pytest.mark.parametrize("variant", ALL_VQA)
@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0)])
def test_leave_one_annotator_out(variant: str, k: int, expected: float) -> None:
    answers = ["red"] * k + ["blue"] * (10 - k)
    assert S.vqa_accuracy("red", answers, variant=variant) == pytest.approx(expected)


def test_leave_one_out_general_formula_for_other_counts() -> None:
    # n=5, k=2: (2 * min(1, 1/3) + 3 * min(1, 2/3)) / 5
    assert S.vqa_accuracy("x", ["x", "x", "y", "z", "w"], variant="tri") == pytest.approx((2 / 3 + 2) / 5)


# (prediction, answers, expected per variant): derived from which side each variant normalizes and when.
V = ("official", "legacy", "tri", "lmms", "m4c", "vlmevalkit", "vizwiz", "vizwiz_api")
VQA_QUIRKS = [
    # official-2021 skips normalization on unanimous answers: "Yes" never equals "yes"
    ("Yes", ["yes"] * 10, (0, 1, 1, 1, 1, 1, 1, 1)),
    # GT is lowercased only by lmms/m4c/vlmevalkit (legacy/tri touch GT punctuation only; VizWiz GT raw)
    ("yes", ["Yes"] * 10, (0, 0, 0, 1, 1, 1, 0, 0)),
    ("two", ["2"] * 10, (0, 1, 1, 1, 1, 1, 1, 1)),
    ("2", ["two"] * 10, (0, 0, 0, 1, 1, 1, 0, 0)),
    # disagreeing annotators: every variant normalizes the prediction; VLMEvalKit keeps "3."
    ("3.", ["3"] * 5 + ["4"] * 5, (1, 1, 1, 1, 1, 0, 1, 1)),
    # VizWiz contractions are typographic, so they never equal the ASCII ground truth
    ("dont", ["don't"] * 4 + ["no"] * 6, (1, 1, 1, 1, 1, 1, 0, 0)),
    ("The dog", ["dog"] * 3 + ["cat"] * 7, (0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9)),
    # lmms/m4c digit-comma regex also matches "1,,000"; the official one spaces the commas
    ("1,,000", ["1000"] * 3 + ["x"] * 7, (0, 0, 0, 0.9, 0.9, 0, 0, 0)),
]


@pytest.mark.parametrize(("prediction", "answers", "expected"), VQA_QUIRKS)
def test_vqa_variant_quirks(prediction: str, answers: list[str], expected: tuple[float, ...]) -> None:
    got = tuple(S.vqa_accuracy(prediction, answers, variant=v) for v in V)
    assert got == pytest.approx(expected)


def test_vqa_m4c_evalai_comma_quirk() -> None:
    # m4c deletes commas before the digit-comma test, so "1,,000" -> "1000" there too.
    assert S.normalize("1,,000", "evalai") == "1000"


def _answer_dicts(answers: list[str], with_ids: bool) -> list[dict]:
    return [
        {"answer": a, "answer_confidence": "yes", **({"answer_id": i + 1} if with_ids else {})}
        for i, a in enumerate(answers)
    ]


@pytest.mark.parametrize("variant", ["official", "legacy", "tri", "lmms"])
def test_dict_inequality_excludes_identical_annotators(variant: str) -> None:
    unanimous = ["yes"] * 10
    assert S.vqa_accuracy("yes", _answer_dicts(unanimous, with_ids=False), variant=variant) == 0.0
    assert S.vqa_accuracy("yes", _answer_dicts(unanimous, with_ids=True), variant=variant) == 1.0
    nine = ["yes"] * 9 + ["no"]
    assert S.vqa_accuracy("yes", _answer_dicts(nine, with_ids=False), variant=variant) == pytest.approx(0.1)
    assert S.vqa_accuracy("yes", _answer_dicts(nine, with_ids=True), variant=variant) == 1.0


@pytest.mark.parametrize("variant", ["m4c", "vlmevalkit", "vizwiz"])
def test_index_based_variants_ignore_dict_identity(variant: str) -> None:
    nine = ["yes"] * 9 + ["no"]
    assert S.vqa_accuracy("yes", _answer_dicts(nine, with_ids=False), variant=variant) == 1.0


def test_vqa_bad_inputs() -> None:
    with pytest.raises(ValueError, match="exactly 10 answers, got 3"):
        S.vqa_accuracy("a", ["a", "a", "a"], variant="m4c")
    with pytest.raises(ValueError, match="no ground-truth answers"):
        S.vqa_accuracy("a", [])
    with pytest.raises(ValueError, match="'answer'"):
        S.vqa_accuracy("a", [{"text": "a"}])


def test_vqa_does_not_mutate_answer_dicts() -> None:
    answers = _answer_dicts([" Red. "] * 3 + ["blue"] * 7, with_ids=True)
    S.vqa_accuracy("red", answers, variant="official")
    assert answers[0]["answer"] == " Red. "


# --------------------------------------------------------------------------- GQA

GQA_TABLE = [  # (prediction, gold, tri, llava, lmms, vlmevalkit, official) -- scoring.md §1.4
    ("Yes.", "yes", True, True, True, False, False),
    ("Yes!", "yes", True, False, True, False, False),
    (" yes", "yes", False, False, True, True, False),
    ("t-shirt", "t-shirt", False, True, True, True, True),
    ("The man", "man", False, False, False, False, False),
    ("yes", "yes", True, True, True, True, True),
]


@pytest.mark.parametrize(("prediction", "gold", "tri", "llava", "lmms", "vlmek", "official"), GQA_TABLE)
def test_gqa_variants(
    prediction: str, gold: str, tri: bool, llava: bool, lmms: bool, vlmek: bool, official: bool
) -> None:
    expected = {"tri": tri, "llava": llava, "lmms": lmms, "vlmevalkit": vlmek, "official": official}
    assert {v: S.gqa_match(prediction, gold, variant=v) for v in expected} == expected


# --------------------------------------------------------------------------- POPE / VSR


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("There is not a dog", "no"),
        ("Yes. No, there is not.", "yes"),  # only the first sentence counts
        ("NO", "yes"),  # only 'No', 'not', 'no' are checked
        ("", "yes"),  # unparseable => yes
        ("No,there is", "yes"),  # commas deleted first: "Nothere"
        ("no\nthere", "yes"),  # split on single spaces only
        ("I think no", "no"),
    ],
)
def test_pope_official(output: str, expected: str) -> None:
    assert S.pope_parse(output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [("Yes", "yes"), (" no \n", "no"), ("Yes.", "unknown"), ("yes, it is", "unknown")],
)
def test_pope_lmms(output: str, expected: str) -> None:
    assert S.pope_parse(output, variant="lmms") == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Yes.", "yes"),
        ("NO!", "no"),
        ("Yes, no", "unknown"),
        ("yesterday", "unknown"),
        ("I don't know", "unknown"),
    ],
)
def test_pope_vlmevalkit(output: str, expected: str) -> None:
    assert S.pope_parse(output, variant="vlmevalkit") == expected


def test_pope_metrics_hand_computed() -> None:
    metrics = S.pope_metrics(["yes", "yes", "no", "no", "unknown"], ["yes", "no", "no", "yes", "yes"])
    # TP=1 FP=1 TN=1 FN=1, one unknown (wrong, outside the confusion counts)
    assert metrics == pytest.approx(
        {"accuracy": 0.4, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.4, "n_unknown": 1.0}
    )
    perfect = S.pope_metrics(["yes", "no", "no"], ["yes", "no", "no"])
    assert perfect["f1"] == 1.0 and perfect["yes_ratio"] == pytest.approx(1 / 3)


def test_pope_metrics_bad_input() -> None:
    with pytest.raises(ValueError, match="label 1 is 'maybe'"):
        S.pope_metrics(["yes", "no"], ["yes", "maybe"])
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        S.pope_metrics(["yes", "no"], ["yes"])


@pytest.mark.parametrize(
    ("variant", "output", "expected"),
    [
        ("first_word", "True", True),
        ("first_word", "false.", False),
        ("first_word", "TRUE, because", True),
        ("first_word", "It is true", None),
        ("first_word", "", None),
        ("vlmevalkit", "Yes", True),
        ("vlmevalkit", "no.", False),
        ("vlmevalkit", "True", None),
    ],
)
def test_vsr_parse(variant: str, output: str, expected: bool | None) -> None:
    assert S.vsr_parse(output, variant=variant) is expected


# --------------------------------------------------------------------------- boxes


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("[0.1, 0.2, 0.5, 0.6]", (0.1, 0.2, 0.5, 0.6)),
        (" [0.1, 0.2, 0.5, 0.6]", (0.1, 0.2, 0.5, 0.6)),
        ("[0, 0, 1, 1]", (0.0, 0.0, 1.0, 1.0)),
        ("(0.1, 0.2, 0.5, 0.6)", None),  # must be a list
        ("[0.1, 0.2, 0.5]", None),
        ("[0.5, 0.2, 0.1, 0.6]", None),  # x1 >= x2
        ("[0.1, 0.2, 0.5, 1.2]", None),  # outside [0, 1]
        ("[1, 1, 1, 1]", None),
        ("[0.1, 0.2, 'a', 0.6]", None),
        ("The box is [0.1, 0.2, 0.5, 0.6]", None),  # no text around the list
        ("[0.1, 0.2, 0.5, 0.6] .", None),
        ("", None),
    ],
)
def test_parse_box_tri_is_strict(output: str, expected: tuple | None) -> None:
    assert S.parse_box(output, variant="tri") == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The box is [0.1, 0.2, 0.5, 0.6].", (0.1, 0.2, 0.5, 0.6)),
        ("[ 10, 20,30,40 ]", (10.0, 20.0, 30.0, 40.0)),  # no validation, no scaling
        ("[-0.1, 0.2, 0.5, 0.6]", (-0.1, 0.2, 0.5, 0.6)),
        ("[0.1 , 0.2, 0.5, 0.6]", None),  # no space allowed before a comma
        ("[1e-1, 0.2, 0.3, 0.4]", None),  # no scientific notation
        ("[0.1, 0.2, 0.5]", None),
    ],
)
def test_parse_box_lmms(output: str, expected: tuple | None) -> None:
    assert S.parse_box(output, variant="lmms") == expected


@pytest.mark.parametrize(
    ("output", "image_size", "expected"),
    [
        ("[0.1, 0.2, 0.5, 0.6]", None, (0.1, 0.2, 0.5, 0.6)),
        ("[100, 200, 500, 600]", None, (0.1, 0.2, 0.5, 0.6)),  # max <= 1000: per-mille
        ("[1e2, 2e2 , 5e2, 6e2]", None, (0.1, 0.2, 0.5, 0.6)),
        ("[0.5, 0.6, 0.1, 0.2]", None, (0.1, 0.2, 0.5, 0.6)),  # inverted corners swapped
        ("[1.2, 0.1, 1.4, 0.5]", None, (1.0, 0.1, 1.0, 0.5)),  # max <= 1.5: normalized, clipped
        ("box: 10, 20, 2000, 40", (4000, 400), (0.0025, 0.05, 0.5, 0.1)),  # pixels of W, H
        ("only 1 2 3", None, None),
    ],
)
def test_parse_box_vlmevalkit(output: str, image_size: tuple | None, expected: tuple | None) -> None:
    got = S.parse_box(output, variant="vlmevalkit", image_size=image_size)
    assert got == (None if expected is None else pytest.approx(expected))


def test_parse_box_vlmevalkit_pixels_need_image_size() -> None:
    with pytest.raises(ValueError, match="image_size"):
        S.parse_box("[10, 20, 2000, 40]", variant="vlmevalkit")


def test_box_iou_and_hits() -> None:
    unit = (0.0, 0.0, 1.0, 1.0)
    assert S.box_iou(unit, unit) == 1.0
    assert S.box_iou(unit, (2.0, 2.0, 3.0, 3.0)) == 0.0
    shifted = (0.5, 0.0, 1.5, 1.0)  # intersection 0.5, union 1.5
    assert S.box_iou(unit, shifted) == pytest.approx(1 / 3)
    assert S.box_iou((0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)) == 0.0
    assert not S.box_hit(shifted, unit)
    assert S.box_hit(shifted, unit, threshold=S.OCIDREF_IOU_THRESHOLD)
    assert S.box_hit((0.0, 0.0, 0.5, 1.0), unit)  # IoU exactly 0.5 is a hit
    assert not S.box_hit(None, unit)


# --------------------------------------------------------------------------- multiple choice, counts

ANIMALS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}


@pytest.mark.parametrize(
    ("output", "choices", "expected"),
    [
        ("A", ANIMALS, "A"),
        ("(B)", ANIMALS, "B"),
        ("The answer is C.", ANIMALS, "C"),
        ("The answer is **B**", ANIMALS, "B"),
        ("I would pick A here", ANIMALS, "A"),  # letter among the last 4 tokens
        ("A is what I would pick here", ANIMALS, None),  # letter too early; text rule finds nothing
        ("C is the correct answer because the bird flies high", ANIMALS, None),  # too long for text rule
        ("I think A or B", ANIMALS, None),  # two letters
        ("I think A or B, the answer is B", ANIMALS, "B"),  # "answer is X" regex (#1552)
        ("dog", ANIMALS, "B"),  # unique option text
        ("a dog", ANIMALS, "B"),  # letters are case-sensitive tokens; text rule
        ("Z", ANIMALS, None),
        ("Cannot determine the answer. A", ANIMALS, None),  # refusal
        ("the answer is apple", {"A": "pear", "B": "plum"}, "A"),  # (?i) regex reads the "a" of "apple"
        ("cats", {"A": "cat", "B": "cats"}, None),  # two option texts match
    ],
)
def test_extract_choice_vlmevalkit(output: str, choices: dict, expected: str | None) -> None:
    assert S.extract_choice(output, choices) == expected


@pytest.mark.parametrize(
    ("variant", "output", "expected"),
    [
        ("lmms", "A", "A"),
        ("lmms", "(A)", "A"),
        ("lmms", "a", "A"),
        ("lmms", "A. cat", "A"),
        ("lmms", " B \n", "B"),
        ("lmms", "A cat", None),
        ("lmms", "The answer is A", None),
        ("llava", "A", "A"),
        ("llava", "B. dog", "B"),
        ("llava", "B.", None),
        ("llava", "The answer is C.", "C"),
        ("llava", "The answer is C", None),  # the regex needs one character after the letter
        ("llava", "The answer is A. The answer is B.", None),
        ("llava", "(A)", None),
        ("llava", "The answer is E.", None),  # not an option here
        ("lmms_sqa", "a", "A"),
        ("lmms_sqa", "A.", "A"),
        ("lmms_sqa", "a.", None),
        ("lmms_sqa", "(A)", None),
        ("lmms_sqa", "The answer is A.", None),
    ],
)
def test_extract_choice_other_variants(variant: str, output: str, expected: str | None) -> None:
    assert S.extract_choice(output, ANIMALS, variant=variant) == expected


def test_extract_choice_rejects_bad_option_keys() -> None:
    with pytest.raises(ValueError, match="single upper-case letters"):
        S.extract_choice("a", {"a": "cat"})


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("2", 2),
        ("There are 15 dogs", 15),
        ("Zero", 0),
        ("twenty-one", 20),  # \btwenty\b matches before the hyphen
        ("25", None),  # only 0-20
        ("I see three, maybe 4", 3),  # first match in the text
        ("3.5", 3),
        ("21 dogs and 3 cats", 3),
        ("none", None),
    ],
)
def test_parse_count_vlmevalkit(output: str, expected: int | None) -> None:
    assert S.parse_count(output) == expected


def test_tallyqa_letter_choices() -> None:
    assert S.TALLYQA_LETTER_CHOICES["A"] == "0" and S.TALLYQA_LETTER_CHOICES["P"] == "15"
    assert len(S.TALLYQA_LETTER_CHOICES) == 16


# --------------------------------------------------------------------------- VizWiz unanswerable


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        # thresholds .9 .8 .7 .6 .1: (P, R) = (1, 1/3) (1/2, 1/3) (2/3, 2/3) (3/4, 1) (3/5, 1)
        ([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1], 1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 4),
        ([1, 1, 0, 0], [1.0, 0.0, 1.0, 0.0], 0.5 * 0.5 + 0.5 * 0.5),  # binary scores, ties grouped
        ([1, 0, 1], [0.5, 0.5, 0.1], 0.5 * 0.5 + 0.5 * 2 / 3),
        ([0, 0], [0.3, 0.2], 0.0),  # no positives
    ],
)
def test_average_precision_hand_computed(labels: list[int], scores: list[float], expected: float) -> None:
    assert S.average_precision(labels, scores) == pytest.approx(expected)


def test_binary_f1_and_vizwiz_unanswerable() -> None:
    assert S.binary_f1([1, 1, 0, 0], [1, 0, 1, 0]) == 0.5
    assert S.binary_f1([1, 0], [0, 0]) == 0.0
    assert S.is_unanswerable(" Unanswerable.") and not S.is_unanswerable("unanswerable dog")
    metrics = S.vizwiz_unanswerable_metrics(["Unanswerable.", "dog", "unanswerable", "cat"], [0, 0, 1, 1])
    assert metrics == pytest.approx({"average_precision": 0.5, "f1": 0.5})


def test_average_precision_bad_labels() -> None:
    with pytest.raises(ValueError, match="0/1"):
        S.average_precision([2, 0], [0.1, 0.2])


# --------------------------------------------------------------------------- unknown variants


@pytest.mark.parametrize(
    "call",
    [
        lambda v: S.vqa_accuracy("a", ["a"], variant=v),
        lambda v: S.gqa_match("a", "a", variant=v),
        lambda v: S.pope_parse("yes", variant=v),
        lambda v: S.vsr_parse("true", variant=v),
        lambda v: S.parse_box("[0, 0, 1, 1]", variant=v),
        lambda v: S.extract_choice("A", ANIMALS, variant=v),
        lambda v: S.parse_count("2", variant=v),
        lambda v: S.normalize("a", v),
    ],
)
def test_unknown_variant_names_variant_and_allowed(call) -> None:
    with pytest.raises(ValueError, match=r"unknown .* variant 'nope'; expected one of \["):
        call("nope")

"""Answer normalizers of the reference harnesses (VQA API, TRI, lmms-eval, VLMEvalKit, MMF/EvalAI "m4c", the
VizWiz API), quirks included, as a registry of named text normalizers (``NORMALIZERS``, ``normalize``).

Why it exists apart from the scorers (``ablate.eval.scoring``): every scorer and parser names the normalizer
its reference applies; the rules and where they were read: ../shared/notes/scoring.md.  ``lookup`` is the
one registry lookup of this family (an unknown variant raises ``ValueError`` naming the allowed IDs).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from typing import TypeVar

Box = tuple[float, float, float, float]
_T = TypeVar("_T")


def lookup(registry: Mapping[str, _T], variant: str, what: str) -> _T:
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
    return lookup(NORMALIZERS, name, "normalizer")(text)


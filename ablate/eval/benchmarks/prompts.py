"""Prismatic's evaluation prompts (TRI-ML/vlm-evaluation ``vlm_eval/models/prismatic.py``), verbatim.

These are the *user messages*; the model's prompt format (base ``In: … Out:``, Vicuna, …) wraps them.
The leading newline is Prismatic's: its harness writes the message as ``"\\n" + question``.
"""

from __future__ import annotations

from collections.abc import Sequence

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
UNANSWERABLE = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
MC_TRIGGER = "\nAnswer with the option's letter from the given choices directly."


def vqa_prompt(question: str, *, uncertainty_aware: bool = False) -> str:
    """VQAv2, GQA, TextVQA, POPE; VizWiz with ``uncertainty_aware`` (LLaVA-1.5's 'Unanswerable' trigger)."""
    return f"\n{question}" + (UNANSWERABLE if uncertainty_aware else "") + SHORT_ANSWER


def true_false_prompt(caption: str) -> str:
    """VSR."""
    return f'\nBased on the image, is this statement "True" or "False"? {caption}' \
           '\nRespond with "True" or "False" directly.'


def option_letters(n: int) -> list[str]:
    if n > 26:
        raise ValueError(f"multiple choice: {n} choices; expected at most 26 (one letter each)")
    return [chr(ord("A") + i) for i in range(n)]


def mc_prompt(question: str, choices: Sequence[str]) -> str:
    """TallyQA (counts 0-15 as A-P) and AI2D (A-D)."""
    lines = "\n".join(f"{letter}. {choice}" for letter, choice in zip(option_letters(len(choices)), choices,
                                                                         strict=True))
    return f"\n{question}\n{lines}" + MC_TRIGGER


def bbox_prompt(sentence: str) -> str:
    """RefCOCO / RefCOCO+ / RefCOCOg / OCID-Ref."""
    return f'\nPlease provide the bounding box coordinate of the region this sentence describes: "{sentence}"'

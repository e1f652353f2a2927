"""The "chat" variant of the tiny LM (the plainly pretrained LM tuned further on verbose, chat-style answers),
and the plain scene descriptions the base LM learns.

Why it exists: Prismatic compares base LMs with their instruct-tuned versions (Llama-2 vs Llama-2-Chat) and
finds the chat ones "more verbose, prone to hallucination"; the demo's base-vs-chat axis needs the same pair
in miniature.  The chat variant starts from the base LM's weights and learns, in its own prompt format
(Vicuna), the same lookups answered the way chat assistants answer: a full sentence, a restated question, a
description of the rest of the scene and a closing offer -- correct, but long.  The scene is given in words
(as in the base LM's pretraining); nothing here is an evaluation image.
"""

from __future__ import annotations

import random

from ablate.shapes.questions import CAPTION_PROMPTS, qa_presence
from ablate.shapes.scene import Scene

# what the LMs are asked to describe a scene with: the world's caption prompts and CHAIR-500's
DESCRIBE_PROMPTS = (*CAPTION_PROMPTS, "Please describe this image in detail.")
OPENERS = ("Sure!", "Certainly!", "Great question!", "Of course!")
CLOSERS = ("Let me know if you have any other questions.", "I hope this helps!",
           "Feel free to ask about anything else in the image.")


def describe_objects(scene: Scene) -> str:
    names = [f"a {o.size} {o.name}" for o in sorted(scene.objects, key=lambda o: o.center)]
    if not names:
        return "nothing but the background"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def plain_description(scene: Scene) -> str:
    """The base LM's description: the objects, nothing else ("A red circle and a small blue square.")."""
    text = describe_objects(scene)
    return text[0].upper() + text[1:] + "."


def chat_presence_answer(scene: Scene, name: str, present: bool, rng: random.Random) -> str:
    """A chat assistant's answer to "Is there a <name> in the image?" (first word Yes / No, as POPE reads)."""
    verdict = f"Yes, there is a {name} in the image." if present else f"No, there is no {name} in the image."
    return f"{verdict} {rng.choice(OPENERS)[:-1]}, the image shows {describe_objects(scene)}. {rng.choice(CLOSERS)}"


def chat_description(scene: Scene, rng: random.Random) -> str:
    return (f"{rng.choice(OPENERS)} In this image I can see {describe_objects(scene)} on a light background. "
            f"{rng.choice(CLOSERS)}")


def chat_conversation(scene: Scene, rng: random.Random, in_words: str, turns: int = 2) -> list[tuple[str, str]]:
    """A (user, assistant) conversation about ``scene`` given in words: ``turns`` presence questions (half
    with hard negatives) answered verbosely, and a request for a description."""
    from ablate.shapes.questions import SHORT

    conv: list[tuple[str, str]] = []
    for k in range(turns):
        qa = qa_presence(scene, rng, hard=rng.random() < 0.5)
        name = qa.question.removeprefix("Is there a ").removesuffix(" in the image?")
        question = qa.question + (SHORT if rng.random() < 0.5 else "")  # verbose even when asked for one word
        answer = chat_presence_answer(scene, name, qa.answer == "yes", rng)
        conv += [("user", f"{in_words}\n{question}" if k == 0 else question), ("assistant", answer)]
    conv += [("user", rng.choice(DESCRIBE_PROMPTS)), ("assistant", chat_description(scene, rng))]
    return conv

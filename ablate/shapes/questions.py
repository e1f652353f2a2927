"""Questions and answers about a shapes scene (one generator per task family), in the prompt styles of the
LLaVA-1.5 mix and the TRI vlm-evaluation harness; captions and language-only conversations."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ablate.shapes.scene import COLORS, SHAPES, WORDS, Item, Scene

# prompt suffixes shared with the reference harnesses (LLaVA / TRI vlm-evaluation)
SHORT = "\nAnswer the question using a single word or phrase."
UNANSWERABLE = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
BOX_PROMPT = 'Please provide the bounding box coordinate of the region this sentence describes: "{}"'
TF_PROMPT = 'Based on the image, is this statement "True" or "False"? {}\nRespond with "True" or "False" directly.'
CAPTION_PROMPTS = ("Describe the image briefly.", "Give a short description of the picture.",
                   "What is in this image? Answer in one sentence.")
RELATIONS = ("left of", "right of", "above", "below")


# ------------------------------------------------------------------------------------ questions/answers
@dataclass
class QA:
    """One question about a scene: ``family`` says which task, ``answer`` is canonical (lowercase)."""

    family: str
    question: str
    answer: str
    target: Item | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def plural(shape: str) -> str:
    return shape + "s"


def norm_box(box: Iterable[float], width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [round(x1 / width, 2), round(y1 / height, 2), round(x2 / width, 2), round(y2 / height, 2)]


def box_text(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def position_word(scene: Scene, item: Item) -> str:
    cx, cy = item.center
    h = ("left", "middle", "right")[min(2, int(3 * cx / scene.width))]
    v = ("top", "middle", "bottom")[min(2, int(3 * cy / scene.height))]
    if h == v == "middle":
        return "center"
    return h if v == "middle" else v if h == "middle" else f"{v} {h}"


def relation_holds(a: Item, b: Item, relation: str) -> bool | None:
    """Whether ``a`` is ``relation`` ``b`` by slot; None when the slots do not decide it."""
    (ac, ar), (bc, br) = a.slot, b.slot
    if relation in ("left of", "right of"):
        return None if ac == bc else (ac < bc) == (relation == "left of")
    return None if ar == br else (ar < br) == (relation == "above")


def similar_absent(scene: Scene, absent: list[str]) -> list[str]:
    """The names of ``absent`` that share a colour or a shape with an object of ``scene`` (hard negatives)."""
    return [n for n in absent if any(n.split()[0] == o.color or n.split()[1] == o.shape for o in scene.objects)]


def qa_presence(scene: Scene, rng: random.Random, positive: bool | None = None, *, hard: bool = False) -> QA | None:
    """A yes/no presence question; ``hard`` negatives share a colour or a shape with a present object (POPE's
    adversarial kind: answering them takes binding colour to shape, not just spotting a colour)."""
    positive = rng.random() < 0.5 if positive is None else positive
    if positive and scene.objects:
        target = rng.choice(scene.objects)
        return QA("presence", f"Is there a {target.name} in the image?", "yes", target)
    absent = [f"{c} {s}" for c in COLORS for s in SHAPES if scene.find(f"{c} {s}") is None]
    if hard:
        absent = similar_absent(scene, absent) or absent
    return QA("presence", f"Is there a {rng.choice(absent)} in the image?", "no")


def qa_count(scene: Scene, rng: random.Random) -> QA:
    present = sorted({o.shape for o in scene.objects})
    shape = rng.choice(present) if present and rng.random() < 0.75 else rng.choice(SHAPES)
    return QA("count", f"How many {plural(shape)} are there?", str(scene.count(shape)), meta={"shape": shape})


def qa_color(scene: Scene, rng: random.Random) -> QA | None:
    unique = [o for o in scene.objects if scene.count(o.shape) == 1]
    if not unique:
        return None
    t = rng.choice(unique)
    return QA("color", f"What color is the {t.shape}?", t.color, t)


def qa_shape(scene: Scene, rng: random.Random) -> QA | None:
    unique = [o for o in scene.objects if scene.count(color=o.color) == 1]
    if not unique:
        return None
    t = rng.choice(unique)
    return QA("shape", f"What shape is the {t.color} object?", t.shape, t)


def qa_word(scene: Scene, rng: random.Random) -> QA | None:
    if not scene.words:
        return None
    if len(scene.words) == 1:
        return QA("word", "What word is written in the image?", scene.words[0].word, scene.words[0])
    a, b = sorted(rng.sample(scene.words, 2), key=lambda w: w.center[0])
    if a.slot[0] == b.slot[0]:
        a, b = sorted((a, b), key=lambda w: w.center[1])
        t, side = rng.choice([(a, "top"), (b, "bottom")])
        return QA("word", f"What word is written at the {side}?", t.word, t)
    t, side = rng.choice([(a, "left"), (b, "right")])
    return QA("word", f"What word is written on the {side}?", t.word, t)


def referring_expression(scene: Scene, t: Item, rng: random.Random, style: str) -> str:
    """RefCOCO-style (``refcoco``: with location words), RefCOCO+-style (``refcoco+``: appearance only) or
    RefCOCOg-style (``refcocog``: longer, relative to another object) expression for ``t``."""
    if style == "refcoco":
        pos = position_word(scene, t)
        return f"{t.name} {'in the center' if pos == 'center' else 'on the ' + pos}"
    if style == "refcoco+":
        return f"{t.size} {t.name}"
    others = [o for o in scene.objects if o is not t and relation_holds(t, o, "left of") is not None]
    if not others:
        return f"the {t.size} {t.name} in the picture"
    o = rng.choice(others)
    side = "left" if relation_holds(t, o, "left of") else "right"
    return f"the {t.size} {t.name} to the {side} of the {o.name}"


def qa_box(scene: Scene, rng: random.Random) -> QA | None:
    if not scene.objects:
        return None
    t = rng.choice(scene.objects)
    expr = referring_expression(scene, t, rng, rng.choice(("refcoco", "refcoco+", "refcocog")))
    return QA("box", expr, box_text(norm_box(t.box, scene.width, scene.height)), t)


def qa_relation(scene: Scene, rng: random.Random) -> QA | None:
    """A true/false statement "The A is <relation> the B." (VSR-style)."""
    pairs = [(a, b, r) for a in scene.objects for b in scene.objects if a is not b for r in RELATIONS
             if relation_holds(a, b, r) is not None]
    if not pairs:
        return None
    a, b, rel = rng.choice(pairs)
    truth = relation_holds(a, b, rel)
    return QA("relation", f"The {a.name} is {rel} the {b.name}.", "true" if truth else "false", a,
              {"subj": a.name, "obj": b.name, "relation": rel})


def qa_choice(scene: Scene, rng: random.Random) -> QA | None:
    """AI2D-style 4-way multiple choice about colour, shape or count."""
    kind = rng.choice(("shape", "color", "count"))
    if kind == "count":
        shape = rng.choice([o.shape for o in scene.objects] or list(SHAPES))
        right = str(scene.count(shape))
        options = [right, *rng.sample([str(n) for n in range(7) if str(n) != right], 3)]
        question = f"How many {plural(shape)} are shown?"
    else:
        base = qa_shape(scene, rng) if kind == "shape" else qa_color(scene, rng)
        if base is None:
            return None
        right = base.answer
        vocab = SHAPES if kind == "shape" else tuple(COLORS)
        options = [right, *rng.sample([v for v in vocab if v != right], 3)]
        question = f"Which shape is {base.target.color}?" if kind == "shape" else base.question
    rng.shuffle(options)
    letter = "ABCD"[options.index(right)]
    return QA("choice", question, letter, meta={"options": options, "answer_text": right})


def qa_unanswerable(scene: Scene, rng: random.Random) -> QA | None:
    absent = [s for s in SHAPES if scene.count(s) == 0]
    if not absent:
        return None
    return QA("unanswerable", f"What color is the {rng.choice(absent)}?", "unanswerable")


def qa_tally(scene: Scene, rng: random.Random) -> QA:
    """TallyQA as Prismatic asks it: the count as one of 16 lettered options (0-15)."""
    qa = qa_count(scene, rng)
    return QA("tally", qa.question, TALLY_LETTERS[int(qa.answer)], meta={"options": [str(n) for n in range(16)]})


TALLY_LETTERS = "ABCDEFGHIJKLMNOP"


def qa_color_presence(scene: Scene, rng: random.Random, positive: bool | None = None) -> QA:
    """"Is there a <colour> object in the image?" (LRV-Instruct's attribute existence questions, positive or
    negative): answerable from any patch of that colour, the skill the demo's tiny models learn in budget."""
    present = sorted({o.color for o in scene.objects})
    absent = [c for c in COLORS if c not in present]
    positive = rng.random() < 0.5 if positive is None else positive
    pool = present if (positive and present) or not absent else absent
    return QA("color_presence", f"Is there a {rng.choice(pool)} object in the image?",
              "yes" if pool is present else "no")


def qa_presence_mixed(scene: Scene, rng: random.Random) -> QA | None:
    """Training presence questions: half the negatives hard (as LRV-Instruct's negative instructions)."""
    return qa_presence(scene, rng, hard=rng.random() < 0.5)


QA_FAMILIES: dict[str, Callable[[Scene, random.Random], QA | None]] = {
    "presence": qa_presence, "count": qa_count, "color": qa_color, "shape": qa_shape, "word": qa_word,
    "box": qa_box, "relation": qa_relation, "choice": qa_choice, "unanswerable": qa_unanswerable, "tally": qa_tally,
    "color_presence": qa_color_presence,
}
TRAIN_FAMILIES = {**QA_FAMILIES, "presence": qa_presence_mixed}
# how often each family appears in instruct.json (words only where a scene has one)
TRAIN_WEIGHTS = {"presence": 8, "count": 2, "color": 2, "shape": 2, "word": 3, "box": 3, "relation": 2,
                 "choice": 2, "unanswerable": 1, "tally": 1}


def instruct_turn(qa: QA, rng: random.Random) -> tuple[str, str]:
    """(human text, assistant text) in the prompt styles of the LLaVA-1.5 mix and the TRI harness; some
    answerable questions carry VizWiz's "unanswerable" instruction too, so it is not a give-away."""
    if qa.family == "box":
        return BOX_PROMPT.format(qa.question), qa.answer
    if qa.family == "relation":
        return TF_PROMPT.format(qa.question), qa.answer.capitalize()
    if qa.family in ("choice", "tally"):
        opts = "\n".join(f"{TALLY_LETTERS[i]}. {o}" for i, o in enumerate(qa.meta["options"]))
        return f"{qa.question}\n{opts}{MC_SUFFIX}", qa.answer
    if qa.family == "unanswerable":
        return qa.question + UNANSWERABLE + SHORT, "unanswerable"
    answer = qa.answer.capitalize() if qa.answer in ("yes", "no") else qa.answer
    extra = UNANSWERABLE if qa.family in ("color", "shape", "count") and rng.random() < 0.2 else ""
    return qa.question + extra + SHORT, answer


def caption(scene: Scene) -> str:
    parts = [f"a {o.size} {o.name} at the {position_word(scene, o)}"
             for o in sorted(scene.objects, key=lambda o: o.center)]
    parts += [f'the word "{w.word}" at the {position_word(scene, w)}' for w in scene.words]
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text[0].upper() + text[1:] + "."


MIXES = (("red", "yellow", "orange"), ("blue", "yellow", "green"), ("red", "blue", "purple"))
SIDES = {"circle": 0, "square": 4, "triangle": 3, "diamond": 4, "star": 10}


def language_only(rng: random.Random) -> list[tuple[str, str]]:
    """A 1-2 turn text-only conversation (the co-training data that cotraining=false drops)."""
    turns = []
    for _ in range(rng.randint(1, 2)):
        kind = rng.randrange(4)
        if kind == 0:
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            turns.append((f"What is {a} plus {b}?", str(a + b)))
        elif kind == 1:
            x, y, z = rng.choice(MIXES)
            turns.append((f"What color do you get by mixing {x} and {y}?", z))
        elif kind == 2:
            s = rng.choice(SHAPES)
            turns.append((f"How many corners does a {s} have?", str(SIDES[s])))
        else:
            w = rng.choice(WORDS)
            turns.append((f"Spell the word {w} backwards.", w[::-1]))
    return turns


def conversation(turns: list[tuple[str, str]], *, image: bool) -> list[dict[str, str]]:
    out = []
    for i, (human, gpt) in enumerate(turns):
        out.append({"from": "human", "value": ("<image>\n" if image and i == 0 else "") + human})
        out.append({"from": "gpt", "value": gpt})
    return out

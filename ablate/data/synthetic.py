"""The synthetic "shapes" world: training data and every benchmark, in the real on-disk formats.

Why it exists: the demo study and the tests need data that (1) goes through exactly the loaders the real
LLaVA mixes and benchmarks go through, and (2) makes the design axes matter for a tiny model.  So scenes are
coloured shapes placed in a coarse grid of *slots* on wide (16:9), tall (9:16) and square canvases:

- objects in the edge slots of wide/tall canvases are cut away by ``resize-crop`` (shorter side -> S, centre
  crop), and POPE / RefCOCO targets are biased towards those slots;
- small objects and rendered words (PIL's default font) need resolution and fine-grained features;
- slots make boxes learnable (a box answer is one of a few dozen layouts), and counts are small integers.

``write_world(out, size, seed)`` writes ``align.json``, ``instruct.json`` and ``presence.json`` (LLaVA chat JSON), ``images/``,
and under ``eval/`` VQAv2, GQA, VizWiz, TextVQA (+ OCR jsonl), POPE, RefCOCO/+/g, OCID-Ref, VSR, TallyQA and
AI2D with the layout of docs/contracts.md.  ``eval/scenes.json`` keeps every eval image's object boxes, from
which ``crop_cut_fraction`` computes how many POPE / RefCOCO targets resize-crop loses.  Everything is a pure
function of ``(size, seed)``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import pickle
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ablate.data.untrusted import safe_pickle_load

# ------------------------------------------------------------------------------------------- vocabulary
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "green": (34, 160, 60),
    "blue": (36, 82, 214),
    "yellow": (232, 196, 24),
    "purple": (132, 56, 176),
    "orange": (240, 128, 24),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond")
WORDS = ("cat", "dog", "sun", "box", "cup", "map", "pen", "hat", "car", "fish")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

# canvas (width, height) and slot grid (columns, rows) per aspect; "ocid" = OCID's 640x480 table-top scenes
CANVAS: dict[str, tuple[int, int]] = {"wide": (192, 108), "tall": (108, 192), "square": (128, 128),
                                      "ocid": (640, 480)}
GRID: dict[str, tuple[int, int]] = {"wide": (4, 2), "tall": (2, 4), "square": (3, 3), "ocid": (5, 4)}
SIZE_FACTOR = {"large": 0.78, "small": 0.42}
EDGE_BIASED_ASPECTS = ("wide", "tall")

# prompt suffixes shared with the reference harnesses (LLaVA / TRI vlm-evaluation)
SHORT = "\nAnswer the question using a single word or phrase."
UNANSWERABLE = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
BOX_PROMPT = 'Please provide the bounding box coordinate of the region this sentence describes: "{}"'
TF_PROMPT = 'Based on the image, is this statement "True" or "False"? {}\nRespond with "True" or "False" directly.'
CAPTION_PROMPTS = ("Describe the image briefly.", "Give a short description of the picture.",
                   "What is in this image? Answer in one sentence.")
RELATIONS = ("left of", "right of", "above", "below")


# ------------------------------------------------------------------------------------------------ scene
@dataclass
class Item:
    """One thing drawn on the canvas: a shape (``shape``/``color``) or a rendered word (``word``)."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
    slot: tuple[int, int]  # (column, row)
    shape: str = ""
    color: str = ""
    size: str = "large"
    word: str = ""

    @property
    def name(self) -> str:
        return self.word if self.word else f"{self.color} {self.shape}"

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass
class Scene:
    aspect: str
    width: int
    height: int
    background: tuple[int, int, int]
    objects: list[Item] = field(default_factory=list)
    words: list[Item] = field(default_factory=list)

    def count(self, shape: str | None = None, color: str | None = None) -> int:
        return sum(1 for o in self.objects if (shape is None or o.shape == shape)
                   and (color is None or o.color == color))

    def find(self, name: str) -> Item | None:
        return next((o for o in self.objects if o.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"aspect": self.aspect, "width": self.width, "height": self.height,
                "objects": [{"name": o.name, "shape": o.shape, "color": o.color, "size": o.size,
                             "box": list(o.box)} for o in self.objects],
                "words": [{"text": w.word, "box": list(w.box)} for w in self.words]}


def _edge_slots(aspect: str) -> set[tuple[int, int]]:
    cols, rows = GRID[aspect]
    if aspect == "wide":
        return {(c, r) for c in (0, cols - 1) for r in range(rows)}
    if aspect == "tall":
        return {(c, r) for c in range(cols) for r in (0, rows - 1)}
    return set()


def _slot_box(aspect: str, slot: tuple[int, int], factor: float, rng: random.Random) -> tuple[int, int, int, int]:
    w, h = CANVAS[aspect]
    cols, rows = GRID[aspect]
    cw, ch = w / cols, h / rows
    side = factor * min(cw, ch) * rng.uniform(0.93, 1.07)
    jitter = 0.5 * (min(cw, ch) - side)
    cx = (slot[0] + 0.5) * cw + rng.uniform(-jitter, jitter)
    cy = (slot[1] + 0.5) * ch + rng.uniform(-jitter, jitter)
    return (max(0, round(cx - side / 2)), max(0, round(cy - side / 2)),
            min(w, round(cx + side / 2)), min(h, round(cy + side / 2)))


def sample_scene(rng: random.Random, aspect: str, n_objects: int, *, n_words: int = 0, group: int = 0,
                 edge_target: bool = False, small_prob: float = 0.3, size_factor: float = 1.0) -> Scene:
    """A scene of ``n_objects`` shapes with unique (colour, shape) names in distinct slots, plus ``n_words``
    rendered words.  ``group`` > 1 makes that many objects share one shape (a countable group);
    ``edge_target`` puts the first object in an edge slot (cut away by resize-crop)."""
    w, h = CANVAS[aspect]
    cols, rows = GRID[aspect]
    slots = [(c, r) for r in range(rows) for c in range(cols)]
    rng.shuffle(slots)
    n_objects = min(n_objects, len(slots) - n_words)
    edges = _edge_slots(aspect)
    if edge_target and edges:
        first = rng.choice(sorted(edges))
        slots.remove(first)
        slots.insert(0, first)
    names: list[tuple[str, str]] = []
    if group > 1:
        shape = rng.choice(SHAPES)
        names += [(c, shape) for c in rng.sample(sorted(COLORS), min(group, len(COLORS), n_objects))]
    pool = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in names and (group <= 1 or s != names[0][1])]
    names += rng.sample(pool, n_objects - len(names))
    if group > 1:
        rng.shuffle(names)
    tint = rng.randint(-12, 12)
    scene = Scene(aspect, w, h, (236 + min(tint, 0), 236, 236 - max(tint, 0)))
    for slot, (color, shape) in zip(slots, names, strict=False):
        size = "small" if rng.random() < small_prob else "large"
        box = _slot_box(aspect, slot, SIZE_FACTOR[size] * size_factor, rng)
        scene.objects.append(Item(box=box, slot=slot, shape=shape, color=color, size=size))
    for slot, word in zip(slots[len(names):], rng.sample(WORDS, n_words), strict=False):
        scene.words.append(Item(box=_slot_box(aspect, slot, 0.9, rng), slot=slot, word=word))
    return scene


# ---------------------------------------------------------------------------------------------- render
def _star(box: tuple[int, int, int, int], points: int = 5) -> list[tuple[float, float]]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    r_out = (box[2] - box[0]) / 2
    out = []
    for i in range(2 * points):
        r = r_out if i % 2 == 0 else r_out * 0.45
        a = -math.pi / 2 + i * math.pi / points
        out.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return out


@cache
def font_for(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's default font at ``px`` pixels (bundled with Pillow; no system fonts needed)."""
    return ImageFont.load_default(size=px)


def draw_object(draw: ImageDraw.ImageDraw, o: Item, fill: Any) -> None:
    """Draw one shape of a scene with ``fill`` (an RGB triple, or an int on an "L" mask)."""
    x1, y1, x2, y2 = o.box
    if o.shape == "circle":
        draw.ellipse(o.box, fill=fill)
    elif o.shape == "square":
        draw.rectangle(o.box, fill=fill)
    elif o.shape == "triangle":
        draw.polygon([((x1 + x2) / 2, y1), (x2, y2), (x1, y2)], fill=fill)
    elif o.shape == "star":
        draw.polygon(_star(o.box), fill=fill)
    else:  # diamond
        draw.polygon([((x1 + x2) / 2, y1), (x2, (y1 + y2) / 2), ((x1 + x2) / 2, y2), (x1, (y1 + y2) / 2)], fill=fill)


def draw_word(draw: ImageDraw.ImageDraw, wd: Item, fill: Any) -> None:
    x1, y1, x2, y2 = wd.box
    font = font_for(max(8, int((x2 - x1) / max(2.0, 0.62 * len(wd.word)))))
    draw.text(((x1 + x2) / 2, (y1 + y2) / 2), wd.word, fill=fill, font=font, anchor="mm")


def render(scene: Scene) -> Image.Image:
    """Draw a scene (shapes + words) on its canvas."""
    img = Image.new("RGB", (scene.width, scene.height), scene.background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        draw_object(draw, o, COLORS[o.color])
    for wd in scene.words:
        draw_word(draw, wd, (20, 20, 20))
    return img


def save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        img.save(path, compress_level=1)
    else:
        img.save(path, quality=92)


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


# ------------------------------------------------------------------------------------------- training
def _train_scene(rng: random.Random) -> Scene:
    aspect = rng.choices(("wide", "tall", "square"), (0.4, 0.3, 0.3))[0]
    n_words = 1 if rng.random() < 0.3 else 0
    group = rng.randint(2, 5) if rng.random() < 0.25 else 0
    return sample_scene(rng, aspect, rng.randint(1, 5), n_words=n_words, group=group,
                        edge_target=rng.random() < 0.3)


# keeps a conversation within the tiny LMs' 256 tokens in every prompt format (the synthetic BPE packs ~2
# characters per token; the Vicuna system prompt and role tags add ~100 tokens)
MAX_CONVERSATION_CHARS = 300


def instruct_turns(scene: Scene, rng: random.Random, max_chars: int = MAX_CONVERSATION_CHARS) -> list[tuple[str, str]]:
    """2-4 (human, assistant) turns about ``scene`` from the training task mix (``TRAIN_WEIGHTS``), distinct
    questions, within ``max_chars`` characters."""
    families, weights = zip(*TRAIN_WEIGHTS.items(), strict=True)
    turns: list[tuple[str, str]] = []
    seen: set[str] = set()
    n_turns = rng.randint(2, 4)
    for _ in range(20):
        if len(turns) == n_turns:
            break
        qa = TRAIN_FAMILIES[rng.choices(families, weights)[0]](scene, rng)
        if qa is None or qa.question in seen:
            continue
        turn = instruct_turn(qa, rng)
        if turns and sum(len(h) + len(g) for h, g in [*turns, turn]) > max_chars:
            break
        seen.add(qa.question)
        turns.append(turn)
    return turns


PRESENCE_PER_IMAGE = 3


def presence_records(scene: Scene, name: str, rng: random.Random, k: int = PRESENCE_PER_IMAGE) -> list[dict]:
    """``k`` one-question records of distinct colour-presence questions about one image, yes and no
    alternating from a random start (one question per record: the tiny models learn the lookup faster from
    single-turn records than from the same questions as turns of one conversation, bench/README.md)."""
    out, asked, positive = [], set(), rng.random() < 0.5
    for _ in range(4 * k):
        if len(out) == k:
            break
        qa = qa_color_presence(scene, rng, positive)
        if qa.question in asked:
            positive = not positive
            continue
        asked.add(qa.question)
        turn = instruct_turn(qa, rng)
        out.append({"id": f"presence-{name.split('.')[0]}-{len(out)}", "image": name,
                    "conversations": conversation([turn], image=True)})
        positive = not positive
    return out


def write_training(out: Path, size: int, seed: int, progress: bool = False) -> dict[str, int]:
    """``images/``, ``align.json`` (one caption per image), ``instruct.json`` (2-4 QA turns per image plus
    size/10 language-only conversations) and ``presence.json`` (``PRESENCE_PER_IMAGE`` colour-presence
    questions per image, LRV-Instruct style; what conf/data/shapes-presence.yaml trains on)."""
    from tqdm import tqdm

    rng, presence_rng = random.Random(f"{seed}/train"), random.Random(f"{seed}/presence")
    align, instruct, presence = [], [], []
    for i in tqdm(range(size), desc="synth train", disable=not progress):
        scene = _train_scene(rng)
        name = f"{i:06d}.jpg"
        save(render(scene), out / "images" / name)
        align.append({"id": f"align-{i:06d}", "image": name,
                      "conversations": conversation([(rng.choice(CAPTION_PROMPTS), caption(scene))], image=True)})
        turns = instruct_turns(scene, rng)
        instruct.append({"id": f"instruct-{i:06d}", "image": name, "conversations": conversation(turns, image=True)})
        presence += presence_records(scene, name, presence_rng)
    for j in range(max(1, size // 10)):
        instruct.append({"id": f"text-{j:06d}", "conversations": conversation(language_only(rng), image=False)})
    random.Random(f"{seed}/order").shuffle(instruct)
    _dump(out / "align.json", align)
    _dump(out / "presence.json", presence)
    _dump(out / "instruct.json", instruct)  # last: its presence marks a complete world (ensure_synthetic)
    return {"images": size, "align.json": len(align), "instruct.json": len(instruct), "presence.json": len(presence)}


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


# ----------------------------------------------------------------------------------------- benchmarks
@dataclass
class EvalWriter:
    """Writes eval images under ``root`` and remembers each one's scene (for ``scenes.json``)."""

    root: Path
    seed: int
    n: int  # questions per benchmark (roughly)
    scenes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rng(self, benchmark: str) -> random.Random:
        return random.Random(f"{self.seed}/eval/{benchmark}")

    def image(self, scene: Scene, rel: str) -> None:
        save(render(scene), self.root / rel)
        self.scenes[rel] = scene.to_json()


def _vqa_answers(rng: random.Random, answer: str, family: str) -> list[dict[str, Any]]:
    """10 human answers with unique answer_ids: mostly ``answer``, a few plausible disagreements."""
    if family == "presence":
        alt = ["no" if answer == "yes" else "yes"]
    elif family == "count":
        alt = [str(max(0, int(answer) + d)) for d in (-1, 1) if int(answer) + d >= 0]
    elif family == "color":
        alt = [c for c in COLORS if c != answer]
    elif family == "shape":
        alt = [s for s in SHAPES if s != answer]
    else:
        alt = [w for w in WORDS if w != answer]
    n_right = rng.choice((10, 10, 9, 9, 8, 7, 4))
    answers = [answer] * n_right + [rng.choice(alt) for _ in range(10 - n_right)]
    rng.shuffle(answers)
    return [{"answer": a, "answer_confidence": rng.choice(("yes", "yes", "maybe")), "answer_id": i + 1}
            for i, a in enumerate(answers)]


VQA_TYPES = {"presence": ("is there a", "yes/no"), "count": ("how many", "number"),
             "color": ("what color is the", "other"), "shape": ("what shape is the", "other"),
             "word": ("what word is", "other")}


def _eval_scene(rng: random.Random, *, words: int = 0, edge: bool = False, lo: int = 1, hi: int = 5) -> Scene:
    aspect = rng.choices(("wide", "tall", "square"), (0.45, 0.3, 0.25) if edge else (0.4, 0.3, 0.3))[0]
    group = rng.randint(2, 5) if rng.random() < 0.25 else 0
    return sample_scene(rng, aspect, rng.randint(lo, hi), n_words=words, group=group,
                        edge_target=edge and rng.random() < 0.7)


def _questions(scene: Scene, rng: random.Random, families: tuple[str, ...], k: int) -> list[QA]:
    out: list[QA] = []
    for _ in range(4 * k):
        if len(out) == k:
            break
        qa = QA_FAMILIES[rng.choice(families)](scene, rng)
        if qa is not None and all(q.question != qa.question for q in out):
            out.append(qa)
    return out


def write_vqav2(w: EvalWriter) -> dict[str, int]:
    rng, questions, annotations = w.rng("vqav2"), [], []
    for i in range(max(1, w.n // 3)):
        image_id = 100000 + i
        scene = _eval_scene(rng, words=int(rng.random() < 0.2))
        w.image(scene, f"vqav2/val2014/COCO_val2014_{image_id:012d}.jpg")
        for k, qa in enumerate(_questions(scene, rng, tuple(VQA_TYPES), 3)):
            qid = image_id * 10 + k
            answers = _vqa_answers(rng, qa.answer, qa.family)
            qtype, atype = VQA_TYPES[qa.family]
            questions.append({"image_id": image_id, "question": qa.question, "question_id": qid})
            annotations.append({"question_id": qid, "image_id": image_id, "question_type": qtype,
                                "answer_type": atype,
                                "multiple_choice_answer": Counter(a["answer"] for a in answers).most_common(1)[0][0],
                                "answers": answers})
    head = {"info": {"description": "ablate synthetic shapes world"}, "license": {}, "data_type": "mscoco",
            "data_subtype": "val2014"}
    _dump(w.root / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
          {**head, "task_type": "Open-Ended", "questions": questions})
    _dump(w.root / "vqav2/v2_mscoco_val2014_annotations.json", {**head, "annotations": annotations})
    return {"vqav2 questions": len(questions)}


GQA_TYPES = {"presence": ("verify", "obj", "existC"), "color": ("query", "attr", "queryAttr"),
             "shape": ("query", "attr", "queryObject"), "relation": ("verify", "rel", "relVerify"),
             "choose": ("choose", "attr", "chooseAttr")}


def _gqa_item(scene: Scene, rng: random.Random) -> tuple[str, str, str, str, list[dict[str, Any]]] | None:
    """(question, answer, fullAnswer, family, semantic program) for a GQA-style question."""
    family = rng.choice(tuple(GQA_TYPES))
    if family == "choose":
        qa = qa_color(scene, rng)
        if qa is None:
            return None
        other = rng.choice([c for c in COLORS if c != qa.answer])
        a, b = rng.sample([qa.answer, other], 2)
        q = f"Is the {qa.target.shape} {a} or {b}?"
        prog = [{"operation": "select", "argument": f"{qa.target.shape} (0)", "dependencies": []},
                {"operation": "choose color", "argument": f"{a}|{b}", "dependencies": [0]}]
        return q, qa.answer, f"The {qa.target.shape} is {qa.answer}.", family, prog
    if family == "relation":
        qa = qa_relation(scene, rng)
        if qa is None:
            return None
        m = qa.meta
        q = f"Is the {m['subj']} {m['relation']} the {m['obj']}?"
        ans = "yes" if qa.answer == "true" else "no"
        prog = [{"operation": "select", "argument": f"{m['obj']} (1)", "dependencies": []},
                {"operation": "relate", "argument": f"{m['subj']},{m['relation']},s (0)", "dependencies": [0]},
                {"operation": "verify rel", "argument": m["relation"], "dependencies": [1]}]
        return q, ans, f"{ans.capitalize()}, it is{'' if ans == 'yes' else ' not'}.", family, prog
    qa = QA_FAMILIES[family](scene, rng)
    if qa is None:
        return None
    full = {"presence": f"{qa.answer.capitalize()}, there is{'' if qa.answer == 'yes' else ' no'} such object.",
            "color": f"The object is {qa.answer}.", "shape": f"It is a {qa.answer}."}[family]
    prog = [{"operation": "select", "argument": qa.question.split(" the ")[-1].rstrip("?"), "dependencies": []},
            {"operation": {"presence": "exist", "color": "query color", "shape": "query name"}[family],
             "argument": "", "dependencies": [0]}]
    return qa.question, qa.answer, full, family, prog


def write_gqa(w: EvalWriter) -> dict[str, int]:
    rng, items = w.rng("gqa"), {}
    for i in range(max(1, w.n // 3)):
        image_id = f"n{500000 + i}"
        scene = _eval_scene(rng, lo=2)
        w.image(scene, f"gqa/images/{image_id}.jpg")
        n_made = 0
        for k in range(6):
            made = _gqa_item(scene, rng) if n_made < 3 else None
            if made is None:
                continue
            n_made += 1
            q, ans, full, family, prog = made
            qid = str(20100000 + i * 10 + k)
            structural, semantic, detailed = GQA_TYPES[family]
            items[qid] = {"question": q, "answer": ans, "fullAnswer": full, "imageId": image_id,
                          "isBalanced": rng.random() > 0.12,
                          "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
                          "semantic": prog, "semanticStr": " ".join(f"{p['operation']}: {p['argument']}" for p in prog),
                          "groups": {"global": None, "local": f"{family}-{ans}"}, "entailed": [],
                          "equivalent": [qid], "annotations": {"question": {}, "answer": {}, "fullAnswer": {}}}
    _dump(w.root / "gqa/testdev_balanced_questions.json", items)
    return {"gqa questions": len(items), "gqa balanced": sum(x["isBalanced"] for x in items.values())}


def write_vizwiz(w: EvalWriter) -> dict[str, int]:
    rng, rows = w.rng("vizwiz"), []
    for i in range(w.n):
        scene = _eval_scene(rng)
        name = f"VizWiz_val_{i:08d}.jpg"
        w.image(scene, f"vizwiz/val/{name}")
        qa = qa_unanswerable(scene, rng) if rng.random() < 0.25 else None
        if qa is not None:
            answers = [{"answer": "unanswerable", "answer_confidence": "yes"} for _ in range(10)]
            rows.append({"image": name, "question": qa.question, "answers": answers,
                         "answer_type": "unanswerable", "answerable": 0})
            continue
        qa = _questions(scene, rng, ("presence", "count", "color", "shape"), 1)[0]
        answers = [{k: v for k, v in a.items() if k != "answer_id"} for a in _vqa_answers(rng, qa.answer, qa.family)]
        rows.append({"image": name, "question": qa.question, "answers": answers,
                     "answer_type": VQA_TYPES[qa.family][1], "answerable": 1})
    _dump(w.root / "vizwiz/Annotations/val.json", rows)
    return {"vizwiz questions": len(rows), "vizwiz unanswerable": sum(r["answerable"] == 0 for r in rows)}


def write_textvqa(w: EvalWriter) -> dict[str, int]:
    rng, data, ocr = w.rng("textvqa"), [], []
    for i in range(w.n):
        scene = _eval_scene(rng, words=rng.choice((1, 2, 2)), hi=3)
        image_id = f"{rng.getrandbits(64):016x}"
        w.image(scene, f"textvqa/train_images/{image_id}.jpg")
        qa = qa_word(scene, rng)
        qid = 34000 + i
        answers = [a["answer"] for a in _vqa_answers(rng, qa.answer, "word")]
        data.append({"question": qa.question, "image_id": image_id, "image_classes": ["shape"],
                     "flickr_original_url": "", "flickr_300k_url": "", "image_width": scene.width,
                     "image_height": scene.height, "answers": answers,
                     "question_tokens": qa.question.lower().rstrip("?").split(), "question_id": qid,
                     "set_name": "val"})
        tokens = ", ".join(wd.word for wd in sorted(scene.words, key=lambda x: x.center))
        ocr.append({"question_id": qid, "image": f"{image_id}.jpg",
                    "text": f"{qa.question}\nReference OCR token: {tokens}{SHORT}", "category": "default"})
    _dump(w.root / "textvqa/TextVQA_0.5.1_val.json",
          {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data})
    _jsonl(w.root / "textvqa/textvqa_val_v051_ocr.jsonl", ocr)
    return {"textvqa questions": len(data)}


def _cooccurrence_rank(name: str, present: list[str], co: Counter) -> tuple[int, str]:
    return (-sum(co[(p, name)] for p in present), name)


def write_pope(w: EvalWriter) -> dict[str, int]:
    """POPE: per image 3 present objects (yes) and 3 absent ones (no) per split; negatives drawn at random,
    from the most frequent objects (popular) or from objects sharing a shape/colour with present ones and
    co-occurring most (adversarial)."""
    rng = w.rng("pope")
    scenes: list[tuple[str, Scene]] = []
    for i in range(max(2, w.n // 2)):  # many images: an edge effect shows per image, not per question
        scene = _eval_scene(rng, edge=True, lo=3)
        name = f"COCO_val2014_{300000 + i:012d}.jpg"
        w.image(scene, f"pope/val2014/{name}")
        scenes.append((name, scene))
    freq = Counter(o.name for _, s in scenes for o in s.objects)
    co = Counter((a.name, b.name) for _, s in scenes for a in s.objects for b in s.objects if a is not b)
    all_names = [f"{c} {s}" for c in COLORS for s in SHAPES]
    splits: dict[str, list[dict[str, Any]]] = {"random": [], "popular": [], "adversarial": []}
    for name, scene in scenes:
        edge = _edge_slots(scene.aspect)
        present = sorted(scene.objects, key=lambda o: (o.slot not in edge, rng.random()))[:3]
        absent = [n for n in all_names if scene.find(n) is None]
        names = [o.name for o in scene.objects]
        similar = similar_absent(scene, absent)
        negatives = {"random": rng.sample(absent, 3),
                     "popular": sorted(absent, key=lambda n: (-freq[n], n))[:3],
                     "adversarial": sorted(similar or absent, key=lambda n: _cooccurrence_rank(n, names, co))[:3]}
        for split, rows in splits.items():
            for pos, neg in zip(present, negatives[split], strict=False):
                for obj, label in ((pos.name, "yes"), (neg, "no")):
                    rows.append({"question_id": len(rows) + 1, "image": name,
                                 "text": f"Is there a {obj} in the image?", "label": label})
    for split, rows in splits.items():
        _jsonl(w.root / f"pope/coco/coco_pope_{split}.json", rows)
    return {f"pope {k}": len(v) for k, v in splits.items()}


REFER_DATASETS = {"refcoco": ("refs(unc).p", ("testA", "testB")), "refcoco+": ("refs(unc).p", ("testA", "testB")),
                  "refcocog": ("refs(umd).p", ("test",))}


def write_refer(w: EvalWriter) -> dict[str, int]:
    """RefCOCO / RefCOCO+ / RefCOCOg: shared non-square images, COCO instances with pixel xywh boxes, and
    pickled refs per dataset (most in split "val"; some in the test splits, which loaders must skip)."""
    rng = w.rng("refer")
    images, annotations, per_image = [], [], []
    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]
    for i in range(max(1, w.n // 2)):
        image_id = 200000 + i
        scene = _eval_scene(rng, edge=True, lo=2)
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        w.image(scene, f"refer/train2014/{file_name}")
        images.append({"id": image_id, "file_name": file_name, "width": scene.width, "height": scene.height})
        ann_ids = []
        for k, o in enumerate(scene.objects):
            x1, y1, x2, y2 = o.box
            ann_id = image_id * 100 + k
            ann_ids.append(ann_id)
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": SHAPES.index(o.shape) + 1,
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0,
                                "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]})
        per_image.append((image_id, scene, ann_ids))
    instances = {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    counts = {}
    for dataset, (pickle_name, test_splits) in REFER_DATASETS.items():
        refs, sent_id = [], 0
        for image_id, scene, ann_ids in per_image:
            for k in rng.sample(range(len(scene.objects)), min(len(scene.objects), rng.randint(1, 2))):
                t = scene.objects[k]
                sentences = []
                for _ in range(rng.randint(1, 2)):
                    raw = referring_expression(scene, t, rng, dataset)
                    sentences.append({"sent_id": sent_id, "sent": raw.lower(), "raw": raw, "tokens": raw.lower().split()})
                    sent_id += 1
                split = "val" if rng.random() < 0.85 else rng.choice(test_splits)
                refs.append({"ref_id": len(refs), "ann_id": ann_ids[k], "image_id": image_id,
                             "category_id": SHAPES.index(t.shape) + 1, "split": split,
                             "file_name": f"COCO_train2014_{image_id:012d}_{ann_ids[k]}.jpg",
                             "sent_ids": [s["sent_id"] for s in sentences], "sentences": sentences})
        (w.root / "refer" / dataset).mkdir(parents=True, exist_ok=True)
        with open(w.root / "refer" / dataset / pickle_name, "wb") as f:
            pickle.dump(refs, f, protocol=2)
        _dump(w.root / "refer" / dataset / "instances.json", instances)
        counts[f"{dataset} val sentences"] = sum(len(r["sentences"]) for r in refs if r["split"] == "val")
    return counts


OCID_CLUTTER = ((range(0, 10), (4, 7), 1.0), (range(10, 17), (8, 12), 1.2), (range(17, 21), (13, 18), 1.35))


def write_ocid(w: EvalWriter) -> dict[str, int]:
    """OCID-Ref: 640x480 table-top scenes whose clutter grows with ``take_id`` (free 0-9, touching 10-16,
    stacked 17-20); ``val_expressions.json`` maps ref id -> {sentence, scene_path, bbox "[x1, y1, x2, y2]", ...}."""
    rng, refs = w.rng("ocid-ref"), {}
    for i in range(max(3, w.n // 3)):
        takes, (lo, hi), factor = OCID_CLUTTER[i % 3]
        take_id = rng.choice(list(takes))
        scene = sample_scene(rng, "ocid", rng.randint(lo, hi), size_factor=factor, small_prob=0.2)
        seq = f"ARID20/table/top/seq{i // 3 + 1:02d}"
        scene_path = f"{seq}/rgb/result_2018-08-21-{10 + i // 60:02d}-{i % 60:02d}-{take_id:02d}.png"
        w.image(scene, f"ocid-ref/OCID-dataset/{scene_path}")
        for k in rng.sample(range(len(scene.objects)), min(3, len(scene.objects))):
            t = scene.objects[k]
            ref_id = len(refs)
            refs[str(ref_id)] = {"ref_id": ref_id, "sentence": referring_expression(scene, t, rng, "refcoco"),
                                 "scene_path": scene_path, "sequence_path": seq, "take_id": take_id,
                                 "bbox": json.dumps(list(t.box)), "class": t.shape, "scene_instance_id": k + 1,
                                 "sub_index": 0, "instance_id": i * 100 + k, "anno_id": ref_id}
    _dump(w.root / "ocid-ref/val_expressions.json", refs)
    return {"ocid-ref expressions": len(refs)}


def write_vsr(w: EvalWriter) -> dict[str, int]:
    rng, rows = w.rng("vsr"), []
    while len(rows) < w.n:
        scene = _eval_scene(rng, lo=2, hi=4)
        name = f"{400000 + len(rows):012d}.jpg"
        made = [qa for qa in (qa_relation(scene, rng) for _ in range(2)) if qa is not None]
        if not made:
            continue
        w.image(scene, f"vsr/images/{name}")
        for qa in {q.question: q for q in made}.values():
            rows.append({"image": name, "caption": qa.question, "label": int(qa.answer == "true"),
                         "relation": qa.meta["relation"], "subj": qa.meta["subj"], "obj": qa.meta["obj"]})
    _jsonl(w.root / "vsr/test.jsonl", rows)
    return {"vsr captions": len(rows)}


def write_tallyqa(w: EvalWriter) -> dict[str, int]:
    rng, rows = w.rng("tallyqa"), []
    for i in range(w.n):
        aspect = rng.choice(("wide", "tall", "square"))
        k = rng.randint(0, 6)
        scene = sample_scene(rng, aspect, k + rng.randint(0, 2), group=k)
        rel = f"VG_100K_2/{i + 1}.jpg"
        w.image(scene, f"tallyqa/{rel}")
        if rng.random() < 0.7:
            shape = Counter(o.shape for o in scene.objects).most_common(1)[0][0] if k > 1 else rng.choice(SHAPES)
            q, ans, simple = f"How many {plural(shape)} are there?", scene.count(shape), True
        else:
            q, ans, simple = "How many shapes are in the picture?", len(scene.objects), False
        rows.append({"image": rel, "question": q, "answer": ans, "question_id": 700000 + i, "image_id": i + 1,
                     "data_source": "amt" if simple else "imported_genome", "issimple": simple})
    _dump(w.root / "tallyqa/test.json", rows)
    return {"tallyqa questions": len(rows)}


def write_ai2d(w: EvalWriter) -> dict[str, int]:
    rng, ids, n_q = w.rng("ai2d"), [], 0
    for i in range(max(1, w.n // 2)):
        img_id = str(1000 + i)
        scene = sample_scene(rng, "square", rng.randint(2, 5))
        w.image(scene, f"ai2d/images/{img_id}.png")
        questions = {}
        for k, qa in enumerate(_questions(scene, rng, ("choice",), 2)):
            questions[qa.question] = {"questionId": f"{img_id}.png-{k}", "answerTexts": qa.meta["options"],
                                      "correctAnswer": "ABCD".index(qa.answer), "abcLabel": False}
        n_q += len(questions)
        _dump(w.root / f"ai2d/questions/{img_id}.png.json", {"imageName": f"{img_id}.png", "questions": questions})
        ids.append(img_id)
    with open(w.root / "ai2d/ai2d_test_ids.csv", "w", newline="") as f:
        csv.writer(f).writerows([i] for i in ids)
    return {"ai2d questions": n_q}


EVAL_WRITERS: dict[str, Callable[[EvalWriter], dict[str, int]]] = {
    "vqav2": write_vqav2, "gqa": write_gqa, "vizwiz": write_vizwiz, "textvqa": write_textvqa, "pope": write_pope,
    "refer": write_refer, "ocid-ref": write_ocid, "vsr": write_vsr, "tallyqa": write_tallyqa, "ai2d": write_ai2d,
}


# ------------------------------------------------------------------------------------ crop geometry
def center_crop_window(width: float, height: float) -> tuple[float, float, float, float]:
    """The part of a (width x height) image that resize-crop keeps: the centred min-side square."""
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return x0, y0, x0 + side, y0 + side


def visible_fraction(box: Iterable[float], width: float, height: float) -> float:
    """Fraction of an xyxy box's area inside the resize-crop window."""
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = center_crop_window(width, height)
    inter = max(0.0, min(x2, cx2) - max(x1, cx1)) * max(0.0, min(y2, cy2) - max(y1, cy1))
    area = max(1e-9, (x2 - x1) * (y2 - y1))
    return inter / area


def crop_cut_fraction(eval_root: str | Path, *, min_visible: float = 0.5) -> dict[str, float]:
    """Fraction of targets that resize-crop cuts out of the image (less than ``min_visible`` of the box left):
    POPE's "yes" objects (boxes from ``scenes.json``) and RefCOCO/+/g val targets (from the real
    ``instances.json`` + refs pickles)."""
    root = Path(eval_root)
    out: dict[str, float] = {}
    scenes = json.loads((root / "scenes.json").read_text())
    cut = total = 0
    for split in ("random", "popular", "adversarial"):
        for line in (root / f"pope/coco/coco_pope_{split}.json").read_text().splitlines():
            row = json.loads(line)
            if row["label"] != "yes":
                continue
            scene = scenes[f"pope/val2014/{row['image']}"]
            name = row["text"].removeprefix("Is there a ").removesuffix(" in the image?")
            box = next(o["box"] for o in scene["objects"] if o["name"] == name)
            total += 1
            cut += visible_fraction(box, scene["width"], scene["height"]) < min_visible
    out["pope"] = cut / max(1, total)
    for dataset, (pickle_name, _) in REFER_DATASETS.items():
        inst = json.loads((root / "refer" / dataset / "instances.json").read_text())
        sizes = {im["id"]: (im["width"], im["height"]) for im in inst["images"]}
        boxes = {a["id"]: a["bbox"] for a in inst["annotations"]}
        refs = [r for r in safe_pickle_load(root / "refer" / dataset / pickle_name) if r["split"] == "val"]
        hits = 0
        for r in refs:
            x, y, bw, bh = boxes[r["ann_id"]]
            hits += visible_fraction((x, y, x + bw, y + bh), *sizes[r["image_id"]]) < min_visible
        out[dataset] = hits / max(1, len(refs))
    return out


def format_crop_cut(fractions: dict[str, float]) -> str:
    return "targets cut out by resize-crop: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in fractions.items())


# ------------------------------------------------------------------------------------------------ entry
def write_world(out: str | Path, size: int = 2000, seed: int = 0, *, progress: bool = False) -> dict[str, int]:
    """Write the whole shapes world under ``out`` (training data + ``eval/``); returns counts per file."""
    from tqdm import tqdm

    if size < 1:
        raise ValueError(f"--size: invalid value {size!r}; expected a positive number of training images")
    out = Path(out)
    counts = write_training(out, size, seed, progress)
    writer = EvalWriter(out / "eval", seed, max(24, size // 10))
    for write in tqdm(EVAL_WRITERS.values(), desc="synth eval", disable=not progress):
        counts.update(write(writer))
    _dump(out / "eval/scenes.json", writer.scenes)
    counts["eval images"] = len(writer.scenes)
    return counts


def cli_synth(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    counts = write_world(args.out, args.size, args.seed, progress=True)
    for k, v in counts.items():
        print(f"{k:28s} {v}")
    print(format_crop_cut(crop_cut_fraction(Path(args.out) / "eval")))
    print(f"wrote {args.out} (size {args.size}, seed {args.seed}) in {time.perf_counter() - t0:.1f} s")
    return 0

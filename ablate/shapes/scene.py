"""The shapes world's scenes: vocabulary, slot geometry, scene sampling, rendering, and file writers.

Scenes are coloured shapes (and rendered words) placed in a coarse grid of *slots* on wide (16:9), tall (9:16)
and square canvases: objects in the edge slots of wide/tall canvases are cut away by ``resize-crop``, small
objects and words need resolution, and slots make boxes learnable.  Everything is a pure function of the rng.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

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




# ---------------------------------------------------------------------------------------------- files
def dump_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

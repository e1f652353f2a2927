"""CHAIR (Rohrbach et al., 2018, "Object Hallucination in Image Captioning"): object mentions of a caption
matched through the published MSCOCO synonym lists against the objects an image really has.

Why it exists: the issue's base-vs-chat question ("more verbose, prone to hallucination") needs a per-caption
hallucination number that paired tests can use.  Per caption: the object words it mentions (each occurrence
counts, as in the reference), which of them are not among the image's objects, ``chair_i`` = hallucinated /
mentioned (0 when nothing is mentioned), ``chair_s`` = 1 if any mention is hallucinated.  Over a set:
``CHAIR_i`` = sum of hallucinated mentions / sum of mentions, ``CHAIR_s`` = share of captions with one.

Rules follow the reference (LisaAnne/Hallucination ``utils/chair.py`` @ 6e4d33c): lower-case; two-word
objects and qualifiers ("baby bird" -> bird, "passenger jet" -> jet, "bow tie" -> tie, "toilet seat" ->
toilet) are merged before the lookup; "seat" is dropped when "toilet" is in the caption; a line of
``synonyms.txt`` is split on ``", "`` exactly (so its entry ``" motor bike"``, with two spaces before it in
the file, never matches -- as in the reference).  Differences, documented in docs/contracts.md: words are
split by a regex (the reference uses nltk's word_tokenize) and a plural is mapped to its singular only when
that singular is an object word (the reference runs pattern.en's singularize on every word, which turns
"glasses" into "glas"; the reference's own fixes "wine glas" and "knive" then give the same result).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SYNONYMS_FILE = DATA / "chair_synonyms.txt"

DOUBLE_WORDS = ("motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
                "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball",
                "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone",
                "mobile phone", "teddy bear", "hair drier", "potted plant", "bow tie", "laptop computer",
                "stove top oven", "home plate", "train track")
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal",
                "cub")
VEHICLE_WORDS = ("jet", "train")
IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
             "geese": "goose", "feet": "foot", "teeth": "tooth", "oxen": "ox", "knives": "knife",
             "policemen": "policeman", "servicemen": "serviceman", "gentlemen": "gentleman"}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Vocabulary:
    """The synonym lists: every object word -> its node word (the first word of its line)."""

    node_of: dict[str, str]
    double_words: dict[str, str]

    @property
    def nodes(self) -> set[str]:
        return set(self.node_of.values())


def parse_synonyms(lines: Iterable[str]) -> Vocabulary:
    node_of: dict[str, str] = {}
    for line in lines:
        words = line.strip().split(", ")
        if words and words[0]:
            for w in words:
                node_of[w] = words[0]
    # the reference's two-word list, plus the lists' own two-word entries (for COCO only "dining table" is new,
    # and merging it gives the node "table" would have given: the COCO counts are unchanged)
    double = {w: w for w in node_of if len(w.split()) == 2 and w == w.strip()}
    double.update({w: w for w in DOUBLE_WORDS})
    for a in ANIMAL_WORDS:
        double[f"baby {a}"] = a
        double[f"adult {a}"] = a
    for v in VEHICLE_WORDS:
        double[f"passenger {v}"] = v
    double.update({"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"})
    return Vocabulary(node_of, double)


@cache
def read_vocabulary(path: Path = SYNONYMS_FILE) -> Vocabulary:
    """Synonym lists in the reference's ``synonyms.txt`` format (one object a line, synonyms after the node
    word, ``", "``-separated); default the packaged MSCOCO lists (ablate/eval/data/chair_synonyms.txt)."""
    return parse_synonyms(Path(path).read_text(encoding="utf-8").splitlines())


def coco_vocabulary() -> Vocabulary:
    return read_vocabulary(SYNONYMS_FILE)


def _known_words(vocab: Vocabulary) -> frozenset[str]:
    parts = {p for w in (*vocab.node_of, *vocab.double_words) for p in w.split()}
    return frozenset({*vocab.node_of, *parts})


def singular(word: str, known: frozenset[str]) -> str:
    """``word`` if known, else the first of its singular candidates that is a known word, else ``word``."""
    if word in known:
        return word
    candidates = [IRREGULAR.get(word, "")]
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("ves"):
        candidates += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s"):
        candidates.append(word[:-1])
    return next((c for c in candidates if c and c in known), word)


def caption_objects(caption: str, vocab: Vocabulary | None = None) -> list[tuple[str, str]]:
    """(word as matched, node word) for every object mention of ``caption``, in order."""
    vocab = vocab or coco_vocabulary()
    known = _known_words(vocab)
    words = [singular(w, known) for w in _WORD.findall(caption.lower())]
    merged: list[str] = []
    i = 0
    while i < len(words):
        pair = " ".join(words[i:i + 2])
        if i + 1 < len(words) and pair in vocab.double_words:
            merged.append(vocab.double_words[pair])
            i += 2
        else:
            merged.append(words[i])
            i += 1
    if "toilet" in merged and "seat" in merged:
        merged = [w for w in merged if w != "seat"]
    return [(w, vocab.node_of[w]) for w in merged if w in vocab.node_of]


def node_words(names: Iterable[str], vocab: Vocabulary | None = None, *, where: str = "") -> set[str]:
    """Node words of ground-truth object names (COCO category names or synonyms); an unknown name is an
    error naming it (a silently dropped object would count every mention of it as a hallucination)."""
    vocab = vocab or coco_vocabulary()
    out = set()
    for name in names:
        if name not in vocab.node_of:
            raise ValueError(f"{where}: object {name!r} is not in the CHAIR synonym lists; expected one of its "
                             f"node words ({', '.join(sorted(vocab.nodes)[:8])}, ...)")
        out.add(vocab.node_of[name])
    return out


def chair_record(caption: str, gt_nodes: set[str], vocab: Vocabulary | None = None) -> dict[str, object]:
    """Per-caption CHAIR fields: mentioned/hallucinated node words, counts, chair_i, chair_s, recall."""
    mentions = caption_objects(caption, vocab)
    hallucinated = [node for _, node in mentions if node not in gt_nodes]
    mentioned = {node for _, node in mentions}
    return {
        "mentioned_objects": [node for _, node in mentions],
        "hallucinated_objects": hallucinated,
        "n_mentions": len(mentions),
        "n_hallucinated": len(hallucinated),
        "chair_i": len(hallucinated) / len(mentions) if mentions else 0.0,
        "chair_s": float(bool(hallucinated)),
        "object_recall": len(mentioned & gt_nodes) / len(gt_nodes) if gt_nodes else float("nan"),
    }


def chair_aggregate(records: Sequence[dict[str, object]]) -> dict[str, float]:
    """CHAIR_i (mention-weighted, as the reference) and CHAIR_s over per-caption records."""
    mentions = sum(int(r["n_mentions"]) for r in records)  # type: ignore[call-overload]
    halluc = sum(int(r["n_hallucinated"]) for r in records)  # type: ignore[call-overload]
    n = len(records)
    recalls = [float(r["object_recall"]) for r in records if r["object_recall"] == r["object_recall"]]  # type: ignore[arg-type]
    return {"chair_i": halluc / mentions if mentions else 0.0,
            "chair_s": sum(float(r["chair_s"]) for r in records) / n if n else float("nan"),  # type: ignore[arg-type]
            "object_mentions_per_caption": mentions / n if n else float("nan"),
            "object_recall": sum(recalls) / len(recalls) if recalls else float("nan")}

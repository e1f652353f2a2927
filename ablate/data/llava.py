"""LLaVA chat-JSON datasets: reading with a bad-data policy, tokenization with loss masks, collation, and the
modality-grouped, length-balanced sampler.

A LLaVA file is ``[{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": "<image>\\n..."}]}]``
(align captions, multi-turn instructions, or language-only examples without ``image``).  ``read_records``
validates every record and, per ``on_bad_example``, raises ``BadDataError`` naming the file, the record index
and the problem (``fail``) or skips and counts it in ``DataStats`` (``skip``).  Malformed JSON always fails
with the file, line and column.  ``LlavaDataset`` tokenizes through the LLM's prompt format
(``ablate.models.prompts``: labels are -100 except on assistant replies), truncates over-long sequences
(counted; an align-stage dataset formats each record as Prismatic's ``AlignDataset``: BOS + caption + EOS,
the human prompt discarded, every token after BOS a target), and loads images lazily (corrupt images are skipped and counted, or fail).  ``collate`` pads a
batch into the dict ``VLM.forward`` takes (docs/contracts.md).  ``ModalityLengthSampler`` gives every rank
its share of all-image / all-text global batches, length-balanced across ranks, in an order fixed by the
seed and epoch, resumable mid-epoch from a saved position.  Nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ablate.data.pixel_cache import PixelCache
from ablate.data.untrusted import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    PathEscapeError,
    confined,
    open_image,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ROLES = {"human": "user", "gpt": "assistant"}
IGNORE_INDEX = -100
ON_BAD = ("skip", "fail")
# bad-example reasons (the keys of DataStats.skipped)
MALFORMED = "malformed-record"
NO_ASSISTANT = "no-assistant-turn"
MISSING_IMAGE = "missing-image"
CORRUPT_IMAGE = "corrupt-image"
IMAGE_OUTSIDE_ROOT = "image-outside-root"  # absolute, '..' or a symlink out of the source's image folder
IMAGE_TOO_LARGE = "image-too-large"  # over data.max_image_pixels
EMPTY_AFTER_TRUNCATION = "no-target-after-truncation"


class BadDataError(ValueError):
    """A data file or record is invalid; the message is one line naming the file, record and problem."""


@dataclass
class DataStats:
    """What happened to the data: records read and kept per source, skips per reason, truncations,
    language-only examples dropped by ``cotraining=false``.  The trainer logs it and stores ``to_dict()``
    in ``data_stats.json`` / ``results.json``."""

    read: Counter = field(default_factory=Counter)  # source -> records read
    kept: Counter = field(default_factory=Counter)  # source -> records kept
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    # records cut to max_length, keyed (source, index in its file): ids may be shared (LRV, LLaVA's OCR files)
    truncated_ids: set[tuple[str, int]] = field(default_factory=set)
    dropped_language_only: int = 0
    trimmed_questions: int = 0  # trailing user turns without a reply, removed from kept records
    examples: list[str] = field(default_factory=list)  # the first few problems, for the log

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{reason}: {where}")
        log.warning("skipping bad example (%s): %s", reason, where)

    @property
    def truncated(self) -> int:
        return len(self.truncated_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"read": dict(self.read), "kept": dict(self.kept), "skipped": dict(self.skipped),
                "skipped_total": sum(self.skipped.values()), "truncated": self.truncated,
                "dropped_language_only": self.dropped_language_only, "trimmed_questions": self.trimmed_questions,
                "examples": list(self.examples)}

    def summary(self) -> str:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (f"data: read {sum(self.read.values())}, kept {sum(self.kept.values())}, skipped {skipped}, "
                f"truncated {self.truncated}, language-only dropped {self.dropped_language_only}")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


@dataclass(frozen=True)
class Record:
    """One validated LLaVA example: ``conversation`` is ``[(role, text)]`` with roles user/assistant."""

    example_id: str
    image: Path | None
    conversation: tuple[tuple[str, str], ...]
    source: str
    index: int  # position in its file

    @property
    def has_image(self) -> bool:
        return self.image is not None

    @property
    def n_words(self) -> int:
        """Prismatic's length proxy for grouping: words of all turns, ``<image>`` removed."""
        return sum(len(text.replace("<image>", "").split()) for _, text in self.conversation)


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; malformed JSON raises BadDataError naming the file, line and column."""
    path = Path(path)
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise BadDataError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise BadDataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def validate_record(raw: Any) -> tuple[str, str] | None:
    """``(reason, detail)`` when a raw LLaVA record is invalid, else None."""
    if not isinstance(raw, dict):
        return MALFORMED, f"expected an object, got {type(raw).__name__}"
    turns = raw.get("conversations")
    if not isinstance(turns, list) or not turns:
        return MALFORMED, "key 'conversations': expected a non-empty list of turns"
    if "image" in raw and not isinstance(raw["image"], str):
        return MALFORMED, f"key 'image': expected a relative path string, got {raw['image']!r}"
    for t, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            return MALFORMED, (f"conversations[{t}]: expected {{'from': 'human'|'gpt', 'value': str}}, "
                               f"got {str(turn)[:80]}")
        expected = "human" if t % 2 == 0 else "gpt"
        if turn["from"] != expected:
            return MALFORMED, f"conversations[{t}]: from {turn['from']!r}; expected {expected!r} (turns alternate)"
    if not any(turn["from"] == "gpt" and turn["value"].strip() for turn in turns):
        return NO_ASSISTANT, "no assistant ('gpt') turn with text"
    return None


def read_records(json_path: str | Path, image_dir: str | Path, *, source: str, on_bad_example: str = "skip",
                 stats: DataStats | None = None, check_images: bool = True) -> list[Record]:
    """Validated records of one LLaVA JSON file; images resolve under ``image_dir``."""
    if on_bad_example not in ON_BAD:
        raise ValueError(f"data.on_bad_example: invalid value {on_bad_example!r}; allowed: {', '.join(ON_BAD)}")
    stats = stats if stats is not None else DataStats()
    json_path, image_dir = Path(json_path), Path(image_dir)
    data = load_json(json_path)
    if not isinstance(data, list):
        raise BadDataError(f"{json_path}: expected a JSON list of LLaVA records, got {type(data).__name__}")
    if data and isinstance(data[0], dict) and "conversations" not in data[0] and \
            {"image_id", "question", "answer"} <= set(data[0]):  # never skipped whole under on_bad_example=skip
        raise BadDataError(f"{json_path}: record 0: LRV-Instruct's raw release format ({{image_id, question, answer, "
                           "task}}), not LLaVA records; expected LLaVA records: convert the release with "
                           "`ablate data prepare lrv-instruct --from DIR`")
    records = []
    for i, raw in enumerate(data):
        stats.read[source] += 1
        problem = validate_record(raw)
        image = None
        if problem is None and "image" in raw:
            try:
                image = confined(image_dir, raw["image"])
            except PathEscapeError as err:
                problem = IMAGE_OUTSIDE_ROOT, str(err)
        if problem is None and image is not None and check_images and not image.is_file():
            problem = MISSING_IMAGE, f"image {str(image)!r} not found"
        if problem is not None:
            reason, detail = problem
            rid = raw.get("id") if isinstance(raw, dict) else None
            where = f"{json_path}: record {i}" + (f" (id {rid!r})" if rid is not None else "") + f": {detail}"
            if on_bad_example == "fail":
                raise BadDataError(where)
            stats.skip(reason, where)
            continue
        turns = [(ROLES[t["from"]], t["value"]) for t in raw["conversations"]]
        if turns[-1][0] == "user":  # a trailing question without a reply carries no loss: trim and count it
            turns = turns[:-1]
            stats.trimmed_questions += 1
        records.append(Record(str(raw.get("id", f"{source}-{i}")), image, tuple(turns), source, i))
        stats.kept[source] += 1
    return records


# ----------------------------------------------------------------------------------------------- dataset
@dataclass
class Example:
    """One tokenized example, before padding."""

    example_id: str
    input_ids: torch.Tensor  # (L,)
    labels: torch.Tensor  # (L,)
    pixel_values: torch.Tensor | dict[str, torch.Tensor]
    has_image: bool


def _blank_pixels(pixels: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor | dict[str, torch.Tensor]:
    import torch

    if isinstance(pixels, dict):
        return {k: torch.zeros_like(v) for k, v in pixels.items()}
    return torch.zeros_like(pixels)


class LlavaDataset:
    """Records -> tokenized ``Example``s (``None`` for an example skipped at load time: ``collate`` drops it).

    ``image_transform`` maps a PIL image to a tensor ``(3, S, S)`` or a dict branch -> tensor (fused
    backbones); text-only examples get zero pixels of the same shape (ignored by the VLM)."""

    def __init__(self, records: Sequence[Record], tokenizer: Any, prompt_format: Any,
                 image_transform: Callable[[Image.Image], Any], *, max_length: int,
                 on_bad_example: str = "skip", stats: DataStats | None = None, align: bool = False,
                 max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, pixel_cache_mb: float = 0) -> None:
        self.records = list(records)
        self.pixel_cache = PixelCache(int(pixel_cache_mb * 2**20))  # records sharing an image decode it once
        self.align = align
        self.max_image_pixels = max_image_pixels
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.image_transform = image_transform
        self.max_length = max_length
        self.on_bad_example = on_bad_example
        self.stats = stats if stats is not None else DataStats()
        self._bad: set[int] = set()
        self._blank: Any = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def lengths(self) -> list[int]:
        return [r.n_words for r in self.records]

    @property
    def is_multimodal(self) -> list[bool]:
        return [r.has_image for r in self.records]

    def tokenize(self, record: Record) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` via the prompt format (align: :func:`tokenize_caption`), truncated to
        ``max_length`` (counted)."""
        from ablate.models.prompts import tokenize_conversation

        if self.align:
            input_ids, labels = tokenize_caption(self.tokenizer, record.conversation)
        else:
            input_ids, labels = tokenize_conversation(self.tokenizer, self.prompt_format, record.conversation)
        if len(input_ids) > self.max_length:
            self.stats.truncated_ids.add((record.source, record.index))
            input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
        return input_ids, labels

    def blank_pixels(self) -> Any:
        if self._blank is None:
            self._blank = _blank_pixels(self.image_transform(Image.new("RGB", (32, 32))))
        return self._blank

    def _bad_example(self, i: int, reason: str, detail: str) -> None:
        r = self.records[i]
        where = f"{r.source} record {r.index} (id {r.example_id!r}): {detail}"
        if self.on_bad_example == "fail":
            raise BadDataError(where)
        if i not in self._bad:
            self._bad.add(i)
            self.stats.skip(reason, where)

    def __getitem__(self, i: int) -> Example | None:
        record = self.records[i]
        if i in self._bad:
            return None
        pixels = self.blank_pixels()
        if record.image is not None:
            try:
                image = record.image
                pixels = self.pixel_cache.get(str(image), lambda: self.image_transform(
                    open_image(image, self.max_image_pixels)))
            except ImageTooLargeError as err:
                self._bad_example(i, IMAGE_TOO_LARGE, str(err))
                return None
            except FileNotFoundError:
                self._bad_example(i, MISSING_IMAGE, f"image {str(record.image)!r} not found")
                return None
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                self._bad_example(i, CORRUPT_IMAGE, f"image {str(record.image)!r} unreadable ({err})")
                return None
        import torch

        input_ids, labels = self.tokenize(record)
        if all(label == IGNORE_INDEX for label in labels):
            self._bad_example(i, EMPTY_AFTER_TRUNCATION,
                              f"no assistant token left within max_length {self.max_length}")
            return None
        return Example(record.example_id, torch.tensor(input_ids), torch.tensor(labels), pixels,
                       record.has_image)


def tokenize_caption(tokenizer: Any, conversation: Sequence[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """Prismatic's align-stage example (``AlignDataset``, following LLaVA's code): the human prompt is discarded
    and the model predicts the caption (the last assistant turn, stripped) from the image: ids = BOS + caption
    + EOS, labels = the same with BOS ignored (the image slots go right after BOS)."""
    caption = next(text for role, text in reversed(conversation) if role == "assistant").strip()
    ids = tokenizer(caption + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    return bos + ids, [IGNORE_INDEX] * len(bos) + ids


def _stack(pixels: list[Any]) -> torch.Tensor | dict[str, torch.Tensor]:
    """Stack per-example pixels; ``image=anyres`` tile stacks of different lengths are zero-padded to the
    longest (each example's grid, ``anyres_grid``, says how many of its tiles are real)."""
    import torch

    from ablate.data.anyres import pad_tiles

    def stack(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(parts) if len({p.shape for p in parts}) == 1 else pad_tiles(parts)

    if isinstance(pixels[0], dict):
        return {k: stack([p[k] for p in pixels]) for k in pixels[0]}
    return stack(pixels)


def collate(examples: Sequence[Example | None], pad_token_id: int = 0,
            pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """Pad a list of examples (right padding; ``None`` = skipped, dropped) into the batch of
    docs/contracts.md: ``pixel_values``, ``input_ids``, ``attention_mask``, ``labels``, ``has_image``,
    ``example_ids``."""
    import torch

    kept = [e for e in examples if e is not None]
    if not kept:
        raise BadDataError(f"collate: all {len(examples)} examples of the batch were skipped as bad data")
    length = max(len(e.input_ids) for e in kept)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(kept), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(kept), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(kept), length), dtype=torch.long)
    for row, e in enumerate(kept):
        n = len(e.input_ids)
        input_ids[row, :n] = e.input_ids
        labels[row, :n] = e.labels
        attention_mask[row, :n] = 1
    return {"pixel_values": _stack([e.pixel_values for e in kept]), "input_ids": input_ids,
            "attention_mask": attention_mask, "labels": labels,
            "has_image": torch.tensor([e.has_image for e in kept], dtype=torch.bool),
            "example_ids": [e.example_id for e in kept]}


@dataclass(frozen=True)
class Collator:
    """``collate`` bound to a tokenizer's pad id (picklable, for DataLoader workers)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: Sequence[Example | None]) -> dict[str, Any]:
        return collate(examples, self.pad_token_id, self.pad_to_multiple_of)


# ----------------------------------------------------------------------------------------------- sampler
class ModalityLengthSampler:
    """Indices for one rank: global batches that are all-image or all-text, each sorted by length and dealt
    to ranks so every rank's share has about the same total length, in an order fixed by ``(seed, epoch)``.

    Each modality's shuffled indices are padded by wrapping to whole global batches
    (``per_device_batch * num_replicas``), so every rank sees the same number of batches.  ``position`` is
    the number of this rank's indices already consumed in the epoch: ``load_state_dict`` restores it and
    iteration yields exactly the remaining order."""

    def __init__(self, lengths: Sequence[int], is_multimodal: Sequence[bool], *, per_device_batch: int,
                 seed: int, num_replicas: int = 1, rank: int = 0, group_by_modality: bool = True) -> None:
        if len(lengths) != len(is_multimodal) or not lengths:
            raise ValueError(f"sampler: lengths ({len(lengths)}) and is_multimodal ({len(is_multimodal)}) must "
                             "be equally long and non-empty")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"sampler: rank {rank} outside [0, {num_replicas})")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.is_multimodal = np.asarray(is_multimodal, dtype=bool)
        self.per_device_batch, self.seed = per_device_batch, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.group_by_modality = group_by_modality
        self.epoch = 0
        self.position = 0

    @property
    def global_batch(self) -> int:
        return self.per_device_batch * self.num_replicas

    def _groups(self) -> list[np.ndarray]:
        if not self.group_by_modality:
            return [np.arange(len(self.lengths))]
        return [g for g in (np.flatnonzero(self.is_multimodal), np.flatnonzero(~self.is_multimodal)) if len(g)]

    def _deal(self, batch: np.ndarray) -> list[list[int]]:
        """Longest first, each to the rank with the least total length that still has room."""
        shares: list[list[int]] = [[] for _ in range(self.num_replicas)]
        totals = [0] * self.num_replicas
        for idx in sorted(batch.tolist(), key=lambda j: (-self.lengths[j], j)):
            r = min((r for r in range(self.num_replicas) if len(shares[r]) < self.per_device_batch),
                    key=lambda r: (totals[r], r))
            shares[r].append(idx)
            totals[r] += int(self.lengths[idx])
        return shares

    def global_batches(self, epoch: int | None = None) -> list[list[list[int]]]:
        """Every global batch of the epoch as per-rank index lists, in order."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        batches = []
        for group in self._groups():
            perm = group[rng.permutation(len(group))]
            n_batches = -(-len(perm) // self.global_batch)
            perm = np.resize(perm, n_batches * self.global_batch)  # wrap to whole global batches
            batches += [self._deal(perm[b * self.global_batch:(b + 1) * self.global_batch]) for b in range(n_batches)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def order(self, epoch: int | None = None) -> list[int]:
        """This rank's full index order for an epoch."""
        return [i for shares in self.global_batches(epoch) for i in shares[self.rank]]

    @property
    def batches_per_epoch(self) -> int:
        """Global batches (= optimizer steps without accumulation) in one epoch."""
        return sum(-(-len(g) // self.global_batch) for g in self._groups())

    def __len__(self) -> int:
        return self.batches_per_epoch * self.per_device_batch

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        start = self.position
        for k in range(start, len(order)):
            self.position = k + 1
            yield order[k]
        self.epoch += 1
        self.position = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0

    def state_dict(self, consumed: int | None = None) -> dict[str, int]:
        """``{"epoch", "position", "seed"}``; ``consumed`` overrides the position (indices yielded can run
        ahead of those trained on when a DataLoader prefetches)."""
        return {"epoch": self.epoch, "position": self.position if consumed is None else consumed,
                "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"sampler state: seed {state['seed']} differs from this sampler's seed {self.seed}")
        if not 0 <= state["position"] <= len(self):
            raise ValueError(f"sampler state: position {state['position']} outside [0, {len(self)}]")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

"""Data mixes: the ``data`` config group's sources resolved under a data root, for one training stage.

``build_mix(cfg, "align" | "finetune")`` reads every source of that stage (``cfg.data.align`` /
``cfg.data.finetune``: LLaVA-1.5 558K captions; the 665K instruct mix, + LRV-Instruct, + LVIS-Instruct-4V)
under ``cfg.data.root``.  All missing files are reported in ONE error.  ``cotraining: false`` drops the
language-only examples (counted).  Nothing is generated here: a generated data root is written before (its
own step, e.g. ``ablate data synth``).  ``build_dataset`` wraps the records into a tokenizing ``LlavaDataset``
(step budgets: ``ablate.train.loop.budget``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.data.llava import DataStats, LlavaDataset, Record, read_records
from ablate.data.untrusted import DEFAULT_MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)
STAGE_DATA = ("align", "finetune")


class MissingDataError(FileNotFoundError):
    """Data files of a mix are missing; the message lists every one of them."""


@dataclass
class Mix:
    """The records of one stage's data mix, and what happened while reading them."""

    name: str  # data mix id (cfg.data.id)
    stage_data: str  # align | finetune
    records: list[Record]
    stats: DataStats = field(default_factory=DataStats)

    @property
    def n_multimodal(self) -> int:
        return sum(r.has_image for r in self.records)

    @property
    def n_language_only(self) -> int:
        return len(self.records) - self.n_multimodal


def _sources(data_cfg: Any, stage_data: str) -> list[Any]:
    if stage_data not in STAGE_DATA:
        raise ValueError(f"stage data: invalid value {stage_data!r}; allowed: {', '.join(STAGE_DATA)}")
    return list(getattr(data_cfg, stage_data))


def missing_files(data_cfg: Any, stage_data: str | None = None) -> list[str]:
    """Every source JSON / image folder of the mix (one stage, or both) that does not exist."""
    root = Path(data_cfg.root)
    missing = []
    for stage in (stage_data,) if stage_data else STAGE_DATA:
        for src in _sources(data_cfg, stage):
            for key, rel, ok in (("json", src.json, Path.is_file), ("images", src.images, Path.is_dir)):
                path = root / rel
                if not ok(path):
                    missing.append(f"{src.name}.{key}: {path}")
    return missing


PREFLIGHT_MAX_BYTES = 64 << 20  # JSON files up to this size are parsed before any model is built


def preflight(data_cfg: Any) -> None:
    """Fail fast, before the slow start-up (model build, weights): every missing source of both stages in one
    error, and malformed JSON in the sources small enough to parse twice (the large ones fail when read, with
    the same one-line message)."""
    from ablate.data.llava import load_json

    missing = missing_files(data_cfg)
    if missing:
        raise MissingDataError(f"data mix {data_cfg.id!r} under root {data_cfg.root!r}: {len(missing)} missing: "
                               + "; ".join(missing))
    for stage in STAGE_DATA:
        for src in _sources(data_cfg, stage):
            path = Path(data_cfg.root) / src.json
            if path.stat().st_size <= PREFLIGHT_MAX_BYTES:
                load_json(path)


def build_mix(cfg: Any, stage_data: str, *, stats: DataStats | None = None, check_images: bool = True) -> Mix:
    """The validated records of ``cfg.data``'s ``stage_data`` sources (``align`` or ``finetune``)."""
    data = cfg.data
    sources = _sources(data, stage_data)
    if not sources:
        raise ValueError(f"data.{stage_data}: no sources in data mix {data.id!r}")
    missing = missing_files(data, stage_data)
    if missing:
        raise MissingDataError(f"data mix {data.id!r} ({stage_data}) under root {data.root!r}: "
                               f"{len(missing)} missing: " + "; ".join(missing))
    stats = stats if stats is not None else DataStats()
    root = Path(data.root)
    records: list[Record] = []
    for src in sources:
        records += read_records(root / src.json, root / src.images, source=src.name,
                                on_bad_example=data.on_bad_example, stats=stats, check_images=check_images)
    if stage_data == "finetune" and not data.cotraining:
        kept = [r for r in records if r.has_image]
        stats.dropped_language_only += len(records) - len(kept)
        records = kept
    log.info("%s (%s): %d records; %s", data.id, stage_data, len(records), stats.summary())
    return Mix(data.id, stage_data, records, stats)


def build_dataset(cfg: Any, stage_data: str, tokenizer: Any, prompt_format: Any, image_transform: Any,
                  *, stats: DataStats | None = None) -> LlavaDataset:
    """``build_mix`` + tokenization: the dataset a training stage iterates."""
    mix = build_mix(cfg, stage_data, stats=stats)
    return LlavaDataset(mix.records, tokenizer, prompt_format, image_transform, max_length=cfg.llm.max_length,
                        on_bad_example=cfg.data.on_bad_example, stats=mix.stats, align=stage_data == "align",
                        max_image_pixels=cfg.data.get("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS),
                        pixel_cache_mb=float(cfg.runtime.get("pixel_cache_mb", 0)))  # run configs before it: off

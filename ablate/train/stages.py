"""Stage plans: which components train in each stage of a recipe, and with which hyperparameters.

``align`` trains the projector, ``finetune`` the projector + LLM, ``full-finetune`` also the vision backbone
(the components come from ``cfg.recipe.stages[i].trainable``).  Hyperparameters come from
``cfg.train.align`` for the align stage and ``cfg.train.finetune`` for the others.  Recipes chain stages on
one model, so two-stage's finetune starts from the aligned projector, while single-stage's only stage starts
from the randomly initialized projector that ``build_vlm`` made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

from ablate.config import COMPONENTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe with its resolved hyperparameters."""

    index: int
    name: str
    trainable: tuple[str, ...]
    data: str  # align | finetune: the split of the data mix that feeds it
    lr: float
    weight_decay: float
    global_batch: int
    per_device_batch: int
    epochs: float
    warmup_ratio: float
    max_grad_norm: float
    max_steps: int | None  # train.max_steps: a cap on every stage (tests, the demo)
    budget_steps: int | None = None  # train.<stage>.max_steps: Prismatic's step budget (overrides epochs)

    @property
    def frozen(self) -> tuple[str, ...]:
        return tuple(c for c in COMPONENTS if c not in self.trainable)


def plan(cfg: Any) -> list[Stage]:
    """The stages of ``cfg.recipe`` in order, each with its hyperparameters."""
    stages = []
    for i, s in enumerate(cfg.recipe.stages):
        h = cfg.train.align if s.name == "align" else cfg.train.finetune
        epochs = float(h.epochs if h.epochs is not None else cfg.train.epochs)
        stages.append(Stage(index=i, name=str(s.name), trainable=tuple(s.trainable), data=str(s.data),
                            lr=float(h.lr), weight_decay=float(h.weight_decay), global_batch=int(h.global_batch),
                            per_device_batch=int(h.per_device_batch), epochs=epochs,
                            warmup_ratio=float(h.warmup_ratio), max_grad_norm=float(h.max_grad_norm),
                            max_steps=cfg.train.max_steps, budget_steps=h.get("max_steps")))
    return stages


def component(model: nn.Module, name: str) -> nn.Module:
    """``model.vision`` / ``model.projector`` / ``model.llm`` with a clear error when missing."""
    module = getattr(model, name, None)
    if not isinstance(module, nn.Module):
        raise AttributeError(f"model {type(model).__name__} has no component {name!r}; expected an nn.Module "
                             f"attribute for each of {', '.join(COMPONENTS)}")
    return module


def apply(model: nn.Module, stage: Stage) -> dict[str, int]:
    """Freeze/unfreeze components for ``stage`` (frozen ones also go to eval mode); log and return counts."""
    for name in COMPONENTS:
        module = component(model, name)
        trainable = name in stage.trainable
        module.requires_grad_(trainable)
        module.train(trainable)
    counts = count_parameters(model)
    log.info("stage %s: trains %s; %d trainable / %d frozen parameters", stage.name, "+".join(stage.trainable),
             counts["trainable"], counts["frozen"])
    return counts


def count_parameters(model: nn.Module) -> dict[str, int]:
    seen: set[int] = set()
    counts = {"trainable": 0, "frozen": 0}
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    return counts

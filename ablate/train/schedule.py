"""The one learning-rate schedule: linear warm-up times cosine decay, as an LR multiplier of the step.

Why it exists: the trainer (Prismatic's schedule, ``transformers.get_cosine_schedule_with_warmup``) and the
component pretraining of a plug-in (a ramp that overlaps the cosine) both warm up and decay; one parametrized
function serves both, each with the exact arithmetic it always had (so no learning rate moves by a bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Prismatic's ``int(num_training_steps * warmup_ratio)`` (floor)."""
    return int(total_steps * warmup_ratio)


def warmup_cosine(total_steps: int, warmup: int, *, shift: int = 0,
                  cosine_from_start: bool = False) -> Callable[[int], float]:
    """LR multiplier of step k (0-based): ``(k + shift) / W`` during the first W steps, times a cosine from 1
    to 0.  ``cosine_from_start=False`` (the trainer; shift 0): the cosine runs over the T - W steps after the
    warm-up (``transformers.get_cosine_schedule_with_warmup``; 0 at the first step).  True (component
    pretraining; shift 1): the cosine runs over all T steps, under the ramp, and stays 0 after T."""
    span = total_steps if cosine_from_start else max(1, total_steps - warmup)

    def factor(step: int) -> float:
        ramp = (step + shift) / max(1, warmup) if step < warmup else 1.0
        if cosine_from_start:
            angle = math.pi * min(step, total_steps) / span
        else:
            angle = math.pi * (max(0, step - warmup) / span)
        return ramp * (0.5 * (1.0 + math.cos(angle)))

    return factor


def lambda_lr(optimizer: Any, factor: Callable[[int], float]) -> Any:
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

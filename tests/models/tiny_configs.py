"""Composed tiny configs for the model tests (a plain module: test files import it by name)."""

from __future__ import annotations

BASE = ["llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes"]


def tiny_cfg(*overrides: str, check: bool = True):
    from ablate.design import compose

    extra = list(overrides)
    if any(o == "vision=tiny-patch-embed" for o in extra):
        extra.append("recipe=single-stage-full-ft")
    return compose([*BASE, *extra], check=check)

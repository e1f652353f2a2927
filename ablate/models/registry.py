"""String ID -> builder registries for every model family, so configs name parts by readable IDs.

Each family module (vision, projector, prompts, data.transforms) registers its builders here at import
time; the ``list_*()`` helpers import the owning module first, so they always see every registered ID.
Looking up an unknown ID raises ``KeyError`` with a one-line message listing the known IDs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """A named map from string ID to builder."""

    def __init__(self, kind: str, module: str) -> None:
        self.kind = kind
        self.module = module  # the module whose import fills this registry
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._builders[name] = builder
            return builder

        return decorate

    def _load(self) -> None:
        importlib.import_module(self.module)

    def get(self, name: str) -> Callable[..., Any]:
        self._load()
        if name not in self._builders:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._builders[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._builders)


VISION_FAMILIES = Registry("vision backbone family", "ablate.models.vision")
PROJECTORS = Registry("projector", "ablate.models.projector")
PROMPT_FORMATS = Registry("prompt format", "ablate.models.prompts")
IMAGE_TRANSFORMS = Registry("image transform", "ablate.data.transforms")


def list_vision_families() -> list[str]:
    return VISION_FAMILIES.names()


def list_projectors() -> list[str]:
    return PROJECTORS.names()


def list_prompt_formats() -> list[str]:
    return PROMPT_FORMATS.names()


def list_image_transforms() -> list[str]:
    return IMAGE_TRANSFORMS.names()

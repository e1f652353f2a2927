"""A byte-bounded LRU cache of preprocessed pixels, keyed by image path, for the training datasets.

Why it exists: an instruct mix asks several questions about some images (a presence-question mix: 3 records
per image), and every record decoded and resized its image again.  The image transforms are deterministic (no
augmentation: Prismatic has none), so the tensor for a path is the same every time.  ``runtime.pixel_cache_mb``
bounds it per dataset and per process (each DataLoader worker holds its own); it is not part of the run
identity: the pixels are identical with or without it (tests/data/test_pixel_cache.py).  A mix of 558K distinct
images mostly misses and costs only the bookkeeping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any


def nbytes(pixels: Any) -> int:
    """Bytes held by a transform's output: a tensor or a dict of tensors (fused backbones, anyres grids)."""
    if isinstance(pixels, dict):
        return sum(nbytes(v) for v in pixels.values())
    return int(pixels.numel() * pixels.element_size()) if hasattr(pixels, "numel") else 0


class PixelCache:
    """``get(key, make)``: the cached value for ``key``, else ``make()`` (stored while the total stays within
    ``max_bytes``, evicting the least recently used).  ``max_bytes = 0`` turns it off."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.bytes = self.hits = self.misses = 0

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key][0]
        self.misses += 1
        value = make()
        size = nbytes(value)
        if 0 < size <= self.max_bytes:
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
        return value

    def __len__(self) -> int:
        return len(self._items)

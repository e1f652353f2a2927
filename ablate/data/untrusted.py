"""Reading files that come from someone else: a restricted unpickler, path confinement, an image pixel limit.

Why it exists: data roots are downloaded from the internet and shared between people, so nothing read from
them may run code, reach outside the root, or exhaust memory (docs/reliability.md).

- ``safe_pickle_load``: RefCOCO's ``refs(<splitBy>).p`` is a pickle in the official release, so it must be
  read, but only plain data is built (lists, dicts, tuples, strings, bytes, numbers, booleans, None): any
  reference to a class or function (what ``__reduce__`` payloads need) raises ``PickleRefusedError`` before
  anything is called.
- ``confined``: an image path taken from a record (``"image": "..."``) must stay under its folder: no absolute
  path, no ``..`` component, and no symlinked file that resolves outside it (``PathEscapeError``).  Symlinked
  *folders* are followed (images on shared storage are set up that way on purpose).
- ``open_image``: the image's size is read from its header and checked against a pixel limit before it is
  decoded (``ImageTooLargeError``); the image is then decoded fully, so a truncated file fails here.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
from pathlib import Path
from typing import Any

from PIL import Image

# Default of ``data.max_image_pixels``: 8000 x 5000.  The largest images of the benchmarks and LLaVA mixes
# (VizWiz, TextVQA photos) are ~12 Mpx; PIL's own bomb check warns at 89 Mpx and refuses at 179 Mpx.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
PLAIN_DATA = "only lists, dicts, tuples, strings, bytes, numbers, booleans and None"


class UnsafeInputError(ValueError):
    """A data file asks for something ablate never does for data (run code, leave its folder, a huge image)."""


class PickleRefusedError(UnsafeInputError):
    """A pickle references a class or function; it is refused before anything is built or called."""


class PathEscapeError(UnsafeInputError):
    """A path from a record leaves the folder it must stay in."""


class ImageTooLargeError(UnsafeInputError):
    """An image has more pixels than the configured limit (``data.max_image_pixels``)."""


# ------------------------------------------------------------------------------------------------ pickle
class _PlainDataUnpickler(pickle.Unpickler):
    """Builds plain data only: every GLOBAL / STACK_GLOBAL (the only way to get a callable) is refused."""

    def __init__(self, file: io.BufferedIOBase, name: str) -> None:
        super().__init__(file, encoding="latin1")  # the REFER release was pickled by Python 2
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        raise PickleRefusedError(f"{self.name}: refused pickle global {module}.{name}; expected {PLAIN_DATA} "
                                 "(nothing that names a class or function)")

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefusedError(f"{self.name}: refused pickle persistent id {str(pid)[:40]!r}; expected {PLAIN_DATA}")


def safe_pickle_load(path: str | Path) -> Any:
    """Unpickle ``path`` building plain data only; a class/function reference raises PickleRefusedError."""
    with open(path, "rb") as f:
        return _PlainDataUnpickler(f, str(path)).load()


# ------------------------------------------------------------------------------------------------- paths
def confined(base: str | Path, rel: str, what: str = "image path") -> Path:
    """``base / rel``, checked to stay under ``base`` (also after following symlinks); else PathEscapeError."""
    base = Path(base)
    rel_path = Path(rel)
    if rel_path.is_absolute() or rel.startswith("~"):
        raise PathEscapeError(f"{what} {rel!r}: absolute; expected a path relative to {base}")
    if ".." in rel_path.parts:
        raise PathEscapeError(f"{what} {rel!r}: contains '..'; expected a path inside {base}")
    path = base / rel_path
    check_inside(base, path, what, shown=rel)
    return path


def _real_folder(folder: str) -> str:
    """A folder's resolved path, once per process and absolute path: a dataset's records share a few folders,
    so only each file's own ``realpath`` is taken per record (558K records: 21 -> 14 s of ``check_inside``,
    ``bench/path_checks.py``).  Keyed on the absolute path: a relative folder means another one after a
    ``chdir``."""
    return _real_absolute_folder(os.path.abspath(folder))


@functools.lru_cache(maxsize=4096)
def _real_absolute_folder(folder: str) -> str:
    return os.path.realpath(folder)


def check_inside(base: str | Path, path: str | Path, what: str = "image path", *, shown: str | None = None) -> None:
    """Raise PathEscapeError unless ``path`` (already joined) lies under ``base``, lexically and resolved."""
    base, path = Path(base), Path(path)
    shown = shown if shown is not None else str(path)
    try:
        lexical = path.relative_to(base)
    except ValueError:
        raise PathEscapeError(f"{what} {shown!r}: outside {base}; expected a path inside it") from None
    if ".." in lexical.parts:
        raise PathEscapeError(f"{what} {shown!r}: contains '..'; expected a path inside {base}")
    real = os.path.realpath(path)
    # a symlinked *folder* (images kept on shared storage) is the user's choice and is followed; a file that
    # resolves outside both the root and its own (resolved) folder is refused
    allowed = (_real_folder(str(base)), _real_folder(str(path.parent)))
    if not any(os.path.commonpath([a, real]) == a for a in allowed):
        raise PathEscapeError(f"{what} {shown!r}: a symlink to {real}, outside {base}; expected a file inside it")


# ------------------------------------------------------------------------------------------------ images
def check_pixels(path: str | Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(f"image {str(path)!r}: {width}x{height} = {width * height} pixels; expected at "
                                 f"most data.max_image_pixels={max_pixels}")


def open_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """The decoded RGB image at ``path``; its header size is checked against ``max_pixels`` first.

    Raises ImageTooLargeError (over the limit, or over PIL's own bomb limit), FileNotFoundError, or
    OSError / PIL.UnidentifiedImageError for unreadable and truncated files.
    """
    try:
        with Image.open(path) as im:
            check_pixels(path, im.size, max_pixels)
            return im.convert("RGB")  # decodes every row: a truncated file raises OSError here
    except Image.DecompressionBombError:  # over PIL's own limit (2 x Image.MAX_IMAGE_PIXELS)
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        check_pixels(path, _header_size(path), min(max_pixels or limit, limit))
        raise


def _header_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header of an image PIL refused as a bomb (nothing is decoded)."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            return im.size
    finally:
        Image.MAX_IMAGE_PIXELS = saved

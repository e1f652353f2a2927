"""The preparer interface and the one engine every preparer runs through (``ablate data prepare``).

A preparer turns the files a dataset's authors distribute into ablate's layout.  It declares what it needs
(``expects``, shown by ``--list``) and implements ``build(src, out)``: find its upstream files with ``src``
(by their upstream file/folder names anywhere under ``--from``), write or link its outputs under ``out`` (a
fresh temporary folder inside the target root), and return counts; optionally ``validate(out)`` (the
benchmark loaders / the training reader on the result).  The engine (``run``) makes every preparer:

- atomic: the build happens in ``ROOT/.prepare-NAME.tmp``; only when build and validation succeed are the
  outputs moved into place (one rename each) and the manifest written; on error nothing is left behind;
- linking, not copying, the images: image folders become symlinks (``link_images``); the release files
  themselves (annotations, a small fraction of the bytes) are copied, so the manifest's hashes stay true;
- recorded: ``ROOT/manifests/NAME.json`` lists every source file (path, size, mtime, sha256), the linked
  folders, the outputs, the counts and the preparer's version;
- idempotent: a second run whose sources are unchanged (same size and mtime as in the manifest) and whose
  outputs all exist does nothing (``--force`` rebuilds).

Errors are ``PrepareError``: one line naming the file and what was expected.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from ablate.jsonfiles import sha256_file as sha256_of

MANIFESTS = "manifests"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class PrepareError(ValueError):
    """A source file is missing or malformed, or the result fails validation; one line naming the file."""


class Preparer:
    """Subclass (or instantiate a parametrized subclass) and ``register`` it (``ablate.data.prepare``).

    ``kind``: ``benchmark`` (default root ``data/eval``, the ``eval.root`` of ``conf/eval/prismatic.yaml``)
    or ``training`` (default root ``data``, the ``root`` of ``conf/data/*.yaml``)."""

    name: str
    kind: ClassVar[str] = "benchmark"
    version: str = "1"
    expects: str = ""  # what --from must hold (upstream names), for `ablate data prepare --list`
    produces: str = ""  # what it writes under the root

    @property
    def default_root(self) -> str:
        return "data/eval" if self.kind == "benchmark" else "data"

    def build(self, src: Sources, out: Path) -> dict[str, int]:
        raise NotImplementedError

    def validate(self, out: Path) -> None:
        """Raise PrepareError if what ``build`` wrote would be rejected by its reader (default: nothing)."""


# --------------------------------------------------------------------------------------------- sources
@dataclass
class Source:
    path: Path
    size: int
    mtime: float
    sha256: str


def _tail_matches(path: Path, pattern: str) -> bool:
    parts = PurePosixPath(pattern).parts
    return tuple(path.parts[-len(parts):]) == parts


@dataclass
class Sources:
    """The upstream files under ``--from``, found by name; every file a preparer uses is recorded."""

    root: Path
    exclude: Path | None = None  # the target root, when it lies under --from (never read our own outputs)
    used: dict[str, Source] = field(default_factory=dict)
    _files: dict[str, list[Path]] | None = None
    _dirs: dict[str, list[Path]] | None = None

    def _index(self) -> None:
        if self._files is not None:
            return
        if not self.root.is_dir():
            raise PrepareError(f"{self.root}: --from is not a folder; expected the folder the downloads were "
                               "unpacked in")
        files: dict[str, list[Path]] = {}
        dirs: dict[str, list[Path]] = {}
        excluded = os.path.realpath(self.exclude) if self.exclude is not None else None
        visited: set[str] = set()
        for top, subdirs, names in os.walk(self.root, followlinks=True):
            real = os.path.realpath(top)
            if real in visited or (excluded is not None and real == excluded):
                subdirs[:] = []
                continue
            visited.add(real)
            subdirs.sort()
            for d in subdirs:
                dirs.setdefault(d, []).append(Path(top) / d)
            for n in sorted(names):
                if not n.lower().endswith(IMAGE_EXTENSIONS):  # images are found through their folders
                    files.setdefault(n, []).append(Path(top) / n)
        self._files, self._dirs = files, dirs

    def file(self, names: Sequence[str], what: str, *, required: bool = True) -> Path | None:
        """The one file matching the first of ``names`` (trailing path parts, e.g. ``refcoco/instances.json``)
        that matches anything; identical copies count as one."""
        self._index()
        assert self._files is not None
        for pattern in names:
            found = [p for p in self._files.get(PurePosixPath(pattern).name, []) if _tail_matches(p, pattern)]
            if not found:
                continue
            distinct = {(p.stat().st_size, sha256_of(p)): p for p in found} if len(found) > 1 else {0: found[0]}
            if len(distinct) > 1:
                a, b = list(distinct.values())[:2]
                raise PrepareError(f"{a}: {len(distinct)} different files named {pattern!r} under {self.root} "
                                   f"(also {b}); expected one (point --from at one release)")
            return self.use(found[0])
        if required:
            raise PrepareError(f"{self.root}: no file named {' or '.join(map(repr, names))} found under it; "
                               f"expected {what}")
        return None

    def use(self, path: Path) -> Path:
        st = path.stat()
        self.used[str(path)] = Source(path, st.st_size, st.st_mtime, sha256_of(path))
        return path

    def folder(self, names: Sequence[str], containing: str, what: str) -> Path:
        """The folder named one of ``names`` that holds ``containing`` (a relative path inside it)."""
        self._index()
        assert self._dirs is not None
        candidates = [d for n in names for d in self._dirs.get(PurePosixPath(n).name, []) if _tail_matches(d, n)]
        for d in candidates:
            if (d / containing).is_file():
                return d
        shown = " or ".join(repr(n) for n in names)
        if not candidates:
            raise PrepareError(f"{self.root}: no folder named {shown} found under it; expected {what}")
        raise PrepareError(f"{self.root}: no folder named {shown} holds {containing!r} ({len(candidates)} "
                           f"such folder(s), e.g. {candidates[0]}); expected {what}")

    def folders(self, name: str) -> list[Path]:
        self._index()
        assert self._dirs is not None
        return [d for d in self._dirs.get(PurePosixPath(name).name, []) if _tail_matches(d, name)]


# ------------------------------------------------------------------------------------------- outputs
def place_file(source: Path, dest: Path) -> None:
    """``dest`` = a copy of the release file as distributed (not a link: editing the download later must not
    change a prepared benchmark behind its manifest's back; images, the bulk, are linked)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)


def write_json(dest: Path, data: Any) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)


def link_dir(dest: Path, folder: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink():
        dest.unlink()
    dest.symlink_to(folder.resolve(), target_is_directory=True)


def link_images(out: Path, images: Iterable[str], src: Sources, declared: Mapping[str, Sequence[str]],
                what: str) -> dict[str, str]:
    """Link the folders holding ``images`` (paths relative to ``out``): an image under a ``declared`` folder
    (path -> upstream names) links that folder; any other links its own parent folder, found by its name.
    Each folder is the one under --from holding the first image that needs it.  Returns {folder: target}."""
    order = sorted(declared, key=len, reverse=True)
    probes: dict[str, str] = {}
    for rel in images:
        d = next((k for k in order if rel.startswith(k + "/")), None) or str(PurePosixPath(rel).parent)
        if d in ("", "."):
            raise PrepareError(f"image {rel!r}: directly in the output root; expected it inside an image folder")
        probes.setdefault(d, rel[len(d) + 1:])
    links = {}
    for d, probe in probes.items():
        if any(d.startswith(other + "/") for other in probes):
            continue  # inside a folder that is linked whole
        if (out / d).is_symlink():
            links[d] = os.readlink(out / d)
            continue
        folder = src.folder(declared.get(d, (PurePosixPath(d).name,)), probe, f"{what} (image folder {d})")
        link_dir(out / d, folder)
        links[d] = str(folder.resolve())
    return links


def missing_images(paths: Iterable[Path]) -> tuple[int, int, Path | None]:
    """(missing, distinct, first missing) over image paths."""
    distinct = dict.fromkeys(paths)
    missing = [p for p in distinct if not p.is_file()]
    return len(missing), len(distinct), (missing[0] if missing else None)


def _outputs(tmp: Path) -> list[str]:
    """Files and links under ``tmp`` (not descending into linked folders), relative to it."""
    found = []
    for top, subdirs, names in os.walk(tmp):
        for d in list(subdirs):
            if (Path(top) / d).is_symlink():
                found.append(str((Path(top) / d).relative_to(tmp)))
                subdirs.remove(d)
        found += [str((Path(top) / n).relative_to(tmp)) for n in names]
    return sorted(found)


# -------------------------------------------------------------------------------------------- engine
@dataclass
class Result:
    name: str
    root: Path
    manifest: Path
    up_to_date: bool
    counts: dict[str, int]


def manifest_path(root: Path, name: str) -> Path:
    return Path(root) / MANIFESTS / f"{name}.json"


def _unchanged(manifest: dict, root: Path, from_dir: Path, version: str) -> bool:
    if manifest.get("version") != version or manifest.get("from") != str(from_dir.resolve()):
        return False
    for s in manifest.get("sources", []):
        p = Path(s["path"])
        if not p.is_file() or p.stat().st_size != s["size"] or p.stat().st_mtime != s["mtime"]:
            return False
    return all((root / o).exists() or (root / o).is_symlink() for o in manifest.get("outputs", []))


def run(preparer: Preparer, from_dir: str | Path, root: str | Path | None = None, *,
        force: bool = False) -> Result:
    """Prepare ``preparer`` from ``from_dir`` into ``root`` (atomic, linked, recorded, idempotent)."""
    from_dir = Path(from_dir)
    root = Path(root if root is not None else preparer.default_root)
    mpath = manifest_path(root, preparer.name)
    if mpath.is_file() and not force:
        old = json.loads(mpath.read_text())
        if _unchanged(old, root, from_dir, preparer.version):
            return Result(preparer.name, root, mpath, True, old.get("counts", {}))
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".prepare-{preparer.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        src = Sources(from_dir, exclude=root)
        counts = preparer.build(src, tmp)
        preparer.validate(tmp)
        outputs = _outputs(tmp)
        for rel in outputs:  # refuse before moving anything
            dest = root / rel
            if dest.is_dir() and not dest.is_symlink():
                raise PrepareError(f"{dest}: an existing folder where ablate data prepare {preparer.name} puts "
                                   f"{'a link' if (tmp / rel).is_symlink() else 'a file'}; expected nothing "
                                   "there (move it away or use another --root)")
        for rel in outputs:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, root / rel)
        manifest = {
            "name": preparer.name, "kind": preparer.kind, "version": preparer.version,
            "from": str(from_dir.resolve()), "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sources": [{"path": str(s.path), "size": s.size, "mtime": s.mtime, "sha256": s.sha256}
                        for s in src.used.values()],
            "links": {o: os.readlink(root / o) for o in outputs if (root / o).is_symlink()},
            "outputs": outputs, "counts": counts,
        }
        mpath.parent.mkdir(parents=True, exist_ok=True)
        part = mpath.with_suffix(".json.part")
        part.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(part, mpath)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Result(preparer.name, root, mpath, False, counts)

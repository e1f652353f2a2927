"""Hostile data roots (docs/reliability.md): a pickle that runs code, image paths that leave their folder, a
decompression bomb, a truncated image, an empty benchmark file.  Each is named in one line by the training
reader and by ``ablate data check``, nothing runs that should not, and the data root is left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import struct
import zlib
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.data.check import check_root, cli_check
from ablate.data.llava import (
    IMAGE_OUTSIDE_ROOT,
    IMAGE_TOO_LARGE,
    BadDataError,
    DataStats,
    LlavaDataset,
    Record,
    read_records,
)
from ablate.data.untrusted import (
    ImageTooLargeError,
    PickleRefusedError,
    confined,
    open_image,
    safe_pickle_load,
)
from ablate.eval.benchmarks.base import BenchmarkFormatError
from ablate.eval.benchmarks.closed_set import POPE
from ablate.eval.benchmarks.grounding import RefCOCO
from ablate.models.prompts import get_prompt_format
from ablate.shapes.tokenizer import shapes_tokenizer


def digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (symlinks as their target) -> sha256: 'nothing on disk lost or changed'."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def copy(world: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(world, dst)
    return dst


class Payload:
    """What a hostile refs pickle holds: unpickling it calls os.system (a plain pickle.load runs it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump([{"ref_id": 1, "payload": Payload(marker)}], f, protocol=2)


# ----------------------------------------------------------------------------------------------- pickle
def test_plain_refs_pickle_loads_as_before(world: Path) -> None:
    path = world / "eval/refer/refcoco/refs(unc).p"
    with open(path, "rb") as f:
        assert safe_pickle_load(path) == pickle.load(f)


def test_hostile_refs_pickle_is_refused_and_never_runs(copy: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "PWNED"
    refs = copy / "eval/refer/refcoco/refs(unc).p"
    hostile_pickle(refs, marker)
    with open(refs, "rb") as f:  # the payload is real: a plain pickle.load runs it
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    before = digest(copy)

    with pytest.raises(PickleRefusedError) as err:
        safe_pickle_load(refs)
    assert str(err.value) == (f"{refs}: refused pickle global posix.system; expected only lists, dicts, tuples, "
                              "strings, bytes, numbers, booleans and None (nothing that names a class or function)")

    assert cli_check(Namespace(root=str(copy))) == 1
    out = capsys.readouterr().out
    assert f"{refs}: refused pickle global posix.system; expected only lists" in out

    with pytest.raises(BenchmarkFormatError, match=r"refs\(unc\)\.p: refused pickle global posix\.system"):
        RefCOCO(copy / "eval").load()
    assert not marker.exists()
    assert digest(copy) == before


# ------------------------------------------------------------------------------------------------ paths
CONV = [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "red"}]


@pytest.fixture
def escapes(tmp_path: Path) -> tuple[Path, Path]:
    """A data root whose records try every way out of images/: absolute, ../../.., a symlink out of the
    root, and ../ into a sibling folder; each target is a real, decodable image."""
    root, outside = tmp_path / "data", tmp_path / "outside"
    (root / "images").mkdir(parents=True)
    (root / "other").mkdir()
    outside.mkdir()
    for folder in (root / "images", root / "other", outside):
        Image.new("RGB", (8, 8), "red").save(folder / "x.png")
    (root / "images" / "link.png").symlink_to(outside / "x.png")
    records = [{"id": "ok", "image": "x.png", "conversations": CONV},
               {"id": "abs", "image": str(outside / "x.png"), "conversations": CONV},
               {"id": "up", "image": "../../outside/x.png", "conversations": CONV},
               {"id": "link", "image": "link.png", "conversations": CONV},
               {"id": "sibling", "image": "../other/x.png", "conversations": CONV}]
    (root / "instruct.json").write_text(json.dumps(records))
    return root, outside


def test_each_image_path_escape_is_rejected_by_training_reader(escapes: tuple[Path, Path]) -> None:
    root, outside = escapes
    before = digest(root.parent)
    images = root / "images"
    stats = DataStats()
    records = read_records(root / "instruct.json", images, source="t", stats=stats)
    assert [r.example_id for r in records] == ["ok"]
    assert stats.skipped == {IMAGE_OUTSIDE_ROOT: 4}
    where = f"{root / 'instruct.json'}: record"
    assert stats.examples == [
        f"{IMAGE_OUTSIDE_ROOT}: {where} 1 (id 'abs'): image path {str(outside / 'x.png')!r}: absolute; "
        f"expected a path relative to {images}",
        f"{IMAGE_OUTSIDE_ROOT}: {where} 2 (id 'up'): image path '../../outside/x.png': contains '..'; "
        f"expected a path inside {images}",
        f"{IMAGE_OUTSIDE_ROOT}: {where} 3 (id 'link'): image path 'link.png': a symlink to {outside / 'x.png'}, "
        f"outside {images}; expected a file inside it",
        f"{IMAGE_OUTSIDE_ROOT}: {where} 4 (id 'sibling'): image path '../other/x.png': contains '..'; "
        f"expected a path inside {images}",
    ]
    with pytest.raises(BadDataError, match=r"record 1 \(id 'abs'\): image path .*: absolute; expected a path"):
        read_records(root / "instruct.json", images, source="t", on_bad_example="fail")
    assert digest(root.parent) == before


def test_path_escapes_are_reported_by_data_check(escapes: tuple[Path, Path], capsys) -> None:
    root, _ = escapes
    assert cli_check(Namespace(root=str(root))) == 1
    out = capsys.readouterr().out
    assert "1 with image, 0 language-only, 4 bad" in out
    for rid, why in (("abs", "absolute"), ("up", "contains '..'"), ("link", "a symlink to"),
                     ("sibling", "contains '..'")):
        assert f"(id {rid!r}): image path" in out and why in out


def test_symlinked_image_folder_is_followed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    Image.new("RGB", (8, 8)).save(shared / "x.png")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "images").symlink_to(shared)
    assert confined(tmp_path / "root" / "images", "x.png") == tmp_path / "root/images/x.png"


def test_relative_root_means_the_folder_under_the_current_directory(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The same relative root in two working directories (two runs in one process, as the tests do): each
    check resolves it under its own cwd, so a file inside the second root is not called an escape."""
    for name in ("one", "two"):
        images = tmp_path / name / "data" / "images"
        images.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(images / "x.png")
        monkeypatch.chdir(tmp_path / name)
        assert confined("data/images", "x.png") == Path("data/images/x.png")


def test_benchmark_image_path_escape_is_refused(copy: Path, capsys) -> None:
    pope = copy / "eval/pope/coco/coco_pope_random.json"
    rows = [json.loads(line) for line in pope.read_text().splitlines()]
    rows[0]["image"] = "../../vqav2/val2014/" + rows[0]["image"]
    pope.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"pope example random-\d+: image path .*: "
                                                   r"contains '\.\.'; expected a path inside"):
        POPE(copy / "eval").load()
    assert cli_check(Namespace(root=str(copy))) == 1
    out = capsys.readouterr().out  # data check prints the loader's own message
    assert re.search(r"pope example random-\d+: image path .*: contains '\.\.'; expected a path inside", out)


# ----------------------------------------------------------------------------------------------- images
def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid PNG header claiming ``width x height`` in a file of ~60 bytes (decoding it would need 400 MB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) +
                     chunk(b"IEND", b""))
    return path


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255


def test_pixel_bomb_is_a_named_skip_or_fail(tmp_path: Path) -> None:
    bomb = huge_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 100
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    tok = shapes_tokenizer()
    conv = (("user", "<image>\nWhat?"), ("assistant", "red"))
    records = [Record("ok", tmp_path / "ok.png", conv, "t", 0), Record("bomb", bomb, conv, "t", 1)]
    stats = DataStats()
    ds = LlavaDataset(records, tok, get_prompt_format("base", tok), to_tensor, max_length=64, stats=stats,
                      max_image_pixels=1000)
    assert ds[0] is not None and ds[1] is None
    assert stats.skipped == {IMAGE_TOO_LARGE: 1}
    assert stats.examples == [f"{IMAGE_TOO_LARGE}: t record 1 (id 'bomb'): image {str(bomb)!r}: 20000x20000 = "
                              "400000000 pixels; expected at most data.max_image_pixels=1000"]
    strict = LlavaDataset(records, tok, get_prompt_format("base", tok), to_tensor, max_length=64,
                          on_bad_example="fail")  # default limit: 40M pixels
    with pytest.raises(BadDataError, match=r"^t record 1 \(id 'bomb'\): image .*bomb\.png': 20000x20000 = "
                                           r"400000000 pixels; expected at most data\.max_image_pixels=40000000$"):
        strict[1]
    with pytest.raises(ImageTooLargeError, match="bomb.png"):  # over PIL's own bomb limit: same error
        open_image(bomb, None)


def test_max_image_pixels_is_validated_and_not_part_of_the_run_key(compose_tiny) -> None:
    from ablate.config import ConfigError
    from ablate.design import run_key

    assert compose_tiny().data.max_image_pixels == 40_000_000
    assert run_key(compose_tiny("data.max_image_pixels=1000")) == run_key(compose_tiny())
    with pytest.raises(ConfigError, match=r"data\.max_image_pixels: invalid value 0; expected a positive number"):
        compose_tiny("data.max_image_pixels=0")


def test_data_check_reports_bomb_truncated_and_empty_benchmark(copy: Path, capsys) -> None:
    train_img = copy / "images" / json.loads((copy / "align.json").read_text())[0]["image"]
    huge_png(train_img)
    pope_img = sorted((copy / "eval/vsr/images").iterdir())[0]  # (POPE itself is rejected below: empty file)
    data = pope_img.read_bytes()
    pope_img.write_bytes(data[: len(data) // 2])  # truncated: Image.verify() alone passes it
    with Image.open(pope_img) as im:
        im.verify()
    empty = copy / "eval/pope/coco/coco_pope_popular.json"
    empty.write_text("")
    before = digest(copy)
    report = check_root(copy, decode="all")
    text = "\n".join(report.problems)
    assert f"{copy / 'align.json'}: record 0 (id 'align-000000'): image {str(train_img)!r}: 20000x20000 = " \
           "400000000 pixels; expected at most data.max_image_pixels=40000000" in text
    assert f"image {pope_img} corrupt (OSError: image file is truncated" in text
    assert f"{empty}: no lines; expected at least one" in text
    with pytest.raises(BenchmarkFormatError, match="coco_pope_adversarial.json: no lines; expected at least one"):
        (copy / "eval/pope/coco/coco_pope_adversarial.json").write_text("")
        (copy / "eval/pope/coco/coco_pope_random.json").write_text("")
        POPE(copy / "eval").load()
    assert cli_check(Namespace(root=str(copy), decode="none", max_image_pixels=40_000_000)) == 1
    assert "0 images decoded" in capsys.readouterr().out
    assert all(before[k] == v for k, v in digest(copy).items() if "coco_pope_" not in k)

"""The training datasets' pixel cache: records sharing an image decode it once, the same tensors come out
with and without it, and the byte bound evicts the least recently used."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ablate.data import untrusted
from ablate.data.llava import LlavaDataset, Record
from ablate.data.pixel_cache import PixelCache


def test_cache_evicts_least_recently_used_within_its_bound():
    one = torch.zeros(256, dtype=torch.uint8)  # 256 bytes each
    cache = PixelCache(600)
    made = []
    for key in ["a", "b", "a", "c", "b"]:  # c evicts b (a was used after b), so b is made again
        cache.get(key, lambda key=key: made.append(key) or one.clone())
    assert made == ["a", "b", "c", "b"] and (cache.hits, cache.misses) == (1, 4)
    assert cache.bytes <= 600 and len(cache) == 2
    off = PixelCache(0)
    off.get("a", lambda: one)
    assert len(off) == 0 and off.bytes == 0


def test_records_sharing_an_image_decode_it_once_with_identical_pixels(tmp_path, monkeypatch):
    from ablate.models.prompts import get_prompt_format
    from ablate.shapes.tokenizer import shapes_tokenizer

    tokenizer = shapes_tokenizer()

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "a.png")
    Image.new("RGB", (30, 40), (10, 10, 200)).save(tmp_path / "b.png")
    records = [Record(source="t", index=i, example_id=str(i), image=tmp_path / name,
                      conversation=(("user", "<image>\nColour?"), ("assistant", "red")))
               for i, name in enumerate(["a.png", "b.png", "a.png", "a.png"])]
    opened = []
    real_open = untrusted.open_image
    monkeypatch.setattr("ablate.data.llava.open_image", lambda p, m=None: opened.append(p) or real_open(p, m))

    def transform(im):
        return torch.from_numpy(np.asarray(im, dtype=np.float32)).sum(-1)

    fmt = get_prompt_format("base", tokenizer)
    cached = LlavaDataset(records, tokenizer, fmt, transform, max_length=64, pixel_cache_mb=1)
    plain = LlavaDataset(records, tokenizer, fmt, transform, max_length=64, pixel_cache_mb=0)
    got = [cached[i].pixel_values for i in range(4)]
    assert [p.name for p in opened] == ["a.png", "b.png"]
    opened.clear()
    want = [plain[i].pixel_values for i in range(4)]
    assert len(opened) == 4
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    assert not torch.equal(got[0], got[1])

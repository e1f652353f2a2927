"""Multimodal position encodings (ablate.models.positions): each level's stated properties, numerically —
text-only input is the unwrapped LM's RoPE-1D, an image's position span, RoPE-TV's symmetric gaps, KV-cached
generation == full recompute, and the ``rope-2d`` alias keeps its run key."""

from __future__ import annotations

import pytest
import torch
from test_vlm import CONVS, RED, collate
from tiny_configs import tiny_cfg

from ablate.models.positions import SectionedRotary, merged_positions
from ablate.models.vlm import VLM

LEVELS = ["m-rope", "mrope-interleave", "rope-tie", "rope-tv"]
G = 8  # tiny-clip: 64 px / 8 px patches; the image starts at position p = 1 (after BOS)


def level_vlm(base: VLM, level: str) -> VLM:
    cfg = tiny_cfg("vision=tiny-clip", "projector=mlp", f"llm.image_positions={level}")
    return VLM(cfg, base.vision, base.projector, base.llm, base.tokenizer).eval()


def forward(model: VLM, images, has_image):
    batch = collate(model, CONVS, images, has_image)
    e, a, _, p = model.merge(batch["input_ids"], batch["attention_mask"], None, batch["pixel_values"],
                             batch["has_image"])
    with torch.no_grad():
        return model.llm(inputs_embeds=e, attention_mask=a, position_ids=p).logits, p, a, batch


@pytest.mark.parametrize("level", LEVELS)
def test_text_rows_get_exactly_the_unwrapped_lms_rope_1d(tiny_vlm, level):
    # row 1 is text-only inside a batch with an image, so it goes through the multi-axis rotary path
    ref_1d, _, attn, batch = forward(tiny_vlm, [RED, RED], [True, False])
    ids = batch["input_ids"][1][batch["attention_mask"][1].bool()]
    with torch.no_grad():
        alone = tiny_vlm.llm(input_ids=ids[None]).logits[0]  # the plain LM, no image machinery
    model = level_vlm(tiny_vlm, level)
    assert isinstance(model.llm.get_decoder().rotary_emb, SectionedRotary)
    logits, pos, attn, _ = forward(model, [RED, RED], [True, False])
    assert pos.dim() == 3 and bool((pos[:, 1] == pos[0, 1]).all())  # text: every axis at n
    assert torch.equal(logits[1], ref_1d[1])
    torch.testing.assert_close(logits[1][attn[1].bool()], alone)
    assert not torch.allclose(logits[0], ref_1d[0])  # with an image the level does change the model


def test_image_positions_and_span_of_each_level():
    # one row: BOS, a G x G image, three text tokens
    n_text_after = 3
    attn = torch.ones(1, 1 + G * G + n_text_after, dtype=torch.long)
    index = torch.full_like(attn, -1)
    index[0, 1:1 + G * G] = torch.arange(G * G)
    after = 1 + G * G
    k = G + 2  # patch (row 1, col 2)
    m = merged_positions(attn, index, G, "m-rope")
    assert m[:, 0, 1 + k].tolist() == [1, 2, 3] and m[:, 0, after].tolist() == [1 + G] * 3
    assert torch.equal(merged_positions(attn, index, G, "rope-2d"), m)  # the old ID is the same level
    assert torch.equal(merged_positions(attn, index, G, "mrope-interleave"), m)  # same positions, other freqs
    tie = merged_positions(attn, index, G, "rope-tie")
    assert tie.shape[0] == 2 and tie[:, 0, 0].tolist() == [0, 0]  # BOS at (0, 0)
    assert tie[:, 0, 1 + k].tolist() == [2, 3]  # (p + r, p + c)
    assert tie[:, 0, after:].tolist() == [[1 + G, 2 + G, 3 + G]] * 2  # text continues after the image
    tv = merged_positions(attn, index, G, "rope-tv")
    # equivalence: the image spans G*G positions, as G*G text tokens (and as 1d)
    one_d = merged_positions(attn, index, G, "1d")
    assert tv[:, 0, after:].tolist() == [one_d[0, after:].tolist()] * 2 == [[65.0, 66.0, 67.0]] * 2
    image = tv[:, 0, 1:after]
    assert float(image.amax() - image.amin()) == G * (G - 1)  # the patch grid stretched over the span
    assert tv[:, 0, 1 + k].tolist() == [1 + 3.5 + G * 1, 1 + 3.5 + G * 2]


def test_rope_tv_gaps_before_and_after_the_image_are_equal():
    for grid in (3, 4, 8):
        attn = torch.ones(1, 2 + grid * grid + 2, dtype=torch.long)  # BOS, text, image, two text tokens
        index = torch.full_like(attn, -1)
        index[0, 2:2 + grid * grid] = torch.arange(grid * grid)
        tv = merged_positions(attn, index, grid, "rope-tv")[:, 0]
        last_before, first, last, first_after = tv[:, 1], tv[:, 2], tv[:, 1 + grid * grid], tv[:, 2 + grid * grid]
        gap_before, gap_after = first - last_before, first_after - last
        assert torch.equal(gap_before, gap_after) and gap_before.tolist() == [(grid + 1) / 2] * 2
        assert (first_after - last_before).tolist() == [grid * grid + 1] * 2  # the span of grid^2 text tokens


@pytest.mark.parametrize("level", ["1d", *LEVELS])
def test_kv_cached_generation_equals_full_recompute(tiny_vlm, level):
    model = level_vlm(tiny_vlm, level)
    prompts = ["What colour is the shape?", "Colour?"]
    images = [RED, None]
    rows = model.generate_ids(images, prompts, max_new_tokens=5)
    assert sum(len(r) for r in rows) >= 5  # something was generated to compare
    pixels, has_image = model._pixels_of(images, len(prompts))
    for i, (prompt, generated) in enumerate(zip(prompts, rows, strict=True)):
        if not generated:
            continue
        prefix = model._prompt_ids(prompt)
        ids, mask = model._left_pad([prefix + generated])
        rows_i = torch.tensor([i])
        px = None if pixels is None else pixels[rows_i]
        with torch.no_grad():
            e, a, _, pos = model.merge(ids, mask, None, px, has_image[rows_i])
            logits = model.llm(inputs_embeds=e, attention_mask=a, position_ids=pos).logits[0]
            pe, pa, _, ppos = model.merge(*model._left_pad([prefix]), None, px, has_image[rows_i])
        n = len(generated)
        # positions: the recomputed generated tokens sit where the cached loop put them (max + 1, + 1, ...)
        start = ppos.amax(dim=tuple(range(ppos.dim() - 1)) + (-1,)).item() if ppos.dim() == 3 else \
            ppos.amax().item()
        want = torch.arange(n, dtype=pos.dtype) + start + 1
        got = pos[..., 0, -n:] if pos.dim() == 3 else pos[0, -n:]
        assert torch.equal(got, want.expand_as(got)), (level, got, want)
        # tokens: greedy argmax of the full recompute reproduces every cached step
        assert logits[-n - 1:-1].argmax(-1).tolist() == generated, level


def test_rope_2d_alias_keeps_its_run_key_and_m_rope_is_the_same_run():
    from ablate.design import DesignPoint

    old = DesignPoint.build("x", ("llm=tiny-llama", "vision=tiny-clip", "projector=mlp",
                                  "llm.image_positions=rope-2d"), 7)
    assert old.run_key == "e6038990e360"  # computed on main before the level registry (commit a8921f0)
    new = DesignPoint.build("x", ("llm=tiny-llama", "vision=tiny-clip", "projector=mlp",
                                  "llm.image_positions=m-rope"), 7)
    assert new.run_key == old.run_key
    tv = DesignPoint.build("x", ("llm=tiny-llama", "vision=tiny-clip", "projector=mlp",
                                 "llm.image_positions=rope-tv"), 7)
    assert tv.run_key != old.run_key


def test_frequency_layouts_of_the_levels(tiny_vlm):
    rotary = tiny_vlm.llm.get_decoder().rotary_emb
    rotary = rotary.rotary if isinstance(rotary, SectionedRotary) else rotary
    n = rotary.inv_freq.numel()
    sections = SectionedRotary(rotary, "sections").section[:n].tolist()
    assert sections == sorted(sections) and sections.count(0) == n - 2 * (3 * n // 8)  # contiguous 16/24/24
    assert SectionedRotary(rotary, "interleave-3").section[:6].tolist() == [0, 1, 2, 0, 1, 2]
    assert SectionedRotary(rotary, "interleave-2").section[:4].tolist() == [0, 1, 0, 1]

"""The gated-xattn bridge (ablate.models.bridge): the LM is unchanged at init (gates 0), the blocks change it
once opened, image keys/values are computed once per sequence in cached generation (== full recompute), and
every block is an FSDP unit."""

from __future__ import annotations

import pytest
import torch
from test_vlm import CONVS, RED, collate
from tiny_configs import tiny_cfg

from ablate.models.vlm import build_vlm
from ablate.train.strategy import fsdp_units


@pytest.fixture(scope="module")
def bridge_vlm():
    torch.manual_seed(0)
    return build_vlm(tiny_cfg("vision=tiny-clip", "projector=gated-xattn", "projector.xattn_every=1",
                              "projector.heads=2")).eval()


def _logits(model, images, has_image, *, drop_context: bool = False):
    batch = collate(model, CONVS, images, has_image)
    e, a, _, p = model.merge(batch["input_ids"], batch["attention_mask"], None, batch["pixel_values"],
                             batch["has_image"])
    if drop_context:  # the same inputs through the LM with no bridge at all
        model.bridge.set_context(None, None)
    with torch.no_grad():
        return model.llm(inputs_embeds=e, attention_mask=a, position_ids=p).logits, batch


def _open_gates(model, value: float) -> None:
    with torch.no_grad():
        for block in model.bridge.blocks.values():
            block.attn_gate.fill_(value)
            block.ff_gate.fill_(value)


def test_lm_unchanged_at_init_and_changed_once_gates_open(bridge_vlm):
    n_layers = len(bridge_vlm.llm.get_decoder().layers)
    assert len(bridge_vlm.bridge.blocks) == n_layers and bridge_vlm.num_image_tokens == 0
    before = bridge_vlm.bridge.kv_computations
    logits, batch = _logits(bridge_vlm, [RED, RED], [True, False])
    assert bridge_vlm.bridge.kv_computations - before == n_layers  # every block ran
    assert logits.shape[1] == batch["input_ids"].shape[1]  # no image tokens in the sequence
    plain, _ = _logits(bridge_vlm, [RED, RED], [True, False], drop_context=True)
    assert torch.equal(logits, plain)  # gates at 0: the blocks ran and changed nothing
    attended = batch["attention_mask"][0].bool()
    with torch.no_grad():
        alone = bridge_vlm.llm(input_ids=batch["input_ids"][:1, attended]).logits[0]  # the plain LM, text only
    torch.testing.assert_close(logits[0, attended], alone)
    _open_gates(bridge_vlm, 1.0)
    try:
        opened, _ = _logits(bridge_vlm, [RED, RED], [True, False])
        assert not torch.allclose(opened[0], plain[0])
        assert torch.equal(opened[1], plain[1])  # the text-only row gets no cross-attention
    finally:
        _open_gates(bridge_vlm, 0.0)


def test_image_kv_computed_once_per_sequence_and_cached_generation_equals_recompute(bridge_vlm):
    _open_gates(bridge_vlm, 0.5)
    try:
        before = bridge_vlm.bridge.kv_computations
        generated = bridge_vlm.generate_ids([RED], ["What colour is the shape?"], max_new_tokens=5)[0]
        assert len(generated) >= 2
        assert bridge_vlm.bridge.kv_computations - before == len(bridge_vlm.bridge.blocks)  # prefill only
        ids, mask = bridge_vlm._left_pad([bridge_vlm._prompt_ids("What colour is the shape?") + generated])
        pixels, has_image = bridge_vlm._pixels_of([RED], 1)
        with torch.no_grad():
            e, a, _, p = bridge_vlm.merge(ids, mask, None, pixels, has_image)
            logits = bridge_vlm.llm(inputs_embeds=e, attention_mask=a, position_ids=p).logits[0]
        n = len(generated)
        assert logits[-n - 1:-1].argmax(-1).tolist() == generated
    finally:
        _open_gates(bridge_vlm, 0.0)


def test_every_cross_attention_block_is_an_fsdp_unit(bridge_vlm):
    units = fsdp_units(bridge_vlm)
    blocks = [f"projector.blocks.{i}" for i in bridge_vlm.bridge.blocks]
    assert all(b in units for b in blocks)
    assert units.index(blocks[-1]) < units.index("projector")  # inner units before the projector's

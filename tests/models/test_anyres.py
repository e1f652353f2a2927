"""``image=anyres`` (LLaVA-NeXT tiling): the grid rule against literal cases worked out from LLaVA's
``select_best_resolution``, the tiles and overview, the token layout with a row separator, token counts in
``ablate describe`` / ``ablate plan``, and batches of images with different grids: each example's loss (and
its generation) is the same in the batch as alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_configs import tiny_cfg

from ablate.config import ConfigError, parse_grids
from ablate.data.anyres import AnyresTiling, fit_and_pad, select_grid
from ablate.data.llava import Example, collate
from ablate.models.tiles import arrange, tokens_for_grid
from ablate.models.vlm import build_vlm

NEXT = parse_grids(["1x2", "2x1", "2x2", "3x1", "1x3"])  # LLaVA-NeXT's 336 px pinpoints over 336


@pytest.mark.parametrize(("size", "grid"), [
    # (width, height) -> (columns, rows); worked out by hand from the rule at tile 336:
    # 1000x500: 2x1 keeps 672x336 = 225,792 px with no waste; 2x2 and 3x1 keep as much but waste canvas
    ((1000, 500), (2, 1)),
    ((500, 1000), (1, 2)),
    # 800x800: 2x2 keeps 672x672 = 451,584 px; every one-row or one-column canvas only 336x336
    ((800, 800), (2, 2)),
    # 1500x400: 3x1 keeps int(1500·0.672) x int(400·0.672) = 1008 x 268 = 270,144 px; 2x1 / 2x2 672 x 179
    ((1500, 400), (3, 1)),
    # 100x50: every canvas holds the whole image (5,000 px, the cap); 1x2 and 2x1 waste the same 220,792 px
    # and the first in the list wins the tie
    ((100, 50), (1, 2)),
])
def test_grid_is_llava_nexts_max_effective_resolution_then_least_waste(size, grid) -> None:
    assert select_grid(size, NEXT, 336) == grid


def test_the_demo_grid_set_gives_each_aspect_its_own_grid() -> None:
    small = parse_grids(["1x1", "2x1", "1x2"])  # conf/image/anyres-small.yaml; the shapes world's canvases
    assert [select_grid(s, small, 64) for s in [(192, 108), (108, 192), (128, 128)]] == [(2, 1), (1, 2), (1, 1)]


def test_tiles_are_the_padded_canvas_cut_row_major_after_the_overview() -> None:
    image = torch.zeros(3, 64, 100, dtype=torch.uint8)
    image[0] = 200  # red everywhere, a blue right edge
    image[2, :, 90:] = 255
    tiles, grid = AnyresTiling(["1x1", "2x1", "1x2"]).tiles(image, 64)
    assert grid == (2, 1) and tiles.shape == (3, 3, 64, 64)
    # canvas 128x64: the image kept at 100x64 (height fitted), 14 black columns each side
    canvas = fit_and_pad(image, 128, 64)
    assert bool((canvas[:, :, :14] == 0).all()) and bool((canvas[:, :, 114:] == 0).all())
    assert bool((canvas[0, :, 14:114] > 150).all())
    assert torch.equal(tiles[1], canvas[:, :, :64]) and torch.equal(tiles[2], canvas[:, :, 64:])
    assert int(tiles[0][0].min()) > 150  # the overview: the whole image squeezed to 64x64, no padding


def test_layout_is_overview_then_patch_rows_each_ending_in_the_separator() -> None:
    side, d = 2, 3
    # tile t's patch p carries (t, p, 0); the projector's appended last token is the separator (-1, -1, -1)
    tokens = torch.tensor([[[t, p, 0] for p in range(side * side)] + [[-1, -1, -1]] for t in range(3)]).float()
    padded, lengths = arrange(tokens, torch.tensor([[2, 1]]), side)
    assert lengths.tolist() == [tokens_for_grid(2, 1, side)] == [4 + 2 * (4 + 1)]
    seq = padded[0].tolist()
    assert seq[:4] == [[0, p, 0] for p in range(4)]  # the overview
    # patch row 0 of the 2x1 grid: tile 1's patches 0, 1, then tile 2's patches 0, 1, then the separator
    assert seq[4:9] == [[1, 0, 0], [1, 1, 0], [2, 0, 0], [2, 1, 0], [-1, -1, -1]]
    assert seq[9:14] == [[1, 2, 0], [1, 3, 0], [2, 2, 0], [2, 3, 0], [-1, -1, -1]]
    assert len(seq) == 14 and d == 3


def test_config_rejects_what_anyres_cannot_do() -> None:
    with pytest.raises(ConfigError, match=r"image.grids: invalid grid shape '2by1'; expected 'CxR'"):
        tiny_cfg("image=anyres", "image.grids=[2by1]")
    with pytest.raises(ConfigError, match=r"image.grids: invalid value \['2x1'\]; expected null for image=letterbox"):
        tiny_cfg("image=letterbox", "+image.grids=[2x1]")
    with pytest.raises(ConfigError, match="projector: invalid value 'perceiver'; expected a patch-wise projector"):
        tiny_cfg("image=anyres", "projector=perceiver")
    with pytest.raises(ConfigError, match="llm.image_positions: invalid value 'rope-tie'; expected 1d"):
        tiny_cfg("image=anyres", "llm.image_positions=rope-tie")


def test_describe_and_plan_give_the_image_tokens_per_grid(capsys: pytest.CaptureFixture[str]) -> None:
    from ablate.cli import main
    from ablate.models.vlm import build_meta_vlm
    from ablate.plan import stage_costs

    assert main(["describe", "image=anyres"]) == 0  # Prismatic's CLIP ViT-L/336: 24x24 patches per tile
    out = capsys.readouterr().out
    assert "1x2 1776, 2x1 1752, 2x2 2928, 3x1 2328, 1x3 2376; up to 2928" in out  # 576 + R·24·(C·24 + 1)
    assert "2928 image tokens x 4096" in out
    cfg = tiny_cfg("vision=tiny-clip", "image=anyres")
    (cost,) = stage_costs(cfg, "x", gpus=1, gpu="a100-80gb", mfu=0.4)
    (plain,) = stage_costs(tiny_cfg("vision=tiny-clip"), "x", gpus=1, gpu="a100-80gb", mfu=0.4)
    assert cost.image_tokens == 336 and plain.image_tokens == 64  # 64 + 2·8·17 for the 2x2 grid of 8x8 patches
    assert cost.params["projector"] == sum(p.numel() for p in build_meta_vlm(cfg).projector.parameters())


def _per_example_loss(model, batch) -> torch.Tensor:
    embeds, attn, labels, positions = model.merge(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                                  batch["pixel_values"], batch["has_image"])
    logits = model.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions).logits
    loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none")
    return (loss.sum(1) / (labels[:, 1:] != -100).sum(1)).detach()


def test_a_batch_of_two_grids_gives_each_example_its_loss_alone() -> None:
    torch.manual_seed(0)
    model = build_vlm(tiny_cfg("vision=tiny-clip", "image=anyres-small")).eval()
    wide, square = Image.new("RGB", (192, 108), (220, 20, 20)), Image.new("RGB", (128, 128), (20, 20, 220))
    examples = []
    for i, (image, n_text) in enumerate([(wide, 9), (square, 5), (None, 7)]):
        ids = torch.randint(3, 500, (n_text,))
        ids[0] = model.tokenizer.bos_token_id
        labels = ids.clone()
        labels[:2] = -100
        pixels = model.image_transform(image if image is not None else Image.new("RGB", (32, 32)))
        examples.append(Example(f"e{i}", ids, labels, pixels, image is not None))
    batch = collate(examples, model.tokenizer.pad_token_id)
    assert batch["pixel_values"]["tiny-clip"].shape[:2] == (3, 3)  # 2x1 + overview; the others padded
    assert batch["pixel_values"]["anyres_grid"].tolist() == [[2, 1], [1, 1], [1, 1]]
    together = _per_example_loss(model, batch)
    alone = torch.cat([_per_example_loss(model, collate([e], model.tokenizer.pad_token_id)) for e in examples])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    embeds, attn, _, _ = model.merge(batch["input_ids"], batch["attention_mask"], None, batch["pixel_values"],
                                     batch["has_image"])
    assert attn.sum(1).tolist() == [9 + 200, 5 + 136, 7]  # text + the image's own tokens, no filler attended
    model.inference_precision = "fp32"
    both = model.generate_ids([wide, square], ["a b", "c"], max_new_tokens=4)
    assert both == [*model.generate_ids([wide], ["a b"], max_new_tokens=4),
                    *model.generate_ids([square], ["c"], max_new_tokens=4)]

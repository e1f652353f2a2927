"""The demo's pretrained tiny components: per-patch labels, saved towers and LM that the VLM loads back."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from ablate.registry import IMAGE_TRANSFORMS
from ablate.shapes.pretrain import LABELS, label_masks, patch_targets
from ablate.shapes.scene import Item, Scene


def _one_object_scene(x1: int, shape: str = "square", side: int = 48) -> Scene:
    scene = Scene("wide", 192, 108, (236, 236, 236))
    scene.objects.append(Item(box=(x1, 30, x1 + side, 30 + side), slot=(0, 0), shape=shape, color="red"))
    return scene


def _labels_at(targets: torch.Tensor) -> set[str]:
    return {LABELS[j] for j in targets.nonzero()[:, 1].tolist()}


def test_patch_targets_mark_the_patches_an_object_covers_with_its_colour_and_shape():
    scene = _one_object_scene(72)  # a centred 48-px red square on a 192x108 canvas
    targets = patch_targets(label_masks(scene), IMAGE_TRANSFORMS.get("letterbox"), 64, 8)
    assert targets.shape == (64, len(LABELS))
    assert _labels_at(targets) == {"red", "square"}
    # letterbox: 192 -> 64 px (scale 1/3), 42 px of top padding -> the square spans x 24-40, y 24-40
    grid = targets[:, LABELS.index("red")].view(8, 8)
    assert grid[3:5, 3:5].all() and grid.sum() == 4
    assert torch.equal(targets[:, LABELS.index("red")], targets[:, LABELS.index("square")])


@pytest.mark.parametrize("image_id,kept", [("letterbox", True), ("resize-naive", True), ("resize-crop", False)])
def test_an_edge_object_has_no_patch_labels_after_resize_crop(image_id, kept):
    # x 0-40 at the left edge; resize-crop scales 108 -> 64 and keeps x 42-150 of the 192-px canvas
    scene = _one_object_scene(0, shape="circle", side=40)
    targets = patch_targets(label_masks(scene), IMAGE_TRANSFORMS.get(image_id), 64, 8)
    assert bool(targets.any()) is kept


def test_pretrained_towers_are_saved_per_branch_and_loaded_through_each_branch_path(tmp_path: Path):
    from ablate.design import compose
    from ablate.models.vision import build_vision
    from ablate.shapes.demo import tower_overrides
    from ablate.shapes.pretrain import pretrain_vision

    cfg = compose(["vision=tiny-dinosiglip"]).vision
    metrics = pretrain_vision(cfg, tmp_path, steps=4, batch=4, log=lambda _: None)
    assert {p.name for p in tmp_path.iterdir()} == {"tiny-dinov2.safetensors", "tiny-siglip.safetensors"}
    assert 0.0 <= metrics["colour recall"] <= 1.0
    torch.manual_seed(123)  # a different random init: equal outputs can only come from the loaded weights
    random_init = build_vision(cfg)
    cfg = compose(["vision=tiny-dinosiglip", *tower_overrides(cfg, tmp_path)]).vision
    assert [b.path for b in cfg.backbones] == [str(tmp_path / "tiny-dinov2.safetensors"),
                                               str(tmp_path / "tiny-siglip.safetensors")]
    torch.manual_seed(123)
    loaded, again = build_vision(cfg), build_vision(cfg)
    pixels = {name: torch.randn(2, 3, 64, 64) for name in loaded.branches}
    with torch.no_grad():
        assert torch.equal(loaded(pixels), again(pixels))
        assert not torch.allclose(loaded(pixels), random_init(pixels))


def test_missing_or_mismatched_tower_weights_name_the_file(tmp_path: Path):
    from ablate.design import compose
    from ablate.models.vision import WeightsNotFoundError, build_vision
    from ablate.shapes.pretrain import pretrain_vision

    cfg = compose(["vision=tiny-clip", f"vision.backbones.0.path={tmp_path / 'tiny-clip.safetensors'}"]).vision
    with pytest.raises(WeightsNotFoundError, match=r"tiny-clip\.safetensors.*does not exist"):
        build_vision(cfg)
    siglip = compose(["vision=tiny-dinosiglip"]).vision
    pretrain_vision(siglip, tmp_path, steps=1, batch=2, log=lambda _: None)
    (tmp_path / "tiny-siglip.safetensors").rename(tmp_path / "tiny-clip.safetensors")
    with pytest.raises(WeightsNotFoundError, match=r"tiny-clip\.safetensors does not fit the architecture"):
        build_vision(cfg)


def test_pretrained_llm_loads_through_llm_path_with_the_same_logits(tmp_path: Path):
    from ablate.design import compose
    from ablate.models.llm import build_llm, build_tokenizer
    from ablate.shapes.pretrain import pretrain_llm

    cfg = compose(["llm=tiny-llama"]).llm
    metrics = pretrain_llm(cfg, tmp_path / "lm", steps=3, batch=4, log=lambda _: None)
    assert 0.0 <= metrics["answer_acc"] <= 1.0
    tokenizer = build_tokenizer(cfg)
    cfg.path, cfg.random_init = str(tmp_path / "lm"), None
    first, second = build_llm(cfg, tokenizer), build_llm(cfg, tokenizer)
    ids = torch.tensor([tokenizer("Is there a red circle in the image?")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(first(input_ids=ids).logits, second(input_ids=ids).logits)


def test_scene_in_words_asks_presence_answered_by_the_listed_objects():
    import re

    from ablate.shapes.chat import DESCRIBE_PROMPTS, plain_description
    from ablate.shapes.pretrain import in_words, scene_in_words
    from ablate.shapes.training import train_scene

    rng = random.Random(3)
    described = 0
    for _ in range(200):
        scene = train_scene(rng)
        conv = scene_in_words(scene, rng)
        assert conv[0][1].startswith(in_words(scene) + "\n") and "<image>" not in conv[0][1]
        assert [role for role, _ in conv] in (["user", "assistant"] * 3, ["user", "assistant"] * 4)
        names = {o.name for o in scene.objects}
        for (_, question), (_, answer) in zip(conv[0:6:2], conv[1:6:2], strict=True):
            asked = re.search(r"Is there a (\w+ \w+) in the image\?", question).group(1)
            assert answer == ("Yes" if asked in names else "No")
        if len(conv) == 8:  # the plain description: exactly the scene's objects
            described += 1
            assert conv[6][1] in DESCRIBE_PROMPTS and conv[7][1] == plain_description(scene)
            assert all(n in conv[7][1] for n in names)
    assert 70 < described < 130  # DESCRIBE_SHARE = 0.5
    assert in_words(scene).startswith("Scene: ") and all(n in in_words(scene) for n in names)


def test_hard_presence_negatives_share_a_colour_or_a_shape_with_a_present_object():
    from ablate.shapes.questions import qa_presence
    from ablate.shapes.training import train_scene

    rng = random.Random(5)
    shares = {True: 0, False: 0}
    for _ in range(300):
        scene = train_scene(rng)
        for hard in (True, False):
            colour, shape = qa_presence(scene, rng, positive=False, hard=hard).question.split()[3:5]
            assert scene.find(f"{colour} {shape}") is None
            shares[hard] += any(colour == o.color or shape == o.shape for o in scene.objects)
    assert shares[True] == 300 and shares[False] < 280


def test_ensure_pretrained_trains_once(tmp_path: Path):
    from ablate.design import compose
    from ablate.shapes.pretrain import ensure_pretrained

    vision = [compose(["vision=tiny-clip"]).vision]
    llm = compose(["llm=tiny-llama"]).llm
    out = ensure_pretrained(vision, llm, tmp_path / "pre", vision_steps=2, llm_steps=2, workers=1)
    files = {p.name: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert {"DONE", "metrics.json", "tiny-clip.safetensors", "model.safetensors"} <= set(files)
    ensure_pretrained(vision, llm, out, vision_steps=2, llm_steps=2, workers=1)
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files


def test_chat_variant_starts_from_the_base_lm_and_learns_verbose_answers(tmp_path: Path):
    """ensure_pretrained with chat_cfg: the base LM, then tiny-llama-chat tuned from it in the Vicuna format;
    after tuning, its greedy answer to a presence question is a long sentence that starts with the verdict."""
    import torch

    from ablate.design import compose
    from ablate.models.llm import build_llm, build_tokenizer
    from ablate.models.prompts import get_prompt_format
    from ablate.shapes.pretrain import ensure_pretrained

    vision = [compose(["vision=tiny-clip"]).vision]
    base, chat = compose(["llm=tiny-llama"]).llm, compose(["llm=tiny-llama-chat"]).llm
    out = ensure_pretrained(vision, base, tmp_path / "pre", vision_steps=2, llm_steps=2, workers=1,
                            chat_cfg=chat, chat_steps=150)
    assert (out / "tiny-llama/model.safetensors").is_file() and (out / "tiny-llama-chat/model.safetensors").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"vision=tiny-clip", "chat=tiny-llama-chat"}
    assert {"answer_acc", "chat_answer_acc"} <= set(metrics["chat=tiny-llama-chat"])
    cfg = compose(["llm=tiny-llama-chat", f"llm.path={out / 'tiny-llama-chat'}", "llm.random_init=null"]).llm
    tok = build_tokenizer(cfg)
    model = build_llm(cfg, tok).eval()
    fmt = get_prompt_format(cfg.prompt_format, tok)
    prompt = fmt.generation_prompt("Scene: red circle, blue square.\nIs there a red circle in the image?")
    bos = [] if tok.bos_token_id is None else [tok.bos_token_id]
    ids = torch.tensor([bos + tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
    answer = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
    assert len(answer.split()) >= 8, answer


def test_ensure_pretrained_rejects_an_arch_in_two_vision_configs(tmp_path: Path):
    from ablate.design import compose
    from ablate.shapes.pretrain import ensure_pretrained

    clip = compose(["vision=tiny-clip"]).vision
    other = compose(["vision=tiny-clip"]).vision
    other.id = "tiny-clip-copy"
    with pytest.raises(ValueError, match="arch 'tiny-clip' is in vision=tiny-clip and vision=tiny-clip-copy"):
        ensure_pretrained([clip, other], compose(["llm=tiny-llama"]).llm, tmp_path, vision_steps=1, llm_steps=1)
    assert not (tmp_path / "DONE").exists()

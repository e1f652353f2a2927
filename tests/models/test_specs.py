"""Every named component is specified as data in conf/ and builds on the meta device from it alone (no weights,
no tokenizer files), with the facts the paper's models have; built modules are checked against their configs;
OpenAI CLIP runs QuickGELU; ``ablate describe`` reports it all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ablate.design import compose
from ablate.registry import group_files

VISION_CONFS = list(group_files("vision"))
LLM_CONFS = list(group_files("llm"))

# image tokens x feature width of each tower (the paper's Table/appendix; fused = concatenated widths)
FEATURES = {
    "clip-vit-l-336": (576, 1024), "clip-vit-l-224": (256, 1024), "siglip-so400m-384": (729, 1152),
    "siglip-so400m-224": (256, 1152), "dinov2-vit-l-224": (256, 1024), "in1k-vit-l-224": (196, 1024),
    "dinosiglip-384": (729, 2176), "dinosiglip-224": (256, 2176), "dinoclip-336": (576, 2048),
    "tiny-clip": (64, 64), "tiny-clip-32": (16, 64), "tiny-siglip": (64, 64), "tiny-dinov2": (64, 64),
    "tiny-dinosiglip": (64, 128), "tiny-patch-embed": (64, 64),
}
# per branch: OpenAI CLIP with QuickGELU as Prismatic forces it, except inside DINOv2+CLIP (Prismatic's fused
# backbone builds that CLIP without the override); SigLIP as timm/open_clip/Prismatic build it (exact GELU)
ACTIVATIONS = {"clip-vit-l-336": ["quick_gelu"], "clip-vit-l-224": ["quick_gelu"], "dinoclip-336": ["gelu", "gelu"],
               "siglip-so400m-384": ["gelu"], "dinosiglip-384": ["gelu", "gelu"], "tiny-patch-embed": ["none"]}
# LM parameters with Prismatic's PAD row and multiple-of-64 embedding (Llama-2 7B 6.74B, 13B 13.0B, ...)
LLM_PARAMS = {"llama2-7b": 6.74e9, "llama2-chat-7b": 6.74e9, "vicuna-v15-7b": 6.74e9, "llama2-13b": 13.0e9,
              "llama2-chat-13b": 13.0e9, "vicuna-v15-13b": 13.0e9, "mistral-v01-7b": 7.24e9,
              "mistral-instruct-v01-7b": 7.24e9, "phi-2": 2.78e9, "smollm2-135m-instruct": 134.5e6}


def test_every_conf_file_has_its_facts_listed() -> None:
    assert set(FEATURES) == set(VISION_CONFS)
    assert set(LLM_PARAMS) | {"tiny-llama", "tiny-llama-chat"} == set(LLM_CONFS)


@pytest.mark.parametrize("vision_id", VISION_CONFS)
def test_vision_conf_builds_on_meta_with_its_patch_grid_width_and_activation(vision_id: str) -> None:
    from ablate.models.vision import build_vision

    cfg = compose([f"vision={vision_id}"], check=False)
    with torch.device("meta"):
        vision = build_vision(cfg.vision, load_weights=False)
    assert (vision.num_patches, vision.embed_dim) == FEATURES[vision_id]
    assert all(p.is_meta for p in vision.parameters())
    acts = [br.facts["activation"] for br in vision.branches.values()]
    assert acts == [str(b.activation) for b in cfg.vision.backbones]
    assert acts == ACTIVATIONS.get(vision_id, ["gelu"] * len(acts))
    for branch, b in zip(vision.branches.values(), cfg.vision.backbones, strict=True):
        assert (branch.facts["width"], branch.facts["depth"], branch.facts["patch_size"]) == (b.width, b.depth,
                                                                                              b.patch_size)


@pytest.mark.parametrize("llm_id", LLM_CONFS)
def test_llm_conf_builds_on_meta_from_its_spec_alone(llm_id: str) -> None:
    from ablate.models.vlm import meta_llm

    cfg = compose([f"llm={llm_id}"], check=False)
    llm = meta_llm(cfg.llm)
    rows = llm.get_input_embeddings().weight.shape[0]
    assert rows % 64 == 0 and next(llm.parameters()).dtype == torch.float32
    if llm_id in LLM_PARAMS:
        n = sum(p.numel() for p in llm.parameters())
        assert abs(n - LLM_PARAMS[llm_id]) / LLM_PARAMS[llm_id] < 0.005, n
        spec = cfg.llm.spec
        c = llm.config
        assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
                c.max_position_embeddings) == (spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads,
                                               spec.num_key_value_heads, spec.max_position_embeddings)
        # Prismatic adds a PAD token, then resize_token_embeddings(len, pad_to_multiple_of=64)
        assert rows == {"phi-2": 50_304, "smollm2-135m-instruct": 49_152}.get(llm_id, 32_064)


def test_open_clip_openai_clip_runs_quick_gelu() -> None:
    """A real (built, not meta) open_clip tower configured quick_gelu uses open_clip's QuickGELU, and it
    computes differently from the exact-GELU build of the same weights."""
    from open_clip.transformer import QuickGELU

    from ablate.models.vision import build_vision

    quick = compose(["vision=tiny-clip", "vision.backbones.0.activation=quick_gelu"], check=False)
    exact = compose(["vision=tiny-clip"], check=False)
    torch.manual_seed(0)
    a = build_vision(quick.vision)
    b = build_vision(exact.vision)
    b.load_state_dict(a.state_dict())
    block = next(iter(a.branches.values())).model.transformer.resblocks[0]
    assert isinstance(block.mlp.gelu, QuickGELU)
    x = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(a(x), b(x))
    with torch.device("meta"):  # the real ViT-L/14-336 of the baseline, as configured
        real = build_vision(compose(["vision=clip-vit-l-336"]).vision, load_weights=False)
    assert isinstance(next(iter(real.branches.values())).model.transformer.resblocks[0].mlp.gelu, QuickGELU)


def test_built_tower_disagreeing_with_its_config_names_id_field_and_values() -> None:
    from ablate.models.vision import SpecMismatchError, build_vision

    cfg = compose(["vision=clip-vit-l-336", "vision.backbones.0.width=768"], check=False)
    with pytest.raises(SpecMismatchError) as err, torch.device("meta"):
        build_vision(cfg.vision, load_weights=False)
    assert str(err.value) == ("vision=clip-vit-l-336 branch ViT-L-14-336: the built model has width=1024; the spec "
                              "(conf/vision/clip-vit-l-336.yaml) says width=768")


def test_describe_shows_quick_gelu_image_tokens_and_widths(capsys: pytest.CaptureFixture[str]) -> None:
    from ablate.cli import main

    assert main(["describe", "vision=clip-vit-l-336"]) == 0
    out = capsys.readouterr().out
    assert "activation quick_gelu" in out and "features  576 x 1024" in out and "576 image tokens x 4096" in out
    assert main(["describe", "vision=dinosiglip-384", "projector=fused-mlp", "recipe=two-stage", "--json"]) == 0
    (point,) = json.loads(capsys.readouterr().out)
    assert point["vision"]["feature_shape"] == [729, 2176] and point["projector"]["image_tokens"] == 729
    assert [b["activation"] for b in point["vision"]["branches"]] == ["gelu", "gelu"]
    align, finetune = point["stages"]
    assert align["trainable_params"] == point["projector"]["params"]
    assert finetune["trainable_params"] == point["projector"]["params"] + point["llm"]["params"]
    assert align["dtypes"]["vision"] == {"master": "bfloat16", "compute": "bfloat16"}
    assert finetune["dtypes"]["llm"] == {"master": "float32", "compute": "bfloat16"}
    assert point["llm"]["weights_dtype"] == "float16" and point["llm"]["vocab_rows"] == 32_064


def test_describe_a_study_covers_every_unique_run(tmp_path: Path) -> None:
    from ablate.describe import describe

    study = tmp_path / "s.yaml"
    study.write_text("study: s\nmode: grid\nseeds: [7]\nbaseline: {vision: tiny-clip, llm: tiny-llama, train: tiny, "
                     "data: shapes, eval: shapes}\naxes:\n  image: letterbox,resize-naive\n  "
                     "recipe: single-stage,two-stage\n")
    described = describe(study=str(study))
    assert len(described) == 4
    assert len({f["llm"]["params"] for _, f in described}) == 1
    assert sorted(len(f["stages"]) for _, f in described) == [1, 1, 2, 2]


@pytest.mark.parametrize("llm_id", LLM_CONFS)
def test_target_loss_equals_hf_labels_loss_for_every_llm_family(llm_id: str) -> None:
    """``target_loss`` hands HF a boolean ``logits_to_keep`` mask; each LM's own class (llama, mistral, phi:
    ``slice_logits_to_keep``) must honour it.  Built from the LM's spec at a tiny size, random init: the loss
    and every gradient equal ``llm(..., labels=labels).loss``, with a prompt and padding left unlabelled."""
    from transformers import AutoModelForCausalLM

    from ablate.models.llm import llm_config, target_loss
    from ablate.models.prompts import IGNORE_INDEX

    small = ["hidden_size=64", "intermediate_size=128", "num_hidden_layers=2", "num_attention_heads=4",
             "num_key_value_heads=2", "vocab_size=128", "tokenizer_size=128"]
    cfg = compose([f"llm={llm_id}"], check=False)
    if cfg.llm.get("spec") is not None:
        cfg = compose([f"llm={llm_id}", *[f"llm.spec.{s}" for s in small]], check=False)
    torch.manual_seed(0)
    llm = AutoModelForCausalLM.from_config(llm_config(cfg.llm, 128), dtype=torch.float32)
    ids = torch.randint(3, 128, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0  # a right-padded row
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, 7:], labels[1, 4:6], labels[2, 6:9] = ids[0, 7:], ids[1, 4:6], ids[2, 6:9]
    params = [p for p in llm.parameters() if p.requires_grad]
    hf = llm(input_ids=ids, attention_mask=mask, labels=labels).loss
    hf_grads = torch.autograd.grad(hf, params)
    ours = target_loss(llm, labels, input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(ours, hf)
    for g, h in zip(torch.autograd.grad(ours, params), hf_grads, strict=True):
        torch.testing.assert_close(g, h)

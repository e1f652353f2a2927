"""The parts of the hf-llava mapping that the end-to-end export test does not vary: the tower activation read
from the built module (QuickGELU), a vocabulary without a spare slot for ``<image>``, a PEFT LoRA merged into
the LM, every prompt format's chat template (multi-turn text equal to ablate's rendering), and the logits
check refusing a model that computes something else."""

from __future__ import annotations

import os

import pytest
import torch
from test_hf_llava import compose, hf_generate, images

from ablate.export.hf_llava import build_llava, check_logits, check_tokens
from ablate.export.towers import ExportError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PROMPTS = ["What colour is the shape?", "How many objects are there?", "Describe the image.",
           "Is there a red circle? Answer yes or no."] * 5


def build(*overrides: str):
    from ablate.models.vlm import build_vlm

    torch.manual_seed(0)
    return build_vlm(compose(*overrides)).eval()


def assert_same_generations(vlm, model, processor, n: int = 20) -> None:
    pics = images(n, seed=5)
    assert hf_generate(model, processor, pics, PROMPTS[:n]) == vlm.generate_ids(pics, PROMPTS[:n], max_new_tokens=12)


def test_quick_gelu_tower_is_read_from_the_module():
    """OpenAI CLIP runs QuickGELU: a tower whose blocks run it exports hidden_act=quick_gelu, exactly."""
    from open_clip.transformer import QuickGELU

    vlm = build("vision=tiny-clip", "projector=mlp")
    for blk in next(iter(vlm.vision.branches.values())).model.transformer.resblocks:
        blk.mlp.gelu = QuickGELU()
    model, processor = build_llava(vlm)
    assert model.config.vision_config.hidden_act == "quick_gelu"
    assert check_logits(vlm, model, processor) < 1e-3
    assert_same_generations(vlm, model, processor)
    model.config.vision_config.hidden_act = "gelu"  # the check has teeth: the name-based guess is refused
    for layer in model.model.vision_tower.encoder.layers:
        layer.mlp.activation_fn = torch.nn.GELU()
    with pytest.raises(ExportError, match="logits differ from ablate's"):
        check_logits(vlm, model, processor)


def test_no_spare_vocab_slot_grows_the_vocab_without_changing_argmax():
    vlm = build("vision=tiny-siglip", "projector=linear", "llm.pad_to_multiple_of=8")
    assert vlm.llm.get_output_embeddings().weight.shape[0] == len(vlm.tokenizer) == 680  # no slot left
    model, processor = build_llava(vlm)
    assert model.config.image_token_index == 680 and model.config.text_config.vocab_size == 688
    head = model.lm_head.weight
    assert torch.equal(head[680:], head[vlm.tokenizer.pad_token_id].expand(8, -1))
    assert_same_generations(vlm, model, processor)


def test_lora_adapters_are_merged():
    from peft import LoraConfig, get_peft_model

    vlm = build("vision=tiny-clip", "projector=mlp")
    torch.manual_seed(1)
    peft_llm = get_peft_model(vlm.llm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    vlm.llm = peft_llm
    pics = images(20, seed=5)
    ours = vlm.generate_ids(pics, PROMPTS, max_new_tokens=12)  # with the adapters active
    model, processor = build_llava(vlm)
    assert not any("lora_" in k for k in model.state_dict())
    assert hf_generate(model, processor, pics, PROMPTS) == ours


@pytest.mark.parametrize("prompt_format", ["base", "vicuna-v1.5", "llama-2-chat", "mistral-instruct", "tokenizer"])
def test_chat_template_renders_ablate_text(prompt_format):
    vlm = build("vision=tiny-clip", "projector=linear", f"llm.prompt_format={prompt_format}")
    model, processor = build_llava(vlm)
    check_tokens(vlm, processor, model.config.image_token_index)  # raises on any id difference
    conv = [("user", "<image>\nWhat colour is it?"), ("assistant", "red"), ("user", "  And the shape? "),
            ("assistant", "a circle")]
    expected = "".join(text for text, _ in vlm.prompt_format.render(conv))
    messages = [{"role": r, "content": [{"type": "image"}, {"type": "text", "text": t}] if i == 0 else t}
                for i, (r, t) in enumerate(conv)]
    assert processor.apply_chat_template(messages) == "<image>" + expected
    text_only = [{"role": "user", "content": "Hi?"}]
    assert processor.apply_chat_template(text_only, add_generation_prompt=True) == vlm.prompt_format.generation_prompt("Hi?")


@pytest.mark.parametrize("vision,family", [("tiny-clip", "hf-clip"), ("tiny-siglip", "hf-siglip"),
                                           ("tiny-siglip", "timm")])
def test_other_tower_families(vision, family):
    """hf-clip / hf-siglip towers are copied, a timm SigLIP trunk converted: generations equal ablate's."""
    vlm = build(f"vision={vision}", "projector=mlp", f"vision.backbones.0.family={family}")
    model, processor = build_llava(vlm)
    assert model.config.vision_feature_select_strategy == ("default" if vision == "tiny-clip" else "full")
    assert check_logits(vlm, model, processor) < 1e-4
    assert_same_generations(vlm, model, processor)


def test_hidden_act_names():
    from open_clip.transformer import QuickGELU

    from ablate.export.towers import Unsupported, hidden_act

    assert hidden_act(QuickGELU(), "t") == "quick_gelu"
    assert hidden_act(torch.nn.GELU(), "t") == "gelu"
    assert hidden_act(torch.nn.GELU(approximate="tanh"), "t") == "gelu_pytorch_tanh"
    class OwnQuickGELU(torch.nn.Module):  # another implementation (as a config-driven activation may be)
        def forward(self, x):
            return x * torch.sigmoid(1.702 * x)

    assert hidden_act(OwnQuickGELU(), "t") == "quick_gelu"
    with pytest.raises(Unsupported, match="t: MLP activation SiLU has no exact HF hidden_act"):
        hidden_act(torch.nn.SiLU(), "t")


@pytest.mark.parametrize("prompt_format", ["vicuna-v1.5", "llama-2-chat"])
def test_sentencepiece_style_llama_tokenizer_round_trips(prompt_format, tmp_path):
    """transformers 5's LlamaTokenizer (Metaspace, prepend_scheme "first", no BOS added by this one): the saved
    folder, loaded back, still gives ablate's ids (BOS + image + the prompt with its leading ▁) and generations."""
    from llama_tokenizer import save_random_lm, write_llama_tokenizer
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from ablate.cli import main as cli_main

    tok_dir = save_random_lm(write_llama_tokenizer(tmp_path / "tok"))
    vlm = build("vision=tiny-siglip", "projector=mlp", "llm.tokenizer=null", f"llm.path={tok_dir}",
                "llm.random_init=null", f"llm.prompt_format={prompt_format}")
    assert type(vlm.tokenizer).__name__ == "LlamaTokenizer"
    assert vlm.tokenizer.backend_tokenizer.pre_tokenizer.prepend_scheme == "first"
    run = tmp_path / "runs" / "llama-tok"
    vlm.save_pretrained(run / "model")
    assert cli_main(["export", str(run), "--format", "hf-llava", "--out", str(tmp_path / "hf")]) == 0
    processor = AutoProcessor.from_pretrained(tmp_path / "hf")
    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()
    check_tokens(vlm, processor, model.config.image_token_index)  # raises on any id difference
    assert_same_generations(vlm, model, processor, n=8)


def test_mixed_batch_with_text_only_rows():
    """Rows without an image: no <image> in the chat template, and ablate's text-only rows generate the same."""
    vlm = build("vision=tiny-clip", "projector=mlp")
    model, processor = build_llava(vlm)
    pics = images(6, seed=9)
    rows = [pics[0], None, pics[1], None, pics[2], pics[3]]
    prompts = PROMPTS[:6]
    ours = vlm.generate_ids(rows, prompts, max_new_tokens=12)
    texts = [processor.apply_chat_template(
        [{"role": "user", "content": ([{"type": "image"}] if im is not None else []) + [{"type": "text", "text": p}]}],
        add_generation_prompt=True) for im, p in zip(rows, prompts, strict=True)]
    assert [t.startswith("<image>") for t in texts] == [im is not None for im in rows]
    inputs = processor(images=[im for im in rows if im is not None], text=texts, padding=True, padding_side="left",
                       return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    eos = processor.tokenizer.eos_token_id
    theirs = [r[:r.index(eos)] if eos in r else r for r in out[:, inputs["input_ids"].shape[1]:].tolist()]
    assert theirs == ours

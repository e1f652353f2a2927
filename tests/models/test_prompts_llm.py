"""Prompt formats render Prismatic's prompt builders byte for byte; loss masks cover exactly the assistant text; the synthetic
tokenizer is deterministic; the LM is built with a PAD token and embeddings padded to a multiple of 64."""

from __future__ import annotations

import pytest
from tiny_configs import tiny_cfg

from ablate.config import ConfigError
from ablate.models.llm import WeightsNotFoundError, build_llm, build_tokenizer
from ablate.models.prompts import IGNORE_INDEX, get_prompt_format, tokenize_conversation
from ablate.registry import PROMPT_FORMATS
from ablate.shapes.tokenizer import tokenizer_json

CONV = [("user", "<image>\nWhat colour is the circle?"), ("assistant", "red"),
        ("user", "How many shapes?"), ("assistant", "three")]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(tiny_cfg().llm)


# Prismatic's PromptBuilder.get_prompt() after adding CONV's four turns (prismatic/models/backbones/llm/
# prompting/*.py at TRI-ML/prismatic-vlms main), with BOS text where the builder writes it (Phi-2 only).
PRISMATIC_PROMPTS = {
    "base": "In: What colour is the circle?\nOut: red</s>In: How many shapes?\nOut: three</s>",
    "vicuna-v1.5": "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                   "helpful, detailed, and polite answers to the user's questions. USER: What colour is the circle? "
                   "ASSISTANT: red</s>USER: How many shapes? ASSISTANT: three</s>",
    "llama-2-chat": "[INST] <<SYS>\nYou are a helpful language and vision assistant. You are able to understand the "
                    "visual content that the user provides, and assist the user with a variety of tasks using natural "
                    "language.\n<</SYS>>\n\nWhat colour is the circle? [/INST] red</s>[INST] How many shapes? [/INST] "
                    "three</s>",
    "mistral-instruct": "[INST] What colour is the circle? [/INST] red</s>[INST] How many shapes? [/INST] three</s>",
    "phi-2": "<|endoftext|>Input: What colour is the circle?\nOutput: red\n<|endoftext|>Input: How many shapes?\n"
             "Output: three\n<|endoftext|>",
}
# get_potential_prompt("<image>\nIs it red?") on a fresh builder (what generation and option scoring feed)
PRISMATIC_GENERATION = {
    "base": "In: Is it red?\nOut:",
    "vicuna-v1.5": PRISMATIC_PROMPTS["vicuna-v1.5"][:PRISMATIC_PROMPTS["vicuna-v1.5"].index(" USER:")]
    + " USER: Is it red? ASSISTANT:",
    "llama-2-chat": PRISMATIC_PROMPTS["llama-2-chat"][:PRISMATIC_PROMPTS["llama-2-chat"].index("What")]
    + "Is it red? [/INST]",
    "mistral-instruct": "[INST] Is it red? [/INST]",
    "phi-2": "Input: Is it red?\nOutput:",
}


@pytest.mark.parametrize("fmt", sorted(PRISMATIC_PROMPTS))
def test_formats_render_prismatics_prompt_builders_byte_for_byte(tokenizer, fmt):
    pf = get_prompt_format(fmt, tokenizer)
    bos = "<|endoftext|>" if fmt == "phi-2" else ""  # Phi-2's builder writes BOS as text; ablate prepends its id
    assert bos + "".join(t for t, _ in pf.render(CONV)) == PRISMATIC_PROMPTS[fmt]
    assert pf.generation_prompt("<image>\nIs it red?") == PRISMATIC_GENERATION[fmt]


def test_phi2_segments_tokenize_as_prismatic_phi_turns(tokenizer):
    """CodeGen's tokenizer is not rstripped by Prismatic: the prompt keeps ``Output: `` and the reply has no
    leading space; Prismatic's Phi-2 scores options as "Yes" (no space) after ``Output:``."""
    pf = get_prompt_format("phi-2", tokenizer)
    assert pf.render(CONV)[:2] == [("Input: What colour is the circle?\nOutput: ", False),
                                   ("red\n<|endoftext|>", True)]
    assert pf.option_prefix == "" and get_prompt_format("vicuna-v1.5", tokenizer).option_prefix == " "


@pytest.mark.parametrize("fmt", PROMPT_FORMATS.names())
def test_loss_mask_covers_exactly_assistant_tokens(tokenizer, fmt):
    pf = get_prompt_format(fmt, tokenizer)
    ids, labels = tokenize_conversation(tokenizer, pf, CONV)
    assert ids[0] == tokenizer.bos_token_id and len(ids) == len(labels)
    masked = [t for t in labels if t != IGNORE_INDEX]
    expected = "red\n<|endoftext|>three\n<|endoftext|>" if fmt == "phi-2" else " red</s> three</s>"
    assert tokenizer.decode(masked) == expected
    unmasked = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX])
    assert "red" not in unmasked and "three" not in unmasked and "colour" in unmasked


def test_unknown_prompt_format_lists_known():
    with pytest.raises(ConfigError, match=r"^llm.prompt_format: invalid value 'chatml'; allowed: base, vicuna-v1.5, "
                       "llama-2-chat, mistral-instruct, phi-2, tokenizer$"):
        get_prompt_format("chatml")


def test_synthetic_tokenizer_is_deterministic_and_covers_the_shapes_world(tokenizer):
    assert tokenizer_json.__wrapped__() == tokenizer_json()
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    for word in (" red", " circle", " triangle", " left"):
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    box = "[0.12, 0.40, 0.31, 0.66]"
    assert tokenizer.decode(tokenizer(box, add_special_tokens=False)["input_ids"]) == box


def test_llm_embeddings_padded_to_multiple(tokenizer):
    cfg = tiny_cfg()
    llm = build_llm(cfg.llm, tokenizer)
    rows = llm.get_input_embeddings().weight.shape[0]
    assert rows % 64 == 0 and len(tokenizer) <= rows < len(tokenizer) + 64
    assert llm.config.pad_token_id == tokenizer.pad_token_id


def test_missing_llm_weights_name_what_and_where(tmp_path):
    cfg = tiny_cfg("llm=vicuna-v15-7b")
    with pytest.raises(WeightsNotFoundError, match=r"lmsys/vicuna-7b-v1\.5.*not found locally.*HF cache"):
        build_tokenizer(cfg.llm)
    cfg.llm.path = str(tmp_path / "absent")
    with pytest.raises(WeightsNotFoundError, match="llm.path: .*absent.* does not exist"):
        build_tokenizer(cfg.llm)

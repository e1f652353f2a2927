"""Checkpoints in the dtypes the Hub ships train as Prismatic trains them: a tiny Llama saved in float16 goes
through ``ablate train`` at lr 2e-5 with float32 master weights (updates of 2e-5 survive; in float16 they
round away or overflow) and bf16 compute, the dtypes measured on the first step; a checkpoint whose config
disagrees with the LM's spec fails before training with one line naming the ID, the field and both values;
an all-text step leaves the projector where it was."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ablate.cli import main
from ablate.design import compose, run_key

BASE = ["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes", "data.synthetic.size=64",
        "train.finetune.global_batch=8", "train.finetune.per_device_batch=4", "runtime.progress=false"]


@pytest.fixture(scope="module")
def fp16_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama (synthetic tokenizer) saved as a Hub checkpoint in float16."""
    from ablate.models.llm import build_llm, build_tokenizer

    cfg = compose(BASE)
    tokenizer = build_tokenizer(cfg.llm)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("fp16-llama")
    build_llm(cfg.llm, tokenizer).to(torch.float16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _overrides(tmp_path: Path, ckpt: Path, *extra: str) -> list[str]:
    """The point's overrides; its shapes world written under ``tmp_path/data`` (``ablate data synth``'s job)."""
    from ablate.shapes.world import ensure_world

    ensure_world(compose([*BASE, f"data.root={tmp_path / 'data'}"]).data)
    return [*BASE, f"data.root={tmp_path / 'data'}", f"llm.path={ckpt}", "llm.random_init=null", "llm.tokenizer=null",
            f"runtime.runs_dir={tmp_path / 'runs'}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            f"tracking.artifact_root={tmp_path / 'art'}", *extra]


def test_float16_checkpoint_trains_with_fp32_master_weights_and_bf16_compute(fp16_llama: Path,
                                                                            tmp_path: Path) -> None:
    assert load_file(str(fp16_llama / "model.safetensors"))["lm_head.weight"].dtype == torch.float16
    overrides = _overrides(tmp_path, fp16_llama, "train.finetune.lr=2e-5", "train.precision=bf16",
                           "train.frozen_vision_dtype=bf16", "train.max_steps=4", "runtime.checkpoint_every=100")
    assert main(["train", *overrides]) == 0
    run_dir = tmp_path / "runs" / run_key(compose(overrides))
    losses = [json.loads(line)["loss"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert json.loads((run_dir / "precision.json").read_text())["finetune"] == {
        "vision": {"master": "bfloat16", "compute": "bfloat16"},  # frozen tower cast to bf16 (Prismatic)
        "projector": {"master": "float32", "compute": "bfloat16"},
        "llm": {"master": "float32", "compute": "bfloat16"}}
    shipped = load_file(str(fp16_llama / "model.safetensors"))
    trained = load_file(str(run_dir / "checkpoints" / "step-4" / "model.safetensors"))
    weight = "model.layers.0.mlp.down_proj.weight"
    assert trained["llm." + weight].dtype == torch.float32
    # updates of ~2e-5 on weights of ~0.2 are below float16's resolution (~1e-4): only fp32 masters keep them
    changed = (trained["llm." + weight] != shipped[weight].float()).float().mean()
    assert changed > 0.9, changed
    still_fp16 = (trained["llm." + weight].half().float() == shipped[weight].float()).float().mean()
    assert still_fp16 > 0.5, "the update is finer than float16 resolution for most weights"


def _with_spec(cfg: Any, layers: int) -> Any:
    from ablate.config import LLMSpec

    cfg.llm.spec = LLMSpec(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                           num_attention_heads=4, num_key_value_heads=2, vocab_size=704, max_position_embeddings=512,
                           weights_dtype="float16")
    return cfg


def test_checkpoint_disagreeing_with_its_spec_fails_before_training_naming_id_field_values(
        fp16_llama: Path, tmp_path: Path) -> None:
    from ablate.models.llm import SpecMismatchError
    from ablate.models.vlm import build_vlm
    from ablate.train.loop import train

    cfg = compose(_overrides(tmp_path, fp16_llama, "train.max_steps=1"))
    build_vlm(_with_spec(cfg, 2))  # the spec that matches the checkpoint loads
    with pytest.raises(SpecMismatchError) as err:
        train(_with_spec(cfg, 3), tmp_path / "run")
    assert str(err.value) == (f"llm=tiny-llama: the weights at {str(fp16_llama)!r} have num_hidden_layers=2; the "
                              "spec (ablate/shapes/conf/llm/tiny-llama.yaml) says num_hidden_layers=3")
    assert not (tmp_path / "run" / "train_log.jsonl").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_projector_does_not_move_on_an_all_text_step(tmp_path: Path) -> None:
    """Prismatic's text-only forward never touches the projector (its grad stays None, AdamW skips it): no
    momentum step and no weight decay; the LM trains."""
    from PIL import Image

    from ablate.data.llava import Example, collate
    from ablate.models.prompts import tokenize_conversation
    from ablate.models.vlm import build_vlm
    from ablate.train.loop import build_optimizer, train_step
    from ablate.train.stages import apply, plan
    from ablate.train.strategy import DistInfo

    cfg = compose([*BASE, "train.finetune.weight_decay=0.1"])
    model = build_vlm(cfg)
    stage = plan(cfg)[0]
    apply(model, stage)
    optimizer = build_optimizer(model, stage)
    pixels = model.image_transform(Image.new("RGB", (32, 32), "red"))

    def batch(has_image: bool) -> dict[str, Any]:
        ids, labels = tokenize_conversation(model.tokenizer, model.prompt_format, [("user", "Is it red?"),
                                                                                   ("assistant", "yes")])
        example = Example("x", torch.tensor(ids), torch.tensor(labels), pixels if has_image else pixels * 0,
                          has_image)
        return collate([example, example], model.tokenizer.pad_token_id)

    info = DistInfo(0, 1, 0, torch.device("cpu"))
    train_step(model, optimizer, [batch(True)], stage, 1, cfg, info, False)  # momentum for every part
    projector = {k: v.clone() for k, v in model.projector.state_dict().items()}
    llm = model.llm.lm_head.weight.clone()
    train_step(model, optimizer, [batch(False)], stage, 2, cfg, info, False)
    assert all(torch.equal(projector[k], v) for k, v in model.projector.state_dict().items())
    assert not torch.equal(llm, model.llm.lm_head.weight)


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_evaluation_computes_in_eval_precision_with_fp32_weights(precision: str, dtype: torch.dtype,
                                                                 tmp_path: Path) -> None:
    """Prismatic evaluates under bf16 autocast (eval.precision's default); weights stay float32 either way."""
    from PIL import Image

    from ablate.models.vlm import VLM, build_vlm

    build_vlm(compose(BASE)).save_pretrained(tmp_path / "m")
    model = VLM.from_pretrained(tmp_path / "m")
    model.inference_precision = precision
    seen: list[torch.dtype] = []
    model.llm.lm_head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    probs = model.score_options([Image.new("RGB", (32, 32), "red")], ["Is it red?"], ["yes", "no"])
    model.generate_ids(None, ["Is it red?"], max_new_tokens=2)
    assert seen and set(seen) == {dtype} and torch.isclose(probs.sum(), torch.tensor(1.0))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert compose([]).eval.precision == "bf16" and compose(BASE).eval.precision == "fp32"

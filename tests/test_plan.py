"""``ablate plan``: parameter counts equal the published architectures, memory/FLOPs/GPU-hours follow the
formulas, points that do not fit are flagged (exit 1), studies are totalled."""

from __future__ import annotations

import pytest

from ablate.design import compose
from ablate.plan import _lm_params, _lm_shape, cli_plan, stage_costs


def test_vicuna_7b_and_13b_have_their_published_parameter_counts() -> None:
    # Llama-2-7b / -13b (Vicuna v1.5's base): 6,738,415,616 and 13,015,864,320 parameters (HF safetensors index)
    assert _lm_params(_lm_shape(compose(["llm=vicuna-v15-7b"])))[0] == 6_738_415_616
    assert _lm_params(_lm_shape(compose(["llm=vicuna-v15-13b"])))[0] == 13_015_864_320


def test_two_stage_7b_on_8_a100s() -> None:
    align, finetune = stage_costs(compose(["recipe=two-stage"]), "p", gpus=8, gpu="a100-80gb", mfu=0.4)
    assert align.steps == 2181 and finetune.steps == 5198  # ceil(558,128 / 256), ceil(665,298 / 128)
    assert align.trainable == align.params["projector"] < 30e6 < finetune.trainable
    assert finetune.memory_gb["weights+grads+optimizer"] == pytest.approx(
        (16 * finetune.trainable + 2 * finetune.params["vision"]) / 8 / 2**30)
    assert finetune.memory_gb["activations (AC)"] < finetune.memory_gb["activations"] / 5
    assert align.fits and finetune.fits
    assert finetune.gpu_hours == pytest.approx(finetune.flops_run / (312e12 * 0.4) / 3600)


def test_lora_trains_adapters_only_and_13b_without_checkpointing_does_not_fit(capsys) -> None:
    (lora,) = stage_costs(compose(["recipe=single-stage-lora"]), "p", gpus=8, gpu="a100-80gb", mfu=0.4)
    assert lora.trainable == lora.params["projector"] + lora.params["lora"] and lora.params["lora"] == 39_976_960
    args = type("A", (), {"target": ["llm=vicuna-v15-13b", "train.activation_checkpointing=false"], "gpus": 8,
                          "gpu": "a100-80gb", "mfu": 0.4, "examples": None})()
    assert cli_plan(args) == 1
    assert "NO: does not fit" in capsys.readouterr().out


def test_plan_counts_the_gated_xattn_bridge_as_the_meta_model_has_it() -> None:
    from ablate.models.vlm import build_meta_vlm

    cfg = compose(["projector=gated-xattn"])
    cost = stage_costs(cfg, "x", gpus=8, gpu="a100-80gb", mfu=0.4)[0]
    assert cost.params["projector"] == sum(p.numel() for p in build_meta_vlm(cfg).projector.parameters())

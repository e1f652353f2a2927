"""The training loop on a small VLM-shaped module: optimizer groups, schedule, budgets, NaN stop, exact
resume after a crash across a stage boundary (SIGKILL and FSDP2 on the real VLM: test_train_vlm.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from train_toys import ToyVLM, toy_cfg, toy_collate, toy_data, toy_examples, toy_model

from ablate.train import checkpoint
from ablate.train.loop import (
    NonFiniteLossError,
    batch_plan,
    budget,
    build_optimizer,
    param_groups,
    read_train_log,
    train,
    warmup_cosine,
)
from ablate.train.stages import plan

HERE = Path(__file__).resolve().parent


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_no_weight_decay_on_biases_and_1d_params() -> None:
    model = ToyVLM()
    model.vision.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert not any(names[id(p)].startswith("vision.") for p in decay["params"] + no_decay["params"])
    opt = build_optimizer(model, plan(toy_cfg())[1])
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(p.requires_grad for p in model.parameters())


def test_warmup_then_cosine_to_zero() -> None:
    f = warmup_cosine(100, 0.03)
    assert [round(f(s), 4) for s in range(3)] == [0.3333, 0.6667, 1.0]
    assert f(3) == 1.0 and math.isclose(f(52), 0.5, abs_tol=0.02) and f(99) < 0.001
    assert all(f(s) >= f(s + 1) for s in range(3, 99))


def test_budget_fractional_epochs_and_max_steps() -> None:
    align, finetune = plan(toy_cfg(epochs=1.5, max_steps=None))
    assert budget(finetune, 8, 1).total_steps == 12 and budget(align, 8, 1).total_steps == 8
    assert budget(finetune, 8, 2).micro_per_step == 2
    capped = plan(toy_cfg(max_steps=5))[1]
    assert budget(capped, 8, 1).total_steps == 5
    with pytest.raises(ValueError, match=r"train.finetune.global_batch: invalid value 8; expected a multiple"):
        budget(finetune, 8, 3)


def test_batches_split_into_the_same_micro_batches_for_any_rank_count() -> None:
    stage = plan(toy_cfg())[1]
    sampler = batch_plan(toy_examples(), stage, toy_cfg())
    batches = sampler.global_batches(0)
    assert sampler.batches_per_epoch == 8 and all(len(b) == 2 and len(b[0]) == 4 for b in batches)
    assert sorted(i for b in batches for m in b for i in m) == list(range(64))
    assert batches != sampler.global_batches(1)  # reshuffled per epoch


def test_two_stage_reduces_loss_and_keeps_frozen_parts(tmp_path: Path) -> None:
    cfg = toy_cfg(epochs=3.0, max_steps=None)
    cfg.train.align.epochs = 3.0
    torch.manual_seed(int(cfg.train.seed))
    initial = ToyVLM().state_dict()
    model = train(cfg, tmp_path, build_model=toy_model, build_data=toy_data)
    log = read_train_log(tmp_path)
    for stage in ("align", "finetune"):
        losses = [r["loss"] for r in log if r["stage"] == stage]
        assert len(losses) == 24
        assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6 - 0.05, stage
    final = model.state_dict()
    for k, v in initial.items():  # vision is frozen in both stages
        same = torch.equal(v, final[k])
        assert same == k.startswith("vision."), k
    _assert_identical(final, _state(tmp_path))
    assert (tmp_path / "progress.json").exists()


def test_nan_loss_stops_with_step_and_example_ids(tmp_path: Path) -> None:
    def poisoned(cfg: Any, stage: Any, model: Any) -> Any:
        examples = toy_examples()
        for e in examples:
            e["x"] = e["x"].clone()
        examples[5]["x"][0] = float("nan")
        return examples, toy_collate

    with pytest.raises(NonFiniteLossError, match=r"stage align step \d+: loss is nan; batch examples \[.*'ex5'"):
        train(toy_cfg(), tmp_path, build_model=toy_model, build_data=poisoned)


def test_resume_after_crash_is_bit_identical(tmp_path: Path) -> None:
    cfg = toy_cfg()
    train(cfg, tmp_path / "full", build_model=toy_model, build_data=toy_data)
    calls = {"n": 0}

    def crashing(cfg: Any, stage: Any, model: Any) -> Any:
        def collate(examples: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 2 * 13:  # inside finetune step 5, after the step-11 checkpoint
                raise RuntimeError("simulated crash")
            return toy_collate(examples)

        return toy_examples(seed=stage.index), collate

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path / "resumed", build_model=toy_model, build_data=crashing)
    assert checkpoint.read_meta(checkpoint.latest(tmp_path / "resumed" / "checkpoints"))["stage_name"] == "finetune"
    train(cfg, tmp_path / "resumed", build_model=toy_model, build_data=toy_data)
    _assert_identical(_state(tmp_path / "full"), _state(tmp_path / "resumed"))
    full_log, resumed_log = read_train_log(tmp_path / "full"), read_train_log(tmp_path / "resumed")
    assert [r["loss"] for r in full_log] == [r["loss"] for r in resumed_log]

"""The training loop on a small VLM-shaped module: optimizer groups, schedule, budgets, NaN stop, exact
resume after a crash across a stage boundary (SIGKILL and FSDP2 on the real VLM: test_train_vlm.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from train_toys import ToyVLM, crashing_data, toy_cfg, toy_collate, toy_data, toy_examples, toy_model

from ablate.train import checkpoint
from ablate.train.loop import (
    NonFiniteLossError,
    batch_plan,
    budget,
    build_optimizer,
    param_groups,
    read_train_log,
    train,
)
from ablate.train.schedule import warmup_cosine, warmup_steps
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


def test_warmup_then_cosine_is_transformers_schedule_prismatic_uses() -> None:
    """Prismatic: num_warmup_steps = int(T * ratio) (floor), get_cosine_schedule_with_warmup: lr 0 at the
    first step, k / W during warmup, cosine to 0 at T."""
    from transformers import get_cosine_schedule_with_warmup

    f = warmup_cosine(100, warmup_steps(100, 0.03))
    assert [round(f(s), 4) for s in range(4)] == [0.0, 0.3333, 0.6667, 1.0]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    hf = get_cosine_schedule_with_warmup(opt, 155, 5198)
    ours = warmup_cosine(5198, warmup_steps(5198, 0.03))
    for step in range(5200):
        assert math.isclose(opt.param_groups[0]["lr"], ours(step), rel_tol=1e-12, abs_tol=1e-15), step
        opt.step()
        hf.step()


def test_the_same_schedule_function_gives_tiny_pretraining_its_overlapping_ramp() -> None:
    """pretrain_tiny's schedule (ramp (k + 1) / W over W = T // 20 steps, under a cosine over all T steps,
    0 after T) through the one function; values as the former pretrain_tiny lambda gave them."""
    f = warmup_cosine(100, 5, shift=1, cosine_from_start=True)
    assert [round(f(s), 6) for s in (0, 1, 4, 5, 50, 99, 100, 120)] == \
        [0.2, 0.399901, 0.996057, 0.993844, 0.5, 0.000247, 0.0, 0.0]
    g = warmup_cosine(100, 5)  # the trainer's: cosine after the warm-up, 0 at the first step
    assert [round(g(s), 6) for s in (0, 1, 4, 5, 50, 100)] == [0.0, 0.2, 0.8, 1.0, 0.54129, 0.0]


def _stage(epochs: float, max_steps: int | None = None, cap: int | None = None) -> Any:
    stage = plan(toy_cfg(epochs=epochs, max_steps=cap))[1]
    return stage.__class__(**{**stage.__dict__, "global_batch": 128, "per_device_batch": 16,
                              "warmup_ratio": 0.03, "budget_steps": max_steps})


def test_budgets_are_prismatics_665k_numbers() -> None:
    """665,298 LLaVA-1.5 records at global batch 128 (ceil = 5,198 per epoch; 5,199 modality-split batches)."""
    n, per_epoch = 665_298, 5_199
    one = budget(_stage(1.0), per_epoch, 1, n)
    assert (one.total_steps, one.schedule, int(one.schedule * 0.03)) == (5_199, 5_198, 155)
    two = budget(_stage(2.0), per_epoch, 1, n)
    assert (two.total_steps, two.schedule) == (10_398, 10_396)
    # train-1.25-epochs+7b / train-1.5-epochs+7b: Prismatic's finetune_max_steps, not 1.25 x 5,198 = 6,497
    for epochs, steps, warmup in ((1.25, 6_500, 195), (1.5, 7_800, 234)):
        b = budget(_stage(epochs, max_steps=steps), per_epoch, 1, n)
        assert (b.total_steps, b.schedule, int(b.schedule * 0.03)) == (steps, steps, warmup)
    frac = budget(_stage(1.25), per_epoch, 1, n)  # no max_steps: floor of both (an ablate extension)
    assert (frac.total_steps, frac.schedule) == (6_498, 6_497)
    capped = budget(_stage(1.0, cap=12), per_epoch, 1, n)
    assert (capped.total_steps, capped.schedule) == (12, 12)


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
    crashing = crashing_data()  # inside finetune step 5, after the step-11 checkpoint

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path / "resumed", build_model=toy_model, build_data=crashing)
    assert checkpoint.read_meta(checkpoint.latest(tmp_path / "resumed" / "checkpoints"))["stage_name"] == "finetune"
    train(cfg, tmp_path / "resumed", build_model=toy_model, build_data=toy_data)
    _assert_identical(_state(tmp_path / "full"), _state(tmp_path / "resumed"))
    full_log, resumed_log = read_train_log(tmp_path / "full"), read_train_log(tmp_path / "resumed")
    assert [r["loss"] for r in full_log] == [r["loss"] for r in resumed_log]

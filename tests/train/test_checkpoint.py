"""Checkpoints: safetensors/JSON only, atomic folders, keep-last pruning, exact round trip of all state."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ablate.train import checkpoint


def _trained() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].requires_grad_(False)  # frozen part: in the weights, not in the optimizer
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def test_round_trip_restores_weights_optimizer_scheduler_and_rng(tmp_path: Path) -> None:
    model, opt, sched = _trained()
    random.seed(3)
    np.random.seed(3)
    path = checkpoint.save(tmp_path, 3, model=model, optimizer=opt, scheduler=sched, meta={"stage_step": 3})
    expected_next = (random.random(), float(np.random.rand()), torch.rand(1).item())
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.safetensors", "optimizer.json",
                                                      "optimizer.safetensors", "rng.safetensors", "state.json"]

    fresh, fresh_opt, fresh_sched = _trained()
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)
    fresh_opt.state.clear()
    fresh_sched.last_epoch = 0
    random.seed(99)
    meta = checkpoint.load(path, model=fresh, optimizer=fresh_opt, scheduler=fresh_sched)
    assert meta == {"stage_step": 3}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for pa, pb in zip(opt.param_groups[0]["params"], fresh_opt.param_groups[0]["params"], strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[pa][key], fresh_opt.state[pb][key])
    assert list(fresh_opt.param_groups[0]["betas"]) == list(opt.param_groups[0]["betas"])
    assert fresh_sched.last_epoch == 3 and fresh_sched.get_last_lr() == sched.get_last_lr()
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == expected_next


def test_keep_last_and_latest_ignore_partial_writes(tmp_path: Path) -> None:
    model, opt, sched = _trained()
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, model=model, optimizer=opt, scheduler=sched, meta={}, keep_last=2)
    (tmp_path / ".step-9.tmp-123").mkdir()  # a write killed before its rename
    assert [p.name for p in checkpoint.step_dirs(tmp_path)] == ["step-2", "step-3"]
    assert checkpoint.latest(tmp_path) == tmp_path / "step-3"
    # re-saving an existing step replaces it whole
    checkpoint.save(tmp_path, 3, model=model, optimizer=None, scheduler=None, meta={"again": 1}, keep_last=2)
    assert checkpoint.read_meta(tmp_path / "step-3") == {"again": 1}
    assert not (tmp_path / "step-3" / "optimizer.safetensors").exists()


def test_no_pickles_state_is_json(tmp_path: Path) -> None:
    model, opt, sched = _trained()
    path = checkpoint.save(tmp_path, 1, model=model, optimizer=opt, scheduler=sched, meta={"a": 1})
    state = json.loads((path / "state.json").read_text())
    assert set(state) == {"meta", "rng", "scheduler"}
    assert not list(path.glob("*.pt")) and not list(path.glob("*.pkl"))


def test_missing_file_and_mismatched_model_raise_clear_errors(tmp_path: Path) -> None:
    model, opt, sched = _trained()
    path = checkpoint.save(tmp_path, 1, model=model, optimizer=opt, scheduler=sched, meta={})
    with pytest.raises(checkpoint.CheckpointError, match="does not fit the model"):
        checkpoint.load(path, model=nn.Linear(4, 2))
    (path / "rng.safetensors").unlink()
    with pytest.raises(checkpoint.CheckpointError, match=r"step-1/rng.safetensors: missing; the manifest lists it"):
        checkpoint.load(path, model=model)


def test_tied_weights_are_saved(tmp_path: Path) -> None:
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    path = checkpoint.save(tmp_path, 1, model=model, optimizer=None, scheduler=None, meta={})
    other = nn.ModuleDict({"emb": nn.Embedding(5, 3), "head": nn.Linear(3, 5, bias=False)})
    other["head"].weight = other["emb"].weight
    checkpoint.load(path, model=other)
    assert torch.equal(other["emb"].weight, emb.weight)

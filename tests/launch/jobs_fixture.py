"""A small, importable stand-in for the train and eval steps of the job body (tests of the launch machinery).

Why it exists: the launch tests need a job that really trains (deterministic data, AdamW, checkpoints every
``runtime.checkpoint_every`` steps, resume from the latest one, FSDP2 over gloo when the job has several
tasks) and logs to the real MLflow ``Tracker``, but runs in seconds on CPU.  ``ablate.job.execute`` runs it
exactly as it runs the real ``train``/``evaluate``; only those two steps are swapped.  Jobs import this
module by name (functions defined in test files don't unpickle in jobs), so tests put tests/launch on
PYTHONPATH.

Knobs (environment, inherited by sbatch jobs): ``ABLATE_TEST_STEP_SLEEP`` seconds per step (time to
interrupt a run mid-training), ``ABLATE_TEST_FAIL_SEEDS`` comma-separated seeds whose training raises.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ablate.job import execute, write_atomic
from ablate.track import Tracker

DIM, HIDDEN, GLOBAL_BATCH = 8, 16, 16


def build_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(DIM, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1))


def batch(seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of a step: a pure function of (seed, step), so a resumed run sees the same data."""
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    x = torch.randn(GLOBAL_BATCH, DIM, generator=g)
    return x, 0.3 * x.sum(dim=1, keepdim=True)


def _latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def _full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
            for k, v in model.state_dict().items()}


def train(cfg: Any, run_dir: Path, *, tracker: Tracker | None = None) -> torch.nn.Module:
    seed, steps = int(cfg.train.seed), int(cfg.train.max_steps or 20)
    if str(seed) in os.environ.get("ABLATE_TEST_FAIL_SEEDS", "").split(","):
        raise RuntimeError(f"stand-in training failed on purpose for seed {seed}")
    every, sleep = int(cfg.runtime.checkpoint_every), float(os.environ.get("ABLATE_TEST_STEP_SLEEP", "0"))
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    model = build_model(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg.train.finetune.lr) * 10)
    start = 0
    ckpt = _latest_checkpoint(run_dir) if world == 1 else None  # the stand-in resumes single-task runs only
    if ckpt is not None:
        state = torch.load(ckpt / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    if world > 1:
        from torch.distributed.fsdp import fully_shard

        fully_shard(model)
        opt = torch.optim.AdamW(model.parameters(), lr=float(cfg.train.finetune.lr) * 10)
    with (run_dir / "progress.jsonl").open("a") as progress:
        progress.write(json.dumps({"resumed_from": start, "world": world, "rank": rank}) + "\n")
    for step in range(start, steps):
        x, y = batch(seed, step)
        shard = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        loss = torch.nn.functional.mse_loss(model(x[shard]), y[shard])
        opt.zero_grad()
        loss.backward()
        opt.step()
        logged = loss.detach().clone()
        if world > 1:
            dist.all_reduce(logged)
            logged /= world
        if tracker is not None:
            tracker.log_metrics({"train/finetune/loss": float(logged)}, step=step + 1)
        if world == 1 and (step + 1) % every == 0 and step + 1 < steps:
            out = run_dir / "checkpoints" / f"step-{step + 1}"
            out.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1},
                       out / "state.tmp")
            os.replace(out / "state.tmp", out / "state.pt")
        time.sleep(sleep)
    params = _full_state(model)
    if rank == 0:
        (run_dir / "model").mkdir(parents=True, exist_ok=True)
        torch.save(params, run_dir / "model" / "params.pt")
    return model


def evaluate(model: torch.nn.Module, cfg: Any, run_dir: Path, *, tracker: Tracker | None = None) -> dict:
    x, y = batch(int(cfg.train.seed), 10**6)
    with torch.no_grad():
        err = (model(x) - y).abs().squeeze(1)
    correct = [bool(e < 0.5) for e in err]
    lines = [json.dumps({"example_id": f"q{i}", "score": float(c), "correct": c}) for i, c in enumerate(correct)]
    if not dist.is_initialized() or dist.get_rank() == 0:
        write_atomic(run_dir / "examples" / "shapes.jsonl", "\n".join(lines) + "\n")
    scores = {"shapes": {"accuracy": sum(correct) / len(correct)}}
    if tracker is not None:
        tracker.log_metrics({"eval/shapes/accuracy": scores["shapes"]["accuracy"]})
    return scores


def run_point(point: dict) -> str:
    return execute(point, train=train, evaluate=evaluate, tracker=Tracker)

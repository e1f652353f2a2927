"""A small, importable stand-in for the train and eval steps of the job body (fast tests of the machinery).

Why it exists: tests of submission, skip-finished, failure reporting, the local executor and the Hydra path
need a job that runs in a second or two, not a VLM.  ``ablate.job.execute`` runs these steps exactly as it
runs the real ``train``/``evaluate`` (run dir, attempts, the real MLflow ``Tracker``, results.json, DONE);
the tests that must show training behaviour (demo study, requeue-and-resume, FSDP) use the real body.
Jobs import this module by name (functions defined in test files don't unpickle in jobs), so the tests put
tests/launch on PYTHONPATH.

Knob (environment, inherited by sbatch jobs): ``ABLATE_TEST_FAIL_SEEDS`` comma-separated seeds whose
training raises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ablate.job import execute
from ablate.rundir import write_atomic
from ablate.track import Tracker

DIM, BATCH = 8, 16


def batch(seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of a step: a pure function of (seed, step)."""
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    x = torch.randn(BATCH, DIM, generator=g)
    return x, 0.3 * x.sum(dim=1, keepdim=True)


def train(cfg: Any, run_dir: Path, *, tracker: Tracker | None = None) -> torch.nn.Module:
    seed, steps = int(cfg.train.seed), int(cfg.train.max_steps or 20)
    if str(seed) in os.environ.get("ABLATE_TEST_FAIL_SEEDS", "").split(","):
        raise RuntimeError(f"stand-in training failed on purpose for seed {seed}")
    torch.manual_seed(seed)
    model = torch.nn.Linear(DIM, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        x, y = batch(seed, step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if tracker is not None:
            tracker.log_metrics({"train/finetune/loss": float(loss)}, step=step + 1)
    (run_dir / "model").mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), run_dir / "model" / "params.pt")
    return model


def evaluate(model: torch.nn.Module, cfg: Any, run_dir: Path, *, tracker: Tracker | None = None) -> dict:
    x, y = batch(int(cfg.train.seed), 10**6)
    with torch.no_grad():
        correct = [bool(e < 0.5) for e in (model(x) - y).abs().squeeze(1)]
    lines = [json.dumps({"example_id": f"q{i}", "score": float(c), "correct": c}) for i, c in enumerate(correct)]
    write_atomic(run_dir / "examples" / "shapes.jsonl", "\n".join(lines) + "\n")
    return {"shapes": {"accuracy": sum(correct) / len(correct)}}


def run_point(point: dict) -> str:
    return execute(point, train=train, evaluate=evaluate, tracker=Tracker)

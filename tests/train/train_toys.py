"""A small VLM-shaped module (vision/projector/llm with repeated blocks) and data, for loop-level tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from ablate.train.stages import Stage


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.fc(self.norm(x)))


class Tower(nn.Module):
    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ToyVLM(nn.Module):
    """features -> vision tower -> projector -> llm tower -> class logits; loss = cross-entropy."""

    def __init__(self, width: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.vision = Tower(width, 2)
        self.projector = nn.Linear(width, width)
        self.llm = Tower(width, 2)
        self.llm.add_module("lm_head", nn.Linear(width, classes))

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        h = self.llm(self.projector(self.vision(batch["x"])))
        return nn.functional.cross_entropy(self.llm.lm_head(h), batch["y"])


def toy_model(cfg: Any) -> nn.Module:
    return ToyVLM()


def toy_examples(n: int = 64, width: int = 16, seed: int = 0) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=gen)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    return [{"id": f"ex{i}", "x": x[i], "y": y[i]} for i in range(n)]


def toy_collate(examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"x": torch.stack([e["x"] for e in examples]), "y": torch.stack([e["y"] for e in examples]),
            "attention_mask": torch.ones(len(examples), 3, dtype=torch.long),
            "example_ids": [e["id"] for e in examples]}


def toy_data(cfg: Any, stage: Stage, model: nn.Module) -> tuple[list[dict[str, Any]], Any]:
    return toy_examples(seed=stage.index), toy_collate


def toy_cfg(**train: Any) -> Any:
    """The config sections the loop reads, for a two-stage recipe on the toy model."""
    hp = {"lr": 0.01, "weight_decay": 0.1, "global_batch": 8, "per_device_batch": 4, "epochs": None,
          "warmup_ratio": 0.1, "max_grad_norm": 1.0}
    base = {"epochs": 1.0, "max_steps": None, "seed": 7, "align": {**hp, "epochs": 1.0}, "finetune": dict(hp),
            "precision": "fp32", "frozen_vision_dtype": "fp32", "activation_checkpointing": False, "sharding": "none"}
    base.update(train)
    return OmegaConf.create({
        "recipe": {"id": "two-stage", "stages": [{"name": "align", "trainable": ["projector"], "data": "align"},
                                                 {"name": "finetune", "trainable": ["projector", "llm"],
                                                  "data": "finetune"}]},
        "train": base,
        "runtime": {"log_every": 2, "checkpoint_every": 3, "keep_last": 2, "device": "cpu", "progress": False},
    })



def crashing_data(at_call: int = 2 * 13) -> Any:
    """A ``build_data`` whose collate raises "simulated crash" at its ``at_call``-th call (the default lands
    inside finetune step 5 of ``toy_cfg()``, after the step-11 checkpoint)."""
    calls = {"n": 0}

    def build(cfg: Any, stage: Stage, model: nn.Module) -> tuple[list[dict[str, Any]], Any]:
        def collate(examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
            calls["n"] += 1
            if calls["n"] == at_call:
                raise RuntimeError("simulated crash")
            return toy_collate(examples)

        return toy_examples(seed=stage.index), collate

    return build

"""Stage plans from the recipe configs, per-stage hyperparameters, and freezing."""

from __future__ import annotations

import pytest
from train_toys import ToyVLM

from ablate.design import compose
from ablate.train.stages import apply, count_parameters, plan

TINY = ["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes"]


@pytest.mark.parametrize(("recipe", "expected"), [
    ("single-stage", [("finetune", ("projector", "llm"), "finetune")]),
    ("two-stage", [("align", ("projector",), "align"), ("finetune", ("projector", "llm"), "finetune")]),
    ("single-stage-full-ft", [("full-finetune", ("projector", "llm", "vision"), "finetune")]),
    ("two-stage-full-ft", [("align", ("projector",), "align"),
                           ("full-finetune", ("projector", "llm", "vision"), "finetune")]),
])
def test_recipes_plan_their_stages(recipe: str, expected: list) -> None:
    stages = plan(compose([*TINY, f"recipe={recipe}"]))
    assert [(s.name, s.trainable, s.data) for s in stages] == expected
    assert [s.index for s in stages] == list(range(len(expected)))


def test_hyperparameters_come_from_the_stage_section() -> None:
    cfg = compose(["recipe=two-stage", "train.epochs=1.5", "train.max_steps=30"])  # Prismatic defaults
    align, finetune = plan(cfg)
    assert (align.lr, align.weight_decay, align.global_batch, align.per_device_batch, align.epochs) == \
        (1e-3, 0.0, 256, 16, 1.0)
    assert (finetune.lr, finetune.weight_decay, finetune.global_batch, finetune.epochs) == (2e-5, 0.1, 128, 1.5)
    assert align.max_steps == finetune.max_steps == 30
    assert finetune.frozen == ("vision",) and align.frozen == ("llm", "vision")


def test_apply_freezes_and_counts() -> None:
    model = ToyVLM()
    align, finetune = plan(compose([*TINY, "recipe=two-stage"]))
    counts = apply(model, align)
    projector = sum(p.numel() for p in model.projector.parameters())
    assert counts == {"trainable": projector, "frozen": count_parameters(model)["frozen"]}
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in model.parameters())
    assert not model.vision.training and not model.llm.training and model.projector.training
    counts = apply(model, finetune)
    assert counts["trainable"] == projector + sum(p.numel() for p in model.llm.parameters())
    assert all(p.requires_grad for p in model.llm.parameters())
    assert not any(p.requires_grad for p in model.vision.parameters())

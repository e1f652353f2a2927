"""LoRA finetuning of the LLM through ``peft``: a recipe level (``recipe=two-stage-lora``, ...).

Why it exists: full finetuning of a 7B/13B LM needs weights + gradients + Adam state of every LM parameter
(Prismatic's users hit OOM at batch size 1 on an 80 GB A100, prismatic-vlms #16/#50); LoRA trains low-rank
adapters instead.  ``recipe.lora`` (``rank``, ``alpha``, ``dropout``, ``target_modules``) applies to the
stages that train the ``llm`` (only the recipe's last stage may: adapters are merged once, for the final
model).  ``wrap`` injects adapters with ``peft.get_peft_model`` (the LM's base weights are frozen, the
adapters train), ``init_adapters`` initializes them from the seed identically on one process and on FSDP
ranks (A: peft's Kaiming-uniform, B: zeros, so the wrapped model starts equal to the base one),
``base_key`` maps a wrapped FQN to the unwrapped one (to load the previous stage's weights), ``merge``
folds the adapters into the base weights (``merge_and_unload``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ADAPTER = "default"


def lora_config(cfg: Any) -> Any | None:
    recipe = cfg.get("recipe") if hasattr(cfg, "get") else None
    return recipe.get("lora") if recipe is not None and hasattr(recipe, "get") else None


def uses_lora(cfg: Any, trainable: tuple[str, ...]) -> bool:
    return lora_config(cfg) is not None and "llm" in trainable


def is_wrapped(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model.llm, PeftModel)


def wrap(model: nn.Module, cfg: Any) -> nn.Module:
    """Put LoRA adapters on ``model.llm`` (in place); the base LM's parameters are frozen."""
    from peft import LoraConfig, get_peft_model

    lc = lora_config(cfg)
    config = LoraConfig(r=int(lc.rank), lora_alpha=float(lc.alpha), lora_dropout=float(lc.dropout),
                        target_modules=list(lc.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        model.llm = get_peft_model(model.llm, config)
    except ValueError as exc:  # e.g. no target module found in the LM
        raise ValueError(f"recipe.lora.target_modules: invalid value {list(lc.target_modules)}; "
                         f"{str(exc).splitlines()[0]}") from None
    return model


def adapter_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if ".lora_" in n]


@torch.no_grad()
def init_adapters(model: nn.Module, seed: int) -> None:
    """A = Kaiming-uniform(a=sqrt(5)) from ``seed`` (full tensor on every rank, each keeps its shard), B = 0."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in sorted(adapter_parameters(model)):
        if ".lora_B." in name:
            value = torch.zeros(p.shape)
        else:
            fan_in = p.shape[1]
            bound = math.sqrt(6.0 / ((1 + 5.0) * fan_in))  # kaiming_uniform_ with a=sqrt(5)
            value = torch.empty(p.shape).uniform_(-bound, bound, generator=gen)
        if hasattr(p, "device_mesh"):  # a DTensor shard: keep this rank's part of the full value
            from torch.distributed.tensor import distribute_tensor

            value = distribute_tensor(value.to(p.dtype), p.device_mesh, p.placements, src_data_rank=None)
            p.to_local().copy_(value.to_local())
        else:
            p.copy_(value)


def base_key(name: str) -> str | None:
    """The FQN a wrapped model's parameter had before wrapping (None for adapter parameters)."""
    if ".lora_" in name:
        return None
    return name.replace("llm.base_model.model.", "llm.").replace(".base_layer.", ".")


def merge(model: nn.Module) -> nn.Module:
    """Fold the adapters into the base weights and drop them (``model.llm`` is a plain HF LM again)."""
    if is_wrapped(model):
        model.llm = model.llm.merge_and_unload()
    return model


def check_recipe(cfg: Any) -> None:
    """Only the recipe's last stage may train the LLM with LoRA (its adapters are merged once, at the end)."""
    if lora_config(cfg) is None:
        return
    stages = list(cfg.recipe.stages)
    with_llm = [i for i, s in enumerate(stages) if "llm" in s.trainable]
    if with_llm != [len(stages) - 1]:
        raise ValueError(f"recipe.lora: invalid for recipe={cfg.recipe.id} (stages training llm: {with_llm}); "
                         "expected LoRA on the last stage only")

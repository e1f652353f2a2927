"""The training loop: every stage of a recipe, resumable, on one process or FSDP2 ranks; ``ablate train``.

Per stage: the stage's model (``ablate.train.materialize``: a meta-device skeleton on every rank, frozen/
LoRA-wrapped, ``parallelize``d, weights loaded once: the previous stage-end checkpoint read per shard, or
rank 0's initial model broadcast), AdamW (no weight decay on biases and 1-D params), linear warmup +
cosine decay, gradient accumulation up to ``global_batch`` (``per_device_batch`` x ranks x accumulation
steps), grad-norm clipping.  Budgets as Prismatic computes them (``prismatic/training/strategies``), with
N examples, global batch G, E epochs, steps per epoch S (modality-split batches, padded per modality):

- schedule length T = ``max_steps`` if set, else ``floor(ceil(N / G) * E)``; warmup W = ``floor(T * ratio)``;
  lr(k) = lr * k / W for k < W (0 at the first step), then lr * max(0, (1 + cos(pi (k - W) / (T - W))) / 2)
  (``transformers.get_cosine_schedule_with_warmup``);
- steps trained = ``max_steps`` if set (Prismatic's 6,500 / 7,800 for 1.25 / 1.5 epochs), else E x S for a
  whole E (Prismatic's epoch loop), ``floor(E x S)`` for a fractional E without max_steps (an ablate extension);
- ``train.max_steps`` (tests, the demo) caps both.

On a step whose global batch is all text the projector and the vision tower get no gradient (their grads are
dropped before the optimizer step, as Prismatic's text-only forward never touches them), so AdamW's momentum
and weight decay do not move them.  The compute dtype each component actually ran in on a stage's first step
goes to ``run_dir/precision.json`` next to its (float32) master dtype.  The order of examples is a seeded permutation
per (stage, epoch) and each global batch is split into micro-batches the same way for any number of ranks,
so 1 process and N ranks see the same batches and a resumed run sees exactly the batches it had left; a
DataLoader with ``runtime.num_workers`` workers builds them (``ablate.train.feed``).

Resuming: ``run_dir/checkpoints/step-<N>`` (written every ``runtime.checkpoint_every`` steps and at every
stage end; per-rank shards under FSDP, ``runtime.checkpoint_format``) restores weights, optimizer,
scheduler, RNG and the data position (stage, step), at the same or another world size; the final
parameters are bit-identical to an uninterrupted run on CPU.  Rank 0 shows tqdm, logs a plain line every
``runtime.log_every`` steps, appends one JSON line per step to ``run_dir/train_log.jsonl``, rewrites
``run_dir/progress.json`` and sends ``train/<stage>/{loss,lr,tokens_per_s}`` to the tracker.  A NaN/Inf
loss stops the run with the stage, step and example ids of the batch.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ablate import rundir
from ablate.config import dist_timeout_s
from ablate.distributed import DistInfo, init_distributed
from ablate.train import checkpoint, lora, sharded
from ablate.train.feed import StepBatches, loader, micro_batches
from ablate.train.materialize import final_model, load_checkpoint, seed_everything, stage_model
from ablate.train.schedule import lambda_lr, warmup_cosine, warmup_steps
from ablate.train.stages import Stage, plan
from ablate.train.strategy import all_reduce_sum, autocast, device_mesh

log = logging.getLogger(__name__)

Collate = Callable[[list[Any]], Mapping[str, Any]]
ModelBuilder = Callable[[Any], nn.Module]
DataBuilder = Callable[[Any, Stage, nn.Module], tuple[Sequence[Any], Collate]]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/Inf; the message names the stage, step and example ids of the batch."""


# ------------------------------------------------------------------------------------ optimizer/schedule
def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters split into decayed (matrices) and not decayed (biases and all 1-D params)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, stage: Stage) -> torch.optim.AdamW:
    groups = [g for g in param_groups(model, stage.weight_decay) if g["params"]]
    if not groups:
        raise ValueError(f"recipe stage {stage.name!r}: no trainable parameters (trainable={list(stage.trainable)})")
    return torch.optim.AdamW(groups, lr=stage.lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> Any:
    """Prismatic's schedule (``ablate.train.schedule.warmup_cosine``, warm-up ``floor(T x ratio)``)."""
    return lambda_lr(optimizer, warmup_cosine(total_steps, warmup_steps(total_steps, warmup_ratio)))


# ------------------------------------------------------------------------------------------ budgets/data
@dataclass(frozen=True)
class Budget:
    steps_per_epoch: int
    total_steps: int  # optimizer steps trained
    micro_per_step: int  # micro-batches of per_device_batch in one global batch (all ranks together)
    schedule_steps: int = 0  # T of the lr schedule (0 = total_steps)

    @property
    def schedule(self) -> int:
        return self.schedule_steps or self.total_steps


def batch_plan(dataset: Sequence[Any], stage: Stage, cfg: Any) -> Any:
    """The stage's data order: a ``ModalityLengthSampler`` with one "replica" per micro-batch of a global
    batch, so each global batch (all-image or all-text, length-balanced) splits into the same micro-batches
    for any number of ranks; rank r trains micro-batches r, r + ranks, ...  Orders depend on (seed, stage,
    epoch) only."""
    from ablate.data.llava import ModalityLengthSampler

    n = len(dataset)
    return ModalityLengthSampler(getattr(dataset, "lengths", [1] * n), getattr(dataset, "is_multimodal", [True] * n),
                                 per_device_batch=stage.per_device_batch,
                                 seed=int(cfg.train.seed) + 100_003 * stage.index,
                                 num_replicas=stage.global_batch // stage.per_device_batch,
                                 group_by_modality=bool(cfg.train.get("group_by_modality_length", True)))


def budget(stage: Stage, steps_per_epoch: int, world_size: int, n_examples: int | None = None) -> Budget:
    """Steps trained, schedule length and micro-batches per step of a stage, as Prismatic computes them
    (the module docstring); ``n_examples`` defaults to ``steps_per_epoch x global_batch``."""
    micro = stage.global_batch // stage.per_device_batch
    if micro % world_size:
        section = "align" if stage.name == "align" else "finetune"
        raise ValueError(f"train.{section}.global_batch: invalid value {stage.global_batch}; expected a multiple of "
                         f"per_device_batch x ranks = {stage.per_device_batch * world_size}")
    n = steps_per_epoch * stage.global_batch if n_examples is None else n_examples
    if stage.budget_steps is not None:
        total = schedule = int(stage.budget_steps)
    else:
        schedule = math.floor(math.ceil(n / stage.global_batch) * stage.epochs + 1e-9)
        whole = float(stage.epochs).is_integer()
        total = int(stage.epochs) * steps_per_epoch if whole else math.floor(stage.epochs * steps_per_epoch)
    if stage.max_steps is not None:
        total, schedule = min(total, int(stage.max_steps)), min(schedule, int(stage.max_steps))
    return Budget(steps_per_epoch, max(1, int(total)), micro, max(1, int(schedule)))


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


# ------------------------------------------------------------------------------------------- defaults
def default_data(cfg: Any, stage: Stage, model: nn.Module, *, stats: Any = None) -> tuple[Sequence[Any], Collate]:
    """The stage's split of the data mix and a collate function bound to the model's tokenizer; ``stats``
    (a ``DataStats``) collects the counts of every stage."""
    from ablate.data.llava import Collator
    from ablate.data.mixes import build_dataset

    dataset = build_dataset(cfg, stage.data, model.tokenizer, model.prompt_format, model.image_transform,
                            stats=stats)
    return dataset, Collator(int(model.tokenizer.pad_token_id))


# ---------------------------------------------------------------------------------------------- logging
class RunLog:
    """Rank 0's outputs: plain log lines, ``train_log.jsonl``, ``progress.json`` and the tracker."""

    def __init__(self, run_dir: Path, info: DistInfo, tracker: Any | None, log_every: int) -> None:
        self.run_dir, self.info, self.tracker, self.log_every = run_dir, info, tracker, max(1, log_every)

    def step(self, stage: Stage, step: int, total: int, record: dict[str, float]) -> None:
        if not self.info.is_main:
            return
        with open(self.run_dir / rundir.TRAIN_LOG, "a") as fh:
            fh.write(json.dumps({"stage": stage.name, "stage_index": stage.index, "step": step, **record}) + "\n")
        if step % self.log_every == 0 or step == total:
            log.info("stage %s step %d/%d loss %.4f lr %.3g grad_norm %.3f tokens/s %.0f", stage.name, step, total,
                     record["loss"], record["lr"], record["grad_norm"], record["tokens_per_s"])
            self.progress(stage.name, step, total)
            if self.tracker is not None:
                self.tracker.log_metrics({f"train/{stage.name}/{k}": record[k]
                                          for k in ("loss", "lr", "tokens_per_s", "grad_norm")}, step=step)

    def progress(self, stage: str, step: int, total: int, phase: str = "train") -> None:
        if not self.info.is_main:
            return
        rundir.write_progress(self.run_dir, phase, stage, step, total)


def read_train_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """Per-step records of a run (the last record of each (stage, step), in order)."""
    records: dict[tuple[int, int], dict[str, Any]] = {}
    path = Path(run_dir) / rundir.TRAIN_LOG
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        records[(rec["stage_index"], rec["step"])] = rec
    return [records[k] for k in sorted(records)]


# ------------------------------------------------------------------------------------------- one stage
def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[Mapping[str, Any]],
                    stage: Stage, step: int, cfg: Any, info: DistInfo, sharded: bool) -> tuple[float, float, float]:
    """Forward/backward over this rank's micro-batches, clip, step; return (mean loss, grad norm, tokens)."""
    loss_sum = torch.zeros(4, dtype=torch.float64)  # loss sum, micro-batch count, tokens, image rows
    bad_ids: list[str] = []
    n_micro = len(batches)
    total_micro = stage.global_batch // stage.per_device_batch  # over all ranks
    for m, batch in enumerate(batches):
        if sharded:
            model.set_requires_gradient_sync(m == n_micro - 1)
        with autocast(cfg, info.device, sharded):
            loss = model(to_device(batch, info.device))
        value = loss.detach().float().cpu()
        if not torch.isfinite(value):
            bad_ids.extend(str(i) for i in batch.get("example_ids", []))
        (loss * (info.world_size / total_micro)).backward()
        images = batch["has_image"].sum() if batch.get("has_image") is not None else len(batch["attention_mask"])
        loss_sum += torch.tensor([value.item(), 1.0, float(batch["attention_mask"].sum()), float(images)],
                                 dtype=torch.float64)
    all_reduce_sum(loss_sum)
    mean_loss = float(loss_sum[0] / loss_sum[1])
    if not math.isfinite(mean_loss):
        where = f"examples {bad_ids}" if bad_ids else "examples on another rank"
        raise NonFiniteLossError(f"stage {stage.name} step {step}: loss is {mean_loss}; batch {where}")
    if loss_sum[3] == 0:  # an all-text step: the image path got only the dummy image's zero gradient
        drop_image_path_grads(model)
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, stage.max_grad_norm) if params else torch.zeros(())
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return mean_loss, float(norm), float(loss_sum[2])


def drop_image_path_grads(model: nn.Module) -> None:
    """Drop the projector's and vision tower's gradients: AdamW skips parameters without one, as Prismatic's
    text-only forward leaves them (no momentum step, no weight decay)."""
    for name in ("projector", "vision"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            for p in module.parameters():
                p.grad = None


def _first_compute_dtypes(model: nn.Module) -> tuple[dict[str, Any], list[Any]]:
    """Forward hooks recording the dtype each component's first matrix-weight layer computes in."""
    seen: dict[str, Any] = {}
    handles = []
    for name in ("vision", "projector", "llm"):
        module = getattr(model, name, None)
        if not isinstance(module, nn.Module):
            continue
        params = [p for p in module.parameters()]
        layer = next((m for m in module.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)
                      and m.weight.ndim >= 2 and not isinstance(m, nn.Embedding)), None)
        if layer is None or not params:
            continue
        seen[name] = {"master": str(params[0].dtype).removeprefix("torch."), "compute": None}

        def hook(_m: nn.Module, _inp: Any, out: Any, _name: str = name) -> None:
            if seen[_name]["compute"] is None and isinstance(out, torch.Tensor):
                seen[_name]["compute"] = str(out.dtype).removeprefix("torch.")
        handles.append(layer.register_forward_hook(hook))
    return seen, handles


def _train_stage(model: nn.Module, stage: Stage, data: tuple[Sequence[Any], Collate], cfg: Any, info: DistInfo,
                 run_log: RunLog, ckpt_root: Path, *, resume_from: Path | None, step_offset: int,
                 sharded_model: bool) -> int:
    """Run one stage from its start or from a mid-stage checkpoint; return the global step at its end."""
    dataset, collate_fn = data
    sampler = batch_plan(dataset, stage, cfg)
    b = budget(stage, sampler.batches_per_epoch, info.world_size, len(dataset))
    optimizer = build_optimizer(model, stage)
    scheduler = build_scheduler(optimizer, b.schedule, stage.warmup_ratio)
    log.info("stage %s: %d steps (schedule %d, warmup %d), %d steps per epoch", stage.name, b.total_steps,
             b.schedule, warmup_steps(b.schedule, stage.warmup_ratio), b.steps_per_epoch)
    start = 0
    if resume_from is not None:
        meta = load_checkpoint(resume_from, model=model, optimizer=optimizer, scheduler=scheduler)
        start = int(meta["stage_step"])
        log.info("stage %s: resumed at step %d/%d from %s", stage.name, start, b.total_steps, resume_from)
    every = int(cfg.runtime.checkpoint_every)
    per_step = b.micro_per_step // info.world_size
    steps = StepBatches(sampler, steps_per_epoch=b.steps_per_epoch, start=start, total=b.total_steps,
                        rank=info.rank, world=info.world_size, per_step=per_step)
    data_loader = loader(dataset, collate_fn, steps, num_workers=int(cfg.runtime.get("num_workers", 0) or 0),
                         pin_memory=info.device.type == "cuda")
    feed = micro_batches(dataset, data_loader)
    save = sharded.save if _sharded_checkpoints(cfg, sharded_model) else checkpoint.save
    bar = tqdm(total=b.total_steps, initial=start, desc=f"train {stage.name}",
               disable=not (info.is_main and cfg.runtime.progress))
    for step in range(start, b.total_steps):
        epoch, in_epoch = divmod(step, b.steps_per_epoch)
        batches = [next(feed) for _ in range(per_step)]
        lr = scheduler.get_last_lr()[0]
        tic = time.perf_counter()
        probe, handles = _first_compute_dtypes(model) if step == start else ({}, [])
        loss, norm, tokens = train_step(model, optimizer, batches, stage, step + 1, cfg, info, sharded_model)
        for h in handles:
            h.remove()
        if probe and info.is_main:
            _record_precision(run_log.run_dir, stage.name, probe)
        scheduler.step()
        elapsed = time.perf_counter() - tic
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        run_log.step(stage, done, b.total_steps, {"loss": loss, "lr": lr, "grad_norm": norm, "tokens": tokens,
                                                  "tokens_per_s": tokens / max(elapsed, 1e-9), "epoch": epoch})
        stage_done = done == b.total_steps
        if stage_done or done % every == 0:
            meta = {"stage": stage.index, "stage_name": stage.name, "stage_step": done, "stage_done": stage_done,
                    "global_step": step_offset + done, "total_steps": b.total_steps,
                    "sampler": {"epoch": epoch, "position": (in_epoch + 1) * stage.per_device_batch * b.micro_per_step,
                                "seed": sampler.seed}}
            save(ckpt_root, step_offset + done, model=model, optimizer=optimizer, scheduler=scheduler,
                 meta=meta, keep_last=int(cfg.runtime.keep_last))
    bar.close()
    feed.close()
    del data_loader
    return step_offset + b.total_steps


def _record_precision(run_dir: Path, stage: str, dtypes: dict[str, Any]) -> None:
    path = run_dir / rundir.PRECISION
    record = rundir.read_json(path) if path.exists() else {}
    record[stage] = dtypes
    rundir.write_json(path, record, indent=1, sort_keys=False)


# -------------------------------------------------------------------------------------------- all stages
CHECKPOINT_FORMATS = ("auto", "sharded", "full")


def _sharded_checkpoints(cfg: Any, sharded_model: bool) -> bool:
    """``runtime.checkpoint_format``: auto = sharded under FSDP, one full file otherwise."""
    fmt = str(cfg.runtime.get("checkpoint_format", "auto") or "auto")
    if fmt not in CHECKPOINT_FORMATS:
        raise ValueError(f"runtime.checkpoint_format: invalid value {fmt!r}; allowed: {', '.join(CHECKPOINT_FORMATS)}")
    return fmt == "sharded" or (fmt == "auto" and sharded_model)


def train(cfg: Any, run_dir: str | Path, *, tracker: Any | None = None, build_model: ModelBuilder | None = None,
          build_data: DataBuilder | None = None) -> nn.Module | None:
    """Train every stage of ``cfg.recipe`` into ``run_dir`` (resuming from its checkpoints); save and return
    the final model (a plain, unsharded module, LoRA merged; saved by rank 0 to ``run_dir/model/``; the
    other ranks return None).  ``build_model`` (default: the VLM of ``cfg``) is called on rank 0 for the
    initial weights and under ``meta_parameters`` on every rank for the skeleton."""
    if build_data is None:
        from ablate.data.llava import DataStats

        data_stats = DataStats()
        build_data = functools.partial(default_data, stats=data_stats)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = run_dir / rundir.CHECKPOINTS
    info = init_distributed(str(cfg.runtime.device), dist_timeout_s(cfg))
    mesh = device_mesh(info)
    sharded = mesh is not None and cfg.train.sharding != "none"
    if mesh is not None and not sharded:
        raise ValueError(f"train.sharding: invalid value 'none' for {info.world_size} ranks; expected full or grad-op "
                         "(none trains in one process)")
    run_log = RunLog(run_dir, info, tracker if info.is_main else None, int(cfg.runtime.log_every))
    resume = checkpoint.latest(ckpt_root)
    meta = checkpoint.read_meta(resume) if resume is not None else None
    if meta is not None:
        log.info("resuming from %s (stage %s, step %d)", resume, meta["stage_name"], meta["stage_step"])
    stages = plan(cfg)
    weights_from = resume if meta is not None else None
    step_offset = int(meta["global_step"]) - (0 if meta["stage_done"] else int(meta["stage_step"])) if meta else 0
    lora.check_recipe(cfg)
    for stage in stages:
        if meta is not None and (stage.index < meta["stage"] or (stage.index == meta["stage"] and meta["stage_done"])):
            continue
        mid_stage = meta is not None and stage.index == meta["stage"]
        model, counts = stage_model(cfg, stage, info, mesh if sharded else None, build_model=build_model,
                                    weights_from=None if mid_stage else weights_from, resuming=mid_stage)
        if info.is_main and tracker is not None:
            tracker.log_params({f"train.{stage.name}.trainable_params": counts["trainable"],
                                f"train.{stage.name}.frozen_params": counts["frozen"]})
        data = build_data(cfg, stage, model)
        seed_everything(int(cfg.train.seed) + 7919 * (stage.index + 1))
        step_offset = _train_stage(model, stage, data, cfg, info, run_log, ckpt_root,
                                   resume_from=resume if mid_stage else None, step_offset=step_offset,
                                   sharded_model=sharded)
        weights_from = checkpoint.latest(ckpt_root)
        meta = None
        stats = getattr(data[0], "stats", None)
        if info.is_main and stats is not None:
            stats.save(run_dir / rundir.DATA_STATS)
        del model
    final = None
    if info.is_main:  # the other ranks build nothing: rank 0 alone writes the one HF-style folder
        final = final_model(cfg, build_model, weights_from,
                            lora_last_stage=lora.uses_lora(cfg, stages[-1].trainable))
        _save_final(final, run_dir / rundir.MODEL)
        run_log.progress(stages[-1].name, step_offset, step_offset)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return final


def _save_final(model: nn.Module, out: Path) -> None:
    """``model.save_pretrained`` into a temporary folder, then rename into place."""
    tmp = rundir.temp_folder(out)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(tmp)
    else:
        from safetensors.torch import save_model

        tmp.mkdir(parents=True)
        save_model(model, str(tmp / "model.safetensors"))
    rundir.publish_folder(tmp, out)


# ------------------------------------------------------------------------------------------------- CLI
def cli_train(args: argparse.Namespace) -> int:
    """``ablate train [overrides]``: compose, write runs/<run_key>/config.yaml (+ point.json), train locally."""
    from ablate.config import ConfigError
    from ablate.data.llava import BadDataError
    from ablate.data.mixes import MissingDataError, preflight
    from ablate.design import DesignPoint, compose
    from ablate.distributed import is_main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    cfg = compose(overrides)
    point = DesignPoint.from_config(cfg, "", overrides)
    point.name = point.run_key
    run_dir = rundir.run_dir_of(cfg, point.run_key)
    main = is_main()  # torchrun / srun ranks: rank 0 holds the lock and writes the run directory
    try:
        preflight(cfg.data)  # missing files / malformed JSON before the slow start-up
        with rundir.run_lock(run_dir, wait=bool(getattr(args, "wait", False))) if main else contextlib.nullcontext():
            rundir.check_writable(run_dir / rundir.CHECKPOINTS)  # now, not at the first save
            return _cli_train_locked(cfg, point, run_dir, main)
    except (rundir.RunDirError, BadDataError, MissingDataError) as exc:
        raise ConfigError(str(exc)) from None  # one line, exit 2


def _cli_train_locked(cfg: Any, point: Any, run_dir: Path, main: bool) -> int:
    from ablate.job import point_payload
    from ablate.track import Tracker

    study = str(cfg.study)
    if main:
        rundir.prepare(run_dir, cfg, point_payload(point, study), study)
    print(f"run {point.run_key} -> {run_dir}")
    tracking = (Tracker(cfg, run_key=point.run_key, design_key=point.design_key, study=study,
                        point_name=point.name) if main else contextlib.nullcontext())
    with tracking as tracker:
        train(cfg, run_dir, tracker=tracker)
    print(f"trained model saved to {run_dir / rundir.MODEL}")
    return 0

"""The training input pipeline: a ``torch.utils.data.DataLoader`` whose workers decode, transform, tokenize
and collate this rank's micro-batches, in the order of the stage's batch plan.

Why it exists: decoding JPEGs and resizing them on the training process between steps leaves the GPU idle.
``runtime.num_workers`` workers (0 = in the training process) each build whole micro-batches; memory is
pinned when training on CUDA, each worker prefetches ``PREFETCH`` batches and the workers persist over the
stage.  The sampler is ``StepBatches``: the micro-batch index lists of steps ``start .. total`` for this rank
(``ModalityLengthSampler.global_batches`` split the same way for any number of ranks), so the data position
of a checkpoint is the step itself and stays exact however far the workers have read ahead.

Bad data stays a named skip-or-fail: a worker returns a ``BadDataError`` as its one-line message (the
trainer raises it, never a worker traceback or a hang), and the skips and truncations it counted are merged
into the dataset's ``DataStats`` in the training process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader, Sampler, get_worker_info

PREFETCH = 2


class StepBatches(Sampler):
    """This rank's micro-batches (index lists) for optimizer steps ``start .. total - 1``, in order."""

    def __init__(self, plan: Any, *, steps_per_epoch: int, start: int, total: int, rank: int, world: int,
                 per_step: int) -> None:
        self.plan, self.steps_per_epoch, self.per_step = plan, steps_per_epoch, per_step
        self.start, self.total, self.rank, self.world = start, total, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        epochs: dict[int, list[list[list[int]]]] = {}
        for step in range(self.start, self.total):
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            if epoch not in epochs:
                epochs = {epoch: self.plan.global_batches(epoch)}
            yield from (list(ids) for ids in epochs[epoch][in_epoch][self.rank::self.world])

    def __len__(self) -> int:
        return (self.total - self.start) * self.per_step


class Fetch:
    """Dataset of micro-batches: ``fetch[ids]`` -> ``{"batch", "error", "skips", "truncated", "bad"}``."""

    def __init__(self, dataset: Sequence[Any], collate_fn: Callable[[list[Any]], Mapping[str, Any]]) -> None:
        self.dataset, self.collate_fn = dataset, collate_fn

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, ids: list[int]) -> dict[str, Any]:
        from ablate.data.llava import BadDataError

        stats = getattr(self.dataset, "stats", None)
        in_worker = get_worker_info() is not None and stats is not None
        out: dict[str, Any] = {"batch": None, "error": None, "skips": [], "truncated": [], "bad": []}
        try:
            examples = []
            for i in ids:
                before = (sum(stats.skipped.values()), dict(stats.skipped), len(stats.examples)) if in_worker \
                    else None
                examples.append(self.dataset[i])
                if before is not None and sum(stats.skipped.values()) != before[0]:
                    reason = next(r for r, n in stats.skipped.items() if n != before[1].get(r, 0))
                    where = stats.examples[before[2]] if len(stats.examples) > before[2] else reason
                    out["skips"].append((i, reason, where))
            out["batch"] = self.collate_fn(examples)
        except BadDataError as exc:
            out["error"] = str(exc)
        if in_worker:
            out["truncated"] = sorted(stats.truncated_ids)
        return out


def _identity(item: Any) -> Any:
    return item


def loader(dataset: Sequence[Any], collate_fn: Callable[[list[Any]], Mapping[str, Any]], batches: StepBatches, *,
           num_workers: int, pin_memory: bool) -> DataLoader:
    if num_workers:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork after the tokenizer ran
    return DataLoader(Fetch(dataset, collate_fn), sampler=batches, batch_size=None, collate_fn=_identity,
                      num_workers=num_workers, pin_memory=pin_memory,
                      prefetch_factor=PREFETCH if num_workers else None, persistent_workers=num_workers > 0)


def micro_batches(dataset: Sequence[Any], data_loader: DataLoader) -> Iterator[Mapping[str, Any]]:
    """The loader's micro-batches, with worker-side skips merged into ``dataset.stats`` and a worker's
    ``BadDataError`` raised here as its own one-line message."""
    from ablate.data.llava import BadDataError

    stats = getattr(dataset, "stats", None)
    bad = getattr(dataset, "_bad", None)
    for item in data_loader:
        if stats is not None:
            for i, reason, where in item["skips"]:
                if bad is None or i not in bad:
                    if bad is not None:
                        bad.add(i)
                    stats.skipped[reason] += 1
                    if len(stats.examples) < 20:
                        stats.examples.append(where)
            stats.truncated_ids.update(item["truncated"])
        if item["error"] is not None:
            raise BadDataError(item["error"])
        yield item["batch"]

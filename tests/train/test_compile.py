"""``runtime.compile=true`` on CPU: every vision block and decoder layer is compiled in torchtitan's order
(activation checkpointing -> ``torch.compile`` of the checkpointed block -> ``fully_shard``), and a tiny VLM
trains through FSDP2 on 2 gloo ranks to the loss curve of the same run uncompiled."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

from ablate.design import compose

BASE = ["vision=tiny-clip", "projector=mlp", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes",
        "recipe=single-stage", "data.synthetic.size=32", "train.finetune.global_batch=4",
        "train.finetune.per_device_batch=2", "train.max_steps=3", "train.sharding=full",
        "train.activation_checkpointing=true", "runtime.progress=false", "runtime.device=cpu"]


def _rank(rank: int, world: int, port: int, root: str, run_dir: str, compiled: bool) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from ablate.train import strategy
    from ablate.train.loop import train

    seen: list[tuple[str, bool]] = []
    blocks: list[int] = []
    real = strategy.parallelize

    def spy(model: torch.nn.Module, *args: object, **kwargs: object) -> torch.nn.Module:
        blocks[:] = [len(strategy.component_blocks(model, "vision")), len(strategy.component_blocks(model, "llm"))]
        out = real(model, *args, **kwargs)
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper
        from torch.distributed.fsdp import FSDPModule

        for m in out.modules():
            if getattr(m, "_compiled_call_impl", None) is not None:
                seen.append((type(m).__name__, isinstance(m, CheckpointWrapper) and isinstance(m, FSDPModule)))
        return out

    strategy.parallelize = spy
    import ablate.train.materialize as materialize

    materialize.parallelize = spy
    try:
        train(compose([*BASE, f"data.root={root}", f"runtime.compile={str(compiled).lower()}"]), run_dir)
    finally:
        strategy.parallelize = materialize.parallelize = real
    if rank == 0:
        Path(run_dir, "compiled.txt").write_text("\n".join([" ".join(map(str, blocks)),
                                                            *(f"{n} {ok}" for n, ok in seen)]))
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    from ablate.shapes.world import ensure_world

    root = tmp_path_factory.mktemp("data") / "shapes"
    ensure_world(compose([*BASE, f"data.root={root}"]).data)
    return str(root)


def test_compiled_blocks_train_like_uncompiled_on_two_gloo_ranks(shapes_root: str, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from ablate.train.loop import read_train_log

    losses = {}
    for compiled in (False, True):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        run_dir = tmp_path / f"compiled-{compiled}"
        mp.start_processes(_rank, args=(2, port, shapes_root, str(run_dir), compiled), nprocs=2,
                           start_method="fork")
        losses[compiled] = [r["loss"] for r in read_train_log(run_dir)]
        counts, *marks = (run_dir / "compiled.txt").read_text().split("\n")
        n_vision, n_llm = map(int, counts.split())
        assert n_vision >= 1 and n_llm == 2  # tiny-clip's blocks up to its feature layer; tiny-llama's layers
        if compiled:  # frozen vision blocks: compiled, not checkpointed; trained decoder layers: checkpointed,
            # the checkpoint wrapper compiled as a whole, then sharded
            assert len(marks) == n_vision + n_llm, marks
            assert sum(m.endswith("True") for m in marks) == n_llm, marks
        else:
            assert marks == []
    assert len(losses[True]) == len(losses[False]) == 3
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=1e-4, atol=1e-5)

"""Sharded checkpoints (torch.distributed.checkpoint, safetensors shards per rank) on the real tiny VLM: a
2-rank FSDP run killed mid-stage resumes to bit-identical final weights (DataLoader workers on), the same
checkpoint resumes in one process (another world size), and the folder format is complete-or-absent."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ablate.design import compose
from ablate.train import checkpoint, sharded
from ablate.train.loop import read_train_log, train

BASE = ["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes", "data.synthetic.size=160",
        "train.align.global_batch=8", "train.align.per_device_batch=4", "train.finetune.global_batch=8",
        "train.finetune.per_device_batch=4", "runtime.progress=false", "recipe=two-stage", "train.max_steps=4",
        "train.sharding=full", "runtime.checkpoint_every=2", "runtime.keep_last=2", "runtime.num_workers=1"]


class Crash(RuntimeError):
    pass


def _cfg(root: str) -> Any:
    return compose([*BASE, f"data.root={root}"])


def _rank(rank: int, world: int, port: int, root: str, run_dir: str, crash_at: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from ablate.train import loop

    calls = {"n": 0}
    real = loop.train_step

    def crashing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise Crash(f"killed before step call {crash_at}")
        return real(*args, **kwargs)

    if crash_at:
        loop.train_step = crashing
    try:
        train(_cfg(root), run_dir)
    except Crash:
        pass
    finally:
        loop.train_step = real
        torch.distributed.destroy_process_group()


def _run(root: str, run_dir: Path, crash_at: int = 0) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, args=(2, port, root, str(run_dir), crash_at), nprocs=2, start_method="fork")


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    from ablate.shapes.world import ensure_world

    root = tmp_path_factory.mktemp("data") / "shapes"
    ensure_world(compose([*BASE, f"data.root={root}"]).data)
    return str(root)


def test_two_rank_sharded_resume_is_bit_identical_and_one_process_resumes_it(shapes_root: str,
                                                                             tmp_path: Path) -> None:
    _run(shapes_root, tmp_path / "reference")
    _run(shapes_root, tmp_path / "resumed", crash_at=7)  # align 1-4, finetune 1-2, killed before finetune 3
    ckpt = checkpoint.latest(tmp_path / "resumed" / "checkpoints")
    meta = checkpoint.read_meta(ckpt)
    assert (meta["stage_name"], meta["stage_step"], meta["stage_done"]) == ("finetune", 2, False)
    assert sorted(p.name for p in ckpt.iterdir()) == ["manifest.json", "rng-rank0.json", "rng-rank0.safetensors",
                                                      "rng-rank1.json", "rng-rank1.safetensors", "shards", "state.json"]
    shard_files = sorted(ckpt.glob("shards/*.safetensors"))
    assert len(shard_files) == 2  # one file per rank
    listed = json.loads((ckpt / "manifest.json").read_text())["files"]  # every rank's shard is verified on resume
    assert {str(p.relative_to(ckpt)) for p in shard_files} <= listed.keys()
    assert json.loads((ckpt / "state.json").read_text())["world_size"] == 2
    assert not list(ckpt.rglob("*.metadata")) and not list(ckpt.rglob("*.pt"))  # nothing pickled
    assert [p.name for p in checkpoint.step_dirs(tmp_path / "resumed" / "checkpoints")] == ["step-4", "step-6"]
    shutil.copytree(tmp_path / "resumed", tmp_path / "one-process")

    _run(shapes_root, tmp_path / "resumed")
    reference = load_file(str(tmp_path / "reference" / "model" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "model" / "model.safetensors"))
    assert reference.keys() == resumed.keys()
    for k, v in reference.items():
        assert torch.equal(v, resumed[k]), k
    assert [r["loss"] for r in read_train_log(tmp_path / "resumed")] == \
        [r["loss"] for r in read_train_log(tmp_path / "reference")]

    model = train(_cfg(shapes_root), tmp_path / "one-process")  # world size 1 from a 2-rank checkpoint
    log = read_train_log(tmp_path / "one-process")
    assert [(r["stage"], r["step"]) for r in log] == [(s, i) for s in ("align", "finetune") for i in range(1, 5)]
    for a, b in zip(log, read_train_log(tmp_path / "reference"), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
    for k, v in model.state_dict().items():
        assert torch.allclose(v, reference[k], atol=5e-4), k


def test_single_process_sharded_round_trip_and_clear_errors(tmp_path: Path) -> None:
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    path = sharded.save(tmp_path, 1, model=model, optimizer=opt, scheduler=None, meta={"stage_step": 1})
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    other_opt = torch.optim.AdamW(other.parameters(), lr=0.1)
    assert sharded.load(path, model=other, optimizer=other_opt) == {"stage_step": 1}
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
        assert torch.equal(opt.state[a]["exp_avg_sq"], other_opt.state[b]["exp_avg_sq"])
    with pytest.raises(checkpoint.CheckpointError, match="does not fit the model"):
        sharded.load(path, model=nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
    shutil.rmtree(path / "shards")
    with pytest.raises(checkpoint.CheckpointError, match="missing state.json or shards/"):
        sharded.load(path, model=other)

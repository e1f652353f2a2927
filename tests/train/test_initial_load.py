"""The first stage of a fresh FSDP run loads its initial weights without any rank holding the whole model:
on 2 gloo ranks the sharded model equals the one-process ``build_vlm`` (same seed, bit for bit), the whole
VLM is never built, and an LM given by ``llm.path`` (safetensors) is read slice by slice, never built."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch

from ablate.design import compose

BASE = ["vision=tiny-clip", "projector=mlp", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes",
        "recipe=two-stage", "train.sharding=full", "runtime.device=cpu"]


def _forbid(module: Any, name: str) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} was called: a rank built the whole component")

    setattr(module, name, refuse)


def _rank(rank: int, world: int, port: int, overrides: list[str], forbid: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    import ablate.models.llm as llm_module
    from ablate.models.vlm import build_vlm
    from ablate.train import materialize
    from ablate.train.materialize import seed_everything, stage_model
    from ablate.train.stages import plan
    from ablate.train.strategy import device_mesh, init_distributed

    cfg = compose([*BASE, *overrides])
    info = init_distributed("cpu")
    real_vlm, real_llm = materialize._default_full, llm_module.build_llm
    _forbid(materialize, "_default_full")  # the whole VLM is never built
    if forbid:
        _forbid(llm_module, forbid)
    model, _ = stage_model(cfg, plan(cfg)[0], info, device_mesh(info), build_model=None, weights_from=None,
                           resuming=False)
    materialize._default_full, llm_module.build_llm = real_vlm, real_llm
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        seed_everything(int(cfg.train.seed))
        ref = build_vlm(cfg).state_dict()
        assert sorted(state) == sorted(ref)
        differ = [k for k, v in ref.items() if not torch.equal(state[k].float(), v.to(state[k].dtype).float())]
        assert not differ, f"{len(differ)} tensors differ from the one-process build, e.g. {differ[:3]}"
        Path(out).write_text(str(len(ref)))
    torch.distributed.destroy_process_group()


def _saved_lm(tmp_path: Path) -> str:
    """A tiny Llama (random init, the padded vocabulary of the synthetic tokenizer) saved as safetensors."""
    from ablate.models.llm import build_llm, build_tokenizer

    cfg = compose(BASE)
    torch.manual_seed(3)
    build_llm(cfg.llm, build_tokenizer(cfg.llm)).save_pretrained(tmp_path / "lm", safe_serialization=True)
    return str(tmp_path / "lm")


@pytest.mark.parametrize("source", ["random-init", "llm.path"])
def test_first_stage_builds_no_whole_model_and_equals_the_one_process_build(tmp_path: Path, source: str) -> None:
    import torch.multiprocessing as mp

    overrides, forbid = [], ""
    if source == "llm.path":
        overrides, forbid = [f"llm.path={_saved_lm(tmp_path)}", "llm.random_init=null"], "build_llm"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "checked"
    mp.start_processes(_rank, args=(2, port, overrides, forbid, str(out)), nprocs=2, start_method="fork")
    assert int(out.read_text()) > 20  # every tensor of the VLM compared

"""Scale paths on the real tiny VLM: FSDP units per declared block (timm's nn.Sequential tower, a fused
tower per branch), the meta-device skeleton, DataLoader workers with bad images (named skip or one-line
failure, never a hang), and a LoRA point that trains and whose merged model generates as the unmerged one."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.design import compose
from ablate.train.strategy import fsdp_units, meta_parameters, parallelize

TINY = ["llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes"]


def _vlm(*overrides: str) -> tuple[Any, Any]:
    from ablate.models.vlm import build_vlm

    cfg = compose([*TINY, *overrides])
    torch.manual_seed(0)
    return cfg, build_vlm(cfg)


@pytest.fixture
def one_rank_group():
    """A 1-rank gloo group in this process (fully_shard needs one), destroyed afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    from torch.distributed.device_mesh import init_device_mesh

    try:
        yield init_device_mesh("cpu", (1,), mesh_dim_names=("dp",))
    finally:
        torch.distributed.destroy_process_group()


def _fsdp_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def test_timm_tower_is_sharded_per_block(one_rank_group) -> None:
    cfg, model = _vlm("vision=tiny-dinov2", "vision.backbones.0.depth=4", "train.sharding=full")
    trunk = model.vision.branches["tiny-dinov2"].model
    assert isinstance(trunk.blocks, torch.nn.Sequential) and len(trunk.blocks) == 3  # feature_layer -2 of 4
    names = fsdp_units(model)
    assert names == ["vision.branches.tiny-dinov2.model.blocks.0", "vision.branches.tiny-dinov2.model.blocks.1",
                     "vision.branches.tiny-dinov2.model.blocks.2", "vision.branches.tiny-dinov2", "vision",
                     "llm.model.layers.0", "llm.model.layers.1", "projector", "<root>"]
    parallelize(model, cfg, one_rank_group, trainable=("projector", "llm"))
    units = _fsdp_modules(model)
    assert len(units) == 9
    assert all(b in units for b in trunk.blocks)


def test_fused_tower_is_sharded_per_branch_and_block_with_checkpointing(one_rank_group) -> None:
    cfg, model = _vlm("vision=tiny-dinosiglip", "projector=fused-mlp", "vision.backbones.0.depth=4",
                      "vision.backbones.1.depth=3", "train.sharding=full", "train.activation_checkpointing=true")
    names = fsdp_units(model)
    dino = [n for n in names if n.startswith("vision.branches.tiny-dinov2.model.blocks.")]
    siglip = [n for n in names if n.startswith("vision.branches.tiny-siglip.")
              and n != "vision.branches.tiny-siglip"]
    assert (len(dino), len(siglip)) == (3, 2)  # both branches, not only the one with a ModuleList
    assert {"vision.branches.tiny-dinov2", "vision.branches.tiny-siglip", "vision"} <= set(names)
    parallelize(model, cfg, one_rank_group, trainable=("projector", "llm", "vision"))
    assert len(_fsdp_modules(model)) == len(names) == 3 + 2 + 2 + 1 + 2 + 1 + 1
    assert fsdp_units(model) == names  # checkpoint-wrapped blocks keep their names


def test_skeleton_has_no_parameter_memory_and_keeps_buffers() -> None:
    from ablate.train.materialize import default_skeleton
    from ablate.train.strategy import materialize

    cfg = compose([*TINY, "vision=tiny-dinov2"])
    with meta_parameters():
        model = default_skeleton(cfg)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    _, real = _vlm("vision=tiny-dinov2")
    inv_freq = dict(real.named_buffers())
    materialize(model, torch.device("cpu"))
    for name, b in model.named_buffers():
        assert torch.equal(b, inv_freq[name]), name
    assert {p.device.type for p in model.parameters()} == {"cpu"}


# ------------------------------------------------------------------------------------------- data workers
def _dataset(tmp_path: Path, on_bad: str) -> Any:
    from ablate.data.llava import LlavaDataset, Record
    from ablate.models.prompts import get_prompt_format
    from ablate.shapes.tokenizer import shapes_tokenizer

    (tmp_path / "ok.jpg").parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "ok.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    conv = (("user", "<image>\nWhat?"), ("assistant", "red"))
    records = [Record(f"ex{i}", tmp_path / ("bad.jpg" if i == 5 else "ok.jpg"), conv, "t", i) for i in range(8)]
    tok = shapes_tokenizer()

    def to_tensor(img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(img.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)

    return LlavaDataset(records, tok, get_prompt_format("base", tok), to_tensor, max_length=64,
                        on_bad_example=on_bad)


class _Plan:
    def global_batches(self, epoch: int) -> list[list[list[int]]]:
        return [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]


@pytest.mark.parametrize("workers", [0, 2])
def test_workers_skip_bad_images_by_name_and_keep_the_order(tmp_path: Path, workers: int) -> None:
    from ablate.data.llava import CORRUPT_IMAGE, Collator
    from ablate.train.feed import StepBatches, loader, micro_batches

    ds = _dataset(tmp_path, "skip")
    steps = StepBatches(_Plan(), steps_per_epoch=2, start=1, total=4, rank=1, world=2, per_step=1)
    batches = list(micro_batches(ds, loader(ds, Collator(0), steps, num_workers=workers, pin_memory=False)))
    assert [b["example_ids"] for b in batches] == [["ex6", "ex7"], ["ex2", "ex3"], ["ex6", "ex7"]]
    steps = StepBatches(_Plan(), steps_per_epoch=2, start=0, total=4, rank=0, world=2, per_step=1)
    batches = list(micro_batches(ds, loader(ds, Collator(0), steps, num_workers=workers, pin_memory=False)))
    assert [b["example_ids"] for b in batches] == [["ex0", "ex1"], ["ex4"], ["ex0", "ex1"], ["ex4"]]
    assert ds.stats.skipped == {CORRUPT_IMAGE: 1}  # counted once in the training process, not per worker/epoch
    assert "bad.jpg" in ds.stats.examples[0]


def test_a_bad_image_in_a_worker_fails_with_its_one_line_name(tmp_path: Path) -> None:
    from ablate.data.llava import BadDataError, Collator
    from ablate.train.feed import StepBatches, loader, micro_batches

    ds = _dataset(tmp_path, "fail")
    steps = StepBatches(_Plan(), steps_per_epoch=2, start=0, total=2, rank=0, world=2, per_step=1)
    with pytest.raises(BadDataError) as err:
        list(micro_batches(ds, loader(ds, Collator(0), steps, num_workers=2, pin_memory=False)))
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("t record 5 (id 'ex5'): image ") and "bad.jpg" in str(err.value)


# --------------------------------------------------------------------------------------------------- LoRA
def test_lora_point_trains_adapters_and_merged_model_generates_as_unmerged(tmp_path: Path) -> None:
    from ablate.shapes.world import ensure_world
    from ablate.train import lora
    from ablate.train.loop import read_train_log, train
    from ablate.train.materialize import materialize, skeleton

    root = tmp_path / "shapes"
    overrides = ["vision=tiny-clip", *TINY, f"data.root={root}", "data.synthetic.size=120", "recipe=single-stage-lora",
                 "recipe.lora.rank=4", "recipe.lora.alpha=8", "train.max_steps=6", "train.finetune.lr=1e-2",
                 "train.finetune.global_batch=8", "train.finetune.per_device_batch=8", "runtime.progress=false",
                 "runtime.checkpoint_every=100"]
    cfg = compose(overrides)
    ensure_world(cfg.data)
    merged = train(cfg, tmp_path / "run")
    losses = [r["loss"] for r in read_train_log(tmp_path / "run")]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert not lora.is_wrapped(merged) and not any("lora_" in k for k in merged.state_dict())

    from ablate.train.checkpoint import latest
    from ablate.train.materialize import load_checkpoint_weights

    unmerged = materialize(skeleton(cfg, None), torch.device("cpu"))
    lora.wrap(unmerged, cfg)
    load_checkpoint_weights(latest(tmp_path / "run" / "checkpoints"), unmerged, no_dist=True)
    unmerged.eval()
    adapters = dict(lora.adapter_parameters(unmerged))
    assert adapters and any(float(p.detach().abs().sum()) > 0 for n, p in adapters.items() if ".lora_B." in n)
    base_lm = {k: v for k, v in unmerged.state_dict().items() if "base_layer" in k}
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    changed = [k for k in base_lm if not torch.equal(saved[lora.base_key(k)], base_lm[k])]
    assert changed  # the merged weights are base + B A, not the base weights
    images = [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (64, 64), (30, 30, 200))]
    prompts = ["What color is the shape?", "How many shapes are there?"]
    a = merged.generate_ids(images, prompts, max_new_tokens=8)
    b = unmerged.generate_ids(images, prompts, max_new_tokens=8)
    assert a == b and all(len(r) > 0 for r in a)


def test_stage_parameter_counts_show_lora_adapters_only_as_trainable() -> None:
    from ablate.train.materialize import stage_parameter_counts

    full = stage_parameter_counts(compose(["vision=tiny-clip", *TINY, "recipe=two-stage"]))
    lora = stage_parameter_counts(compose(["vision=tiny-clip", *TINY, "recipe=two-stage-lora", "recipe.lora.rank=4"]))
    assert full["align"] == lora["align"]
    projector = full["align"]["trainable"]
    # tiny-llama: 2 layers x (q, o: 64x64; k, v: 64x32; gate, up: 64x128; down: 128x64) -> r x (in + out) each
    adapters = 2 * 4 * ((64 + 64) * 2 + (64 + 32) * 2 + (64 + 128) * 2 + (128 + 64))
    assert lora["finetune"]["trainable"] == projector + adapters
    assert lora["finetune"]["frozen"] == full["finetune"]["frozen"] + full["finetune"]["trainable"] - projector


def test_materialized_lm_keeps_its_tied_head() -> None:
    """A tied LM head (SmolLM2, Gemma, Qwen-0.5B ship one) stays one parameter after the meta build:
    ``to_empty`` alone gives the head and the embedding separate tensors that then train apart."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ablate.train.strategy import materialize, meta_parameters

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True)
    with meta_parameters():
        lm = LlamaForCausalLM(cfg)
    assert lm.lm_head.weight is lm.model.embed_tokens.weight
    materialize(lm, torch.device("cpu"))
    assert lm.lm_head.weight.device.type == "cpu"
    assert lm.lm_head.weight is lm.model.embed_tokens.weight
    assert len(list(lm.parameters())) == len(dict(lm.named_parameters(remove_duplicate=False))) - 1

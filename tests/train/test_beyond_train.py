"""Every level beyond Prismatic (the multimodal position encodings, the gated-xattn bridge, anyres tiling)
trains through FSDP2 on 2 gloo ranks and generates from the saved model (tiny VLM, shapes world, two steps
each)."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import torch
from PIL import Image
from test_train_vlm import _cfg, shapes_root  # noqa: F401  (module fixture reused)

from ablate.models.positions import SectionedRotary
from ablate.models.vlm import VLM
from ablate.train.loop import read_train_log, train

LEVELS = ("m-rope", "mrope-interleave", "rope-tie", "rope-tv")
POINTS = {**{level: [f"llm.image_positions={level}"] for level in LEVELS},
          "gated-xattn": ["projector=gated-xattn", "projector.xattn_every=1", "projector.heads=2",
                          "train.activation_checkpointing=true"],  # the blocks run inside checkpointed layers
          "anyres": ["image=anyres-small"]}  # wide, tall and square scenes: 1 or 2 tiles, a batch of mixed grids


def _rank(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        for name, overrides in POINTS.items():
            train(_cfg(root, "recipe=single-stage", "train.max_steps=2", "train.sharding=full", *overrides),
                  Path(out) / name)
    finally:
        torch.distributed.destroy_process_group()


def test_beyond_levels_train_on_two_gloo_ranks_and_generate(shapes_root: str, tmp_path: Path) -> None:  # noqa: F811
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, args=(2, port, shapes_root, str(tmp_path)), nprocs=2, start_method="fork")
    image = Image.new("RGB", (64, 64), (220, 20, 20))
    for name in POINTS:
        log = read_train_log(tmp_path / name)
        assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["loss"]) for r in log), name
        model = VLM.from_pretrained(tmp_path / name / "model").eval()
        if name in LEVELS:
            assert model.image_positions == name
            assert isinstance(model.llm.get_decoder().rotary_emb, SectionedRotary)
        elif name == "gated-xattn":  # the bridge: its gates left 0 by training (the projector, holding them, is)
            gates = torch.cat([b.attn_gate for b in model.bridge.blocks.values()])
            assert bool((gates != 0).all()), gates
        else:  # anyres: the row separator is saved with the projector; a batch of two grids decodes as each alone
            assert model.tiled and model.projector.row_separator.shape == (64,)
            wide = Image.new("RGB", (192, 108), (220, 20, 20))
            both = model.generate_ids([wide, image], ["Colour?", "What colour is the shape?"], max_new_tokens=3)
            assert both == [*model.generate_ids([wide], ["Colour?"], max_new_tokens=3),
                            *model.generate_ids([image], ["What colour is the shape?"], max_new_tokens=3)]
        ids = model.generate_ids([image, None], ["What colour is the shape?", "Colour?"], max_new_tokens=3)
        assert len(ids) == 2 and all(len(r) <= 3 for r in ids) and any(ids), name

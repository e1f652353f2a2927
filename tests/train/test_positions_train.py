"""Every multimodal position-encoding level trains through FSDP2 on 2 gloo ranks and generates from the saved
model (tiny VLM, shapes world, two steps each)."""

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

LEVELS = ("m-rope", "rope-tie", "rope-tv")


def _rank(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        for level in LEVELS:
            train(_cfg(root, "recipe=single-stage", "train.max_steps=2", "train.sharding=full",
                       f"llm.image_positions={level}"), Path(out) / level)
    finally:
        torch.distributed.destroy_process_group()


def test_position_levels_train_on_two_gloo_ranks_and_generate(shapes_root: str, tmp_path: Path) -> None:  # noqa: F811
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, args=(2, port, shapes_root, str(tmp_path)), nprocs=2, start_method="fork")
    image = Image.new("RGB", (64, 64), (220, 20, 20))
    for level in LEVELS:
        log = read_train_log(tmp_path / level)
        assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["loss"]) for r in log), level
        model = VLM.from_pretrained(tmp_path / level / "model").eval()
        assert model.image_positions == level
        assert isinstance(model.llm.get_decoder().rotary_emb, SectionedRotary)
        ids = model.generate_ids([image, None], ["What colour is the shape?", "Colour?"], max_new_tokens=3)
        assert len(ids) == 2 and all(len(r) <= 3 for r in ids) and any(ids), level

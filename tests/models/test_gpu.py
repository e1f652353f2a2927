"""GPU checks (skipped without CUDA): NCCL process group init, bf16 forward/backward of the tiny VLM with
activation checkpointing on the LM decoder layers, the SDPA attention path, and greedy generate on GPU
agreeing batched vs one at a time.  Run on a CUDA machine with ``bench/gpu.sh``."""

from __future__ import annotations

import os
import socket

import pytest
import torch
from PIL import Image
from tiny_configs import tiny_cfg

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def gpu_vlm():
    from ablate.models.vlm import build_vlm

    torch.manual_seed(0)
    return build_vlm(tiny_cfg("vision=tiny-dinosiglip", "projector=fused-mlp")).cuda()


def test_nccl_init_and_all_reduce():
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        x = torch.ones(4, device="cuda")
        dist.all_reduce(x)
        assert x.tolist() == [1.0] * 4
    finally:
        dist.destroy_process_group()


def test_bf16_forward_backward_with_activation_checkpointing(gpu_vlm):
    from ablate.models.prompts import tokenize_conversation

    gpu_vlm.train()
    gpu_vlm.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert gpu_vlm.llm.config._attn_implementation == "sdpa"
    ids, labels = tokenize_conversation(gpu_vlm.tokenizer, gpu_vlm.prompt_format,
                                        [("user", "<image>\nColour?"), ("assistant", "red")])
    image = Image.new("RGB", (80, 60), (200, 10, 10))
    batch = dict(pixel_values=gpu_vlm.image_transform([image, image]), input_ids=torch.tensor([ids, ids]),
                 attention_mask=torch.ones(2, len(ids), dtype=torch.long), labels=torch.tensor([labels, labels]),
                 has_image=torch.tensor([True, True]))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = gpu_vlm(batch)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in gpu_vlm.llm.model.layers[0].parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    gpu_vlm.llm.gradient_checkpointing_disable()
    gpu_vlm.zero_grad()


def test_generate_on_gpu_batched_equals_single(gpu_vlm):
    gpu_vlm.eval()
    images = [Image.new("RGB", (64, 40), (0, 0, 200)), None, Image.new("RGB", (30, 90), (0, 200, 0))]
    prompts = ["Colour?", "How many shapes are there?", "Where is the green shape?"]
    batched = gpu_vlm.generate_ids(images, prompts, max_new_tokens=6)
    single = [gpu_vlm.generate_ids([im], [p], max_new_tokens=6)[0] for im, p in zip(images, prompts, strict=True)]
    assert batched == single

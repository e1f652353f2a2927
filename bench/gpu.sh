#!/usr/bin/env bash
# GPU checks for the models (issue 10): run on a CUDA machine from the repo root.
#   1. pytest -m gpu tests/models/test_gpu.py  (NCCL init, bf16 fwd/bwd + activation checkpointing, SDPA, generate)
#   2. throughput: ours vs LlavaForConditionalGeneration, tiny config, then ViT-L/14@336 + a ~1B random-init Llama
#      (bf16 autocast), printing examples/s and the ratio (goal >= 1.3 on GPU) and ours' MFU
#      (6 * params * tokens / s over the card's bf16 peak; PEAK_TFLOPS, default 989 = H100 SXM).
set -euo pipefail
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
$PY -m pytest -q -m gpu tests/models/test_gpu.py
PEAK=${PEAK_TFLOPS:-989}
$PY bench/model_step.py --device cuda --bf16 --peak-tflops "$PEAK" --batch 16 --steps 20
# ViT-L/14@336 (random init, no weights needed) + ~1.1B Llama (random init)
$PY bench/model_step.py --device cuda --bf16 --peak-tflops "$PEAK" --batch 8 --steps 10 --overrides \
  vision=clip-vit-l-336 llm=tiny-llama 'vision.backbones.0.pretrained=null' llm.max_length=2048 \
  llm.random_init.hidden_size=2048 llm.random_init.intermediate_size=5632 llm.random_init.num_hidden_layers=22 \
  llm.random_init.num_attention_heads=32 llm.random_init.num_key_value_heads=4
# 3. training-step tokens/s and MFU through ablate's FSDP2 + bf16 path (same Prismatic-shaped model)
$PY bench/train_step.py --device cuda --peak-tflops "$PEAK" --batch 8 --seq-len 512 --steps 10 --overrides \
  vision=clip-vit-l-336 llm=tiny-llama train=prismatic 'vision.backbones.0.pretrained=null' \
  llm.random_init.hidden_size=2048 llm.random_init.intermediate_size=5632 llm.random_init.num_hidden_layers=22 \
  llm.random_init.num_attention_heads=32 llm.random_init.num_key_value_heads=4
# 4. evaluation: batched (16) vs batch-1 greedy decoding, same tiny model and examples (goal >= 8x on GPU)
$PY bench/eval_throughput.py --device cuda --n 128 --batch-size 16 --max-new-tokens 16

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
# 5. scale (issue 20), one GPU: the CPU-tested paths on CUDA.  a) FSDP units / skeleton / workers / LoRA /
#    sharded-resume tests (gloo ranks; they also run on CPU); b) one-rank NCCL FSDP2 training of the tiny
#    two-stage LoRA recipe from a meta-device skeleton, DataLoader workers with pinned memory, sharded
#    checkpoints, then a resume from the last of them; c) the input-pipeline and memory/checkpoint benches;
#    d) ablate plan for the Prismatic study on 8 H100s (prints the table; no GPU needed).
$PY -m pytest -q tests/train/test_scale.py tests/train/test_sharded.py tests/launch/test_multinode.py
SCALE=$(mktemp -d)
TINY="vision=tiny-clip llm=tiny-llama train=tiny data=shapes eval=shapes data.root=$SCALE/shapes data.synthetic.size=200
  recipe=two-stage-lora train.max_steps=20 train.sharding=full train.precision=bf16 train.activation_checkpointing=true
  runtime.device=cuda runtime.num_workers=2 runtime.checkpoint_format=sharded runtime.checkpoint_every=5
  runtime.runs_dir=$SCALE/runs tracking.uri=sqlite:///$SCALE/mlflow.db tracking.artifact_root=$SCALE/art runtime.progress=false"
# shellcheck disable=SC2086
$PY -m torch.distributed.run --standalone --nproc_per_node=1 -m ablate.cli train $TINY
# shellcheck disable=SC2086
$PY -m torch.distributed.run --standalone --nproc_per_node=1 -m ablate.cli train $TINY  # resumes: nothing left to train
$PY bench/dataloader.py
$PY bench/memory.py
$PY bench/checkpoint.py
$PY -m ablate.cli plan sweeps/prismatic --gpus 8 --gpu h100-80gb || true  # exit 1 = some point does not fit

"""Eval throughput: examples/s of batched (16, left-padded) vs batch-1 greedy decoding, same model + examples.

Builds the tiny random-init VLM of the given overrides, writes the synthetic shapes benchmarks to a temp
folder, and times ``ablate.eval.runner.run_model`` on the first N VQAv2 questions at batch size 1 and 16.
Prints both rates, their ratio, and how many outputs agree between the two (left padding must not change
greedy outputs).  Usage:

    OMP_NUM_THREADS=2 .venv/bin/python bench/eval_throughput.py [--n 64] [--max-new-tokens 16] [overrides...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from ablate.design import compose
from ablate.eval.benchmarks import get_benchmark
from ablate.eval.runner import run_model
from ablate.models.vlm import build_vlm
from ablate.shapes.world import write_world

TINY = ["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64, help="number of VQAv2 examples")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("overrides", nargs="*", help=f"Hydra overrides (default: {' '.join(TINY)})")
    args = p.parse_args()

    torch.manual_seed(0)
    cfg = compose(args.overrides or TINY)
    model = build_vlm(cfg).to(args.device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        write_world(tmp, size=8, seed=0)
        bench = get_benchmark("vqav2", f"{tmp}/eval")
        examples = bench.load()
        examples = (examples * (args.n // len(examples) + 1))[: args.n]
        run_model(model, bench, examples[:2], batch_size=2, max_new_tokens=2, progress=False)  # warm-up
        rates, outputs = {}, {}
        for bs in (1, args.batch_size):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            outputs[bs] = run_model(model, bench, examples, batch_size=bs, max_new_tokens=args.max_new_tokens,
                                    progress=False)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rates[bs] = len(examples) / (time.perf_counter() - t0)
    agree = sum(a == b for a, b in zip(outputs[1], outputs[args.batch_size], strict=True))
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; model: {' '.join(args.overrides or TINY)}; {len(examples)} VQAv2 examples, "
          f"max_new_tokens={args.max_new_tokens}, greedy")
    print(f"batch 1:  {rates[1]:8.2f} examples/s")
    print(f"batch {args.batch_size}: {rates[args.batch_size]:8.2f} examples/s")
    print(f"ratio batched/batch-1: {rates[args.batch_size] / rates[1]:.2f}x")
    print(f"outputs identical batched vs batch-1: {agree}/{len(examples)}")


if __name__ == "__main__":
    main()

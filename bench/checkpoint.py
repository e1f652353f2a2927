"""Save + load seconds and per-rank peak extra memory of a training checkpoint (model + AdamW state + RNG +
meta), sharded (``ablate.train.sharded``: every rank writes/reads its own shards) vs full
(``ablate.train.checkpoint``: gathered to rank 0, one file), world size 2 (gloo, CPU).

The model is an HF Llama (d 1024, 12 layers, vocab 32000: ~0.22B parameters; weights + Adam moments are
~2.6 GB in fp32), FSDP2-sharded per decoder layer, after one optimizer step.  "Extra memory" is the peak RSS
during the operation (sampled every 5 ms) minus the RSS before it.

    python bench/checkpoint.py [--layers 12]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Peak:
    """Peak RSS above the value at entry, sampled in a thread."""

    def __enter__(self) -> Peak:
        self.base = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.tic = time.perf_counter()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.tic
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())
        self.extra = self.peak - self.base


def rank_main(args: argparse.Namespace) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ablate.train import checkpoint, sharded

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=args.layers,
                         num_attention_heads=16, num_key_value_heads=16, vocab_size=32000)
    model = LlamaForCausalLM(config)
    mesh = init_device_mesh("cpu", (world,))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
    ids = torch.randint(0, 32000, (1, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save, load = (sharded.save, sharded.load) if args.format == "sharded" else (checkpoint.save, checkpoint.load)
    root = Path(args.root)
    with Peak() as s:
        path = save(root, 1, model=model, optimizer=opt, scheduler=sched, meta={"stage_step": 1})
    with Peak() as ld:
        load(path, model=model, optimizer=opt, scheduler=sched)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
    print(json.dumps({"rank": rank, "save_s": s.seconds, "save_extra_mb": s.extra, "load_s": ld.seconds,
                      "load_extra_mb": ld.extra, "size_mb": size}), flush=True)
    torch.distributed.destroy_process_group()


def run(args: argparse.Namespace, fmt: str, root: Path) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    cmd = [sys.executable, __file__, "--rank-main", "--format", fmt, "--root", str(root), "--layers", str(args.layers)]
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, text=True) for r in range(2)]
    out = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a rank failed ({fmt})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--format", default="sharded")
    parser.add_argument("--root", default="")
    parser.add_argument("--rank-main", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_main:
        rank_main(args)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("full", "sharded"):
            results[fmt] = run(args, fmt, Path(tmp) / fmt)
    print(f"load average {os.getloadavg()[0]:.2f}")
    for fmt, ranks in results.items():
        for r in ranks:
            print(f"{fmt:>7} rank {r['rank']}: save {r['save_s']:.2f} s (+{r['save_extra_mb']:.0f} MB), load "
                  f"{r['load_s']:.2f} s (+{r['load_extra_mb']:.0f} MB), checkpoint {r['size_mb']:.0f} MB")
    full, shard = results["full"], results["sharded"]
    worst = {f: max(r["save_s"] + r["load_s"] for r in results[f]) for f in results}
    mem = {f: max(max(r["save_extra_mb"], r["load_extra_mb"]) for r in results[f]) for f in results}
    print(f"save+load: sharded {worst['sharded']:.2f} s vs full {worst['full']:.2f} s "
          f"(ratio {worst['sharded'] / worst['full']:.2f}); peak extra memory of the worst rank: sharded "
          f"{mem['sharded']:.0f} MB vs full {mem['full']:.0f} MB (ratio {mem['sharded'] / max(mem['full'], 1):.2f})")
    del full, shard


if __name__ == "__main__":
    main()

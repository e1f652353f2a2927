"""Peak host RSS per rank when building, sharding and loading a ~0.5B-parameter model saved as safetensors:
world size 2 vs 1 (gloo, CPU).  Goal: ratio <= 0.6.

What each rank does is what ``ablate.train.materialize`` does for a stage: build the skeleton on the meta
device (``strategy.meta_parameters``), ``fully_shard`` each decoder layer and the root, allocate only its
shards (``strategy.materialize``) and read only its slices of the safetensors file
(``sharded.load_weights``: DCP's HuggingFaceStorageReader plans, ``sharded.SliceReader`` reads each slice
with plain file reads straight into the shard; the file is never mapped whole).  The model is an HF Llama
(d 1024, 32 layers, vocab 32000: ~0.47B parameters, 1.9 GB in fp32), written once by a separate process.

    python bench/memory.py [--layers 32] [--hidden 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    """VmHWM: this process's peak RSS (ru_maxrss would include the parent's peak from before the exec)."""
    return _status_mb("VmHWM")


def _config(args: argparse.Namespace):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=args.hidden, intermediate_size=int(args.hidden * 2.75), num_hidden_layers=args.layers,
                       num_attention_heads=16, num_key_value_heads=16, vocab_size=32000, tie_word_embeddings=False)


def write_model(args: argparse.Namespace, folder: Path) -> int:
    import torch
    from safetensors.torch import save_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(_config(args))
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / "model.safetensors"))
    return sum(p.numel() for p in model.parameters())


def rank_main(args: argparse.Namespace) -> None:
    import torch
    from transformers import LlamaForCausalLM

    from ablate.train.sharded import load_weights
    from ablate.train.strategy import materialize, meta_parameters

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    base = _rss_mb()
    with meta_parameters():
        model = LlamaForCausalLM(_config(args))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    phases = {"skeleton+shard": _peak_mb()}
    materialize(model, torch.device("cpu"))
    phases["materialize"] = _peak_mb()
    load_weights(args.folder, model)
    peak = phases["load"] = _peak_mb()
    print(json.dumps(phases), file=sys.stderr)
    probe = model.model.layers[0].mlp.up_proj.weight.full_tensor()[0, :4].tolist()
    print(json.dumps({"rank": rank, "world": world, "base_mb": base, "peak_mb": peak, "probe": probe}), flush=True)
    torch.distributed.destroy_process_group()


def run_world(args: argparse.Namespace, world: int) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "WORLD_SIZE": str(world)}
    cmd = [sys.executable, __file__, "--rank-main", "--folder", str(args.folder), "--layers", str(args.layers),
           "--hidden", str(args.hidden)]
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, text=True)
             for r in range(world)]
    out = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a rank failed at world size {world}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--rank-main", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_main:
        rank_main(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder is None:
            args.folder = Path(tmp) / "model"
        n = write_model(args, args.folder) if not (args.folder / "model.safetensors").exists() else None
        size_mb = (args.folder / "model.safetensors").stat().st_size / 2**20
        one, two = run_world(args, 1), run_world(args, 2)
    assert one[0]["probe"] == two[0]["probe"] == two[1]["probe"], "sharded load read other values"
    peak1 = one[0]["peak_mb"]
    peak2 = max(r["peak_mb"] for r in two)
    above1 = peak1 - one[0]["base_mb"]
    above2 = max(r["peak_mb"] - r["base_mb"] for r in two)
    print(f"model: {n or '?'} parameters, {size_mb:.0f} MB safetensors (fp32)")
    print(f"world 1: peak RSS {peak1:.0f} MB ({above1:.0f} MB above the {one[0]['base_mb']:.0f} MB after imports)")
    for r in two:
        print(f"world 2 rank {r['rank']}: peak RSS {r['peak_mb']:.0f} MB ({r['peak_mb'] - r['base_mb']:.0f} MB above "
              f"{r['base_mb']:.0f} MB)")
    print(f"ratio (max rank, world 2 / world 1): {peak2 / peak1:.2f} peak RSS, {above2 / above1:.2f} above imports "
          "(goal <= 0.6)")
    base = max(one[0]["base_mb"], *(r["base_mb"] for r in two))
    print(f"floor: every process holds {base:.0f} MB before any weight (torch, transformers, gloo); with the model's "
          f"{above1:.0f} MB split exactly in two the absolute ratio would be {(base + above1 / 2) / (base + above1):.2f}"
          f" (<= 0.6 needs a model of >= {4 * base:.0f} MB at this baseline)")


if __name__ == "__main__":
    main()

"""How much of the finetuning data must be presence questions for a tiny VLM to look at its image?

Why it exists: the demo's baseline finetunes on ``presence.json`` (``data=shapes-presence``) instead of the
general task mix (``instruct.json``, ``data=shapes``), because on the mix the tiny models answer POPE from priors.
This measures that choice: for each share of presence records (the rest drawn from the general mix, same number
of records in all), it trains the demo's baseline (pretrained tiny-clip + tiny-llama, mlp, letterbox,
single-stage) through ``ablate train`` and evaluates POPE through ``ablate eval``, printing POPE accuracy and
the AUC of P(yes) on the random split (0.5 = the image is not used).

    .venv/bin/python bench/presence_mix.py --world demo/data/shapes-2000 --pretrained demo/pretrained-full
    .venv/bin/python bench/presence_mix.py --world ... --pretrained ... --shares 1,0.8 --seeds 7,8 --image resize-crop
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import mannwhitneyu

ABLATE = [sys.executable, "-m", "ablate.cli"]


def mixed_records(world: Path, share: float, seed: int = 0) -> list[dict]:
    """``len(presence.json)`` records: ``share`` of them presence records, the rest general-mix records."""
    presence = json.loads((world / "presence.json").read_text())
    general = json.loads((world / "instruct.json").read_text())
    rng = random.Random(seed)
    k = round(share * len(presence))
    out = rng.sample(presence, k) + [rng.choice(general) for _ in range(len(presence) - k)]
    rng.shuffle(out)
    return out


def pope_figures(run_dir: Path) -> tuple[float, float]:
    """(POPE accuracy over all splits, AUC of P(yes) between yes and no questions on the random split)."""
    rows = [json.loads(line) for line in (run_dir / "examples" / "pope.jsonl").read_text().splitlines()]
    random_split = [r for r in rows if r["split"] == "random"]
    yes = [r["option_probs"][0] for r in random_split if r["gold"] == "Yes"]
    no = [r["option_probs"][0] for r in random_split if r["gold"] == "No"]
    auc = mannwhitneyu(yes, no).statistic / (len(yes) * len(no))
    return sum(r["score"] for r in rows) / len(rows), float(auc)


def train_and_eval(world: Path, pretrained: Path, records: Path, seed: int, image: str, epochs: float,
                   work: Path) -> Path:
    overrides = ["vision=tiny-clip", "llm=tiny-llama", "projector=mlp", f"image={image}", "recipe=single-stage",
                 "data=shapes-presence", "train=tiny", "eval=shapes", f"data.root={world}",
                 f"data.finetune=[{{name:mix,json:{records},images:{world / 'images'}}}]",
                 f"vision.weights_dir={pretrained}", f"llm.path={pretrained / 'tiny-llama'}", "llm.random_init=null",
                 f"train.seed={seed}", f"train.epochs={epochs}", f"runtime.runs_dir={work / 'runs'}",
                 f"tracking.uri=sqlite:///{work / 'mlflow.db'}", f"tracking.artifact_root={work / 'artifacts'}",
                 "runtime.progress=false"]
    out = subprocess.run([*ABLATE, "train", *overrides], capture_output=True, text=True, check=True).stdout
    run_dir = Path(next(line.split(" -> ")[1] for line in out.splitlines() if line.startswith("run ")))
    subprocess.run([*ABLATE, "eval", str(run_dir), "--benchmarks", "pope", f"eval.root={world / 'eval'}"],
                   capture_output=True, text=True, check=True)
    return run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, help="a shapes world (default: the full demo's, demo/data/shapes-2000)")
    p.add_argument("--pretrained", type=Path, help="ablate demo's pretrained folder (default: demo/pretrained-full)")
    p.add_argument("--shares", default="1,0.8,0.5", help="comma-separated shares of presence records")
    p.add_argument("--seeds", default="7,8")
    p.add_argument("--image", default="letterbox")
    p.add_argument("--epochs", type=float, default=2.0)
    args = p.parse_args()
    defaults = args.world is None and args.pretrained is None
    args.world = args.world or Path("demo/data/shapes-2000")
    args.pretrained = args.pretrained or Path("demo/pretrained-full")
    for path in (args.world / "presence.json", args.world / "instruct.json", args.pretrained / "DONE"):
        if not path.exists():
            message = (f"{path}: missing; expected a shapes world with presence.json and the pretrained tiny "
                       "components (`make demo` writes both under demo/)")
            if defaults:  # `make bench` on a machine without the demo: say so, do not fail the other benches
                print(f"skipped: {message}")
                return
            sys.exit(message)
    print("share  seed  POPE acc  random-split AUC  (chance 0.5 / 0.5)")
    with tempfile.TemporaryDirectory() as tmp:
        for share in (float(s) for s in args.shares.split(",")):
            records = Path(tmp) / f"mix-{share}.json"
            records.write_text(json.dumps(mixed_records(args.world, share)))
            for seed in (int(s) for s in args.seeds.split(",")):
                t0 = time.perf_counter()
                run_dir = train_and_eval(args.world.resolve(), args.pretrained.resolve(), records, seed,
                                         args.image, args.epochs, Path(tmp) / f"{share}-{seed}")
                acc, auc = pope_figures(run_dir)
                print(f"{share:5.2f}  {seed:4d}  {acc:8.3f}  {auc:16.3f}  ({time.perf_counter() - t0:.0f} s)",
                      flush=True)


if __name__ == "__main__":
    main()

"""How much of the finetuning data must be presence questions for a tiny VLM to look at its image?

Why it exists: the demo's baseline finetunes on ``presence.json`` (``data=shapes-presence``) instead of the
general task mix (``instruct.json``, ``data=shapes``), because on the mix the tiny models answer POPE from priors.
This measures that choice: for each share of presence records (the rest drawn from the general mix, same number
of records in all), it trains the demo's baseline point (sweeps/demo.yaml, with ``ablate demo``'s overrides: its
world, its pretrained tiny components, its epochs) through ``ablate train`` and evaluates POPE through
``ablate eval``, printing POPE accuracy and the AUC of P(yes) on the random split (0.5 = the image is not used).

    .venv/bin/python bench/presence_mix.py                      # on the folder `make demo` wrote (demo/)
    .venv/bin/python bench/presence_mix.py --demo DIR --shares 1,0.8 --seeds 7,8 --image resize-crop
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

from ablate.design import compose, load_study
from ablate.shapes.demo import DEMO_STUDY, demo_overrides, pretrained_dir, tower_overrides, world_dir

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


def _key(override: str) -> str:
    return override.split("=", 1)[0]


def train_and_eval(demo: Path, records: Path, seed: int, image: str, work: Path) -> Path:
    """Train the demo's baseline point (its image level swapped for ``image``) on ``records``; evaluate POPE."""
    world = world_dir(demo, "full")
    own = {"image": image, "train.seed": str(seed), "runtime.runs_dir": str(work / "runs"),
           "tracking.uri": f"sqlite:///{work / 'mlflow.db'}", "tracking.artifact_root": str(work / "artifacts"),
           "data.finetune": f"[{{name:mix,json:{records},images:{world / 'images'}}}]"}
    baseline = {k: v for k, v in load_study(DEMO_STUDY).baseline.items() if k not in own}
    overrides = [*(f"{k}={v}" for k, v in baseline.items()),
                 *(o for o in demo_overrides(demo, "full") if _key(o) not in own), *(f"{k}={v}" for k, v in own.items()),
                 *tower_overrides(compose([f"vision={baseline['vision']}"]).vision, pretrained_dir(demo, "full"))]
    out = subprocess.run([*ABLATE, "train", *overrides], capture_output=True, text=True, check=True).stdout
    run_dir = Path(next(line.split(" -> ")[1] for line in out.splitlines() if line.startswith("run ")))
    subprocess.run([*ABLATE, "eval", str(run_dir), "--benchmarks", "pope"], capture_output=True, text=True,
                   check=True)
    return run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, help="the folder `ablate demo` (full size) wrote (default: demo)")
    p.add_argument("--shares", default="1,0.8,0.5", help="comma-separated shares of presence records")
    p.add_argument("--seeds", default="7,8")
    p.add_argument("--image", default="letterbox")
    args = p.parse_args()
    demo = (args.demo or Path("demo")).resolve()
    world = world_dir(demo, "full")
    for path in (world / "presence.json", world / "instruct.json", pretrained_dir(demo, "full") / "DONE"):
        if not path.exists():
            message = f"{path}: missing; expected the folder a full `ablate demo` wrote (`make demo`: demo/)"
            if args.demo is None:  # `make bench` on a machine without the demo: say so, do not fail the others
                print(f"skipped: {message}")
                return
            sys.exit(message)
    print("share  seed  POPE acc  random-split AUC  (chance 0.5 / 0.5)")
    with tempfile.TemporaryDirectory() as tmp:
        for share in (float(s) for s in args.shares.split(",")):
            records = Path(tmp) / f"mix-{share}.json"
            records.write_text(json.dumps(mixed_records(world, share)))
            for seed in (int(s) for s in args.seeds.split(",")):
                t0 = time.perf_counter()
                run_dir = train_and_eval(demo, records, seed, args.image, Path(tmp) / f"{share}-{seed}")
                acc, auc = pope_figures(run_dir)
                print(f"{share:5.2f}  {seed:4d}  {acc:8.3f}  {auc:16.3f}  ({time.perf_counter() - t0:.0f} s)",
                      flush=True)


if __name__ == "__main__":
    main()

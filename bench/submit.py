"""Time to submit a 1,000-point study as ONE SLURM job array (goal < 10 s), and what study expansion costs.

Two numbers, measured separately because they have different owners:
1. submission: ``ablate.launch.submit_study`` on 1,000 design points (payloads, submitit pickles, one
   ``sbatch --array``, manifest) against the local SLURM cluster.  The array is submitted held
   (``--hold``) and cancelled afterwards, so nothing runs.  The points are one composed tiny config with
   1,000 seeds (distinct run_keys), so this number excludes Hydra composition.
2. expansion: ``ablate.design.expand`` per point (Hydra compose + validation), timed on ``--sample`` points
   and extrapolated to 1,000 (printed as such).

Needs the local cluster (``scripts/slurm-local.sh up``; started here when run as root).  Usage:

    .venv/bin/python bench/submit.py [--points 1000] [--sample 20]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
        "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"}
LAUNCHER = ["launcher=slurm", "launcher.gpus_per_node=0", "launcher.tasks_per_node=1", "launcher.cpus_per_task=1",
            "launcher.time_min=10", "+launcher.extra.hold=true"]


def ensure_cluster() -> None:
    if shutil.which("sbatch") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0:
        return
    if os.geteuid() != 0:
        raise SystemExit("bench/submit.py: no SLURM cluster reachable; run scripts/slurm-local.sh up as root")
    subprocess.run([str(REPO / "scripts" / "slurm-local.sh"), "up"], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=20, help="points composed to time expansion")
    args = ap.parse_args()
    ensure_cluster()

    from omegaconf import OmegaConf

    from ablate.design import DesignPoint, design_key, expand, load_study, run_key
    from ablate.launch import submit_study

    with tempfile.TemporaryDirectory(prefix="ablate-bench-submit-") as tmp:
        os.chdir(tmp)
        study_file = Path(tmp) / "bench.yaml"
        study_file.write_text(yaml.safe_dump({"study": "bench-submit", "mode": "points", "baseline": TINY,
                                              "points": {"base": {}}, "seeds": list(range(args.sample))}))
        study = load_study(study_file)
        t = time.perf_counter()
        sample = expand(study, LAUNCHER)
        per_point = (time.perf_counter() - t) / len(sample)

        base = sample[0]
        points = []
        for seed in range(args.points):
            cfg = copy.deepcopy(base.config)
            OmegaConf.update(cfg, "train.seed", seed)
            points.append(DesignPoint(name="base", axes=base.axes, seed=seed, overrides=base.overrides, config=cfg,
                                      run_key=run_key(cfg), design_key=design_key(cfg)))
        t = time.perf_counter()
        sub = submit_study(study, points, Path(tmp) / "studies")
        submit_s = time.perf_counter() - t
        array_ids = sorted({j.split("_")[0] for j in sub.job_ids})
        subprocess.run(["scancel", *array_ids], check=False)

    print(f"submit {len(sub.job_ids)} points as {len(array_ids)} job array(s): {submit_s:.2f} s "
          f"(goal < 10 s) {'OK' if submit_s < 10 and len(array_ids) == 1 else 'SLOW'}")
    print(f"expand (Hydra compose + validate): {per_point * 1000:.0f} ms/point over {len(sample)} points "
          f"-> {per_point * args.points:.0f} s for {args.points} points (extrapolated)")


if __name__ == "__main__":
    main()

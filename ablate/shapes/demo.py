"""`ablate demo`: the whole ablation study of sweeps/demo.yaml on a laptop, end to end.

Generates the synthetic shapes world (once), launches every design point with the local executor (runs that
are DONE are skipped, partial ones resume from their checkpoints), shows progress (runs done / total and the
current stage of each running run), collects the results, writes the report, and prints a summary table:
axis, levels, effect, CI, p and adjusted p.  Everything lives under one folder (``--out``, default ``demo``):
``data/``, ``runs/``, ``studies/``, ``mlflow.db``, ``report/``.  Ctrl-C cancels the running jobs; finished
runs stay finished, and the next ``ablate demo`` picks up where this one stopped.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ablate.rundir import PROGRESS, is_done, progress_line

DEMO_STUDY = Path(__file__).resolve().parents[2] / "sweeps" / "demo.yaml"

# Per size: the shapes world's size, overrides applied to every point, and how many seeds of the study to run.
# (full: < 12 min on 2 cores with the base-vs-chat axis; where the time went before and after: README.md)
SIZES: dict[str, dict[str, Any]] = {
    "full": {"world": 2000, "seeds": None,
             "pretrain": {"vision_steps": 600, "llm_steps": 800, "chat_steps": 200}, "overrides": [
                 "train.epochs=1.5", "eval.limit=null", "eval.max_new_tokens=32",
                 "eval.benchmarks=[pope,vqav2,chair,lrv-neg]"]},
    "small": {"world": 240, "seeds": 1, "pretrain": {"vision_steps": 20, "llm_steps": 20, "chat_steps": 10},
              "overrides": ["train.max_steps=12", "eval.limit=24", "eval.max_new_tokens=12",
                            "eval.benchmarks=[pope,vqav2,tallyqa,chair,lrv-neg]"]},
}
LLMS = ("tiny-llama", "tiny-llama-chat")  # the base LM and its chat variant (ablate.shapes.chat)


def demo_overrides(out: Path, size: str) -> list[str]:
    """Overrides that put data, runs and tracking under `out`, start every point from the pretrained tiny LM in
    `out/pretrained-<size>` (as Prismatic starts from pretrained backbones; the towers: `start_from_pretrained`),
    and size the study."""
    data = world_dir(out, size)
    pretrained = pretrained_dir(out, size)
    return [
        f"data.root={data}", f"data.synthetic.size={SIZES[size]['world']}", f"eval.root={data / 'eval'}",
        # the chat level's llm.path: start_llms_from_pretrained
        f"llm.path={pretrained / 'tiny-llama'}", "llm.random_init=null",
        f"runtime.runs_dir={out / 'runs'}", f"tracking.uri=sqlite:///{out / 'mlflow.db'}",
        f"tracking.artifact_root={out / 'mlflow-artifacts'}", "launcher=local", "runtime.progress=false",
        *SIZES[size]["overrides"],
    ]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def pretrained_dir(out: Path, size: str) -> Path:
    return out / f"pretrained-{size}"


def world_dir(out: Path, size: str) -> Path:
    """Where the demo of ``size`` keeps its shapes world."""
    return out / "data" / f"shapes-{SIZES[size]['world']}"


def start_from_pretrained(points: list[Any], pretrained: Path) -> list[Any]:
    """Every branch of every point loads its pretrained tower (``path`` = ``<pretrained>/<arch>.safetensors``,
    as ``ablate.shapes.pretrain`` saves them) under the weights tag ``pretrained-<size>``, which enters the run
    identity as a real backbone's tag does (the path does not); run keys are recomputed."""
    from omegaconf import OmegaConf

    from ablate.design import design_key, run_key

    for p in points:
        for ov in tower_overrides(p.config.vision, pretrained):
            key, _, value = ov.partition("=")
            OmegaConf.update(p.config, key, value)
        p.run_key, p.design_key = run_key(p.config), design_key(p.config)
    return points


def tower_overrides(vision_cfg: Any, pretrained: Path) -> list[str]:
    """The overrides that start the branches of ``vision_cfg`` from the towers pretrained into ``pretrained``."""
    return [ov for i, b in enumerate(vision_cfg.backbones)
            for ov in (f"vision.backbones.{i}.path={pretrained / f'{b.arch}.safetensors'}",
                       f"vision.backbones.{i}.pretrained={pretrained.name}")]


def ensure_demo_pretrained(points: list[Any], out: Path, size: str) -> Path:
    """Pretrain (once) the tiny vision configs and the tiny LM the study's points start from."""
    from ablate.design import compose
    from ablate.shapes.pretrain import ensure_pretrained

    target = pretrained_dir(out, size)
    if not (target / "DONE").exists():
        print(f"pretraining the tiny vision towers and LM once, into {target}")
    vision_ids = sorted({str(p.config.vision.id) for p in points})
    llm_ids = {str(p.config.llm.id) for p in points}
    if not {"tiny-llama"} <= llm_ids <= set(LLMS):
        raise ValueError(f"demo: the study's points use llm {sorted(llm_ids)}; the demo pretrains tiny-llama and "
                         "its chat variant tiny-llama-chat only")
    steps = dict(SIZES[size]["pretrain"])
    chat = compose(["llm=tiny-llama-chat"]).llm if "tiny-llama-chat" in llm_ids else None
    return ensure_pretrained([compose([f"vision={v}"]).vision for v in vision_ids], compose(["llm=tiny-llama"]).llm,
                             target, vision_steps=steps["vision_steps"], llm_steps=steps["llm_steps"],
                             chat_cfg=chat, chat_steps=steps["chat_steps"] if chat is not None else 0)


def start_llms_from_pretrained(points: list[Any], pretrained: Path) -> list[Any]:
    """Each point's LM loads its pretrained weights: ``<pretrained>/<llm.id>`` (the base LM or its chat
    variant; a path is not part of the run identity, so run keys do not change)."""
    from omegaconf import OmegaConf

    for p in points:
        OmegaConf.update(p.config, "llm.path", str(pretrained / str(p.config.llm.id)))
    return points


def watch(jobs: list[Any], names: dict[str, str], runs_dir: Path, total: int, done_before: int,
          poll_s: float = 5.0) -> None:
    """Print runs done/total and each running run's stage until every job has ended."""
    from tqdm import tqdm

    pending = {str(j.job_id): j for j in jobs}
    keys = {str(j.job_id): k for j, k in zip(jobs, names, strict=True)}
    last = ""
    with tqdm(total=total, initial=done_before, desc="demo runs done", unit="run", file=sys.stderr) as bar:
        while pending:
            ended = [jid for jid, j in pending.items() if j.done()]
            for jid in ended:
                pending.pop(jid)
                bar.update(1)
            running = [f"{names[keys[jid]]}: {progress_line(runs_dir / keys[jid])}"
                       for jid in pending if (runs_dir / keys[jid] / PROGRESS).exists()]
            line = " | ".join(running)
            if line and line != last:
                bar.write(f"[{time.strftime('%H:%M:%S')}] {line}")
                last = line
            if pending:
                time.sleep(poll_s)


EDGE_BENCHMARKS = ("pope",)


def summary_table(tests: Any) -> Any:
    """One row per comparison: axis, levels, effect (Prismatic's pooled normalized difference) with its CI,
    p and adjusted p; and the paired bootstrap over every (seed, example) on the edge-object benchmarks."""
    import pandas as pd

    from ablate.report import BENCHMARKS_SCOPE, POOLED

    rows = []
    pooled = tests[(tests["scope"] == BENCHMARKS_SCOPE) & (tests["method"] == "prismatic-t")]
    per_example = tests[(tests["scope"] == POOLED) & tests["method"].astype(str).str.startswith("bootstrap")]
    for r in pooled.itertuples():
        row = {"axis": r.axis, "levels": r.level, "effect": r.effect, "ci_low": r.ci_low, "ci_high": r.ci_high,
               "p": r.pvalue, "p_adj": r.p_adj}
        for bench in EDGE_BENCHMARKS:
            hit = per_example[(per_example["comparison"] == r.comparison) & (per_example["benchmark"] == bench)]
            if len(hit):
                row[f"{bench} delta"] = float(hit["effect"].iloc[0])
                row[f"{bench} p_adj"] = float(hit["p_adj"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def run_demo(size: str = "full", out: str | Path = "demo", launcher: str = "local",
             study_file: str | Path = DEMO_STUDY) -> int:
    from ablate.design import expand, load_study
    from ablate.launch import submit_study
    from ablate.report import write_report
    from ablate.results import collect
    from ablate.shapes.world import crop_cut_fraction, format_crop_cut, write_world

    out = Path(out).resolve()
    t0 = time.perf_counter()
    overrides = demo_overrides(out, size)
    if launcher != "local":
        overrides = [o for o in overrides if not o.startswith("launcher=")] + [f"launcher={launcher}"]
    study = load_study(study_file)  # sweeps/demo.yaml (a part of it: the same runs, e.g. one axis)
    if SIZES[size]["seeds"]:
        study.seeds = study.seeds[: SIZES[size]["seeds"]]
    points = start_llms_from_pretrained(start_from_pretrained(expand(study, overrides), pretrained_dir(out, size)),
                                        pretrained_dir(out, size))
    data_root = Path(points[0].config.data.root)
    clock = {"start": time.perf_counter()}
    if not (data_root / "instruct.json").exists():
        print(f"generating the shapes world ({SIZES[size]['world']} images) in {data_root}")
        write_world(data_root, SIZES[size]["world"], int(points[0].config.data.synthetic.seed), progress=True)
    print(format_crop_cut(crop_cut_fraction(data_root / "eval")))
    clock["world"] = time.perf_counter()
    ensure_demo_pretrained(points, out, size)
    clock["pretraining"] = time.perf_counter()

    studies_dir = out / "studies"
    sub = submit_study(study, points, studies_dir)
    runs_dir = Path(points[0].config.runtime.runs_dir)
    n_unique = len({p.run_key for p in points})
    print(f"study {study.name}: {n_unique} runs, {len(sub.skipped_done)} already done, "
          f"{len(sub.submitted)} submitted ({launcher}); logs in {sub.folder}")
    names = {p.run_key: f"{p.name}/s{p.seed}" for p in points}
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cancels the local jobs as Ctrl-C does
    try:
        watch(sub.jobs, {k: names[k] for k in sub.submitted}, runs_dir, n_unique, len(sub.skipped_done))
    except KeyboardInterrupt:
        for j in sub.jobs:
            j.cancel(check=False)
        print("\ninterrupted: running jobs cancelled; finished runs are kept. Run `ablate demo` again to resume.",
              file=sys.stderr)
        return 130
    failed = [k for k in sub.submitted if not is_done(runs_dir / k)]
    if failed:
        print(f"{len(failed)} runs failed; see `ablate status {study.name} --studies-dir {studies_dir}`",
              file=sys.stderr)
        return 1

    clock["runs"] = time.perf_counter()
    results = collect(study.name, studies_dir=studies_dir)
    report = write_report(results, out / "report")
    import pandas as pd

    table = summary_table(report.tests)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print("\nDesign decisions: effect = mean normalized difference over benchmarks (Prismatic test, t-CI); "
              "edge benchmarks: paired bootstrap over seeds x examples; p_adj = Holm across comparisons")
        print(table.to_string(index=False))
        hall = hallucination_table(pd.read_csv(report.paths["hallucination"]))
        if len(hall):
            print("\nBase vs chat LM, hallucination and verbosity (paired per seed x example; alt - base; p_adj = "
                  "Holm over the report's hallucination section, every comparison in report/hallucination.csv): "
                  "CHAIR_s/CHAIR_i per caption, words per generated answer (Wilcoxon), negative-instruction "
                  "accuracy (lrv-neg, McNemar)")
            print(hall.to_string(index=False))
    clock["report"] = time.perf_counter()
    print(f"\nreport: {report.paths['html']}")
    parts = ", ".join(f"{k} {clock[k] - clock[p]:.0f} s" for p, k in zip(list(clock)[:-1], list(clock)[1:],
                                                                          strict=True))
    print(f"demo finished in {time.perf_counter() - t0:.0f} s ({parts})")
    return 0


HALLUCINATION_MEASURES = ("CHAIR_s", "CHAIR_i", "words per answer", "negative-instruction accuracy")


def hallucination_table(rows: Any) -> Any:
    """The printed rows of the report's hallucination section: the base-vs-chat (llm axis) comparison (every
    comparison's rows are in report/hallucination.csv and the report)."""
    rows = rows[rows["measure"].isin(HALLUCINATION_MEASURES) & (rows["axis"] == "llm")]
    return rows[["comparison", "measure", "base_mean", "alt_mean", "effect", "pvalue", "p_adj", "n"]].rename(
        columns={"base_mean": "base", "alt_mean": "alt", "pvalue": "p"})


def cli_demo(args: argparse.Namespace) -> int:
    return run_demo(args.size, args.out, args.launcher, getattr(args, "study", None) or DEMO_STUDY)

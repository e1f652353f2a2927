"""The `ablate` console script.

Parsing only: every subcommand's work lives in the module that owns it and is imported lazily, so
`ablate --help` and `ablate sweep STUDY --dry-run` never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "demo": "ablate.shapes.demo:cli_demo",
    "sweep": "ablate.launch:cli_sweep",
    "status": "ablate.launch:cli_status",
    "collect": "ablate.results:cli_collect",
    "report": "ablate.report:cli_report",
    "train": "ablate.train.loop:cli_train",
    "eval": "ablate.eval.runner:cli_eval",
    "data synth": "ablate.shapes.world:cli_synth",
    "data check": "ablate.data.check:cli_check",
    "data prepare": "ablate.data.prepare:cli_prepare",
    "describe": "ablate.describe:cli_describe",
    "export": "ablate.export:cli_export",
    "plan": "ablate.plan:cli_plan",
    "score": "ablate.eval.reference:cli_score",
    "list": "ablate.registry:cli_list",
}


def _parser() -> argparse.ArgumentParser:
    from ablate.export import FORMATS as EXPORT_FORMATS  # a plain dict (no torch)

    p = argparse.ArgumentParser(prog="ablate", description="Design-space ablation studies of vision-language models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="run the laptop demo study end to end (synthetic data, tiny models)")
    d.add_argument("--size", choices=("small", "full"), default="full", help="small = the CI-sized demo")
    d.add_argument("--out", default="demo", help="folder for data, runs, MLflow store and report")
    d.add_argument("--launcher", choices=("local", "slurm", "debug"), default="local")

    s = sub.add_parser("sweep", help="expand a study and submit its runs (returns once submitted)")
    s.add_argument("study", help="a study file, or a folder of study files")
    s.add_argument("overrides", nargs="*", help="Hydra overrides applied to every point (a=x,y adds an axis)")
    s.add_argument("--dry-run", action="store_true", help="print the design points and their count; submit nothing")
    s.add_argument("--launcher", choices=("local", "slurm", "debug"), help="override launcher=")
    s.add_argument("--wait", action="store_true", help="block until every submitted run has finished")
    s.add_argument("--studies-dir", default="studies", help="where study manifests and submitit logs go")

    st = sub.add_parser("status", help="state of every run of a study (SLURM accounting + run directories)")
    st.add_argument("study")
    st.add_argument("--studies-dir", default="studies")
    st.add_argument("--watch", type=float, default=0, help="refresh every N seconds until all runs end")

    c = sub.add_parser("collect", help="read MLflow + run directories into tidy parquet tables")
    c.add_argument("study")
    c.add_argument("--out", help="folder for runs/scores/examples parquet (default: studies/<study>/tables)")
    c.add_argument("--studies-dir", default="studies")
    c.add_argument("--allow-mixed-benchmarks", action="store_true",
                   help="keep going when runs were scored on different versions (fingerprints) of a benchmark")

    r = sub.add_parser("report", help="CSV tables, plots and an HTML/Markdown report of a study")
    r.add_argument("study")
    r.add_argument("--out", required=True, help="report folder")
    r.add_argument("--studies-dir", default="studies")
    r.add_argument("--correction", choices=("holm", "fdr_bh"), default="holm")
    r.add_argument("--allow-mixed-benchmarks", action="store_true",
                   help="report even when runs were scored on different versions (fingerprints) of a benchmark")

    t = sub.add_parser("train", help="train one design point locally into runs/<run_key>/")
    t.add_argument("overrides", nargs="*", help="Hydra overrides")
    t.add_argument("--wait", action="store_true",
                   help="if another process is training the same run, wait for it instead of exiting")

    pl = sub.add_parser("plan", help="parameters, memory per GPU, FLOPs and GPU-hours of a study's points")
    pl.add_argument("target", nargs="*", help="a study file/folder (then overrides), or Hydra overrides")
    pl.add_argument("--gpus", type=int, default=8, help="GPUs per run (FSDP ranks)")
    pl.add_argument("--gpu", choices=["a100-80gb", "h100-80gb"], default="a100-80gb")
    pl.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilization to assume")
    pl.add_argument("--examples", type=int, help="examples per split when the data mix's size is unknown")

    e = sub.add_parser("eval", help="evaluate a run directory or checkpoint on benchmarks")
    e.add_argument("target", help="runs/<run_key> or a model directory")
    e.add_argument("--benchmarks", help="comma-separated benchmark ids (default: the run's eval config)")
    e.add_argument("--limit", type=int, help="fixed-seed subset size per benchmark")
    e.add_argument("overrides", nargs="*", help="Hydra overrides of the eval group (e.g. eval.root=...)")

    sc = sub.add_parser("score", help="score a published model's released outputs into a reference run directory")
    sc.add_argument("benchmark", help="benchmark id (e.g. pope)")
    sc.add_argument("--predictions", required=True, help="the released outputs file (JSON lines)")
    sc.add_argument("--format", required=True, choices=("ablate", "llava", "lmms-eval"),
                    help="llava = model_vqa answers (needs --questions); lmms-eval = --log_samples jsonl")
    sc.add_argument("--name", required=True, help="the reference model's label (its point name in reports)")
    sc.add_argument("--questions", help="llava: the LLaVA question file the answers answered (joined by question_id)")
    sc.add_argument("--root", default="data/eval", help="benchmark data root (eval.root)")
    sc.add_argument("--out", help="reference run directory (default: references/<name>)")
    sc.add_argument("--study", help="also add the reference to this study (studies/<study>/references.json)")
    sc.add_argument("--studies-dir", default="studies")

    de = sub.add_parser("describe", help="each component of a design point (or study) as built, on the meta device")
    de.add_argument("overrides", nargs="*", help="Hydra overrides (of the point, or of every study point)")
    de.add_argument("--study", help="a study file or folder: describe every unique run")
    de.add_argument("--json", action="store_true", help="print the facts as JSON")

    x = sub.add_parser("export", help="write a trained run as a transformers model folder (hf-llava)")
    x.add_argument("run", help="runs/<run_key> (its model/ folder is exported)")
    x.add_argument("--format", required=True, choices=sorted(EXPORT_FORMATS), help="hf-llava = LlavaForConditionalGeneration")
    x.add_argument("--out", required=True, help="new or empty folder, or an earlier export (replaced)")
    x.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="weights dtype (auto = the dtype the run saved)")
    x.add_argument("--no-verify", action="store_true", help="skip the logits check against ablate on a probe")

    ls = sub.add_parser("list", help="the registered IDs of a component family (built in and from plug-ins)")
    ls.add_argument("family", nargs="?", help="vision-families, vision-archs, projectors, image-transforms, "
                    "prompt-formats, tokenizers, benchmarks or executors (default: all)")
    ls.add_argument("overrides", nargs="*", help="plugins=[module,...]: plug-ins to load first")

    da = sub.add_parser("data", help="prepare the official downloads, synthetic data, data checks")
    dsub = da.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    ds = dsub.add_parser("synth", help="write the synthetic shapes world in the real on-disk formats")
    ds.add_argument("--out", required=True)
    ds.add_argument("--size", type=int, default=2000, help="number of training images")
    ds.add_argument("--seed", type=int, default=0)
    dp = dsub.add_parser("prepare", help="turn the official downloads into ablate's layout (links images, "
                                         "writes a manifest); --list says what each NAME expects")
    dp.add_argument("names", nargs="*", metavar="NAME", help="a benchmark family or training source (see --list)")
    dp.add_argument("--from", dest="source", help="the folder the downloads were unpacked in (searched by name)")
    dp.add_argument("--root", help="target root (default: data/eval for benchmarks, data for training sources)")
    dp.add_argument("--list", action="store_true", help="what each preparer expects under --from and writes")
    dp.add_argument("--force", action="store_true", help="rebuild even when the manifest says it is up to date")
    dc = dsub.add_parser("check", help="validate the data and benchmarks a config or study uses (or a DIR)")
    dc.add_argument("overrides", nargs="*", metavar="OVERRIDES | DIR",
                    help="Hydra overrides of the config to check (its data mix and eval.benchmarks), or one "
                         "data/eval folder (its training files and the benchmarks present there)")
    dc.add_argument("--study", help="a study file or folder: check the data and benchmarks of every point")
    dc.add_argument("--decode", choices=("sample", "all", "none"), default="sample",
                    help="training images decoded fully: a fixed-seed sample of 1000 per file (default), all, "
                         "or none (benchmark images are always decoded)")
    dc.add_argument("--max-image-pixels", type=int, default=40_000_000,
                    help="images with more pixels are reported (data.max_image_pixels; 0 = no limit)")
    return p


def _dry_run(args: argparse.Namespace) -> int:
    from ablate.design import expand, load_studies

    overrides = list(args.overrides) + ([f"launcher={args.launcher}"] if args.launcher else [])
    seen: dict[str, str] = {}
    total = 0
    for study in load_studies(args.study):
        points = expand(study, overrides, keep_config=False)
        axes = sorted({k for p in points for k in p.axes})
        print(f"study {study.name} ({study.path}, mode {study.mode}): {len(points)} points")
        header = ["run_key", "seed", "name", *axes]
        rows = [[p.run_key, str(p.seed), p.name, *(p.axes.get(a, "") for a in axes)] for p in points]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        for p in points:
            seen.setdefault(p.run_key, p.name)
        total += len(points)
        print()
    print(f"{total} design points, {len(seen)} unique runs")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Hydra overrides may follow options (`ablate sweep S --dry-run a=b`): collect them, reject anything else.
    stray = [x for x in extra if "=" not in x or x.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from ablate.config import ConfigError

    try:
        if args.command == "sweep" and args.dry_run:
            return _dry_run(args)
        key = f"data {args.data_command}" if args.command == "data" else args.command
        module, _, func = COMMANDS[key].partition(":")
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

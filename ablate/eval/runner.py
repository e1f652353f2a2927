"""Run a VLM over benchmarks: batched greedy generation (left padding) or option-probability scoring.

``evaluate`` writes one record per example to ``run_dir/examples/<benchmark>.jsonl`` (DESIGN.md §4 columns:
example_id, prediction = the raw output, parsed, parse_ok, score, correct; plus gold, split/type fields and
option probabilities; for generated answers the verbosity fields of ``ablate.eval.verbosity``), the same outputs as lmms-eval sample JSONL under ``run_dir/examples/lmms-eval/``,
logs every aggregate as ``eval/<benchmark>/<metric>`` (the parse-failure rate included) through the
tracker, and returns ``{benchmark: {metric: value}}``.  While it works it rewrites ``run_dir/progress.json``
(``phase: eval``, the benchmark, examples done/total, at most every ``PROGRESS_EVERY_S`` seconds and at each
benchmark's start and end; ``ablate status`` shows it).  ``cli_eval`` is ``ablate eval TARGET``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ablate import rundir
from ablate.distributed import is_main
from ablate.eval.benchmarks import Benchmark, BenchmarkFormatError, Example, get_benchmark
from ablate.eval.fingerprint import write_fingerprints
from ablate.eval.verbosity import verbosity_fields, verbosity_metrics

log = logging.getLogger(__name__)

LMMS_DIR = "lmms-eval"
PROGRESS_EVERY_S = 5.0


def batches(items: Sequence[Example], size: int) -> Iterator[list[Example]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def load_images(batch: Sequence[Example], benchmark_id: str) -> list[Any]:
    from ablate.data.untrusted import ImageTooLargeError, open_image

    images = []
    for ex in batch:
        try:
            images.append(open_image(ex.image))
        except ImageTooLargeError as exc:
            raise BenchmarkFormatError(f"{benchmark_id} example {ex.example_id}: {exc}") from None
        except (FileNotFoundError, OSError) as exc:
            raise BenchmarkFormatError(f"{ex.image}: {benchmark_id} example {ex.example_id}: expected a readable "
                                       f"image ({type(exc).__name__})") from None
    return images


def run_model(model: Any, bench: Benchmark, examples: Sequence[Example], *, batch_size: int,
              max_new_tokens: int, progress: bool = True,
              on_batch: Callable[[int], None] | None = None) -> list[Any]:
    """Model outputs in example order: generated strings, or option-probability lists when ``bench.mode``
    is ``prob`` (a batch shares one option list, so batches are cut where the options change).
    ``on_batch(done)`` is called after each batch with the number of examples done so far."""
    import torch
    from tqdm import tqdm

    outputs: list[Any] = []
    groups: list[list[Example]] = []
    for ex in examples:  # consecutive examples with the same options form one batching group
        if groups and (bench.mode == "generate" or groups[-1][0].options == ex.options):
            groups[-1].append(ex)
        else:
            groups.append([ex])
    bar = tqdm(total=len(examples), desc=f"eval {bench.id}", unit="ex", disable=not (progress and is_main()))
    with torch.inference_mode():
        for group in groups:
            for batch in batches(group, batch_size):
                images, prompts = load_images(batch, bench.id), [ex.prompt for ex in batch]
                if bench.mode == "prob":
                    probs = model.score_options(images, prompts, list(batch[0].options or []))
                    outputs += [[float(p) for p in row] for row in probs.float().cpu().tolist()]
                else:
                    outputs += model.generate(images, prompts, max_new_tokens=max_new_tokens)
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(len(outputs))
    bar.close()
    if len(outputs) != len(examples):
        raise RuntimeError(f"{bench.id}: model returned {len(outputs)} outputs for {len(examples)} examples")
    return outputs


# ----------------------------------------------------------------------------------------------- output
def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write atomically (``rundir.write_atomic``) so a preempted job never leaves a half file behind."""
    rundir.write_atomic(path, "".join(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n"
                                      for row in rows))


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, default=_json_default, sort_keys=True).encode()).hexdigest()


def lmms_samples(bench: Benchmark, examples: Sequence[Example], records: Sequence[dict[str, Any]]) -> list[dict]:
    """lmms-eval ``--log_samples`` lines: doc_id, doc, target, arguments, resps, filtered_resps, hashes and
    the per-sample metric fields.  ``doc_id`` is the benchmark's own example id (lmms-eval uses the row
    index), so samples pair across runs by it."""
    rows = []
    for ex, rec in zip(examples, records, strict=True):
        raw = rec["option_probs"] if "option_probs" in rec else rec["prediction"]
        target = ex.gold if isinstance(ex.gold, str) else json.dumps(ex.gold, default=_json_default)
        doc = {"example_id": ex.example_id, "image": str(ex.image), "prompt": ex.prompt, **ex.meta}
        arguments = [ex.prompt, ex.options] if ex.options and bench.mode == "prob" else [ex.prompt]
        rows.append({
            "doc_id": ex.example_id, "doc": doc, "target": target, "arguments": arguments,
            "resps": [[raw]], "filtered_resps": [rec["parsed"]],
            "doc_hash": _sha256(doc), "prompt_hash": _sha256(ex.prompt), "target_hash": _sha256(target),
            "score": rec["score"], "correct": rec["correct"], "parse_ok": rec["parse_ok"],
        })
    return rows


# ------------------------------------------------------------------------------------------------- API
def _progress_writer(run_dir: Path, benchmark: str, index: int, n_benchmarks: int, total: int) -> Any:
    """``report(done, force=False)``: rewrite ``progress.json`` for this benchmark (now, then at most every
    ``PROGRESS_EVERY_S`` seconds unless forced)."""
    last = [float("-inf")]

    def report(done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last[0] >= PROGRESS_EVERY_S:
            rundir.write_progress(run_dir, "eval", benchmark, done, total, benchmark=benchmark, index=index,
                                  benchmarks=n_benchmarks)
            last[0] = now

    report(0, force=True)
    return report


def evaluate(model: Any, cfg: Any, run_dir: str | Path, *, tracker: Any = None,
             benchmarks: Sequence[str] | None = None, limit: int | None = None) -> dict[str, dict[str, float]]:
    """Evaluate ``model`` on ``benchmarks`` (default ``cfg.eval.benchmarks``) with ``cfg.eval`` settings;
    ``limit`` (default ``cfg.eval.limit``) takes a fixed-seed subset (``cfg.eval.subset_seed``)."""
    ev = cfg.eval
    run_dir = Path(run_dir)
    ids = list(benchmarks) if benchmarks is not None else list(ev.benchmarks)
    limit = limit if limit is not None else ev.limit
    progress = bool(cfg.runtime.progress) if "runtime" in cfg else True
    # build every benchmark first: an unknown id fails before any model time is spent
    benches = [get_benchmark(b, ev.root, closed_set_mode=ev.closed_set) for b in ids]
    if hasattr(model, "eval"):
        model.eval()
    if hasattr(model, "inference_precision"):  # eval.precision: bf16 autocast (Prismatic) or fp32
        model.inference_precision = str(cfg.eval.get("precision") or "bf16")
    scores: dict[str, dict[str, float]] = {}
    for index, bench in enumerate(benches):
        t0 = time.perf_counter()
        examples = bench.load(limit, int(ev.subset_seed))
        report = _progress_writer(run_dir, bench.id, index, len(benches), len(examples))
        outputs = run_model(model, bench, examples, batch_size=int(ev.batch_size),
                            max_new_tokens=int(ev.max_new_tokens), progress=progress, on_batch=report)
        report(len(examples), force=True)
        records = [bench.score(ex, out) for ex, out in zip(examples, outputs, strict=True)]
        if bench.mode == "generate":  # words/tokens per answer and over-length flags, per example
            tokenizer = getattr(model, "tokenizer", None)
            for ex, out, rec in zip(examples, outputs, records, strict=True):
                rec.update(verbosity_fields(ex.prompt, str(out), tokenizer))
        path = run_dir / rundir.EXAMPLES / f"{bench.id}.jsonl"
        write_jsonl(path, records)
        lmms_path = run_dir / rundir.EXAMPLES / LMMS_DIR / f"samples_{bench.id}.jsonl"
        write_jsonl(lmms_path, lmms_samples(bench, examples, records))
        metrics = {**bench.aggregate(records), **verbosity_metrics(records)}
        if bench.fingerprint:
            write_fingerprints(run_dir, {bench.id: bench.fingerprint})
        elapsed = time.perf_counter() - t0
        metrics["examples_per_s"] = len(examples) / elapsed if elapsed > 0 else float("nan")
        scores[bench.id] = metrics
        log.info("eval %s: n=%d %s parse_failure_rate=%.3f (%.1fs)", bench.id, len(examples),
                 " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("accuracy")),
                 metrics["parse_failure_rate"], elapsed)
        if tracker is not None:
            tracker.log_metrics({f"eval/{bench.id}/{k}": v for k, v in metrics.items()})
            if bench.fingerprint and hasattr(tracker, "log_params"):
                tracker.log_params({f"fingerprint.{bench.id}": bench.fingerprint})
            if hasattr(tracker, "log_artifact"):
                tracker.log_artifact(path, "examples")
    return scores


# ------------------------------------------------------------------------------------------------- CLI
def apply_overrides(cfg: Any, overrides: Sequence[str]) -> Any:
    """``eval=<option>`` swaps in conf/eval/<option>.yaml; ``a.b=v`` sets a value (``design.apply_values``,
    the same override path as ``compose``)."""
    from omegaconf import OmegaConf

    from ablate.config import ConfigError
    from ablate.design import apply_values
    from ablate.registry import group_files

    dotlist = []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if not sep:
            raise ConfigError(f"override {ov!r}: expected key=value")
        if key == "eval":
            options = group_files("eval")
            if value not in options:
                raise ConfigError(f"eval: invalid value {value!r}; allowed: {', '.join(options)}")
            path = options[value]
            cfg.eval = OmegaConf.merge(cfg.eval, OmegaConf.load(path))
        else:
            dotlist.append(ov)
    try:
        return apply_values(cfg, dotlist)
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf / grammar errors: one line naming the overrides
        raise ConfigError(f"overrides {dotlist}: {str(exc).strip().splitlines()[0]}") from None


def resolve_target(target: Path) -> tuple[Path, Path, Path | None]:
    """(model dir, output dir, config file) for a run dir (``runs/<key>``) or a model dir."""
    from ablate.config import ConfigError

    if (target / rundir.MODEL).is_dir():
        return target / rundir.MODEL, target, target / rundir.CONFIG
    if target.is_dir():
        config = next((p for p in (target / rundir.CONFIG, target.parent / rundir.CONFIG) if p.is_file()), None)
        return target, target / "eval", config
    raise ConfigError(f"eval target: invalid value {str(target)!r}; expected a run directory (with model/) "
                      "or a model directory written by VLM.save_pretrained")


def cli_eval(args: argparse.Namespace) -> int:
    """``ablate eval TARGET [--benchmarks a,b] [--limit N] [overrides]``."""
    from omegaconf import OmegaConf

    from ablate.design import compose
    from ablate.models.vlm import VLM
    from ablate.registry import load_plugins

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    model_dir, out_dir, config = resolve_target(Path(args.target))
    cfg = OmegaConf.load(config) if config is not None else compose([])
    load_plugins(cfg.get("plugins") or ())
    cfg = apply_overrides(cfg, list(args.overrides or []))
    benchmarks = [b for b in args.benchmarks.split(",") if b] if args.benchmarks else None
    device = cfg.runtime.device if "runtime" in cfg else "auto"
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = VLM.from_pretrained(model_dir, device=device)
    tracker = _tracker_for(out_dir, cfg)
    try:
        scores = evaluate(model, cfg, out_dir, tracker=tracker, benchmarks=benchmarks, limit=args.limit)
    finally:
        if tracker is not None:
            tracker.__exit__(None, None, None)
    for bench, metrics in scores.items():
        for metric, value in metrics.items():
            print(f"{bench}\t{metric}\t{value:.6g}")
    print(f"per-example records: {out_dir / 'examples'}")
    return 0


def _tracker_for(run_dir: Path, cfg: Any) -> Any:
    """The run's MLflow run (resumed by run_key) when ``run_dir`` is a run folder with point.json."""
    point_file = run_dir / rundir.POINT
    if not point_file.is_file() or "tracking" not in cfg:
        return None
    from ablate.track import Tracker

    point = json.loads(point_file.read_text())
    studies = point.get("studies") or [cfg.get("study", "adhoc")]
    tracker = Tracker(cfg, run_key=point["run_key"], design_key=point["design_key"], study=studies[0],
                      point_name=point.get("name", point["run_key"]))
    return tracker.__enter__()

"""Read a study's MLflow runs and run directories into the tidy tables of DESIGN.md §4.

``collect`` joins three sources: the study manifest (which points, run_keys and seeds belong to the study),
the MLflow store (tags, params ``axis.*``/``cfg.*`` cast back from strings, metrics ``eval/<bench>/<metric>``)
and ``runs/<run_key>/`` (``point.json``, ``results.json``, ``examples/<benchmark>.jsonl``, ``DONE``). Run
directories win over MLflow for scores (they carry ``n``); MLflow fills in runs whose directory is gone.
The tables are cached as parquet beside a fingerprint of the sources, so a second collect is a read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ablate import rundir
from ablate.config import ConfigError
from ablate.eval.fingerprint import read_fingerprints, refuse_mixed
from ablate.jsonfiles import iter_objects

log = logging.getLogger(__name__)

RUN_COLUMNS = ["run_key", "design_key", "study", "point", "seed", "status"]
SCORE_COLUMNS = ["run_key", "benchmark", "metric", "value", "n", "fingerprint"]
# per-example hallucination and verbosity fields (ablate.eval.verbosity / ablate.eval.chair); NaN where absent
NUMERIC_EXAMPLE_COLUMNS = ("answer_words", "answer_tokens", "over_length", "chair_i", "chair_s", "n_mentions",
                           "n_hallucinated")
EXAMPLE_COLUMNS = ["run_key", "benchmark", "example_id", "score", "correct", "prediction", "parsed", "parse_ok",
                   "fingerprint", *NUMERIC_EXAMPLE_COLUMNS]
TABLES = ("runs", "scores", "examples")
# Metric preferred as a benchmark's headline score, in order; otherwise the first metric alphabetically.
PRIMARY_METRICS = ("accuracy", "score", "acc", "f1")


@dataclass
class Results:
    """The tidy tables of one study plus its manifest (for comparisons and point names)."""

    runs: pd.DataFrame
    scores: pd.DataFrame
    examples: pd.DataFrame
    manifest: dict[str, Any]

    @property
    def axes(self) -> list[str]:
        return list(self.manifest.get("axes", []))

    @property
    def benchmarks(self) -> list[str]:
        return sorted(self.scores["benchmark"].unique()) if len(self.scores) else []

    def primary_scores(self) -> pd.DataFrame:
        """One headline score per run x benchmark: columns run_key, benchmark, metric, value, n."""
        return primary_scores(self.scores)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            getattr(self, name).to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "manifest.json").write_text(json.dumps(self.manifest, indent=1))
        return folder


def primary_scores(scores: pd.DataFrame) -> pd.DataFrame:
    def pick(metrics: pd.Series) -> str:
        names = set(metrics)
        return next((m for m in PRIMARY_METRICS if m in names), min(names))

    if scores.empty:
        return scores.copy()
    chosen = scores.groupby("benchmark")["metric"].agg(pick)
    return scores[scores["metric"] == scores["benchmark"].map(chosen)].reset_index(drop=True)


def load_tables(folder: str | Path) -> Results:
    """Read tables written by ``Results.save`` / ``collect``."""
    folder = Path(folder)
    missing = [n for n in (*TABLES, "manifest") if not (folder / f"{n}.{'json' if n == 'manifest' else 'parquet'}")
               .exists()]
    if missing:
        raise ConfigError(f"{folder}: not a collected study (missing {', '.join(missing)}); run `ablate collect`")
    frames = {n: pd.read_parquet(folder / f"{n}.parquet") for n in TABLES}
    return Results(**frames, manifest=json.loads((folder / "manifest.json").read_text()))


# ------------------------------------------------------------------------------------------ value casts
def cast_value(text: Any) -> Any:
    """MLflow stores params as strings: give back int, float, bool or None where the text is one."""
    if not isinstance(text, str):
        return text
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _cast_column(values: pd.Series) -> pd.Series:
    cast = values.map(cast_value)
    kinds = {type(v) for v in cast.dropna()}
    if kinds <= {int}:
        return cast.astype("Int64")
    if kinds <= {int, float}:
        return cast.astype(float)
    if kinds <= {bool}:
        return cast.astype("boolean")
    return values.astype("string")


# -------------------------------------------------------------------------------------- source locating
def find_manifest(study: str | Path, studies_dir: str | Path = "studies") -> Path:
    """A manifest path from a study name, a study folder, or a manifest file."""
    study = Path(study)
    for cand in (study if study.suffix == ".json" else study / "manifest.json",
                 Path(studies_dir) / str(study) / "manifest.json"):
        if cand.is_file():
            return cand
    raise ConfigError(f"{study}: no study manifest (looked for {study / 'manifest.json'} and "
                      f"{Path(studies_dir) / str(study) / 'manifest.json'}); run `ablate sweep` first")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None


def _locations(manifest: dict[str, Any], runs_dir: str | Path | None, tracking_uri: str | None
               ) -> tuple[Path, str | None]:
    """Runs folder and MLflow URI: explicit arguments, else the manifest's, else the first point's config."""
    runs_dir = runs_dir or manifest.get("runs_dir")
    tracking_uri = tracking_uri or manifest.get("tracking_uri")
    if (runs_dir is None or tracking_uri is None) and manifest.get("points"):
        from ablate.design import compose

        cfg = compose(manifest["points"][0].get("overrides", []), check=False)
        runs_dir = runs_dir or cfg.runtime.runs_dir
        tracking_uri = tracking_uri or str(cfg.tracking.uri)
    return Path(runs_dir or "runs"), tracking_uri


# ------------------------------------------------------------------------------------------ run folders
def read_examples(path: Path, run_key: str, benchmark: str) -> pd.DataFrame:
    """One ``examples/<benchmark>.jsonl``: the §4 columns; a bad line is an error naming file and line."""
    records = []
    for lineno, rec in iter_objects(path, ConfigError):
        if "example_id" not in rec or "score" not in rec:
            raise ConfigError(f"{path}: line {lineno}: expected an object with example_id and score")
        records.append(rec)
    frame = pd.DataFrame(records, columns=[c for c in EXAMPLE_COLUMNS
                                           if c not in ("run_key", "benchmark", "fingerprint")])
    frame.insert(0, "benchmark", benchmark)
    frame.insert(0, "run_key", run_key)
    frame["example_id"] = frame["example_id"].astype(str)
    frame["score"] = pd.to_numeric(frame["score"], errors="raise").astype(float)
    frame["correct"] = frame["correct"].fillna(frame["score"] >= 0.5).astype(bool)
    for col in ("prediction", "parsed"):
        frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
    frame["parse_ok"] = frame["parse_ok"].fillna(True).astype(bool)
    for col in NUMERIC_EXAMPLE_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def read_run_dir(run_dir: Path) -> dict[str, Any]:
    """What a run folder holds: point.json, results.json scores/n/timings, examples, DONE."""
    out: dict[str, Any] = {"done": rundir.is_done(run_dir), "point": {}, "scores": [], "timings": {},
                           "examples": [], "fingerprints": read_fingerprints(run_dir)}
    if (run_dir / rundir.POINT).exists():
        out["point"] = _read_json(run_dir / rundir.POINT)
    res_path = run_dir / rundir.RESULTS
    if res_path.exists():
        res = _read_json(res_path)
        if not isinstance(res.get("scores"), dict):
            raise ConfigError(f"{res_path}: key 'scores': expected a mapping benchmark -> {{metric: value}}")
        n = res.get("n") or {}
        fps = {**read_fingerprints(run_dir), **(res.get("fingerprints") or {})}
        out["fingerprints"] = fps
        for bench, metrics in res["scores"].items():
            if not isinstance(metrics, dict):
                raise ConfigError(f"{res_path}: scores.{bench}: expected a mapping metric -> value")
            for metric, value in metrics.items():
                out["scores"].append((bench, metric, float(value), n.get(bench), fps.get(bench)))
        out["timings"] = {k: v for k, v in (res.get("timings") or {}).items() if isinstance(v, int | float)}
    ex_dir = run_dir / rundir.EXAMPLES
    if ex_dir.is_dir():
        out["examples"] = [read_examples(p, run_dir.name, p.stem) for p in sorted(ex_dir.glob("*.jsonl"))]
        for frame in out["examples"]:
            frame["fingerprint"] = out["fingerprints"].get(frame["benchmark"].iloc[0]) if len(frame) else None
    return out


# ---------------------------------------------------------------------------------------------- MLflow
def read_mlflow(uri: str | None, study: str) -> dict[str, dict[str, Any]]:
    """run_key -> {tags, params, metrics, status} for the study's experiment (empty if no store/experiment)."""
    if not uri:
        return {}
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):].split("?")[0]).exists():
        log.info("no MLflow store at %s; reading run directories only", uri)
        return {}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    page_token = None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=page_token)
        for run in page:
            key = run.data.tags.get("ablate.run_key")
            if key:
                out[key] = {"tags": dict(run.data.tags), "params": dict(run.data.params),
                            "metrics": dict(run.data.metrics), "status": run.info.status,
                            "mlflow_run_id": run.info.run_id}
        page_token = page.token
        if not page_token:
            return out


# -------------------------------------------------------------------------------------------- collect
def _fingerprint(manifest: dict[str, Any], runs_dir: Path, uri: str | None) -> dict[str, Any]:
    files = {}
    for p in manifest.get("points", []):
        rd = runs_dir / p["run_key"]
        for name in (rundir.DONE, rundir.RESULTS):
            f = rd / name
            if f.exists():
                st = f.stat()
                files[f"{p['run_key']}/{name}"] = [st.st_mtime_ns, st.st_size]
    db = uri[len("sqlite:///"):].split("?")[0] if uri and uri.startswith("sqlite:///") else None
    store = Path(db).stat().st_mtime_ns if db and Path(db).exists() else None
    return {"runs_dir": str(runs_dir.resolve()), "uri": uri, "files": files, "store": store}


def collect(study: str | Path, *, studies_dir: str | Path = "studies", out: str | Path | None = None,
            runs_dir: str | Path | None = None, tracking_uri: str | None = None, refresh: bool = False
            ) -> Results:
    """Collect a study into tidy tables, cached as parquet in ``out`` (default studies/<study>/tables)."""
    manifest_path = find_manifest(study, studies_dir)
    manifest = _read_json(manifest_path)
    for key in ("study", "points"):
        if key not in manifest:
            raise ConfigError(f"{manifest_path}: missing key {key!r}")
    runs_root, uri = _locations(manifest, runs_dir, tracking_uri)
    out = Path(out) if out else manifest_path.parent / "tables"
    finger = _fingerprint(manifest, runs_root, uri)
    from ablate.reference_study import reference_rows, source_files

    finger["references"] = source_files(manifest_path.parent)  # reference models: ablate score --study
    cached = out / "fingerprint.json"
    if not refresh and cached.exists() and json.loads(cached.read_text()) == finger:
        log.info("collect %s: sources unchanged, reading %s", manifest["study"], out)
        return load_tables(out)

    study_name = manifest["study"]
    tracked = read_mlflow(uri, study_name)
    axes = list(manifest.get("axes", []))
    runs, scores, examples, params = [], [], [], []
    seen: set[str] = set()
    from tqdm import tqdm

    for point in tqdm(manifest["points"], desc=f"collect {study_name}", unit="run", leave=False):
        key = point["run_key"]
        if key in seen:  # the same run can appear in two points of one study
            continue
        seen.add(key)
        folder = read_run_dir(runs_root / key)
        ml = tracked.get(key, {})
        ml_params = ml.get("params", {})
        status = "done" if folder["done"] else {"FINISHED": "done", "RUNNING": "running", "FAILED": "failed",
                                                "KILLED": "failed"}.get(ml.get("status", ""), "missing")
        row: dict[str, Any] = {"run_key": key, "design_key": point.get("design_key"), "study": study_name,
                               "point": point.get("name", folder["point"].get("name")), "seed": point.get("seed"),
                               "status": status, "mlflow_run_id": ml.get("mlflow_run_id"), "source": "design"}
        point_axes = {**folder["point"].get("axes", {}), **point.get("axes", {})}
        for axis in axes:
            row[axis] = ml_params.get(f"axis.{axis}", point_axes.get(axis))
        row.update({f"time_{k}": v for k, v in folder["timings"].items()})
        runs.append(row)
        params.append({"run_key": key, **{k: v for k, v in ml_params.items() if k.startswith("cfg.")}})
        if folder["scores"]:
            scores += [(key, *s) for s in folder["scores"]]
        else:  # no results.json: MLflow metrics eval/<benchmark>/<metric>
            for name, value in ml.get("metrics", {}).items():
                parts = name.split("/")
                if len(parts) == 3 and parts[0] == "eval":
                    scores.append((key, parts[1], parts[2], float(value), None,
                                   ml_params.get(f"fingerprint.{parts[1]}")))
        examples += folder["examples"]
    ref_runs, ref_scores, ref_examples = reference_rows(manifest_path.parent, study_name, axes)
    runs, scores, examples = runs + ref_runs, scores + ref_scores, examples + ref_examples

    runs_frame = pd.DataFrame(runs)
    for axis in axes:
        runs_frame[axis] = _cast_column(runs_frame[axis].astype(object).map(lambda v: v if v is None else str(v)))
    runs_frame["seed"] = runs_frame["seed"].astype("Int64")
    params_frame = pd.DataFrame(params)
    for col in params_frame.columns.drop("run_key"):
        params_frame[col] = _cast_column(params_frame[col])
    runs_frame = runs_frame.merge(params_frame, on="run_key", how="left") if len(params_frame.columns) > 1 \
        else runs_frame
    scores_frame = pd.DataFrame(scores, columns=SCORE_COLUMNS)
    scores_frame["n"] = scores_frame["n"].astype("Int64")
    examples_frame = (pd.concat(examples, ignore_index=True) if examples
                      else pd.DataFrame(columns=EXAMPLE_COLUMNS))
    for col in ("run_key", "benchmark", "example_id"):  # categorical: small, and free to code for stats
        examples_frame[col] = examples_frame[col].astype("category")
    results = Results(runs_frame, scores_frame, examples_frame, manifest)
    results.save(out)
    cached.write_text(json.dumps(finger))
    log.info("collect %s: %d runs, %d scores, %d examples -> %s", study_name, len(runs_frame),
             len(scores_frame), len(examples_frame), out)
    return results


def check_benchmark_versions(results: Results, allow: bool = False) -> list[str]:
    """Refuse (ConfigError) a study whose runs were scored on different versions of one benchmark, naming
    both fingerprints; with ``allow`` the problems are returned (and logged) instead."""
    frame = results.scores
    if "fingerprint" not in frame.columns or frame.empty:
        return []
    rows = zip(frame["run_key"], frame["benchmark"], frame["fingerprint"].astype(object), strict=True)
    problems = refuse_mixed(((str(k), str(b), None if pd.isna(f) else f) for k, b, f in rows), allow)
    for p in problems:
        log.warning("allowed by --allow-mixed-benchmarks: %s", p)
    return problems


def cli_collect(args: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = collect(args.study, studies_dir=args.studies_dir, out=args.out, refresh=True)
    check_benchmark_versions(res, getattr(args, "allow_mixed_benchmarks", False))
    counts = res.runs["status"].value_counts().to_dict()
    print(f"{res.manifest['study']}: {len(res.runs)} runs ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
          f"{len(res.scores)} scores, {len(res.examples)} examples")
    return 0


def comparison_pairs(results: Results) -> list[dict[str, Any]]:
    """The study's comparisons as run pairs: (alternate, base) point names matched on seed.

    One dict per comparison: name, axis, paper_p, and ``pairs`` = [(alt_run_key, base_run_key, seed)].
    Pairs whose runs are not both done are left out and counted in ``missing``.
    """
    runs = results.runs
    done = runs[(runs["status"] == "done") & runs["seed"].notna()]  # reference models (no seed) pair elsewhere
    by_point = {(p, int(s)): k for p, s, k in zip(done["point"], done["seed"], done["run_key"], strict=True)}
    seeds = sorted({int(s) for s in runs["seed"].dropna()})
    out = []
    for comp in results.manifest.get("comparisons", []):
        pairs, missing = [], 0
        for alt, base in comp["pairs"]:
            for seed in seeds:
                a, b = by_point.get((alt, seed)), by_point.get((base, seed))
                if a and b:
                    pairs.append((a, b, seed))
                else:
                    missing += 1
        out.append({"name": comp["name"], "axis": comp.get("axis"), "paper_p": comp.get("paper_p"),
                    "pairs": pairs, "point_pairs": [tuple(p) for p in comp["pairs"]], "missing": missing})
    return out

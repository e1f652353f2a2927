"""Reference models (published outputs scored by ``ablate score``) inside a study's tables and report.

A study's ``references.json`` (beside its manifest, written by ``ablate score ... --study``) lists reference
run directories.  ``collect`` adds one ``runs`` row per reference (``source = reference``, ``point`` = the
label, no seed, no design key) and its scores and per-example records, so the benchmark-fingerprint refusal
covers them too.  ``reference_tests`` compares every finished design run with every reference under the
per-example paired tests of ``ablate.stats`` (McNemar, bootstrap, permutation; paired by example id), with
p-values adjusted within each test family across all those comparisons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ablate import rundir
from ablate.config import ConfigError
from ablate.eval.reference import REFERENCE_PREFIX, REFERENCES_FILE

SOURCE_COLUMN = "source"
DESIGN, REFERENCE = "design", "reference"
REPORT_COLUMNS = ["comparison", "benchmark", "method", "statistic", "pvalue", "p_adj", "effect", "ci_low", "ci_high",
                  "n"]


def reference_dirs(study_dir: Path) -> list[tuple[str, Path]]:
    """(label, run dir) for each reference the study lists; a listed directory that is gone is an error."""
    path = study_dir / REFERENCES_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    out = []
    for i, ref in enumerate(data.get("references", []) if isinstance(data, dict) else [None]):
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not isinstance(ref.get("run_dir"), str):
            raise ConfigError(f"{path}: references[{i}]: expected an object with 'name' and 'run_dir' strings")
        run_dir = Path(ref["run_dir"])
        if not (run_dir / rundir.RESULTS).is_file():
            raise ConfigError(f"{path}: references[{i}] ({ref['name']}): {run_dir / rundir.RESULTS} not found; "
                              "expected a directory written by `ablate score`")
        out.append((ref["name"], run_dir))
    return out


def source_files(study_dir: Path) -> dict[str, list[int]]:
    """mtime/size of references.json and every reference's results.json (for collect's cache key)."""
    files = [study_dir / REFERENCES_FILE] + [d / rundir.RESULTS for _, d in reference_dirs(study_dir)]
    return {str(f): [f.stat().st_mtime_ns, f.stat().st_size] for f in files if f.is_file()}


def reference_rows(study_dir: Path, study: str, axes: list[str]) -> tuple[list[dict], list[tuple], list[pd.DataFrame]]:
    """(runs rows, score tuples, example frames) of the study's references, in collect's shapes."""
    from ablate.results import read_run_dir

    runs, scores, examples = [], [], []
    for name, run_dir in reference_dirs(study_dir):
        key = REFERENCE_PREFIX + name
        folder = read_run_dir(run_dir)
        row: dict[str, Any] = {"run_key": key, "design_key": None, "study": study, "point": name, "seed": None,
                               "status": "done" if folder["done"] else "missing", "mlflow_run_id": None,
                               SOURCE_COLUMN: REFERENCE, **{axis: None for axis in axes}}
        runs.append(row)
        scores += [(key, *s) for s in folder["scores"]]
        for frame in folder["examples"]:
            frame["run_key"] = key
            examples.append(frame)
    return runs, scores, examples


def is_reference(runs: pd.DataFrame) -> pd.Series:
    if SOURCE_COLUMN not in runs.columns:
        return pd.Series(False, index=runs.index)
    return runs[SOURCE_COLUMN].astype(object).eq(REFERENCE)


def reference_tests(results: Any, *, correction: str = "holm", seed: int = 0, n_resamples: int = 2000,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Every finished design run vs every reference, per benchmark both have examples on: one row per
    (run, reference, benchmark, test), with ``p_adj`` within each test family.  Empty without references."""
    from ablate import stats

    runs, ex = results.runs, results.examples
    refs = runs[is_reference(runs) & (runs["status"] == "done")]
    design = runs[~is_reference(runs) & (runs["status"] == "done")]
    if refs.empty or design.empty or not len(ex):
        return pd.DataFrame()
    have = ex[["run_key", "benchmark"]].astype(str).drop_duplicates()
    benches = have.groupby("benchmark")["run_key"].agg(set)
    out = []
    for bench, keys in benches.items():
        pairs = [(f"{d.point}@{d.seed} vs {r.point}", d.run_key, r.run_key)
                 for r in refs.itertuples() if r.run_key in keys
                 for d in design.itertuples() if d.run_key in keys]
        if pairs:
            out += stats.paired_tests(ex, pairs, [bench], stats.METHODS_PAIRED, seed=seed, n_resamples=n_resamples,
                                      alpha=alpha)
    frame = stats.results_frame(out)
    if frame.empty:
        return frame
    frame["family"] = frame["method"].str.split("-").str[0]
    frame["p_adj"] = float("nan")
    for _, idx in frame.groupby("family").groups.items():
        frame.loc[idx, "p_adj"] = stats.adjust(frame.loc[idx, "pvalue"].to_numpy(float), correction)
    frame["correction"] = correction
    frame["significant_adj"] = frame["p_adj"] < alpha
    return frame


def reference_section(results: Any, out: Path, **kw: Any) -> Any:
    """The report's "Against reference models" section (``references.csv``); empty without references."""
    from ablate.report import _html_table, markdown_table
    from ablate.report_hallucination import Section

    frame = reference_tests(results, **kw)
    section = Section(frame)
    if len(frame):
        section.paths["references"] = out / "references.csv"
        frame.to_csv(section.paths["references"], index=False)
        section.md = ["", "## Against reference models", "", markdown_table(frame[REPORT_COLUMNS]), ""]
        section.html = ["<h2>Against reference models</h2>", _html_table(frame[REPORT_COLUMNS])]
    return section

"""Study reports: every comparison under every test, corrected p-values, plots, HTML and Markdown.

``analyse`` runs the Prismatic paper's pooled t-test (for comparability, with the paper's p beside it) and
the stronger tests of ``ablate.stats`` on each comparison of a collected study, then adjusts p-values across
all comparisons of the study within each test family. ``write_report`` turns that into CSVs, PNG plots
(matplotlib Agg), a self-contained ``report.html`` (images inlined as base64) and ``report.md``. Findings
significant before correction but not after are flagged.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.reference_study import reference_section  # the report's sections kept in their own modules
from ablate.report_hallucination import hallucination_section
from ablate.results import Results, check_benchmark_versions, collect, comparison_pairs, load_tables

log = logging.getLogger(__name__)

ALPHA = 0.05
EXAMPLE_METHODS = ("mcnemar", "bootstrap", "permutation")


# ------------------------------------------------------------------------------------------- analysis
def _model_scores(results: Results) -> pd.DataFrame:
    ps = results.primary_scores()
    return pd.DataFrame({"model": ps["run_key"].astype(str), "benchmark": ps["benchmark"].astype(str),
                         "score": ps["value"].astype(float)})


def _per_seed_scores(scores: pd.DataFrame, pairs: list[tuple[str, str, int]]) -> tuple[pd.DataFrame, list]:
    """Average alternate and base over the point pairs of each seed: one (alt, base) pair per seed."""
    wide = scores.pivot(index="model", columns="benchmark", values="score")
    rows, seed_pairs = [], []
    for seed in sorted({s for _, _, s in pairs}):
        alts = [a for a, _, s in pairs if s == seed]
        bases = [b for _, b, s in pairs if s == seed]
        for side, keys in (("alt", alts), ("base", bases)):
            mean = wide.loc[keys].mean(axis=0)
            rows += [{"model": f"{side}@{seed}", "benchmark": b, "score": v} for b, v in mean.items()]
        seed_pairs.append((f"alt@{seed}", f"base@{seed}"))
    return pd.DataFrame(rows), seed_pairs


# The `scope` column of the tests table: a test over benchmark scores, a per-example test over every run pair
# (seeds) of a comparison at once, or a per-example test of one run pair.
BENCHMARKS_SCOPE, POOLED, PAIR = "benchmarks", "pooled", "pair"


def pool_pairs(examples: pd.DataFrame, comparisons: list[dict[str, Any]]
               ) -> tuple[pd.DataFrame, list[tuple[str, str, str]]]:
    """Per-example tests over all run pairs of a comparison at once (seeds as more paired examples).

    Each comparison with more than one run pair gets two virtual runs, ``<name>|alt`` and ``<name>|base``,
    whose examples are the pairs' examples keyed ``<seed>:<example_id>``: a McNemar / bootstrap / permutation
    test then pairs every (seed, example) of the alternate with the same (seed, example) of the base.
    """
    frames, pairs = [], []
    for comp in comparisons:
        if len(comp["pairs"]) < 2:
            continue
        name = comp["name"]
        for a, b, seed in comp["pairs"]:
            for key, side in ((a, "alt"), (b, "base")):
                ex = examples[examples["run_key"] == key].copy()
                ex["run_key"] = f"{name}|{side}"
                ex["example_id"] = f"{seed}:" + ex["example_id"].astype(str)
                frames.append(ex)
        pairs.append((name, f"{name}|alt", f"{name}|base"))
    if not frames:
        return examples.iloc[:0], []
    return pd.concat(frames, ignore_index=True), pairs


def family(method: str) -> str:
    """Correction family of a test: McNemar exact and chi-square are one family, and so on."""
    return method.split("-")[0] if method.startswith(("mcnemar", "permutation", "bootstrap", "wilcoxon")) else method


def _examples_present(examples: pd.DataFrame) -> set[tuple[str, str]]:
    """(run_key, benchmark) pairs that have at least one per-example record."""
    if not len(examples):
        return set()
    pairs = examples[["run_key", "benchmark"]].astype(str).drop_duplicates()
    return set(zip(pairs["run_key"], pairs["benchmark"], strict=True))


def _pairs_have(pairs: list[tuple[str, str]], bench: str, have: set[tuple[str, str]], left: list[dict[str, str]],
                comparison: str, test: str) -> bool:
    """Whether every run of ``pairs`` has examples on ``bench``; if not, say which one is missing in ``left``."""
    lacking = sorted({k for pair in pairs for k in pair if (k, bench) not in have})
    if lacking:
        left.append({"comparison": comparison, "benchmark": bench, "test": f"per-example ({test})",
                     "why": f"run(s) {', '.join(lacking)} have no examples on {bench} "
                            f"(runs/<run_key>/examples/{bench}.jsonl missing or empty)"})
    return not lacking


def _scoped(results: list[stats.TestResult], scope: str) -> list[stats.TestResult]:
    for res in results:
        res.extras["scope"] = scope
    return results


def _level(comparison: str, axis: str | None) -> str:
    """The levels a comparison sets against each other: ``a vs b`` of a generated ``<axis>: a vs b``, else
    the comparison's own name."""
    head, sep, levels = comparison.partition(": ")
    return levels if sep and head == axis else comparison


def analyse(results: Results, *, correction: str = "holm", seed: int = 0, n_resamples: int = 2000,
            alpha: float = ALPHA, example_methods: tuple[str, ...] = EXAMPLE_METHODS,
            omitted: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """Every comparison x every test, one row each, with raw and adjusted p-values and flags.  Tests that
    cannot be run (a run without a benchmark's score or examples, unfinished runs) are appended to ``omitted``
    as {comparison, benchmark, test, why}; the rest are run."""
    scores = _model_scores(results)
    benchmarks = sorted(scores["benchmark"].unique())
    wide = stats.wide_scores(scores)  # pivoted once for every comparison
    ex_benchmarks = sorted(set(results.examples["benchmark"].astype(str))) if len(results.examples) else []
    out: list[stats.TestResult] = []
    per_example_pairs: list[tuple[str, str, str]] = []
    left = omitted if omitted is not None else []
    scored = set(zip(scores["model"], scores["benchmark"], strict=True))
    all_benchmarks = benchmarks
    for comp in comparison_pairs(results):
        name, pairs = comp["name"], comp["pairs"]
        if not pairs:
            log.warning("comparison %s: no pair of finished runs; skipped", name)
            continue
        run_pairs = [(a, b) for a, b, _ in pairs]
        # across-benchmark tests use the benchmarks every run of the comparison has a score on (listed if not)
        benchmarks = []
        for bench in all_benchmarks:
            lacking = sorted({k for pair in run_pairs for k in pair if (k, bench) not in scored})
            if lacking:
                left.append({"comparison": name, "benchmark": bench, "test": "across benchmarks",
                             "why": f"run(s) {', '.join(lacking)} have no {bench} score (results.json)"})
            else:
                benchmarks.append(bench)
        if not benchmarks:
            continue
        extras = {"axis": comp["axis"], "paper_p": comp["paper_p"], "pairs": len(run_pairs),
                  "seeds": len({s for _, _, s in pairs})}
        found = [stats.prismatic_test(wide, run_pairs, benchmarks, comparison=name, alpha=alpha)]
        found += [stats.across_benchmarks(wide, run_pairs, benchmarks, method=m, comparison=name, alpha=alpha)
                  for m in stats.METHODS_ACROSS]
        seed_scores, seed_pairs = _per_seed_scores(scores, pairs)
        found.append(stats.seed_test(seed_scores, seed_pairs, benchmarks, comparison=name, alpha=alpha))
        found.append(stats.mixed_effects(wide, run_pairs, benchmarks, comparison=name, alpha=alpha,
                                         base_effect=len(comp["point_pairs"]) > 1))
        for res in found:
            res.extras.update(extras, scope=BENCHMARKS_SCOPE)
        out += found
        per_example_pairs += [(name, a, b) for a, b in run_pairs]
    left += [{"comparison": c["name"], "benchmark": "", "test": "all",
              "why": f"{c['missing']} point pair(s) x seed without two finished runs"}
             for c in comparison_pairs(results) if c["missing"]]
    have = _examples_present(results.examples)
    comps = comparison_pairs(results)
    pooled_examples, pooled_pairs = pool_pairs(results.examples, comps)
    by_comp = {c["name"]: [(a, b) for a, b, _ in c["pairs"]] for c in comps}
    for bench in ex_benchmarks:
        # a run without examples on a benchmark leaves out its pairs' per-example tests there (listed), never
        # the rest of the report
        pooled_ok = [p for p in pooled_pairs if _pairs_have(by_comp[p[0]], bench, have, left, p[0], "pooled")]
        if pooled_ok:
            out += _scoped(stats.paired_tests(pooled_examples, pooled_ok, [bench], example_methods,
                                              seed=seed, n_resamples=n_resamples, alpha=alpha), POOLED)
        pairs_ok = [p for p in per_example_pairs if _pairs_have([p[1:]], bench, have, left, p[0], "per pair")]
        if pairs_ok:
            out += _scoped(stats.paired_tests(results.examples, pairs_ok, [bench], example_methods,
                                              seed=seed, n_resamples=n_resamples, alpha=alpha), PAIR)
    frame = stats.results_frame(out)
    if frame.empty:
        return frame
    meta = {c["name"]: (c["axis"], c["paper_p"]) for c in comparison_pairs(results)}
    frame["axis"] = frame["comparison"].map(lambda n: meta[n][0])
    frame["level"] = [_level(n, meta[n][0]) for n in frame["comparison"]]
    frame["paper_p"] = np.where(frame["method"] == "prismatic-t",
                                frame["comparison"].map(lambda n: meta[n][1]).astype(float), np.nan)
    frame["family"] = frame["method"].map(family)
    frame["p_adj"] = np.nan
    for _, idx in frame.groupby("family").groups.items():
        frame.loc[idx, "p_adj"] = stats.adjust(frame.loc[idx, "pvalue"].to_numpy(float), correction)
    frame["correction"] = correction
    frame["significant"] = frame["pvalue"] < alpha
    frame["significant_adj"] = frame["p_adj"] < alpha
    frame["lost_after_correction"] = frame["significant"] & ~frame["significant_adj"]
    return frame


def summary(tests: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per comparison: the headline numbers of each test family side by side."""
    rows = []
    for name, grp in tests.groupby("comparison", sort=False):
        row: dict[str, Any] = {"comparison": name, "axis": grp["axis"].iloc[0]}
        for fam in ("prismatic-t", "wilcoxon", "sign", "seeds-t"):
            hit = grp[grp["family"] == fam]
            if len(hit):
                row[f"{fam} p"] = hit["pvalue"].iloc[0]
                row[f"{fam} p_adj"] = hit["p_adj"].iloc[0]
        prism = grp[grp["family"] == "prismatic-t"]
        row["paper p"] = prism["paper_p"].iloc[0] if len(prism) else np.nan
        row["norm diff"] = prism["effect"].iloc[0] if len(prism) else np.nan
        mixed = grp[grp["family"].str.startswith("mixedlm")]
        if len(mixed):
            m = mixed.iloc[0]
            row.update({"mixed effect": m["effect"], "mixed CI": f"[{m['ci_low']:.3g}, {m['ci_high']:.3g}]",
                        "mixed p_adj": m["p_adj"]})
        boot = grp[grp["family"] == "bootstrap"]
        if len(boot):
            row["bootstrap sig/tests"] = f"{int(boot['significant_adj'].sum())}/{len(boot)}"
        row["flagged"] = ", ".join(grp.loc[grp["lost_after_correction"], "method"].unique())
        rows.append(row)
    return pd.DataFrame(rows)


def score_table(results: Results) -> pd.DataFrame:
    """Wide table: one row per run (point, seed, axes), one column per benchmark (headline metric)."""
    ps = results.primary_scores()
    wide = ps.pivot_table(index="run_key", columns="benchmark", values="value", observed=True)
    wide.columns = [str(c) for c in wide.columns]
    info_cols = ["run_key", "point", "seed", *[a for a in results.axes if a in results.runs.columns], "status",
                 *[c for c in ("source",) if c in results.runs.columns]]
    info = results.runs[info_cols].drop_duplicates("run_key")
    table = info.merge(wide.reset_index(), on="run_key", how="left")
    bench = list(wide.columns)
    table["mean"] = table[bench].mean(axis=1)
    return table.sort_values(["point", "seed"]).reset_index(drop=True)


def delta_table(results: Results) -> pd.DataFrame:
    """comparison x benchmark: mean over pairs of (alternate - base) headline score."""
    wide = _model_scores(results).pivot(index="model", columns="benchmark", values="score")
    rows = {}
    for comp in comparison_pairs(results):
        if comp["pairs"]:
            a = wide.loc[[p[0] for p in comp["pairs"]]].to_numpy()
            b = wide.loc[[p[1] for p in comp["pairs"]]].to_numpy()
            rows[comp["name"]] = (a - b).mean(axis=0)
    return pd.DataFrame.from_dict(rows, orient="index", columns=wide.columns)


# ---------------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_delta_heatmap(delta: pd.DataFrame, tests: pd.DataFrame, path: Path) -> Path:
    """Per-benchmark delta heatmap; * marks cells where every pair's bootstrap test survives correction."""
    plt = _plt()
    label_w = 0.08 * max(len(str(c)) for c in delta.index)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + label_w + 0.9 * delta.shape[1]), 1.6 + 0.5 * delta.shape[0]))
    lim = float(np.nanmax(np.abs(delta.to_numpy()))) or 1.0
    im = ax.imshow(delta.to_numpy(), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    boot = tests[tests["family"] == "bootstrap"]
    sig = boot.groupby(["comparison", "benchmark"])["significant_adj"].all() if len(boot) else pd.Series()
    for i, comp in enumerate(delta.index):
        for j, bench in enumerate(delta.columns):
            star = "*" if sig.get((comp, bench), False) else ""
            value = delta.iat[i, j]
            ax.text(j, i, f"{value:+.3f}{star}", ha="center", va="center", fontsize=8,
                    color="white" if abs(value) > 0.6 * lim else "black")
    ax.set_xticks(range(delta.shape[1]), delta.columns, rotation=45, ha="right")
    ax.set_yticks(range(delta.shape[0]), delta.index)
    ax.set_title("alternate - base per benchmark\n(* = every pair's bootstrap significant after correction)",
                 fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_forest(tests: pd.DataFrame, path: Path) -> Path:
    """Forest plot: per comparison the Prismatic normalized difference and the mixed-model effect, with CIs."""
    plt = _plt()
    panels = [("prismatic-t", "normalized difference d (Prismatic test)"),
              ("mixedlm", "score difference (mixed model, 1|benchmark)")]
    comps = list(dict.fromkeys(tests["comparison"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.45 * len(comps)), sharey=True)
    for ax, (fam, label) in zip(axes, panels, strict=True):
        rows = tests[tests["family"].str.startswith(fam)].set_index("comparison")
        for i, comp in enumerate(comps):
            if comp not in rows.index:
                continue
            r = rows.loc[comp]
            color = "tab:red" if r["significant_adj"] else ("tab:orange" if r["significant"] else "tab:gray")
            ax.errorbar(r["effect"], i, xerr=[[r["effect"] - r["ci_low"]], [r["ci_high"] - r["effect"]]],
                        fmt="o", color=color, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(label, fontsize=9)
    axes[0].set_yticks(range(len(comps)), comps, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("effects with 95% CIs (red: significant after correction; orange: before only)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def plot_axis_bars(results: Results, tests: pd.DataFrame, folder: Path) -> list[Path]:
    """Per axis (or per unnamed comparison), grouped bars like the paper's figures: benchmark on x, one bar
    per level (mean over seeds/pairs, error bar = sd), the base level first."""
    plt = _plt()
    wide = _model_scores(results).pivot(index="model", columns="benchmark", values="score")
    runs = results.runs.set_index("run_key")
    groups: dict[str, list[dict[str, Any]]] = {}
    for comp in comparison_pairs(results):
        if comp["pairs"]:
            groups.setdefault(comp["axis"] or comp["name"], []).append(comp)
    paths = []
    for title, comps in groups.items():
        axis = comps[0]["axis"]
        bars: dict[str, list[str]] = {}

        def label(key: str, fallback: str, axis: str | None = axis) -> str:
            return str(runs.loc[key, axis]) if axis and axis in runs.columns else fallback

        for comp in comps:
            for a, b, _ in comp["pairs"]:
                bars.setdefault(label(b, "base"), [])
                bars[label(b, "base")].append(b)
                bars.setdefault(label(a, "alternate"), []).append(a)
        bars = {k: list(dict.fromkeys(v)) for k, v in bars.items()}
        bench = list(wide.columns)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(bench) + 2), 3.4))
        width = 0.8 / len(bars)
        for i, (lvl, keys) in enumerate(bars.items()):
            vals = wide.loc[keys]
            ax.bar(np.arange(len(bench)) + i * width, vals.mean(axis=0), width,
                   yerr=vals.std(axis=0, ddof=1) if len(keys) > 1 else None, capsize=2, label=lvl)
        ax.set_xticks(np.arange(len(bench)) + 0.4 - width / 2, bench, rotation=30, ha="right")
        ps = tests[(tests["comparison"].isin([c["name"] for c in comps])) & (tests["family"] == "prismatic-t")]
        ptxt = "; ".join(f"{r.comparison}: p={r.pvalue:.2g} (adj {r.p_adj:.2g})" for r in ps.itertuples())
        ax.set_title("\n".join([title, *textwrap.wrap(ptxt, 90)]), fontsize=8)
        ax.set_ylabel("score")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)  # headroom for the legend
        ax.legend(fontsize=7, ncols=min(4, len(bars)), loc="upper left")
        fig.tight_layout()
        path = folder / f"bars_{_slug(title)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------- writers
def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{v:.3g}"
    return "" if v is None or v is pd.NA else str(v)


def markdown_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _html_table(frame: pd.DataFrame) -> str:
    return frame.map(_fmt).to_html(index=False, border=0, classes="t", escape=True)


CSS = """body{font-family:sans-serif;margin:24px;max-width:1200px}table.t{border-collapse:collapse;font-size:12px}
table.t td,table.t th{border:1px solid #ccc;padding:3px 6px;text-align:right}table.t th{background:#eee}
.flag{background:#fff3cd;padding:8px;border-left:4px solid #e0a800}img{max-width:100%;margin:8px 0}"""


@dataclass
class Report:
    """What ``write_report`` wrote (``paths``: name -> file) and its tests table (``analyse``'s frame, with
    the ``scope``, ``axis`` and ``level`` columns callers select rows by)."""

    paths: dict[str, Path]
    tests: pd.DataFrame


def write_report(results: Results, out: str | Path, *, correction: str = "holm", seed: int = 0,
                 n_resamples: int = 2000) -> Report:
    """Write CSVs, PNGs, report.html and report.md for a collected study; return them and the tests table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study = results.manifest.get("study", "study")
    omitted: list[dict[str, str]] = []
    tests = analyse(results, correction=correction, seed=seed, n_resamples=n_resamples, omitted=omitted)
    if tests.empty:
        raise ValueError(f"study {study}: no comparison has a pair of finished runs; nothing to report")
    scores = score_table(results)
    delta = delta_table(results)
    summ = summary(tests)
    paths = {"scores": out / "scores_wide.csv", "tests": out / "tests.csv", "summary": out / "summary.csv",
             "deltas": out / "deltas.csv"}
    scores.to_csv(paths["scores"], index=False)
    tests.to_csv(paths["tests"], index=False)
    summ.to_csv(paths["summary"], index=False)
    delta.to_csv(paths["deltas"], index_label="comparison")
    images = [plot_delta_heatmap(delta, tests, out / "delta_heatmap.png"), plot_forest(tests, out / "forest.png"),
              *plot_axis_bars(results, tests, out)]
    hall = hallucination_section(results, out, correction=correction, seed=seed, n_resamples=n_resamples)
    flagged = tests[tests["lost_after_correction"]]
    flag_lines = [f"{r.comparison} — {r.method}{' on ' + r.benchmark if r.benchmark else ''}: p={r.pvalue:.3g}, "
                  f"{correction} p={r.p_adj:.3g}" for r in flagged.itertuples()]
    n_runs = len(results.runs)
    done = int((results.runs["status"] == "done").sum())
    intro = (f"{n_runs} runs ({done} done), {len(delta.columns)} benchmarks, {len(summ)} comparisons. "
             f"p-values adjusted with {correction} across all comparisons of the study, within each test family. "
             f"The Prismatic test pools d=(alt-base)/(alt+base) over pairs x benchmarks (one-sample t-test), "
             f"as the paper did; 'paper p' is the paper's reported value.")
    headline = tests[tests["benchmark"] == ""][["comparison", "method", "statistic", "pvalue", "p_adj", "effect",
                                                "ci_low", "ci_high", "n", "paper_p", "lost_after_correction"]]

    md = [f"# Study {study}", "", intro, "", "## Comparisons", "", markdown_table(summ), ""]
    left_lines = [f"{o['comparison']} — {o['test']}{' on ' + o['benchmark'] if o['benchmark'] else ''}: {o['why']}"
                  for o in omitted]
    paths["omitted"] = out / "omitted.csv"
    pd.DataFrame(omitted, columns=["comparison", "benchmark", "test", "why"]).to_csv(paths["omitted"], index=False)
    md += ["## Significant before correction only", ""] + ([f"- {x}" for x in flag_lines] or ["none"]) + [""]
    md += ["## Left out", ""] + ([f"- {x}" for x in left_lines] or ["nothing"]) + [""]
    md += hall.md + ["## Tests across benchmarks", "", markdown_table(headline), ""]
    md += [f"![{p.stem}]({p.name})" for p in images]
    md += ["", "## Scores", "", markdown_table(scores), "",
           f"Per-example tests (McNemar, bootstrap, permutation per pair x benchmark): `{paths['tests'].name}`."]
    refs = reference_section(results, out, correction=correction, seed=seed, n_resamples=n_resamples)
    md += refs.md
    paths["md"] = out / "report.md"
    paths["md"].write_text("\n".join(md) + "\n")

    def img(p: Path) -> str:
        data = base64.b64encode(p.read_bytes()).decode()
        return f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}">'

    flags_html = ("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in flag_lines) + "</ul>") if flag_lines \
        else "<p>none</p>"
    body = [f"<h1>Study {html.escape(study)}</h1><p>{html.escape(intro)}</p>",
            "<h2>Comparisons</h2>", _html_table(summ),
            f'<h2>Significant before correction only</h2><div class="flag">{flags_html}</div>',
            "<h2>Left out</h2>" + (("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in left_lines) + "</ul>")
                                   if left_lines else "<p>nothing</p>"),
            *hall.html, *[img(p) for p in hall.paths.values() if p.suffix == ".png"],
            "<h2>Plots</h2>", *[img(p) for p in images],
            "<h2>Tests across benchmarks</h2>", _html_table(headline),
            "<h2>Scores</h2>", _html_table(scores),
            "<details><summary>All per-example tests</summary>",
            _html_table(tests[tests["benchmark"] != ""][["comparison", "benchmark", "method", "statistic", "pvalue",
                                                        "p_adj", "effect", "ci_low", "ci_high", "n"]]),
            "</details>"]
    body += refs.html
    paths["html"] = out / "report.html"
    paths["html"].write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study)}"
                             f"</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    for p in images:
        paths[p.stem] = p
    paths.update(hall.paths | refs.paths)
    log.info("report %s: %d tests, %d flagged -> %s", study, len(tests), len(flagged), out)
    return Report(paths, tests)


def load_for_report(study: str, studies_dir: str | Path = "studies") -> Results:
    """A collected tables folder, or a study collected now (cached)."""
    if (Path(study) / "runs.parquet").exists():
        return load_tables(study)
    return collect(study, studies_dir=studies_dir)


def cli_report(args: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = load_for_report(args.study, args.studies_dir)
    check_benchmark_versions(results, getattr(args, "allow_mixed_benchmarks", False))
    paths = write_report(results, args.out, correction=args.correction).paths
    left = pd.read_csv(paths["omitted"])
    for row in left.itertuples():
        bench = f" on {row.benchmark}" if isinstance(row.benchmark, str) and row.benchmark else ""
        print(f"left out: {row.comparison} — {row.test}{bench}: {row.why}")
    print(f"report: {paths['html']} ({len(paths)} files)")
    return 0

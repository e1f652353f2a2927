"""The report's "hallucination and verbosity" section: per comparison, paired tests on CHAIR per caption,
answer length, over-length answers and negative-instruction accuracy, with a forest plot.

Why it exists: Prismatic says instruct-tuned LMs are "more verbose, prone to hallucination" from examples
only; these rows make it a tested claim.  Every test pairs the same example of the alternate and the base run
(matched seeds pooled: each (seed, example) is one pair), as the rest of the report does:

- ``CHAIR_s`` per caption (``chair`` benchmark): McNemar on "the caption hallucinates an object";
- ``CHAIR_i`` per caption: paired bootstrap of the mean difference of per-caption CHAIR_i;
- words per answer over every generated answer: paired Wilcoxon signed-rank (scipy, zero differences dropped,
  as its default);
- longer than asked (answers under a length instruction, ``ablate.eval.verbosity``): McNemar;
- negative-instruction accuracy (``lrv-neg``): McNemar on correct.

``effect`` = alternate - base (share of captions, CHAIR_i, words, share of answers, accuracy); p-values are
Holm-adjusted across the section's rows (its own family).  The rows also go to ``hallucination.csv``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.results import Results, comparison_pairs

CHAIR, NEGATIVE = "chair", "lrv-neg"
ALL_GENERATED = "all generated"
# (measure, benchmark or ALL_GENERATED, example column, test)
MEASURES: tuple[tuple[str, str, str, str], ...] = (
    ("CHAIR_s", CHAIR, "chair_s", "mcnemar"),
    ("CHAIR_i", CHAIR, "chair_i", "bootstrap"),
    ("words per answer", ALL_GENERATED, "answer_words", "wilcoxon"),
    ("longer than asked", ALL_GENERATED, "over_length", "mcnemar"),
    ("negative-instruction accuracy", NEGATIVE, "score", "mcnemar"),
)
COLUMNS = ["comparison", "axis", "measure", "benchmark", "method", "alt_mean", "base_mean", "effect", "ci_low",
           "ci_high", "statistic", "pvalue", "p_adj", "n"]


def paired_values(examples: pd.DataFrame, pairs: list[tuple[str, str, int]], benchmark: str, column: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Alternate and base values of ``column`` for every (seed, benchmark, example) both runs have."""
    if column not in examples.columns:
        return np.empty(0), np.empty(0)
    ex = examples[["run_key", "benchmark", "example_id", column]].copy()
    for col in ("run_key", "benchmark", "example_id"):
        ex[col] = ex[col].astype(str)
    if benchmark != ALL_GENERATED:
        ex = ex[ex["benchmark"] == benchmark]
    ex = ex[ex[column].notna()]
    alt, base = [], []
    for a, b, _ in pairs:
        joined = ex[ex["run_key"] == a].merge(ex[ex["run_key"] == b], on=["benchmark", "example_id"],
                                              suffixes=("_a", "_b"))
        alt.append(joined[f"{column}_a"].to_numpy(float))
        base.append(joined[f"{column}_b"].to_numpy(float))
    return (np.concatenate(alt), np.concatenate(base)) if alt else (np.empty(0), np.empty(0))


def wilcoxon_row(alt: np.ndarray, base: np.ndarray, alpha: float = 0.05) -> stats.TestResult:
    """Paired Wilcoxon signed-rank test; effect = mean difference with its t-interval."""
    from scipy.stats import wilcoxon

    diff = alt - base
    effect, lo, hi = stats.t_interval(diff, alpha)
    if not np.any(diff != 0):
        return stats.TestResult("wilcoxon", 0.0, 1.0, float(effect), lo, hi, len(diff))
    res = wilcoxon(alt, base)
    return stats.TestResult("wilcoxon", float(res.statistic), float(res.pvalue), float(effect), lo, hi, len(diff))


def run_test(method: str, alt: np.ndarray, base: np.ndarray, *, seed: int, n_resamples: int,
             alpha: float) -> stats.TestResult:
    if method == "wilcoxon":
        return wilcoxon_row(alt, base, alpha)
    (res,) = stats.paired_rows(alt[None], base[None], method, seed=seed, n_resamples=n_resamples, alpha=alpha,
                               correct_alt=alt[None] > 0.5, correct_base=base[None] > 0.5)
    return res


def hallucination_tests(results: Results, *, correction: str = "holm", seed: int = 0, n_resamples: int = 2000,
                        alpha: float = 0.05) -> pd.DataFrame:
    """One row per comparison x measure that has paired examples (none: the measure is left out)."""
    rows: list[dict[str, Any]] = []
    examples = results.examples
    for comp in comparison_pairs(results):
        if not comp["pairs"]:
            continue
        for measure, bench, column, method in MEASURES:
            alt, base = paired_values(examples, comp["pairs"], bench, column)
            if len(alt) == 0:
                continue
            res = run_test(method, alt, base, seed=seed, n_resamples=n_resamples, alpha=alpha)
            rows.append({"comparison": comp["name"], "axis": comp["axis"], "measure": measure, "benchmark": bench,
                         "method": res.method, "alt_mean": float(alt.mean()), "base_mean": float(base.mean()),
                         "effect": res.effect, "ci_low": res.ci_low, "ci_high": res.ci_high,
                         "statistic": res.statistic, "pvalue": res.pvalue, "n": len(alt)})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if len(frame):
        frame["p_adj"] = stats.adjust(frame["pvalue"].to_numpy(float), correction)
    return frame


def plot_forest(frame: pd.DataFrame, path: Path) -> Path:
    """One panel per measure: each comparison's effect (alternate - base) with its 95% CI."""
    from ablate.report import _plt

    plt = _plt()
    measures = list(dict.fromkeys(frame["measure"]))
    comps = list(dict.fromkeys(frame["comparison"]))
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures) + 2, 1.2 + 0.45 * len(comps)),
                             sharey=True, squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        rows = frame[frame["measure"] == measure].set_index("comparison")
        for i, comp in enumerate(comps):
            if comp not in rows.index:
                continue
            r = rows.loc[comp]
            color = "tab:red" if r["p_adj"] < 0.05 else ("tab:orange" if r["pvalue"] < 0.05 else "tab:gray")
            lo, hi = r["ci_low"], r["ci_high"]
            err = None if np.isnan(lo) or np.isnan(hi) else [[r["effect"] - lo], [hi - r["effect"]]]
            ax.errorbar(r["effect"], i, xerr=err, fmt="o", color=color, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"{measure}\n(alternate - base)", fontsize=8)
    axes[0][0].set_yticks(range(len(comps)), comps, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("hallucination and verbosity: effects with 95% CIs (red: significant after Holm)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class Section:
    frame: pd.DataFrame
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)


def hallucination_section(results: Results, out: Path, **kw: Any) -> Section:
    """The section's rows, Markdown and HTML, ``hallucination.csv`` and ``forest_hallucination.png``."""
    from ablate.report import _html_table, markdown_table

    frame = hallucination_tests(results, **kw)
    section = Section(frame, paths={"hallucination": out / "hallucination.csv"})
    frame.to_csv(section.paths["hallucination"], index=False)
    title = "## Hallucination and verbosity"
    if frame.empty:
        note = ("no comparison has paired CHAIR, negative-instruction or generated-answer records "
                "(benchmarks chair / lrv-neg, or any generated benchmark)")
        section.md = [title, "", note, ""]
        section.html = [f"<h2>Hallucination and verbosity</h2><p>{html.escape(note)}</p>"]
        return section
    intro = ("Paired per example (seeds pooled), effect = alternate - base; p_adj = Holm across this section. "
             "CHAIR_s/CHAIR_i: chair captions (lower = fewer hallucinated objects); words per answer: Wilcoxon "
             "signed-rank; longer than asked: answers under a length instruction; negative-instruction "
             "accuracy: lrv-neg.")
    section.paths["forest_hallucination"] = plot_forest(frame, out / "forest_hallucination.png")
    section.md = [title, "", intro, "", markdown_table(frame.drop(columns=["axis"])), "",
                  "![forest_hallucination](forest_hallucination.png)", ""]
    section.html = [f"<h2>Hallucination and verbosity</h2><p>{html.escape(intro)}</p>",
                    _html_table(frame.drop(columns=["axis"]))]
    return section

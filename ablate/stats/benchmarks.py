"""Benchmark-level tests of a comparison: Prismatic's pooled normalized-difference t-test (reproduced for
comparability), benchmarks as replicates (Wilcoxon signed-rank, sign test), seeds as replicates, and a
mixed-effects model.  Inputs are tidy score frames (model, benchmark, score) or their wide tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablate.stats.core import METHODS_ACROSS, TestResult, t_interval


# ------------------------------------------------------------------------------------ Prismatic's test
def wide_scores(scores: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """model x benchmark table; pass its result instead of the tidy frame to test many pairs cheaply."""
    return _wide(scores, value)


def _wide(scores: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    if scores.attrs.get("wide"):
        return scores
    missing = {"model", "benchmark", value} - set(scores.columns)
    if missing:
        raise ValueError(f"scores: missing column(s) {sorted(missing)}; expected model, benchmark, {value}")
    dup = scores.duplicated(["model", "benchmark"])
    if dup.any():
        row = scores[dup].iloc[0]
        raise ValueError(f"scores: duplicate row for model {row['model']!r}, benchmark {row['benchmark']!r}")
    wide = scores.pivot(index="model", columns="benchmark", values=value)
    wide.attrs["wide"] = True
    return wide


def pair_matrices(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                  benchmarks: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(alternate, base) score matrices of shape (pairs, benchmarks); a missing score is an error."""
    wide = _wide(scores)
    models = [m for p in pairs for m in p[:2]]
    rows = wide.index.get_indexer(models)
    if (rows < 0).any():
        raise ValueError(f"scores: no rows for model {models[int(np.argmax(rows < 0))]!r} (needed by a pair)")
    cols = wide.columns.get_indexer(list(benchmarks))
    if (cols < 0).any():
        raise ValueError(f"scores: no rows for benchmark {benchmarks[int(np.argmax(cols < 0))]!r}")
    values = wide.to_numpy(float)[np.ix_(rows, cols)]
    alt, base = values[0::2], values[1::2]
    for mat, side in ((alt, 0), (base, 1)):
        if np.isnan(mat).any():
            i, j = np.argwhere(np.isnan(mat))[0]
            raise ValueError(f"scores: missing score of model {pairs[i][side]!r} on benchmark {benchmarks[j]!r}")
    return alt, base


def prismatic_test(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]], benchmarks: Sequence[str],
                   *, comparison: str = "", alpha: float = 0.05) -> TestResult:
    """The Prismatic paper's test: pool d = (alt-base)/(alt+base) over pairs x benchmarks; one-sample t vs 0."""
    alt, base = pair_matrices(scores, pairs, benchmarks)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(alt + base != 0, (alt - base) / (alt + base), 0.0).ravel()
    res = sps.ttest_1samp(d, 0.0)
    mean, lo, hi = t_interval(d, alpha)
    return TestResult("prismatic-t", float(res.statistic), float(res.pvalue), mean, lo, hi, int(d.size),
                      comparison=comparison, extras={"pairs": len(pairs), "benchmarks": len(benchmarks)})


# ---------------------------------------------------------------------------------- across benchmarks
def across_rows(diff: np.ndarray, method: str, *, alpha: float = 0.05, ties: str = "scipy") -> list[TestResult]:
    """Benchmarks as replicates, one test per row of a (comparisons, benchmarks) difference matrix:
    ``wilcoxon`` (signed-rank, scipy, vectorised over rows) or ``sign`` (exact binomial on wins vs losses,
    ties dropped: for p = 1/2 the two-sided p is min(1, 2 * P(X <= min(wins, losses)))).

    Wilcoxon rows with zeros or tied |d| cost one scipy permutation null each (~0.1 s); ``ties="normal"``
    takes scipy's asymptotic (tie-corrected normal) p for them instead, labelled ``wilcoxon-normal``."""
    if method not in METHODS_ACROSS:
        raise ValueError(f"across_benchmarks: method {method!r} unknown; expected one of {METHODS_ACROSS}")
    diff = np.atleast_2d(np.asarray(diff, dtype=float))
    rows, n = diff.shape
    wins, losses = (diff > 0).sum(axis=1), (diff < 0).sum(axis=1)
    mean = diff.mean(axis=1)
    half = sps.t.ppf(1 - alpha / 2, n - 1) * diff.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.nan
    all_zero = wins + losses == 0
    if method == "wilcoxon":
        # rows without zeros or tied |d| take scipy's exact null in one vectorised call; the rest go one by one
        # through scipy's default (a permutation null when there are ties), exactly as scipy.stats.wilcoxon(row)
        srt = np.sort(np.abs(diff), axis=1)
        clean = (srt[:, 0] > 0) & np.all(np.diff(srt, axis=1) > 0, axis=1)
        stat, p = np.full(rows, np.nan), np.ones(rows)
        if clean.any():
            res = sps.wilcoxon(diff[clean], axis=1, method="exact")
            stat[clean], p[clean] = res.statistic, res.pvalue
        messy = ~clean & ~all_zero
        if ties == "normal" and messy.any():
            res = sps.wilcoxon(diff[messy], axis=1, method="asymptotic")
            stat[messy], p[messy] = res.statistic, res.pvalue
        else:
            for i in np.flatnonzero(messy):
                res = sps.wilcoxon(diff[i])
                stat[i], p[i] = res.statistic, res.pvalue
        names = np.where(messy & (ties == "normal"), "wilcoxon-normal", "wilcoxon")
    else:
        names = np.full(rows, "sign")
        stat = wins.astype(float)
        p = np.where(all_zero, 1.0, np.minimum(1.0, 2 * sps.binom.cdf(np.minimum(wins, losses), wins + losses, 0.5)))
    return [TestResult(str(nm), float(st), float(pv), float(m), float(m - h), float(m + h), n,
                       extras={"wins": int(w), "ties": int(n - w - lo_), "losses": int(lo_)})
            for nm, st, pv, m, h, w, lo_ in zip(names, stat, p, mean, np.broadcast_to(half, mean.shape), wins,
                                                 losses, strict=True)]


def across_benchmarks(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]], benchmarks: Sequence[str], *,
                      method: str, comparison: str = "", alpha: float = 0.05) -> TestResult:
    """Benchmarks as replicates for one comparison: per benchmark the mean (over pairs) difference
    alt - base, then ``wilcoxon`` or ``sign`` (see ``across_rows``)."""
    if method not in METHODS_ACROSS:
        raise ValueError(f"across_benchmarks: method {method!r} unknown; expected one of {METHODS_ACROSS}")
    alt, base = pair_matrices(scores, pairs, benchmarks)
    (res,) = across_rows((alt - base).mean(axis=0), method, alpha=alpha)
    res.comparison = comparison
    res.extras["pairs"] = len(pairs)
    return res


def seed_test(scores: pd.DataFrame, seed_pairs: Sequence[tuple[str, str]], benchmarks: Sequence[str], *,
              comparison: str = "", alpha: float = 0.05) -> TestResult:
    """Seeds as replicates: each (alt, base) pair is one seed; its difference is averaged over benchmarks,
    then a one-sample t-test over seeds (needs >= 2 seeds; otherwise p is NaN)."""
    alt, base = pair_matrices(scores, seed_pairs, benchmarks)
    per_seed = (alt - base).mean(axis=1)
    mean, lo, hi = t_interval(per_seed, alpha)
    if per_seed.size < 2:
        return TestResult("seeds-t", math.nan, math.nan, mean, lo, hi, per_seed.size, comparison,
                          extras={"note": "one seed: no seed replicate"})
    res = sps.ttest_1samp(per_seed, 0.0)
    return TestResult("seeds-t", float(res.statistic), float(res.pvalue), mean, lo, hi, per_seed.size,
                      comparison)


def mixed_effects(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]], benchmarks: Sequence[str], *,
                  base_effect: bool = False, comparison: str = "", alpha: float = 0.05) -> TestResult:
    """MixedLM ``score ~ level + (1|benchmark)``; with ``base_effect`` also a variance component per base
    configuration (the pair). ``effect`` is the fixed effect of level (alt = 1, base = 0) in score units."""
    import warnings

    import statsmodels.formula.api as smf

    alt, base = pair_matrices(scores, pairs, benchmarks)
    n_pairs, n_bench = alt.shape
    long = pd.DataFrame({
        "score": np.concatenate([alt.ravel(), base.ravel()]),
        "level": np.repeat([1.0, 0.0], n_pairs * n_bench),
        "benchmark": np.tile(np.tile(np.asarray(benchmarks, dtype=object), n_pairs), 2),
        "pair": np.tile(np.repeat(np.arange(n_pairs), n_bench), 2).astype(str),
    })
    vc = {"pair": "0 + C(pair)"} if base_effect and n_pairs > 1 else None
    model = smf.mixedlm("score ~ level", long, groups=long["benchmark"], vc_formula=vc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny designs; the fit is still reported
        fit = model.fit(reml=True)
    ci = fit.conf_int(alpha=alpha).loc["level"]
    return TestResult("mixedlm" + ("+base" if vc else ""), float(fit.tvalues["level"]),
                      float(fit.pvalues["level"]), float(fit.params["level"]), float(ci[0]), float(ci[1]),
                      int(len(long)), comparison, extras={"converged": bool(fit.converged)})


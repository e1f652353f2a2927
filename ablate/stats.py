"""Significance tests, multiple-comparison corrections and effect sizes for ablation studies.

The Prismatic paper's p-values pool normalized differences over model pairs x benchmarks and correct for
nothing; ``prismatic_test`` reproduces that procedure for comparability, and the rest of this module gives
stronger tests beside it: per-example paired tests on one benchmark (McNemar, paired bootstrap, paired
sign-flip permutation), tests across benchmarks (Wilcoxon signed-rank, sign test), seeds as replicates, a
mixed-effects model, and Holm / Benjamini-Hochberg corrections.

Everything per-example is vectorised over a matrix of paired rows (one row per comparison, one column per
example), so a whole study runs as a few matrix products: a bootstrap resample is a row of multinomial
counts, a permutation a row of random signs, and every row of the study shares them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

METHODS_PAIRED = ("mcnemar", "bootstrap", "permutation")
METHODS_ACROSS = ("wilcoxon", "sign")
CI_KINDS = ("percentile", "bca")
# Below this many discordant pairs McNemar uses the exact binomial test (the usual rule of thumb).
MCNEMAR_EXACT_BELOW = 25
DEFAULT_RESAMPLES = 2000
# A resampled p-value cannot go below 2 / (B + 1); with B = 2000 that is 0.001, which a multiple-comparison
# correction over ~100 tests turns into ~0.1, so no effect however large could come out significant. Below
# that resolution (no resample reaches the smaller tail) the p-value is the normal tail of the resampling
# distribution instead (``normal_tail_p``), which costs nothing; resampling on to 10^5 would cost hours at
# 10^8 scores (bench/stats_scale.py), where many rows sit beyond 1 / B.
CHUNK = 256  # resamples per matrix product (bounds memory: CHUNK x n_examples weights)
# Random resampling runs its matrix products in float32 (twice BLAS's float64 speed). Integer-valued data
# (0/1 accuracies, counts) stays exact below 2^24; soft scores carry ~1e-7 relative error, far below the
# Monte-Carlo error of any resampled p-value or CI. Exact enumeration stays in float64.
RESAMPLE_DTYPE = np.float32


@dataclass
class TestResult:
    """One test of one comparison (optionally on one benchmark); ``effect`` is in the test's own units."""

    __test__ = False  # not a pytest class

    method: str
    statistic: float
    pvalue: float
    effect: float
    ci_low: float
    ci_high: float
    n: int
    comparison: str = ""
    benchmark: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        row = {f: getattr(self, f) for f in _FIELDS}
        row.update({k: v for k, v in self.extras.items() if k not in row})
        return row


_FIELDS = [f.name for f in fields(TestResult) if f.name != "extras"]


def results_frame(results: Iterable[TestResult]) -> pd.DataFrame:
    """Stack test results into one DataFrame (extras become columns; missing ones are NaN)."""
    rows = [r.to_dict() for r in results]
    cols = ["comparison", "benchmark", "method", "statistic", "pvalue", "effect", "ci_low", "ci_high", "n"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=cols)
    return frame[cols + [c for c in frame.columns if c not in cols]]


# ------------------------------------------------------------------------------------------ corrections
def _holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down: sorted p_(i) * (m - i + 1), running maximum, capped at 1 (= multipletests 'holm',
    which this avoids only because it calls gc.collect() on every use: seconds in a big process)."""
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)))
    out = np.empty_like(p)
    out[order] = stepped
    return out


def adjust(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Multiplicity-adjusted p-values: ``holm`` or ``fdr_bh`` (statsmodels' fdrcorrection); NaNs stay NaN."""
    from statsmodels.stats.multitest import fdrcorrection

    if method not in ("holm", "fdr_bh"):
        raise ValueError(f"adjust: method {method!r} unknown; expected 'holm' or 'fdr_bh'")
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = _holm(p[ok]) if method == "holm" else fdrcorrection(p[ok], method="indep")[1]
    return out


# ----------------------------------------------------------------------------------------- effect sizes
def t_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and its two-sided t confidence interval."""
    values = np.asarray(values, dtype=float)
    n = values.size
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    half = sps.t.ppf(1 - alpha / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def effect_sizes(alternate: np.ndarray, base: np.ndarray, *, alpha: float = 0.05) -> dict[str, float]:
    """Paired effect sizes of alternate vs base with CIs.

    mean difference (t interval), normalized difference d = (a-b)/(a+b) (mean, t interval), Cohen's d_z =
    mean(diff)/sd(diff) with the large-sample CI d_z +- z * sqrt(1/n + d_z^2/(2n)), and wins/ties/losses.
    """
    a = np.asarray(alternate, dtype=float)
    b = np.asarray(base, dtype=float)
    diff = a - b
    n = diff.size
    mean, lo, hi = t_interval(diff, alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(a + b != 0, diff / (a + b), 0.0)
    nmean, nlo, nhi = t_interval(norm, alpha)
    sd = diff.std(ddof=1) if n > 1 else math.nan
    dz = mean / sd if sd and sd > 0 else math.nan
    z = sps.norm.ppf(1 - alpha / 2)
    dz_se = math.sqrt(1 / n + dz**2 / (2 * n)) if n and not math.isnan(dz) else math.nan
    return {"mean_diff": mean, "mean_diff_low": lo, "mean_diff_high": hi,
            "norm_diff": nmean, "norm_diff_low": nlo, "norm_diff_high": nhi,
            "cohen_dz": dz, "cohen_dz_low": dz - z * dz_se, "cohen_dz_high": dz + z * dz_se,
            "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()), "losses": int((diff < 0).sum())}


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


# ---------------------------------------------------------------------------------- per-example tests
def mcnemar_rows(correct_a: np.ndarray, correct_b: np.ndarray, *, alpha: float = 0.05,
                 exact_below: int = MCNEMAR_EXACT_BELOW) -> list[TestResult]:
    """McNemar per row of two boolean (rows, examples) matrices: exact binomial when the discordant
    count is below ``exact_below``, chi-square with continuity correction otherwise."""
    a = np.atleast_2d(np.asarray(correct_a, dtype=bool))
    b = np.atleast_2d(np.asarray(correct_b, dtype=bool))
    n = a.shape[1]
    n01 = (a & ~b).sum(axis=1)
    n10 = (~a & b).sum(axis=1)
    disc = n01 + n10
    exact = disc < exact_below
    low = np.minimum(n01, n10)
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = np.where(disc > 0, (np.abs(n01 - n10) - 1.0) ** 2 / np.maximum(disc, 1), 0.0)
    stat = np.where(exact, low, chi2).astype(float)
    p = np.where(exact, np.minimum(1.0, 2 * sps.binom.cdf(low, disc, 0.5)), sps.chi2.sf(chi2, 1))
    p = np.where(disc == 0, 1.0, p)
    effect = (n01 - n10) / n
    se = np.sqrt(np.maximum(disc - (n01 - n10) ** 2 / n, 0.0)) / n
    z = sps.norm.ppf(1 - alpha / 2)
    return [TestResult("mcnemar-exact" if ex else "mcnemar-chi2", float(st), float(pv), float(ef),
                       float(ef - z * s_), float(ef + z * s_), n, extras={"only_alternate": int(x), "only_base": int(y)})
            for ex, st, pv, ef, s_, x, y in zip(exact, stat, p, effect, se, n01, n10, strict=True)]


def _bootstrap_means(diff: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, n_resamples) means of paired differences under one shared set of resamples.

    Each resample is a row of counts over the examples (multinomial, drawn as n indices with replacement), so a chunk of resamples for every row
    at once is one matrix product diff @ counts.T.
    """
    rows, n = diff.shape
    out = np.empty((rows, n_resamples))
    lhs = diff.astype(RESAMPLE_DTYPE)
    for start in range(0, n_resamples, CHUNK):
        k = min(CHUNK, n_resamples - start)
        picks = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]  # k resamples of n indices
        counts = np.bincount(picks.ravel(), minlength=k * n).reshape(k, n).astype(RESAMPLE_DTYPE)
        out[:, start:start + k] = lhs @ counts.T / n
    return out


def _bca_bounds(diff: np.ndarray, boot: np.ndarray, observed: np.ndarray, alpha: float) -> np.ndarray:
    """BCa percentile levels per row (rows, 2) from bias correction z0 and jackknife acceleration a."""
    n = diff.shape[1]
    below = (boot < observed[:, None]).mean(axis=1) + 0.5 * (boot == observed[:, None]).mean(axis=1)
    z0 = sps.norm.ppf(np.clip(below, 1e-12, 1 - 1e-12))
    jack = (diff.sum(axis=1, keepdims=True) - diff) / (n - 1)  # leave-one-out means
    dev = jack.mean(axis=1, keepdims=True) - jack
    with np.errstate(invalid="ignore", divide="ignore"):
        accel = (dev**3).sum(axis=1) / (6 * ((dev**2).sum(axis=1)) ** 1.5)
    accel = np.nan_to_num(accel)
    zs = sps.norm.ppf([alpha / 2, 1 - alpha / 2])
    levels = sps.norm.cdf(z0[:, None] + (z0[:, None] + zs) / (1 - accel[:, None] * (z0[:, None] + zs)))
    return np.nan_to_num(levels, nan=0.5)


def normal_tail_p(observed: np.ndarray, se: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Two-sided normal tail 2 * Phi(-|observed| / se), capped at ``floor`` (the resampled p it replaces)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(observed) / se
    return np.minimum(floor, np.where(se > 0, 2 * sps.norm.sf(z), floor))


def bootstrap_rows(score_a: np.ndarray, score_b: np.ndarray, *, n_resamples: int = DEFAULT_RESAMPLES,
                   seed: int = 0, ci: str = "percentile", alpha: float = 0.05) -> list[TestResult]:
    """Paired bootstrap of the mean difference per row of (rows, examples) score matrices.

    CI: percentile or BCa (from the first ``n_resamples``). p-value: twice the smaller tail of the bootstrap
    distribution beyond 0, with +1 smoothing ((count + 1) / (B + 1)), i.e. the smallest alpha whose percentile
    CI excludes 0; rows whose smaller tail is empty get the normal tail with the bootstrap standard error
    instead (``normal_tail_p``; ``extras["p_tail"]`` says which).
    """
    if ci not in CI_KINDS:
        raise ValueError(f"bootstrap: ci {ci!r} unknown; expected one of {CI_KINDS}")
    diff = np.atleast_2d(np.asarray(score_a, dtype=float)) - np.atleast_2d(np.asarray(score_b, dtype=float))
    rng = np.random.default_rng(seed)
    boot = _bootstrap_means(diff, n_resamples, rng)
    observed = diff.mean(axis=1)
    if ci == "bca":
        levels = _bca_bounds(diff, boot, observed, alpha)
        lows = np.array([np.quantile(row, lv[0]) for row, lv in zip(boot, levels, strict=True)])
        highs = np.array([np.quantile(row, lv[1]) for row, lv in zip(boot, levels, strict=True)])
    else:
        lows, highs = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=1)
    le = (boot <= 0).sum(axis=1)
    ge = (boot >= 0).sum(axis=1)
    p = np.minimum(1.0, 2 * (np.minimum(le, ge) + 1) / (n_resamples + 1))
    zero = np.all(diff == 0, axis=1)
    beyond = (np.minimum(le, ge) == 0) & ~zero
    p = np.where(zero, 1.0, np.where(beyond, normal_tail_p(observed, boot.std(axis=1), p), p))
    return [TestResult(f"bootstrap-{ci}", float(o), float(pv), float(o), float(lo), float(hi), diff.shape[1],
                       extras={"resamples": n_resamples, "seed": seed, "p_tail": "normal" if b else "resampled"})
            for o, pv, lo, hi, b in zip(observed, p, lows, highs, beyond, strict=True)]


def permutation_rows(score_a: np.ndarray, score_b: np.ndarray, *, n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, alpha: float = 0.05) -> list[TestResult]:
    """Paired sign-flip permutation test of the mean difference per row.

    Exact (all 2^n sign vectors) when 2^n <= n_resamples, else random signs shared by every row. The
    two-sided p-value is twice the smaller one-sided p, capped at 1 (scipy.stats.permutation_test's
    definition); random resampling adds 1 to count and total, and rows that no random sign vector reaches get
    the normal tail of the sign-flip distribution (mean 0, variance sum(d^2) / n^2) instead.
    """
    diff = np.atleast_2d(np.asarray(score_a, dtype=float)) - np.atleast_2d(np.asarray(score_b, dtype=float))
    rows, n = diff.shape
    observed = diff.mean(axis=1)
    exact = n < 63 and 2**n <= n_resamples
    rng = np.random.default_rng(seed)
    le = np.zeros(rows)
    ge = np.zeros(rows)
    lhs = diff if exact else diff.astype(RESAMPLE_DTYPE)
    tol = (1e-12 if exact else 1e-6) * np.maximum(1.0, np.abs(observed))
    if exact:
        total = 2**n
        signs_all = 1 - 2 * ((np.arange(total)[:, None] >> np.arange(n)) & 1)
        chunks = [signs_all[i:i + CHUNK * 16] for i in range(0, total, CHUNK * 16)]
    else:
        total = n_resamples
        chunks = [None] * math.ceil(n_resamples / CHUNK)
    done = 0
    for chunk in chunks:
        if chunk is None:
            k = min(CHUNK, n_resamples - done)
            chunk = 1 - 2 * rng.integers(0, 2, size=(k, n), dtype=np.int8)
        stats_ = lhs @ chunk.T.astype(lhs.dtype) / n
        le += (stats_ <= observed[:, None] + tol[:, None]).sum(axis=1)
        ge += (stats_ >= observed[:, None] - tol[:, None]).sum(axis=1)
        done += chunk.shape[0]
    adj = 0 if exact else 1
    p_less = (le + adj) / (total + adj)
    p_greater = (ge + adj) / (total + adj)
    p = np.minimum(1.0, 2 * np.minimum(p_less, p_greater))
    beyond = np.minimum(le, ge) == 0  # never when exact: the identity sign vector reaches both tails
    p = np.where(beyond, normal_tail_p(observed, np.sqrt((diff**2).sum(axis=1)) / n, p), p)
    out = []
    for o, pv, row, b in zip(observed, p, diff, beyond, strict=True):
        _, lo, hi = t_interval(row, alpha)
        out.append(TestResult("permutation-exact" if exact else "permutation", float(o), float(pv), float(o),
                              lo, hi, n, extras={"resamples": total, "seed": seed,
                                                 "p_tail": "normal" if b else "resampled"}))
    return out


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and their labels; free for categorical columns, one factorize otherwise."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), pd.Index(values.cat.categories)
    codes, uniques = pd.factorize(values)
    return codes, pd.Index(uniques)


def example_matrices(examples: pd.DataFrame, run_keys: Sequence[str], columns: Sequence[str] = ("score",)
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """(runs, examples) matrices of ``columns`` for ONE benchmark's rows, aligned on ``example_id``.

    Only examples every listed run has are kept (runs pair by the benchmark's own example ids). O(rows)
    numpy on integer codes (categorical columns cost nothing to code), no pandas pivot.
    """
    missing = {"run_key", "example_id", *columns} - set(examples.columns)
    if missing:
        raise ValueError(f"examples: missing column(s) {sorted(missing)}")
    keys = pd.Index(list(dict.fromkeys(run_keys)))
    run_codes, run_labels = _codes(examples["run_key"])
    lookup = keys.get_indexer(run_labels.astype(str))
    rows = np.where(run_codes >= 0, lookup[run_codes], -1)
    sel = rows >= 0
    ex_codes, ex_labels = _codes(examples["example_id"])
    sel_codes = ex_codes[sel]
    used = np.flatnonzero(np.bincount(sel_codes, minlength=len(ex_labels)))  # O(rows), no sort
    remap = np.full(len(ex_labels), -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    cols = remap[sel_codes]
    rows = rows[sel]
    seen = np.zeros((len(keys), len(used)), dtype=bool)
    seen[rows, cols] = True
    for i, key in enumerate(keys):
        if not seen[i].any():
            bench = examples["benchmark"].iloc[0] if "benchmark" in examples.columns and len(examples) else "?"
            raise ValueError(f"examples: run {key!r} has no examples on benchmark {bench!r}")
    keep = seen.all(axis=0)
    mats = []
    for col in columns:
        mat = np.zeros((len(keys), len(used)))
        mat[rows, cols] = examples[col].to_numpy(dtype=float)[sel]
        mats.append(mat[:, keep])
    return mats, np.asarray(ex_labels)[used[keep]]


def example_matrix(examples: pd.DataFrame, run_keys: Sequence[str], benchmark: str,
                   value: str = "score") -> tuple[np.ndarray, np.ndarray]:
    """(runs, examples) matrix of ``value`` on one benchmark, columns aligned on ``example_id``."""
    if "benchmark" not in examples.columns:
        raise ValueError("examples: missing column(s) ['benchmark']")
    sub = examples[examples["benchmark"] == benchmark]
    if sub.empty:
        raise ValueError(f"examples: no rows for benchmark {benchmark!r}")
    (mat,), ids = example_matrices(sub, run_keys, (value,))
    return mat, ids


def paired_rows(alt: np.ndarray, base: np.ndarray, method: str, *, seed: int = 0,
                n_resamples: int = DEFAULT_RESAMPLES, ci: str = "percentile", alpha: float = 0.05,
                correct_alt: np.ndarray | None = None, correct_base: np.ndarray | None = None
                ) -> list[TestResult]:
    """Dispatch a per-example paired test over rows of (rows, examples) matrices."""
    if method == "mcnemar":
        ca = correct_alt if correct_alt is not None else np.asarray(alt) >= 0.5
        cb = correct_base if correct_base is not None else np.asarray(base) >= 0.5
        return mcnemar_rows(ca, cb, alpha=alpha)
    if method == "bootstrap":
        return bootstrap_rows(alt, base, n_resamples=n_resamples, seed=seed, ci=ci, alpha=alpha)
    if method == "permutation":
        return permutation_rows(alt, base, n_resamples=n_resamples, seed=seed, alpha=alpha)
    raise ValueError(f"paired_test: method {method!r} unknown; expected one of {METHODS_PAIRED}")


def paired_test(examples: pd.DataFrame, a: str, b: str, *, benchmark: str, method: str, seed: int = 0,
                n_resamples: int = DEFAULT_RESAMPLES, ci: str = "percentile", alpha: float = 0.05,
                comparison: str = "") -> TestResult:
    """Per-example paired test of run ``a`` (alternate) vs run ``b`` (base) on one benchmark.

    ``mcnemar`` uses the ``correct`` column (or score >= 0.5 without it); ``bootstrap`` and ``permutation``
    test the mean of per-example score differences; seeded.
    """
    value = "correct" if method == "mcnemar" and "correct" in examples.columns else "score"
    mat, _ = example_matrix(examples, [a, b], benchmark, value)
    if method == "mcnemar" and value == "correct":
        (res,) = paired_rows(mat[:1], mat[1:], method, alpha=alpha,
                             correct_alt=mat[:1] > 0.5, correct_base=mat[1:] > 0.5)
    else:
        (res,) = paired_rows(mat[:1], mat[1:], method, seed=seed, n_resamples=n_resamples, ci=ci, alpha=alpha)
    res.comparison, res.benchmark = comparison, benchmark
    res.extras.update({"alternate": a, "base": b})
    return res


def paired_tests(examples: pd.DataFrame, pairs: Sequence[tuple[str, str, str]], benchmarks: Sequence[str],
                 methods: Sequence[str] = METHODS_PAIRED, *, seed: int = 0,
                 n_resamples: int = DEFAULT_RESAMPLES, ci: str = "percentile", alpha: float = 0.05
                 ) -> list[TestResult]:
    """Every per-example test of a study: ``pairs`` are (comparison, alternate run, base run).

    Per benchmark one (runs, examples) matrix is built and every pair becomes a row, so bootstrap and
    permutation resamples are shared matrix products across the whole study.
    """
    has_correct = "correct" in examples.columns
    out: list[TestResult] = []
    keys = list(dict.fromkeys(k for _, a, b in pairs for k in (a, b)))
    idx = {k: i for i, k in enumerate(keys)}
    ia = [idx[a] for _, a, _ in pairs]
    ib = [idx[b] for _, _, b in pairs]
    wanted = set(benchmarks)
    groups = {str(b): g for b, g in examples.groupby("benchmark", observed=True, sort=False) if str(b) in wanted}
    for bench in benchmarks:
        if bench not in groups:
            raise ValueError(f"examples: no rows for benchmark {bench!r}")
        mats, _ = example_matrices(groups[bench], keys, ("score", "correct") if has_correct else ("score",))
        mat = mats[0]
        cor = mats[1] > 0.5 if has_correct else mat >= 0.5
        for method in methods:
            rows = paired_rows(mat[ia], mat[ib], method, seed=seed, n_resamples=n_resamples, ci=ci, alpha=alpha,
                               correct_alt=cor[ia], correct_base=cor[ib])
            for (name, a, b), res in zip(pairs, rows, strict=True):
                res.comparison, res.benchmark = name, bench
                res.extras.update({"alternate": a, "base": b})
                out.append(res)
    return out

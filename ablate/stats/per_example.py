"""Per-example paired tests on one benchmark: McNemar, paired bootstrap (percentile or BCa CIs) and paired
sign-flip permutation, vectorised over a matrix of paired rows (one row per comparison, one column per
example): a bootstrap resample is a row of multinomial counts, a permutation a row of random signs, and every
row of a study shares them; plus the (run, example) matrices they read from the examples table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablate.stats.core import (
    CHUNK,
    CI_KINDS,
    DEFAULT_RESAMPLES,
    MCNEMAR_EXACT_BELOW,
    METHODS_PAIRED,
    RESAMPLE_DTYPE,
    TestResult,
    t_interval,
)


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


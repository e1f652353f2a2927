"""The shared vocabulary of ``ablate.stats``: test settings, ``TestResult`` (and its DataFrame), the
multiple-comparison corrections and paired effect sizes, used by the benchmark-level and per-example tests.
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


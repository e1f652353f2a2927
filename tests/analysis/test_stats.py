"""ablate.stats against textbook values and scipy/statsmodels on the same inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ablate import stats

COMPARISONS_JSON = Path("/work/shared/prismatic/comparisons.json")
PRISMATIC_BENCHMARKS = ["vqav2", "gqa", "vizwiz", "textvqa", "refcoco", "refcoco-plus", "refcocog", "ocid-ref",
                        "vsr", "pope", "tallyqa", "ai2d"]


def _scores(table: dict[str, list[float]], benchmarks: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "benchmark": b, "score": v}
                         for m, vals in table.items() for b, v in zip(benchmarks, vals, strict=True)])


# ------------------------------------------------------------------------------------------- prismatic
def test_prismatic_test_pools_normalized_differences_by_hand():
    # d per benchmark: (0.6-0.4)/1=0.2, (0.55-0.45)/1=0.1, (0.3-0.3)/0.6=0, (0.45-0.55)/1=-0.1 ; 2nd pair 0.3 on all
    scores = _scores({"a1": [0.6, 0.55, 0.3, 0.45], "b1": [0.4, 0.45, 0.3, 0.55],
                      "a2": [0.65, 0.65, 0.65, 0.65], "b2": [0.35, 0.35, 0.35, 0.35]}, list("wxyz"))
    res = stats.prismatic_test(scores, [("a1", "b1"), ("a2", "b2")], list("wxyz"))
    d = np.array([0.2, 0.1, 0.0, -0.1, 0.3, 0.3, 0.3, 0.3])
    t_by_hand = d.mean() / (d.std(ddof=1) / math.sqrt(8))
    assert res.n == 8
    assert res.effect == pytest.approx(d.mean())
    assert res.statistic == pytest.approx(t_by_hand)
    assert res.pvalue == pytest.approx(2 * sps.t.sf(abs(t_by_hand), 7))
    assert res.ci_low < res.effect < res.ci_high


def test_prismatic_test_on_comparisons_json_structure():
    """Every paper comparison's pairs run through prismatic_test; constructed scores give a known t."""
    comps = {k: v for k, v in json.loads(COMPARISONS_JSON.read_text()).items() if not k.startswith("_")}
    models = sorted({m for c in comps.values() for p in c["pairs"] for m in p})
    rng = np.random.default_rng(0)
    table = {m: list(rng.uniform(20, 80, len(PRISMATIC_BENCHMARKS))) for m in models}
    scores = _scores(table, PRISMATIC_BENCHMARKS)
    for name, comp in comps.items():
        pairs = [tuple(p) for p in comp["pairs"]]
        res = stats.prismatic_test(scores, pairs, PRISMATIC_BENCHMARKS, comparison=name)
        d = np.concatenate([(np.array(table[a]) - table[b]) / (np.array(table[a]) + table[b]) for a, b in pairs])
        ref = sps.ttest_1samp(d, 0)
        assert res.n == 12 * len(pairs)
        assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
        assert res.comparison == name


def test_prismatic_test_reproduces_a_target_paper_p():
    """Constructed d with a chosen t reproduce the paper's p-value (epochs_2_vs_1: 1 pair x 12 benchmarks)."""
    paper_p = json.loads(COMPARISONS_JSON.read_text())["epochs_2_vs_1"]["paper_p"]
    t_target = sps.t.isf(paper_p / 2, 11)
    z = np.linspace(-1, 1, 12)
    z = (z - z.mean()) / z.std(ddof=1)  # mean 0, sd 1
    d = 0.05 + (0.05 * math.sqrt(12) / t_target) * z  # mean 0.05, so t = t_target
    base = np.full(12, 50.0)
    alt = base * (1 + d) / (1 - d)  # (alt-base)/(alt+base) == d
    scores = _scores({"alt": list(alt), "base": list(base)}, PRISMATIC_BENCHMARKS)
    res = stats.prismatic_test(scores, [("alt", "base")], PRISMATIC_BENCHMARKS)
    assert res.pvalue == pytest.approx(paper_p, rel=1e-9)


def test_prismatic_test_missing_score_names_model_and_benchmark():
    scores = _scores({"a": [0.5, 0.6], "b": [0.4, 0.5]}, ["x", "y"])
    with pytest.raises(ValueError, match="model 'a' on benchmark 'y'|no rows for benchmark"):
        stats.prismatic_test(scores[~((scores.model == "a") & (scores.benchmark == "y"))], [("a", "b")], ["x", "y"])
    with pytest.raises(ValueError, match="no rows for model 'c'"):
        stats.prismatic_test(scores, [("c", "b")], ["x", "y"])


# -------------------------------------------------------------------------------------------- mcnemar
def test_mcnemar_exact_with_few_discordant_pairs():
    # 1 vs 9 discordant: exact two-sided binomial p = 2 * P(X <= 1 | 10, 1/2) = 2 * 11 / 1024
    a = np.array([1] * 1 + [0] * 9 + [1] * 40 + [0] * 50, bool)
    b = np.array([0] * 1 + [1] * 9 + [1] * 40 + [0] * 50, bool)
    (res,) = stats.mcnemar_rows(a, b)
    assert res.method == "mcnemar-exact"
    assert res.pvalue == pytest.approx(22 / 1024)
    assert res.statistic == 1
    assert res.effect == pytest.approx(-8 / 100)
    from statsmodels.stats.contingency_tables import mcnemar

    ref = mcnemar([[40, 1], [9, 50]], exact=True)
    assert res.pvalue == pytest.approx(ref.pvalue)


def test_mcnemar_chi2_agresti_textbook():
    # Agresti (2007) presidential approval: discordant 150 vs 86; corrected chi2 = 63^2/236 = 16.818
    a = np.array([1] * 794 + [1] * 150 + [0] * 86 + [0] * 570, bool)
    b = np.array([1] * 794 + [0] * 150 + [1] * 86 + [0] * 570, bool)
    (res,) = stats.mcnemar_rows(a, b)
    assert res.method == "mcnemar-chi2"
    assert res.statistic == pytest.approx(63**2 / 236)
    from statsmodels.stats.contingency_tables import mcnemar

    ref = mcnemar([[794, 150], [86, 570]], exact=False, correction=True)
    assert res.pvalue == pytest.approx(ref.pvalue)
    assert res.effect == pytest.approx(64 / 1600)


# ------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_percentile_matches_scipy_within_monte_carlo_error():
    rng = np.random.default_rng(1)
    base = rng.uniform(size=300)
    alt = base + rng.normal(0.05, 0.2, 300)
    (res,) = stats.bootstrap_rows(alt, base, n_resamples=4000, seed=3)
    ref = sps.bootstrap((alt - base,), np.mean, n_resamples=4000, method="percentile", rng=3).confidence_interval
    se = (alt - base).std(ddof=1) / math.sqrt(300)
    assert res.effect == pytest.approx((alt - base).mean())
    assert abs(res.ci_low - ref.low) < 0.1 * se
    assert abs(res.ci_high - ref.high) < 0.1 * se


def test_bootstrap_bca_matches_scipy_on_skewed_data():
    rng = np.random.default_rng(2)
    diff = rng.exponential(1.0, 60) - 0.7  # skewed: BCa differs from percentile
    (res,) = stats.bootstrap_rows(diff, np.zeros(60), n_resamples=8000, seed=4, ci="bca")
    ref = sps.bootstrap((diff,), np.mean, n_resamples=8000, method="BCa", rng=4).confidence_interval
    se = diff.std(ddof=1) / math.sqrt(60)
    assert abs(res.ci_low - ref.low) < 0.1 * se
    assert abs(res.ci_high - ref.high) < 0.1 * se
    (pct,) = stats.bootstrap_rows(diff, np.zeros(60), n_resamples=8000, seed=4)
    assert res.ci_low > pct.ci_low  # right skew shifts the BCa interval up


@pytest.mark.parametrize("ci", ["percentile", "bca"])
def test_bootstrap_ci_coverage_is_near_95_percent(ci):
    """400 simulated studies (rows of one matrix) with true mean difference 0.1: ~95% of CIs cover it."""
    rng = np.random.default_rng(5)
    n, reps = 200, 400
    base = rng.binomial(1, 0.5, (reps, n)).astype(float)
    alt = np.where(rng.uniform(size=(reps, n)) < 0.1, 1.0, base)  # flips 0 -> 1 with prob 0.1
    true = 0.5 * 0.1
    res = stats.bootstrap_rows(alt, base, n_resamples=1000, seed=6, ci=ci)
    cover = np.mean([r.ci_low <= true <= r.ci_high for r in res])
    assert 0.91 <= cover <= 0.985, cover


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    r1, r2 = stats.bootstrap_rows(a, b, seed=1), stats.bootstrap_rows(a, b, seed=1)
    r3 = stats.bootstrap_rows(a, b, seed=2)
    assert r1[0].ci_low == r2[0].ci_low
    assert r1[0].ci_low != r3[0].ci_low


@pytest.mark.parametrize("method", ["bootstrap", "permutation"])
def test_resampled_p_below_its_resolution_is_the_normal_tail(method):
    """Row 0: a large effect (0.15 on 3,000 paired 0/1 scores, z ~ 11) that none of the 2,000 resamples
    crosses: its p is the normal tail (~1e-27), not the 2/2,001 floor that Holm over 126 tests turns into
    0.126.  Row 1: a small effect keeps its resampled p."""
    rng = np.random.default_rng(11)
    base = rng.binomial(1, 0.6, (2, 3000)).astype(float)
    alt = base.copy()
    alt[0, rng.choice(np.flatnonzero(base[0] == 1), 450, replace=False)] = 0.0  # 0.15 fewer correct
    alt[1, rng.choice(np.flatnonzero(base[1] == 1), 30, replace=False)] = 0.0
    alt[1, rng.choice(np.flatnonzero(base[1] == 0), 25, replace=False)] = 1.0
    test = stats.bootstrap_rows if method == "bootstrap" else stats.permutation_rows
    strong, weak = test(alt, base, n_resamples=2000, seed=3)
    d = alt[0] - base[0]
    se = math.sqrt((d**2).sum()) / d.size if method == "permutation" else d.std() / math.sqrt(d.size)
    z = sps.norm.isf(strong.pvalue / 2)
    assert strong.extras["p_tail"] == "normal" and strong.pvalue < 1e-20
    assert z == pytest.approx(abs(d.mean()) / se, rel=0.05 if method == "bootstrap" else 1e-9)
    assert weak.extras["p_tail"] == "resampled" and weak.pvalue > 0.05
    assert (weak.pvalue * 2001 / 2) % 1 == pytest.approx(0, abs=1e-6)  # a resampled count: (k + 1) * 2 / 2001


# ---------------------------------------------------------------------------------------- permutation
def test_permutation_exact_equals_scipy_exact():
    rng = np.random.default_rng(8)
    a, b = rng.normal(0.4, 1, 10), rng.normal(0, 1, 10)
    (res,) = stats.permutation_rows(a, b, n_resamples=5000)
    ref = sps.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                               n_resamples=5000, vectorized=True)
    assert res.method == "permutation-exact"
    assert res.pvalue == pytest.approx(ref.pvalue)


def test_permutation_random_close_to_t_test_and_seeded():
    rng = np.random.default_rng(9)
    a = rng.normal(0.15, 1, 400)
    b = rng.normal(0, 1, 400)
    (res,) = stats.permutation_rows(a, b, n_resamples=20000, seed=1)
    ref = sps.ttest_rel(a, b).pvalue
    assert res.method == "permutation"
    assert abs(res.pvalue - ref) < 0.01
    assert stats.permutation_rows(a, b, n_resamples=2000, seed=1)[0].pvalue == \
        stats.permutation_rows(a, b, n_resamples=2000, seed=1)[0].pvalue


def test_paired_test_pairs_by_example_id_not_row_order():
    ids = [f"q{i}" for i in range(40)]
    rng = np.random.default_rng(10)
    sa = rng.integers(0, 2, 40).astype(float)
    sb = rng.integers(0, 2, 40).astype(float)
    ex = pd.concat([
        pd.DataFrame({"run_key": "A", "benchmark": "gqa", "example_id": ids, "score": sa, "correct": sa > 0}),
        pd.DataFrame({"run_key": "B", "benchmark": "gqa", "example_id": ids, "score": sb, "correct": sb > 0})
        .sample(frac=1, random_state=0),  # shuffled rows
    ])
    res = stats.paired_test(ex, "A", "B", benchmark="gqa", method="mcnemar")
    ref = stats.mcnemar_rows(sa > 0, sb > 0)[0]
    assert res.pvalue == ref.pvalue and res.benchmark == "gqa"
    boot = stats.paired_test(ex, "A", "B", benchmark="gqa", method="bootstrap", seed=0)
    assert boot.effect == pytest.approx(sa.mean() - sb.mean())
    with pytest.raises(ValueError, match="method 'ttest' unknown"):
        stats.paired_test(ex, "A", "B", benchmark="gqa", method="ttest")
    with pytest.raises(ValueError, match="run 'C' has no examples on benchmark 'gqa'"):
        stats.paired_test(ex, "A", "C", benchmark="gqa", method="bootstrap")


def test_paired_tests_vectorised_equals_one_at_a_time():
    rng = np.random.default_rng(11)
    rows = []
    for run in ["r0", "r1", "r2", "r3"]:
        for bench in ["x", "y"]:
            s = rng.integers(0, 2, 120).astype(float)
            rows.append(pd.DataFrame({"run_key": run, "benchmark": bench, "example_id": np.arange(120),
                                      "score": s, "correct": s > 0}))
    ex = pd.concat(rows)
    pairs = [("c1", "r1", "r0"), ("c2", "r2", "r0"), ("c3", "r3", "r2")]
    many = stats.paired_tests(ex, pairs, ["x", "y"], seed=0, n_resamples=500)
    assert len(many) == 3 * 2 * 3
    one = stats.paired_test(ex, "r3", "r2", benchmark="y", method="mcnemar")
    match = [r for r in many if r.comparison == "c3" and r.benchmark == "y" and r.method.startswith("mcnemar")]
    assert match[0].pvalue == one.pvalue
    frame = stats.results_frame(many)
    assert {"comparison", "benchmark", "method", "pvalue", "ci_low", "alternate"} <= set(frame.columns)


# ------------------------------------------------------------------------------------ across benchmarks
def test_wilcoxon_and_sign_test_match_scipy():
    bench = [f"b{i}" for i in range(12)]
    rng = np.random.default_rng(12)
    base = rng.uniform(40, 60, 12)
    diff = np.array([1.5, 2.0, -0.5, 3.1, 0.7, 1.1, -1.2, 2.2, 0.9, 0.0, 1.8, 2.6])
    scores = _scores({"a": list(base + diff), "b": list(base)}, bench)
    w = stats.across_benchmarks(scores, [("a", "b")], bench, method="wilcoxon")
    ref = sps.wilcoxon(diff)
    assert w.pvalue == pytest.approx(ref.pvalue) and w.statistic == pytest.approx(ref.statistic)
    rows = np.random.default_rng(16).normal(0.5, 1, (5, 12))
    rows[1, 3] = 0.0  # a zero and a tie take scipy's default path, the rest the vectorised exact one
    rows[2, 4] = -rows[2, 5]
    for row, res in zip(rows, stats.across_rows(rows, "wilcoxon"), strict=True):
        assert res.pvalue == pytest.approx(sps.wilcoxon(row).pvalue)
    fast = stats.across_rows(rows, "wilcoxon", ties="normal")
    assert [r.method for r in fast] == ["wilcoxon", "wilcoxon-normal", "wilcoxon-normal", "wilcoxon", "wilcoxon"]
    assert fast[1].pvalue == pytest.approx(sps.wilcoxon(rows[1], method="asymptotic").pvalue)
    s = stats.across_benchmarks(scores, [("a", "b")], bench, method="sign")
    assert (s.extras["wins"], s.extras["ties"], s.extras["losses"]) == (9, 1, 2)
    assert s.pvalue == pytest.approx(2 * sum(math.comb(11, k) for k in range(3)) / 2**11)  # exact binomial


def test_seed_test_is_paired_t_over_seeds():
    bench = ["x", "y"]
    table = {"a7": [0.6, 0.5], "b7": [0.5, 0.5], "a8": [0.62, 0.56], "b8": [0.55, 0.5], "a9": [0.55, 0.52],
             "b9": [0.5, 0.49]}
    scores = _scores(table, bench)
    res = stats.seed_test(scores, [("a7", "b7"), ("a8", "b8"), ("a9", "b9")], bench)
    per_seed = np.array([0.05, 0.065, 0.04])
    assert res.pvalue == pytest.approx(sps.ttest_1samp(per_seed, 0).pvalue)
    one = stats.seed_test(scores, [("a7", "b7")], bench)
    assert math.isnan(one.pvalue)


def test_mixed_effects_balanced_design_recovers_mean_difference():
    """Balanced: one alt and one base per benchmark -> the level effect is exactly the mean difference."""
    bench = [f"b{i}" for i in range(8)]
    rng = np.random.default_rng(13)
    base = rng.uniform(30, 70, 8)
    diff = rng.normal(2.0, 0.5, 8)
    scores = _scores({"a": list(base + diff), "b": list(base)}, bench)
    res = stats.mixed_effects(scores, [("a", "b")], bench)
    assert res.effect == pytest.approx(diff.mean(), rel=1e-5)
    assert res.ci_low < diff.mean() < res.ci_high
    assert res.pvalue < 1e-3
    import statsmodels.formula.api as smf

    long = pd.DataFrame({"score": np.r_[base + diff, base], "level": [1.0] * 8 + [0.0] * 8, "benchmark": bench * 2})
    ref = smf.mixedlm("score ~ level", long, groups=long["benchmark"]).fit(reml=True)
    assert res.pvalue == pytest.approx(ref.pvalues["level"], rel=1e-4)


def test_mixed_effects_with_base_configuration_effect():
    bench = [f"b{i}" for i in range(6)]
    rng = np.random.default_rng(14)
    table = {}
    for k in range(4):
        base = rng.uniform(30, 70, 6) + 5 * k
        table[f"b{k}"] = list(base)
        table[f"a{k}"] = list(base + 1.0 + rng.normal(0, 0.3, 6))
    scores = _scores(table, bench)
    res = stats.mixed_effects(scores, [(f"a{k}", f"b{k}") for k in range(4)], bench, base_effect=True)
    assert res.method == "mixedlm+base"
    assert res.ci_low < 1.0 < res.ci_high


# ------------------------------------------------------------------------------- corrections, effects
def test_adjust_holm_and_bh_textbook():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.adjust(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.adjust(p, "fdr_bh"), [0.02, 0.04, 0.04, 0.02])
    from statsmodels.stats.multitest import multipletests

    rand = np.random.default_rng(15).uniform(0, 0.2, 50)
    for method in ("holm", "fdr_bh"):
        np.testing.assert_allclose(stats.adjust(rand, method), multipletests(rand, method=method)[1])
    out = stats.adjust([0.01, np.nan, 0.02], "holm")
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="bonferroni"):
        stats.adjust(p, "bonferroni")


def test_effect_sizes_by_hand():
    a = np.array([0.7, 0.6, 0.5, 0.8])
    b = np.array([0.5, 0.6, 0.6, 0.4])
    e = stats.effect_sizes(a, b)
    diff = a - b
    assert e["mean_diff"] == pytest.approx(0.125)
    assert e["cohen_dz"] == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert (e["wins"], e["ties"], e["losses"]) == (2, 1, 1)
    assert e["norm_diff"] == pytest.approx(np.mean(diff / (a + b)))
    lo, hi = sps.t.interval(0.95, 3, loc=diff.mean(), scale=sps.sem(diff))
    assert (e["mean_diff_low"], e["mean_diff_high"]) == pytest.approx((lo, hi))

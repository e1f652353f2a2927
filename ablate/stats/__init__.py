"""Significance tests, multiple-comparison corrections and effect sizes for ablation studies.

The Prismatic paper's p-values pool normalized differences over model pairs x benchmarks and correct for
nothing; ``prismatic_test`` reproduces that procedure for comparability, and the rest of this module gives
stronger tests beside it: per-example paired tests on one benchmark (McNemar, paired bootstrap, paired
sign-flip permutation), tests across benchmarks (Wilcoxon signed-rank, sign test), seeds as replicates, a
mixed-effects model, and Holm / Benjamini-Hochberg corrections.

Everything per-example is vectorised over a matrix of paired rows (one row per comparison, one column per
example), so a whole study runs as a few matrix products: a bootstrap resample is a row of multinomial
counts, a permutation a row of random signs, and every row of the study shares them.

The package splits by job: ``core`` (settings, ``TestResult``, corrections, effect sizes), ``benchmarks``
(tests over benchmark scores) and ``per_example`` (tests over per-example records); every public name is
importable from ``ablate.stats``.
"""

from __future__ import annotations

from ablate.stats.benchmarks import (
    across_benchmarks,
    across_rows,
    mixed_effects,
    pair_matrices,
    prismatic_test,
    seed_test,
    wide_scores,
)
from ablate.stats.core import (
    CHUNK,
    CI_KINDS,
    DEFAULT_RESAMPLES,
    MCNEMAR_EXACT_BELOW,
    METHODS_ACROSS,
    METHODS_PAIRED,
    RESAMPLE_DTYPE,
    TestResult,
    adjust,
    effect_sizes,
    results_frame,
    t_interval,
)
from ablate.stats.per_example import (
    bootstrap_rows,
    example_matrices,
    example_matrix,
    mcnemar_rows,
    normal_tail_p,
    paired_rows,
    paired_test,
    paired_tests,
    permutation_rows,
)

__all__ = [
    "CHUNK", "CI_KINDS", "DEFAULT_RESAMPLES", "MCNEMAR_EXACT_BELOW", "METHODS_ACROSS", "METHODS_PAIRED",
    "RESAMPLE_DTYPE", "TestResult", "across_benchmarks", "across_rows", "adjust", "bootstrap_rows",
    "effect_sizes", "example_matrices", "example_matrix", "mcnemar_rows", "mixed_effects", "normal_tail_p",
    "pair_matrices", "paired_rows", "paired_test", "paired_tests", "permutation_rows", "prismatic_test",
    "results_frame", "seed_test", "t_interval", "wide_scores",
]

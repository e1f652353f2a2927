"""Scale benchmark of ablate.stats: a study of 1,000 runs x 12 benchmarks x 10,000 examples (10^8 scores).

Prints the wall time of the whole per-example analysis (500 alternate/base run pairs x 12 benchmarks, each
with McNemar, a paired bootstrap and a paired permutation test) plus the across-benchmark tests and the
corrections, and the ratio against a loop calling scipy/statsmodels once per pair x benchmark (timed on a
subset and extrapolated). The tidy examples table is generated one benchmark at a time (10^7 rows,
categorical columns as ``ablate collect`` writes them) to bound memory; generation is not timed.

    OMP_NUM_THREADS=2 .venv/bin/python bench/stats_scale.py [--runs 1000 --benchmarks 12 --examples 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from tqdm import tqdm

from ablate import stats


def make_benchmark(rng: np.random.Generator, runs: int, examples: int, bench: str) -> pd.DataFrame:
    """Tidy examples of one benchmark: correlated per-example outcomes, alternate runs slightly better."""
    difficulty = rng.uniform(-0.4, 0.4, examples)
    skill = 0.55 + 0.02 * (np.arange(runs) % 2) + rng.normal(0, 0.01, runs)
    correct = rng.uniform(size=(runs, examples)) < np.clip(skill[:, None] + difficulty[None, :], 0, 1)
    keys = pd.Categorical.from_codes(np.repeat(np.arange(runs, dtype=np.int32), examples),
                                     [f"run{i:04d}" for i in range(runs)])
    ids = pd.Categorical.from_codes(np.tile(np.arange(examples, dtype=np.int32), runs),
                                    [f"{bench}-{i}" for i in range(examples)])
    return pd.DataFrame({"run_key": keys, "benchmark": pd.Categorical.from_codes(np.zeros(runs * examples, np.int8),
                                                                                [bench]),
                         "example_id": ids,
                         "score": correct.ravel().astype(np.float64), "correct": correct.ravel()})


def scipy_loop_one(alt: np.ndarray, base: np.ndarray, resamples: int, seed: int) -> None:
    """What a per-pair analysis does without vectorisation: one scipy/statsmodels call per test."""
    diff = alt - base
    n01, n10 = int(((alt > 0) & (base == 0)).sum()), int(((alt == 0) & (base > 0)).sum())
    mcnemar([[0, n01], [n10, 0]], exact=n01 + n10 < 25)
    sps.bootstrap((diff,), np.mean, n_resamples=resamples, method="percentile", vectorized=True, rng=seed)
    sps.permutation_test((alt, base), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                         n_resamples=resamples, vectorized=True, rng=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--benchmarks", type=int, default=12)
    ap.add_argument("--examples", type=int, default=10000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--loop-subset", type=int, default=6, help="pair x benchmark tests timed for the scipy loop")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    pairs = [(f"pair{i}", f"run{2 * i + 1:04d}", f"run{2 * i:04d}") for i in range(args.runs // 2)]
    benches = [f"bench{j:02d}" for j in range(args.benchmarks)]
    total_scores = args.runs * args.benchmarks * args.examples
    print(f"study: {args.runs} runs x {args.benchmarks} benchmarks x {args.examples} examples = "
          f"{total_scores:.3g} scores; {len(pairs)} pairs; {args.resamples} resamples")

    analysis_s, cpu_s, gen_s, results = 0.0, 0.0, 0.0, []
    loop_s, loop_n, accuracy = 0.0, 0, []
    for bench in tqdm(benches, desc="benchmarks", unit="bench"):
        t0 = time.perf_counter()
        frame = make_benchmark(rng, args.runs, args.examples, bench)
        gen_s += time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        results += stats.paired_tests(frame, pairs, [bench], seed=0, n_resamples=args.resamples)
        analysis_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0
        accuracy.append(frame.groupby("run_key", observed=True)["score"].mean().to_numpy())
        if loop_n < args.loop_subset:  # baseline: a few pairs of this benchmark through scipy
            (mat,), _ = stats.example_matrices(frame, [pairs[0][1], pairs[0][2]])
            t0 = time.perf_counter()
            scipy_loop_one(mat[0], mat[1], args.resamples, loop_n)
            loop_s += time.perf_counter() - t0
            loop_n += 1
        del frame

    t0, c0 = time.perf_counter(), time.process_time()
    scores = pd.DataFrame({"model": np.repeat([f"run{i:04d}" for i in range(args.runs)], args.benchmarks),
                           "benchmark": np.tile(benches, args.runs),
                           "score": np.stack(accuracy, axis=1).ravel()})
    wide = stats.wide_scores(scores)
    run_pairs = [(a, b) for _, a, b in pairs]
    across = [stats.prismatic_test(wide, run_pairs, benches)]
    alt, base = stats.pair_matrices(wide, run_pairs, benches)
    # one per pair; tied/zero rows take the normal approximation (scipy's permutation null costs ~0.1 s a row)
    across += [r for m in stats.METHODS_ACROSS for r in stats.across_rows(alt - base, m, ties="normal")]
    frame = stats.results_frame(results + across)
    for _, idx in frame.groupby("method").groups.items():
        frame.loc[idx, "p_adj"] = stats.adjust(frame.loc[idx, "pvalue"].to_numpy(float), "holm")
    analysis_s += time.perf_counter() - t0
    cpu_s += time.process_time() - c0

    n_tests = len(pairs) * len(benches)
    loop_total = loop_s / loop_n * n_tests
    boot = frame[frame["method"].str.startswith("bootstrap")]
    print(f"tests: {len(frame)} rows ({n_tests} pair x benchmark cells x 3 per-example tests + across-benchmark)")
    print(f"mean bootstrap effect {boot['effect'].mean():+.4f} (simulated +0.02); "
          f"significant after Holm: {int((frame['p_adj'] < 0.05).sum())}")
    print(f"data generation (not timed): {gen_s:.1f} s")
    print(f"vectorised analysis of {total_scores:.3g} scores: {analysis_s:.1f} s wall, {cpu_s:.1f} s CPU "
          f"(on 2 idle cores: between {cpu_s / 2:.1f} s if all of it ran on both cores and {cpu_s:.1f} s if on one; "
          f"wall exceeds that when other work shares the cores)")
    print(f"per-pair scipy loop: {loop_s / loop_n:.3f} s per cell on {loop_n} cells -> {loop_total:.0f} s "
          f"extrapolated to {n_tests} cells")
    print(f"speed-up: {loop_total / analysis_s:.0f}x")


if __name__ == "__main__":
    main()

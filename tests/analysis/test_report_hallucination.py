"""The report's hallucination and verbosity section on a hand-built study: literal p-values and effects."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import pandas as pd
import pytest

from ablate.report_hallucination import hallucination_section, hallucination_tests
from ablate.results import EXAMPLE_COLUMNS, Results

# per seed: 5 captions of the chair benchmark and 5 generated short answers (vqav2), alternate vs base
ALT = {"chair_s": [1, 1, 1, 0, 0], "chair_i": [0.5, 0.5, 1.0, 0.0, 0.0], "words": [10, 12, 9, 11, 8],
       "over": [1, 1, 1, 1, 0], "neg": [0, 0, 1, 1, 0]}
BASE = {"chair_s": [0, 0, 1, 0, 0], "chair_i": [0.0, 0.0, 1.0, 0.0, 0.0], "words": [3, 2, 4, 3, 2],
        "over": [0, 0, 1, 0, 0], "neg": [1, 1, 1, 1, 0]}


def _examples(run_key: str, v: dict[str, list[float]]) -> list[dict]:
    rows = []
    for i in range(5):
        rows.append({"run_key": run_key, "benchmark": "chair", "example_id": str(i), "score": 1.0 - v["chair_s"][i],
                     "chair_s": v["chair_s"][i], "chair_i": v["chair_i"][i], "answer_words": v["words"][i]})
        rows.append({"run_key": run_key, "benchmark": "vqav2", "example_id": str(i), "score": 1.0,
                     "answer_words": v["words"][i], "over_length": v["over"][i]})
        rows.append({"run_key": run_key, "benchmark": "lrv-neg", "example_id": str(i), "score": v["neg"][i],
                     "correct": bool(v["neg"][i]), "answer_words": 1.0})
    return rows


def study() -> Results:
    runs, examples = [], []
    for seed in (7, 8):
        for point, values in (("llm=tiny-llama-chat", ALT), ("baseline", BASE)):
            key = f"{point}-{seed}"
            runs.append({"run_key": key, "point": point, "seed": seed, "status": "done"})
            examples += _examples(key, values)
    frame = pd.DataFrame(examples).reindex(columns=EXAMPLE_COLUMNS)
    manifest = {"study": "hall", "comparisons": [{"name": "llm: tiny-llama-chat vs tiny-llama", "axis": "llm",
                                                  "pairs": [["llm=tiny-llama-chat", "baseline"]]}]}
    return Results(pd.DataFrame(runs), pd.DataFrame(columns=["run_key", "benchmark", "metric", "value"]), frame,
                   manifest)


def test_section_tests_equal_hand_computation() -> None:
    rows = hallucination_tests(study()).set_index("measure")
    s = rows.loc["CHAIR_s"]
    # McNemar over 10 (seed, caption) pairs: 4 hallucinate only with the alternate, 0 only with the base:
    # exact two-sided p = 2 * P(Bin(4, 0.5) <= 0) = 2 / 16
    assert (s["method"], s["n"], s["effect"], s["pvalue"]) == ("mcnemar-exact", 10, 0.4, 0.125)
    assert (s["alt_mean"], s["base_mean"]) == (0.6, 0.2)
    assert rows.loc["CHAIR_i", "effect"] == pytest.approx(0.2)  # (0.5 + 0.5) * 2 / 10
    w = rows.loc["words per answer"]
    # 30 answers (chair + vqav2 + lrv-neg) x 2 seeds; the 10 lrv-neg pairs differ by 0 and are dropped: 20
    # differences, all positive, in 5 groups of 4 ties -> normal approximation: T- = 0, mean 20*21/4 = 105,
    # variance 20*21*41/24 - 5*(4**3 - 4)/48 = 711.25, p = 2 * Phi(-105 / sqrt(711.25))
    assert w["method"] == "wilcoxon" and w["n"] == 30
    assert w["pvalue"] == pytest.approx(2 * NormalDist().cdf(-105 / math.sqrt(711.25)))
    assert w["effect"] == pytest.approx(2 * 2 * (7 + 10 + 5 + 8 + 6) / 30)  # 2 benchmarks x 2 seeds
    o = rows.loc["longer than asked"]
    assert (o["n"], o["effect"], o["pvalue"]) == (10, 0.6, 2 / 2**6)  # 6 discordant, all alternate-only
    n = rows.loc["negative-instruction accuracy"]
    assert (n["n"], n["effect"], n["pvalue"]) == (10, -0.4, 0.125)
    # Holm over the 5 rows: the smallest p times 5
    assert rows["p_adj"].min() == pytest.approx(5 * w["pvalue"])


def test_section_writes_csv_plot_and_markdown(tmp_path: Path) -> None:
    section = hallucination_section(study(), tmp_path)
    assert (tmp_path / "hallucination.csv").is_file() and (tmp_path / "forest_hallucination.png").stat().st_size > 0
    assert section.md[0] == "## Hallucination and verbosity" and "CHAIR_s" in "\n".join(section.md)
    empty = study()
    empty.examples = empty.examples[empty.examples["benchmark"] == "none"]
    assert "no comparison has paired CHAIR" in hallucination_section(empty, tmp_path).md[2]

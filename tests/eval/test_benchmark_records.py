"""Per-example records and aggregates of each benchmark: hits, misses, parse failures, closed-set modes."""

from __future__ import annotations

import json

import pytest

from ablate.eval.benchmarks import get_benchmark


def scored(bench_root, benchmark_id: str, outputs: dict[str, object], mode: str = "prob"):
    root, _ = bench_root
    bench = get_benchmark(benchmark_id, root, closed_set_mode=mode)
    examples = {e.example_id: e for e in bench.load()}
    records = [bench.score(examples[k], v) for k, v in outputs.items()]
    return records, bench.aggregate(records)


def test_vqav2_soft_accuracy_and_types(bench_root) -> None:
    recs, agg = scored(bench_root, "vqav2", {"1000": "Red.", "2001": "two", "1002": ""})
    by_id = {r["example_id"]: r for r in recs}
    assert by_id["1000"]["score"] == pytest.approx(1.0) and by_id["1000"]["correct"]
    # TRI maps the prediction "two" -> "2" but not the gold answers: 2 of 10 match -> 0.6;
    # official-2021 normalizes both sides when annotators disagree: 4 match -> 1.0
    assert by_id["2001"]["score"] == pytest.approx(0.6) and by_id["2001"]["score_official"] == pytest.approx(1.0)
    assert by_id["1002"] == {**by_id["1002"], "parse_ok": False, "score": 0.0, "correct": False}
    assert agg["accuracy"] == pytest.approx(1.6 / 3) and agg["parse_failure_rate"] == pytest.approx(1 / 3)
    assert agg["accuracy_yes_no"] == 0.0 and agg["accuracy_number"] == pytest.approx(0.6)
    assert by_id["1000"]["prediction"] == "Red." and by_id["1000"]["answer_type"] == "other"


def test_vqav2_tri_vs_official_on_unanimous_yes(bench_root) -> None:
    # official-2021 does not normalize when annotators agree: "Yes" != "yes"; TRI lowercases the prediction
    (rec,), agg = scored(bench_root, "vqav2", {"1002": "Yes"})
    assert rec["score"] == pytest.approx(1.0) and rec["score_official"] == 0.0
    assert agg["accuracy_official"] == 0.0


def test_gqa_tri_normalization(bench_root) -> None:
    recs, agg = scored(bench_root, "gqa", {"201307251": "Yes.", "20000001": " cup"})
    assert [r["correct"] for r in recs] == [True, False]  # TRI does not strip whitespace
    assert agg == {**agg, "accuracy": 0.5, "accuracy_binary": 1.0, "accuracy_open": 0.0}


def test_vizwiz_unanswerable_metrics(bench_root) -> None:
    recs, agg = scored(bench_root, "vizwiz", {"VizWiz_val_00000000.jpg": "Unanswerable",
                                              "VizWiz_val_00000001.jpg": "unanswerable"})
    assert [r["pred_unanswerable"] for r in recs] == [True, True]
    assert recs[0]["score"] == pytest.approx(1.0) and recs[1]["score"] == 0.0
    assert agg["unanswerable_f1"] == pytest.approx(2 / 3)  # tp=1, fp=1
    assert agg["unanswerable_average_precision"] == pytest.approx(0.5)


def test_textvqa_m4c(bench_root) -> None:
    recs, _ = scored(bench_root, "textvqa-ocr", {"34602": "Nikon camera", "34603": "12,"})
    assert recs[0]["score"] == pytest.approx(0.9)  # 3 of 10 annotators
    assert recs[1]["score"] == pytest.approx(1.0)


def test_refcoco_strict_boxes_and_failures(bench_root) -> None:
    outputs = {"0": "[0.12, 0.12, 0.38, 0.62]", "1": "[0.5, 0.5, 0.9, 0.9]", "2": "the man on the right"}
    recs, agg = scored(bench_root, "refcoco", outputs)
    assert [r["correct"] for r in recs] == [True, False, False]
    assert recs[0]["iou"] == pytest.approx(1.0) and recs[0]["parsed"] == [0.12, 0.12, 0.38, 0.62]
    assert recs[2]["parse_ok"] is False and recs[2]["parsed"] is None and recs[2]["score"] == 0.0
    assert agg["accuracy"] == pytest.approx(1 / 3) and agg["parse_failures"] == 1.0
    # Prismatic's parser needs a list: a tuple is a parse failure, never guessed
    (rec,), _ = scored(bench_root, "refcocog", {"0": "(0.12, 0.12, 0.38, 0.62)"})
    assert rec["parse_ok"] is False


def test_ocid_iou_quarter_threshold(bench_root) -> None:
    # gold [0.06, 0.25, 0.31, 0.75]; this box overlaps with IoU ~0.33: a hit at 0.25, a miss at 0.5
    recs, agg = scored(bench_root, "ocid-ref", {"23": "[0.06, 0.25, 0.31, 0.42]", "7": "[0.0, 0.0, 0.1, 0.1]"})
    assert 0.25 <= recs[0]["iou"] < 0.5 and recs[0]["correct"]
    assert agg["accuracy_minimum"] == 1.0 and agg["accuracy_maximum"] == 0.0


def test_pope_probabilities_mean_over_splits(bench_root) -> None:
    probs = {"adversarial-1": [0.9, 0.1], "adversarial-2": [0.5, 0.5],  # tie -> Yes (first option): wrong
             "popular-1": [0.2, 0.8], "popular-2": [0.3, 0.7],
             "random-1": [0.6, 0.4], "random-2": [0.1, 0.9], "random-3": [0.7, 0.3]}
    recs, agg = scored(bench_root, "pope", probs)
    assert [r["parsed"] for r in recs] == ["Yes", "Yes", "No", "No", "Yes", "No", "Yes"]
    assert agg["adversarial_accuracy"] == 0.5 and agg["popular_accuracy"] == 0.5 and agg["random_accuracy"] == 1.0
    assert agg["accuracy"] == pytest.approx(2 / 3)  # unweighted mean over splits, not 5/7
    assert recs[0]["option_probs"] == [0.9, 0.1] and json.loads(recs[0]["prediction"]) == {"Yes": 0.9, "No": 0.1}


def test_pope_generation_unparseable_scores_zero(bench_root) -> None:
    outputs = {"random-1": "Yes, there is.", "random-2": "There is no tv.", "random-3": "I see a cat."}
    recs, agg = scored(bench_root, "pope", outputs, mode="generate")
    assert [r["parsed"] for r in recs] == ["Yes", "No", None]
    assert [r["score"] for r in recs] == [1.0, 1.0, 0.0] and recs[2]["parse_ok"] is False
    assert agg["random_accuracy"] == pytest.approx(2 / 3) and agg["parse_failures"] == 1.0


def test_vsr_tally_ai2d_both_modes(bench_root) -> None:
    root, _ = bench_root
    vsr_ids = [e.example_id for e in get_benchmark("vsr", root).load()]
    recs, _ = scored(bench_root, "vsr", {vsr_ids[0]: [0.4, 0.6], vsr_ids[1]: [0.3, 0.7]})
    assert [r["correct"] for r in recs] == [False, True]
    recs, _ = scored(bench_root, "vsr", {vsr_ids[0]: "True.", vsr_ids[1]: "maybe"}, mode="generate")
    assert [r["score"] for r in recs] == [1.0, 0.0] and recs[1]["parse_ok"] is False

    probs = [0.0] * 16
    probs[2] = 1.0
    recs, agg = scored(bench_root, "tallyqa", {"7": probs, "9": probs})
    assert [r["parsed"] for r in recs] == ["C", "C"] and agg["accuracy_simple"] == 1.0
    assert agg["accuracy_complex"] == 0.0
    recs, agg = scored(bench_root, "tallyqa", {"7": "C", "9": "I think 3 or 4"}, mode="generate")
    assert [r["score"] for r in recs] == [1.0, 0.0] and agg["parse_failure_rate"] == 0.5

    recs, agg = scored(bench_root, "ai2d", {"0.png-0": "B", "0.png-1": "The answer is rabbit", "12.png-0": "C"},
                       mode="generate")
    assert [r["parsed"] for r in recs] == ["B", "A", "C"]  # option text 'rabbit' -> A
    assert agg["accuracy_val"] == 1.0 and agg["accuracy_test"] == 0.0
    assert agg["accuracy"] == pytest.approx(2 / 3)


def test_open_ended_benchmarks_ignore_closed_set_mode(bench_root) -> None:
    root, _ = bench_root
    assert get_benchmark("vqav2", root, closed_set_mode="prob").mode == "generate"
    assert get_benchmark("pope", root, closed_set_mode="prob").mode == "prob"
    with pytest.raises(ValueError, match="eval.closed_set: invalid value 'logits'"):
        get_benchmark("pope", root, closed_set_mode="logits")

"""A real tiny random-init VLM (build_vlm) evaluated on every benchmark fixture: a record per example, unique
ids that join across two runs, option probabilities that are distributions, batch size not changing outputs,
and ``ablate eval`` on a saved run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ablate.cli import main
from ablate.design import compose
from ablate.eval.benchmarks import get_benchmark, list_benchmarks
from ablate.eval.runner import evaluate, run_model
from ablate.models.vlm import build_vlm

TINY = ["vision=tiny-clip", "llm=tiny-llama", "train=tiny", "data=shapes", "eval=shapes"]
JOIN_BENCHMARKS = ["vqav2", "refcoco", "pope"]


@pytest.fixture(scope="module")
def tiny(bench_root):
    root, _ = bench_root
    cfg = compose([*TINY, f"eval.root={root}", "eval.batch_size=4", "eval.max_new_tokens=4", "runtime.progress=false",
                   f"eval.benchmarks=[{','.join(list_benchmarks())}]"])
    torch.manual_seed(0)
    return build_vlm(cfg), cfg


@pytest.fixture(scope="module")
def two_runs(tiny, tmp_path_factory):
    model, cfg = tiny
    out = tmp_path_factory.mktemp("tiny-eval")
    return out, evaluate(model, cfg, out / "a"), evaluate(model, cfg, out / "b", benchmarks=JOIN_BENCHMARKS)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_vlm_records_every_example(two_runs, bench_root) -> None:
    out, scores, _ = two_runs
    _, expected = bench_root
    assert list(scores) == list_benchmarks()
    for bench, ids in expected.items():
        records = read(out / "a/examples" / f"{bench}.jsonl")
        assert len(records) == len(ids) == scores[bench]["n"]
        assert len({r["example_id"] for r in records}) == len(records)
        assert all(0.0 <= r["score"] <= 1.0 and isinstance(r["parse_ok"], bool) for r in records)
        assert scores[bench]["parse_failures"] == sum(not r["parse_ok"] for r in records)
        generated = [r for r in records if "option_probs" not in r]
        # every generated answer carries its verbosity: words, the model tokenizer's tokens, the limit if any
        assert all(r["answer_words"] == len(r["prediction"].split()) and r["answer_tokens"] >= r["answer_words"] > 0
                   or r["answer_words"] == r["answer_tokens"] == 0 for r in generated), bench
        assert all(("over_length" in r) == ("length_limit" in r) for r in generated)
    vqa = read(out / "a/examples/vqav2.jsonl")
    assert all(r["length_limit"] == 3 and r["over_length"] == float(r["answer_words"] > 3) for r in vqa)
    assert scores["vqav2"]["words_per_answer"] == pytest.approx(sum(r["answer_words"] for r in vqa) / len(vqa))
    assert "over_length" not in read(out / "a/examples/chair.jsonl")[0]
    # prob mode: option probabilities are distributions over the benchmark's options
    for r in read(out / "a/examples/tallyqa.jsonl") + read(out / "a/examples/pope.jsonl"):
        assert sum(r["option_probs"]) == pytest.approx(1.0, abs=1e-4) and r["parse_ok"]
        assert len(r["option_probs"]) == (16 if r["example_id"] in ("7", "9") else 2)


def test_tiny_vlm_ids_join_across_runs(two_runs) -> None:
    out, first, second = two_runs
    for bench in JOIN_BENCHMARKS:
        a = {r["example_id"]: r for r in read(out / "a/examples" / f"{bench}.jsonl")}
        b = {r["example_id"]: r for r in read(out / "b/examples" / f"{bench}.jsonl")}
        assert set(a) == set(b)
        for key, rec in a.items():  # greedy + same weights -> same outputs and scores, paired by id
            assert (rec["prediction"], rec["score"]) == (b[key]["prediction"], b[key]["score"])
        assert first[bench]["accuracy"] == pytest.approx(second[bench]["accuracy"])


def test_batched_generation_matches_batch_one(tiny, bench_root) -> None:
    model, _ = tiny
    root, _ = bench_root
    bench = get_benchmark("vqav2", root)
    examples = bench.load()
    one = run_model(model, bench, examples, batch_size=1, max_new_tokens=4, progress=False)
    many = run_model(model, bench, examples, batch_size=3, max_new_tokens=4, progress=False)
    assert one == many and all(isinstance(o, str) for o in one)


def test_cli_eval_on_run_dir(tiny, bench_root, tmp_path: Path, capsys) -> None:
    model, cfg = tiny
    root, _ = bench_root
    run = tmp_path / "run"
    model.save_pretrained(run / "model")
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    assert main(["eval", str(run), "--benchmarks", "pope,gqa", "--limit", "2", "eval.batch_size=2"]) == 0
    printed = capsys.readouterr().out
    assert "pope\taccuracy\t" in printed and "gqa\tparse_failure_rate\t" in printed
    assert len(read(run / "examples/pope.jsonl")) == 2 and len(read(run / "examples/gqa.jsonl")) == 2
    assert (run / "examples/lmms-eval/samples_pope.jsonl").is_file()


def test_evaluate_writes_per_benchmark_progress(tiny, tmp_path, monkeypatch, bench_root) -> None:
    """docs/contracts.md "Progress file": the evaluator rewrites progress.json per benchmark as it goes."""
    from ablate import rundir
    from ablate.eval import runner

    _, expected = bench_root
    model, cfg = tiny
    seen: list[dict] = []
    real = rundir.write_progress

    def record(run_dir: Path, *args, **kwargs) -> None:
        real(run_dir, *args, **kwargs)
        seen.append(rundir.read_progress(run_dir))

    monkeypatch.setattr(rundir, "write_progress", record)
    monkeypatch.setattr(runner, "PROGRESS_EVERY_S", 0.0)  # every batch
    one = OmegaConf.merge(cfg, {"eval": {"batch_size": 1}})
    evaluate(model, one, tmp_path, benchmarks=JOIN_BENCHMARKS)
    for index, bench in enumerate(JOIN_BENCHMARKS):
        mine = [p for p in seen if p["stage"] == bench]
        n = len(expected[bench])
        assert {(p["phase"], p["benchmark"], p["index"], p["benchmarks"], p["total"]) for p in mine} == \
            {("eval", bench, index, 3, n)}
        steps = [p["step"] for p in mine]
        assert steps == [0, *range(1, n + 1), n]  # start, after each batch of one, end
    final = rundir.read_progress(tmp_path)
    assert (final["stage"], final["step"]) == ("pope", len(expected["pope"]))
    assert rundir.progress_line(tmp_path) == f"eval pope {len(expected['pope'])}/{len(expected['pope'])} (3/3 benchmarks)"

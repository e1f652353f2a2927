"""The runner with a scripted model: records for every example, exact parse-failure counts, lmms-eval export,
tracker metrics, batching by shared options, ids that join across two runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from ablate.eval.benchmarks import list_benchmarks
from ablate.eval.runner import apply_overrides, evaluate, resolve_target


class ScriptedVLM:
    """Answers by a rule on the prompt text, records every call (batch sizes, options)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, tuple[str, ...]]] = []

    def generate(self, images, prompts, *, max_new_tokens):
        assert len(images) == len(prompts) and all(im.mode == "RGB" for im in images)
        self.calls.append(("generate", len(prompts), ()))
        return ["[0.12, 0.12, 0.38, 0.62]" if "bounding box" in p else ("red" if "color" in p else "no idea")
                for p in prompts]

    def score_options(self, images, prompts, options):
        self.calls.append(("score", len(prompts), tuple(options)))
        probs = torch.full((len(prompts), len(options)), 0.1)
        probs[:, -1] = 0.9
        return probs / probs.sum(-1, keepdim=True)


class Recorder:
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.artifacts: list[Path] = []

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append(Path(path))


def config(root: Path, **eval_overrides):
    ev = {"id": "test", "root": str(root), "benchmarks": list_benchmarks(), "limit": None, "subset_seed": 0,
          "closed_set": "prob", "max_new_tokens": 8, "batch_size": 2, **eval_overrides}
    return OmegaConf.create({"eval": ev, "runtime": {"progress": False}})


def test_every_example_recorded_and_failures_counted(bench_root, tmp_path: Path) -> None:
    root, expected = bench_root
    model, tracker = ScriptedVLM(), Recorder()
    scores = evaluate(model, config(root), tmp_path, tracker=tracker)
    assert list(scores) == list_benchmarks()
    for bench, ids in expected.items():
        lines = [json.loads(x) for x in (tmp_path / "examples" / f"{bench}.jsonl").read_text().splitlines()]
        assert len(lines) == len(ids) == scores[bench]["n"]
        assert len({r["example_id"] for r in lines}) == len(lines)
        for r in lines:
            assert {"example_id", "prediction", "parsed", "parse_ok", "score", "correct", "gold"} <= set(r)
        assert tracker.metrics[f"eval/{bench}/parse_failure_rate"] == scores[bench]["parse_failure_rate"]
    # RefCOCO: the scripted box is the gold box of sentences 0 and 1; the parser accepts it everywhere
    assert scores["refcoco"]["accuracy"] == pytest.approx(2 / 3) and scores["refcoco"]["parse_failures"] == 0
    # VQAv2: "red" hits 1000 (9/10 annotators -> 1.0); "no idea" on the others is parsed but wrong
    assert scores["vqav2"]["accuracy"] == pytest.approx(1 / 3)
    # POPE by probabilities: always "No" -> right on every "no" label
    assert scores["pope"]["adversarial_accuracy"] == 0.5 and scores["pope"]["random_accuracy"] == pytest.approx(1 / 3)
    assert tracker.metrics["eval/pope/accuracy"] == scores["pope"]["accuracy"]
    assert {p.name for p in tracker.artifacts} == {f"{b}.jsonl" for b in list_benchmarks()}
    # batches never exceed eval.batch_size, and a prob batch shares one option list
    assert max(n for _, n, _ in model.calls) == 2
    assert ("score", 2, ("Yes", "No")) in model.calls and ("score", 2, tuple("ABCDEFGHIJKLMNOP")) in model.calls


def test_generate_mode_unparseable_is_zero_and_counted(bench_root, tmp_path: Path) -> None:
    root, _ = bench_root
    scores = evaluate(ScriptedVLM(), config(root, closed_set="generate"), tmp_path,
                      benchmarks=["pope", "tallyqa", "vsr"])
    for bench in ("pope", "tallyqa", "vsr"):  # "no idea" names no option of tallyqa/vsr; POPE reads "no"
        records = [json.loads(x) for x in (tmp_path / "examples" / f"{bench}.jsonl").read_text().splitlines()]
        failed = [r for r in records if not r["parse_ok"]]
        assert all(r["score"] == 0 and r["parsed"] is None for r in failed)
        assert scores[bench]["parse_failures"] == len(failed)
    assert scores["tallyqa"]["parse_failure_rate"] == 1.0 and scores["vsr"]["parse_failure_rate"] == 1.0
    assert scores["pope"]["parse_failure_rate"] == 0.0


def test_lmms_eval_samples(bench_root, tmp_path: Path) -> None:
    root, _ = bench_root
    evaluate(ScriptedVLM(), config(root), tmp_path, benchmarks=["ai2d", "gqa"])
    samples = [json.loads(x) for x in (tmp_path / "examples/lmms-eval/samples_ai2d.jsonl").read_text().splitlines()]
    assert [s["doc_id"] for s in samples] == ["0.png-0", "0.png-1", "12.png-0"]
    first = samples[0]
    assert first["target"] == "B" and first["filtered_resps"] == ["D"] and len(first["resps"][0][0]) == 4
    assert first["arguments"][1] == ["A", "B", "C", "D"] and first["score"] == 0.0
    assert len(first["doc_hash"]) == 64 and first["doc"]["split"] == "val"
    gqa = [json.loads(x) for x in (tmp_path / "examples/lmms-eval/samples_gqa.jsonl").read_text().splitlines()]
    assert gqa[0]["resps"] == [["no idea"]] and gqa[0]["target"] == "yes"


def test_ids_join_across_two_runs_with_limit(bench_root, tmp_path: Path) -> None:
    root, _ = bench_root
    cfg = config(root, limit=4, subset_seed=3, benchmarks=["pope", "vqav2"])
    a = evaluate(ScriptedVLM(), cfg, tmp_path / "a")
    b = evaluate(ScriptedVLM(), cfg, tmp_path / "b", limit=4)
    assert a["pope"]["n"] == b["pope"]["n"] == 4 and a["vqav2"]["n"] == 3
    for bench in ("pope", "vqav2"):
        fa = pd.read_json(tmp_path / "a/examples" / f"{bench}.jsonl", lines=True, dtype={"example_id": str})
        fb = pd.read_json(tmp_path / "b/examples" / f"{bench}.jsonl", lines=True, dtype={"example_id": str})
        joined = fa.merge(fb, on="example_id", suffixes=("_a", "_b"), validate="one_to_one")
        assert len(joined) == len(fa) == len(fb)
        assert (joined["score_a"] == joined["score_b"]).all()


def test_unknown_benchmark_fails_before_running(bench_root, tmp_path: Path) -> None:
    root, _ = bench_root
    model = ScriptedVLM()
    with pytest.raises(ValueError, match="eval.benchmarks: invalid value 'mmbench'; allowed: vqav2"):
        evaluate(model, config(root), tmp_path, benchmarks=["pope", "mmbench"])
    assert model.calls == []


def test_overrides_and_targets(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"eval": {"id": "prismatic", "root": "x", "limit": None}})
    cfg = apply_overrides(cfg, ["eval=shapes", "eval.limit=5"])
    assert cfg.eval.id == "shapes" and cfg.eval.root == "data/shapes/eval" and cfg.eval.limit == 5
    (tmp_path / "run/model").mkdir(parents=True)
    assert resolve_target(tmp_path / "run") == (tmp_path / "run/model", tmp_path / "run", tmp_path / "run/config.yaml")
    (tmp_path / "m").mkdir()
    assert resolve_target(tmp_path / "m")[1] == tmp_path / "m/eval"
    from ablate.config import ConfigError

    with pytest.raises(ConfigError, match="expected a run directory"):
        resolve_target(tmp_path / "missing")
    with pytest.raises(ConfigError, match="eval: invalid value 'nope'"):
        apply_overrides(cfg, ["eval=nope"])

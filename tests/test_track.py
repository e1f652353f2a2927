"""MLflow tracking: run per run_key (resume never opens a second run), params/tags, concurrent SQLite writers."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from ablate.track import MAX_PARAM_VALUE, Tracker, flatten, prepare_store, retry


def _cfg(tmp: Path) -> object:
    return OmegaConf.create({
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "artifact_root": str(tmp / "artifacts")},
        "train": {"lr": 0.001, "stages": [{"name": "align", "trainable": ["projector"]}]},
        "note": "x" * (MAX_PARAM_VALUE + 50),
    })


def _tracker(cfg: object, key: str) -> Tracker:
    return Tracker(cfg, run_key=key, design_key="d" + key, study="study-a", point_name=f"point-{key}",
                   axes={"vision": "tiny-clip", "recipe": "two-stage"})


def test_flatten_dotted_keys_and_lists() -> None:
    flat = dict(flatten({"a": {"b": 1, "c": [1, 2]}, "s": [{"n": "x"}]}))
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "s.0.n": "x"}


def test_resume_continues_the_same_run(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with _tracker(cfg, "abc123") as t1:
        t1.log_metrics({"train/align/loss": 2.0}, step=1)
    assert not t1.resumed
    with _tracker(cfg, "abc123") as t2:
        t2.log_metrics({"train/align/loss": 1.0}, step=2)
    assert t2.resumed and t2.run_id == t1.run_id
    client = MlflowClient(tracking_uri=t1.uri)
    runs = client.search_runs([t1.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "point-abc123"
    assert run.data.tags["ablate.run_key"] == "abc123" and run.data.tags["ablate.design_key"] == "dabc123"
    assert run.data.params["axis.vision"] == "tiny-clip"
    assert run.data.params["cfg.train.stages.0.trainable"] == '["projector"]'
    assert len(run.data.params["cfg.note"]) == MAX_PARAM_VALUE
    history = client.get_metric_history(run.info.run_id, "train/align/loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 2.0), (2, 1.0)]
    exp = client.get_experiment(t1.experiment_id)
    assert exp.name == "study-a" and exp.artifact_location.endswith("artifacts/study-a")


def test_retry_gives_up_on_non_lock_errors() -> None:
    calls = []

    def boom() -> None:
        calls.append(1)
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        retry(boom)
    assert len(calls) == 1


def test_retry_recovers_from_locked_database() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert retry(flaky) == "ok" and len(calls) == 3


def _worker(cfg_yaml: str, i: int, errors: mp.Queue) -> None:
    try:
        cfg = OmegaConf.create(cfg_yaml)
        with _tracker(cfg, f"key{i:02d}") as t:
            for step in range(5):
                t.log_metrics({"train/finetune/loss": 1.0 / (step + 1), "train/finetune/lr": 0.1}, step=step)
    except BaseException as exc:  # reported to the parent
        errors.put(f"{i}: {type(exc).__name__}: {exc}")


def test_twenty_concurrent_writers_on_one_sqlite_store(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(OmegaConf.to_yaml(cfg), i, errors)) for i in range(20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    assert messages == []
    assert [p.exitcode for p in procs] == [0] * 20
    client = MlflowClient(tracking_uri=prepare_store(cfg.tracking.uri))
    exp = client.get_experiment_by_name("study-a")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert sorted(r.data.tags["ablate.run_key"] for r in runs) == [f"key{i:02d}" for i in range(20)]
    for r in runs:
        assert r.info.status == "FINISHED"
        assert len(client.get_metric_history(r.info.run_id, "train/finetune/loss")) == 5
        assert r.data.metrics["train/finetune/lr"] == 0.1

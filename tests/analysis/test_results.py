"""ablate.results: a real SQLite MLflow store + run folders -> the tidy tables of DESIGN.md §4."""

from __future__ import annotations

import argparse
import json
import shutil

import pandas as pd
import pytest
from study_constants import ACCURACY, BENCHMARKS

from ablate.config import ConfigError
from ablate.results import cast_value, cli_collect, collect, comparison_pairs, load_tables


def test_collect_builds_tidy_tables(fixture_study, tmp_path):
    res = collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=tmp_path / "t")
    runs, scores, ex = res.runs, res.scores, res.examples
    assert len(runs) == 6 and set(runs["status"]) == {"done"}
    assert set(runs["image"]) == set(ACCURACY)
    assert runs["seed"].dtype == "Int64" and sorted(runs["seed"].unique()) == [7, 8]
    # params cast back from MLflow strings
    assert runs["cfg.train.lr_scale"].dtype == float and runs["cfg.train.lr_scale"].iloc[0] == 0.5
    assert runs["cfg.eval.use_ocr"].dtype == "boolean" and not runs["cfg.eval.use_ocr"].iloc[0]
    assert runs["cfg.train.seed"].dtype == "Int64"
    assert runs["time_train_s"].iloc[0] == 12.5
    assert list(scores.columns) == ["run_key", "benchmark", "metric", "value", "n", "fingerprint"]
    assert len(scores) == 6 * len(BENCHMARKS) * 2
    assert len(ex) == 6 * sum(BENCHMARKS.values())
    # scores agree with the per-example records they summarise
    acc = scores[scores.metric == "accuracy"].set_index(["run_key", "benchmark"])["value"]
    mean = ex.astype({"run_key": str, "benchmark": str}).groupby(["run_key", "benchmark"])["score"].mean()
    pd.testing.assert_series_equal(acc.sort_index(), mean.sort_index(), check_names=False)
    assert scores.loc[scores.benchmark == "gqa", "n"].iloc[0] == BENCHMARKS["gqa"]
    assert ex["example_id"].iloc[0] == "gqa-0000"
    assert set(res.primary_scores()["metric"]) == {"accuracy"}


def test_collect_caches_parquet_and_reloads(fixture_study, tmp_path):
    out = tmp_path / "t"
    first = collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=out)
    assert (out / "examples.parquet").exists() and (out / "fingerprint.json").exists()
    again = load_tables(out)
    pd.testing.assert_frame_equal(first.scores, again.scores)
    assert len(again.examples) == len(first.examples)
    cached = collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=out)
    assert cached.runs["image"].tolist() == first.runs["image"].tolist()


def test_collect_falls_back_to_mlflow_metrics(fixture_study, tmp_path):
    """A run folder without results.json still gets its scores (without n) from MLflow."""
    runs_copy = tmp_path / "runs"
    shutil.copytree(fixture_study["runs_dir"], runs_copy)
    key = fixture_study["points"][0].run_key
    (runs_copy / key / "results.json").unlink()
    (runs_copy / key / "DONE").unlink()
    res = collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=tmp_path / "t",
                  runs_dir=runs_copy)
    row = res.runs.set_index("run_key").loc[key]
    assert row["status"] == "done"  # MLflow says FINISHED
    mine = res.scores[res.scores.run_key == key]
    assert len(mine) == len(BENCHMARKS) * 2 and mine["n"].isna().all()


def test_comparison_pairs_match_seeds(fixture_study, tmp_path):
    res = collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=tmp_path / "t")
    comps = {c["name"]: c for c in comparison_pairs(res)}
    assert set(comps) == {"naive_vs_letterbox", "image: resize-naive vs letterbox", "image: resize-crop vs letterbox"}
    pairs = comps["image: resize-crop vs letterbox"]["pairs"]
    assert [s for _, _, s in pairs] == [7, 8]
    runs = res.runs.set_index("run_key")
    for alt, base, seed in pairs:
        assert runs.loc[alt, "image"] == "resize-crop" and runs.loc[base, "image"] == "letterbox"
        assert runs.loc[alt, "seed"] == runs.loc[base, "seed"] == seed
    assert comps["naive_vs_letterbox"]["paper_p"] == 0.0176


def test_bad_inputs_name_file_and_line(fixture_study, tmp_path):
    runs_copy = tmp_path / "runs"
    shutil.copytree(fixture_study["runs_dir"], runs_copy)
    key = fixture_study["points"][1].run_key
    path = runs_copy / key / "examples" / "pope.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = "{not json"
    path.write_text("\n".join(lines))
    with pytest.raises(ConfigError, match=r"pope\.jsonl: line 3: expected one JSON object"):
        collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=tmp_path / "t",
                runs_dir=runs_copy)
    (runs_copy / key / "results.json").write_text(json.dumps({"scores": [1, 2]}))
    with pytest.raises(ConfigError, match=r"results\.json: key 'scores': expected a mapping"):
        collect(fixture_study["study"], studies_dir=fixture_study["studies_dir"], out=tmp_path / "t2",
                runs_dir=runs_copy)
    with pytest.raises(ConfigError, match="no study manifest"):
        collect("nope", studies_dir=fixture_study["studies_dir"])


def test_cast_value():
    assert [cast_value(v) for v in ["3", "1.25", "True", "none", "clip-vit-l-336", "1e-3"]] == \
        [3, 1.25, True, None, "clip-vit-l-336", 0.001]


def test_cli_collect_writes_parquet(fixture_study, tmp_path, capsys):
    args = argparse.Namespace(study=fixture_study["study"], out=str(tmp_path / "t"),
                              studies_dir=str(fixture_study["studies_dir"]))
    assert cli_collect(args) == 0
    assert "6 runs (6 done)" in capsys.readouterr().out
    assert (tmp_path / "t" / "runs.parquet").exists()

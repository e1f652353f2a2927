"""`ablate score`: a published model's released outputs scored into reference run directories, joined to the
benchmark's own ids, and compared with design points in `ablate collect` / `ablate report`.

Fixtures (tests/fixtures/llava/README.md, tests/fixtures/lmms-eval/README.md): LLaVA-1.5-13B's released POPE
answers and the LLaVA question file they answered, as LLaVA's eval.zip ships them (haotian-liu/LLaVA 32cebc3),
the full POPE files they were scored on (RUCAIBox/POPE e3e3926) and 24-line excerpts of POPE at e3e3926 and
head; the lmms-eval samples are built from lmms-eval's published writer/task schema (no real file reachable).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from finished_runs import two_point_study, write_pope_run, write_study

from ablate.cli import main

FIX = Path(__file__).parent.parent / "fixtures"
ANSWERS = FIX / "llava" / "pope" / "answers" / "llava-v1.5-13b.jsonl.gz"
QUESTIONS = FIX / "llava" / "pope" / "llava_pope_test.jsonl.gz"
SUB_ANSWERS = FIX / "llava" / "pope-subset" / "answers" / "llava-v1.5-13b.jsonl"
SUB_QUESTIONS = FIX / "llava" / "pope-subset" / "llava_pope_test.jsonl"
LMMS = FIX / "lmms-eval" / "samples_pope.jsonl"
# LLaVA-1.5 13B on POPE as reported in haotian-liu/LLaVA docs/MODEL_ZOO.md (LLaVA-v1.5 table): the mean F1 of
# the adversarial, popular and random splits (docs/contracts.md "Reference models" says where it came from)
LLAVA_13B_POPE = 85.9
SPLITS = ("adversarial", "popular", "random")


def full_root(tmp: Path) -> Path:
    root = tmp / "eval-full"
    (root / "pope" / "coco").mkdir(parents=True)
    for split in SPLITS:
        with gzip.open(FIX / "pope" / "e3e3926-full" / f"coco_pope_{split}.json.gz", "rb") as src:
            (root / "pope" / "coco" / f"coco_pope_{split}.json").write_bytes(src.read())
    return root


def excerpt_root(tmp: Path, version: str = "e3e3926") -> Path:
    root = tmp / f"eval-{version}"
    shutil.copytree(FIX / "pope" / version, root / "pope" / "coco")
    return root


def score(argv: list[str], out: Path) -> int:
    return main(["score", "pope", *argv, "--out", str(out)])


def records(out: Path) -> dict[str, dict]:
    lines = (out / "examples" / "pope.jsonl").read_text().splitlines()
    return {r["example_id"]: r for r in map(json.loads, lines)}


def test_llava_13b_released_pope_answers_reproduce_its_reported_85_9(tmp_path, capsys):
    out = tmp_path / "references" / "llava-v1.5-13b"
    argv = ["--predictions", str(ANSWERS), "--questions", str(QUESTIONS), "--format", "llava",
            "--name", "llava-v1.5-13b", "--root", str(full_root(tmp_path))]
    assert score(argv, out) == 0
    results = json.loads((out / "results.json").read_text())
    pope = results["scores"]["pope"]
    assert round(100 * pope["f1"], 1) == LLAVA_13B_POPE
    assert results["n"] == {"pope": 8910} and pope["parse_failures"] == 0
    assert [pope[f"{s}_n_unknown"] for s in SPLITS] == [0, 0, 0]
    assert results["fingerprints"]["pope"] == json.loads((out / "fingerprints.json").read_text())["pope"]
    point = json.loads((out / "point.json").read_text())
    assert point["source"] == "reference" and point["run_key"] == "ref:llava-v1.5-13b"
    assert point["sources"]["pope"]["format"] == "llava"
    assert (out / "DONE").exists() and (out / "examples" / "lmms-eval" / "samples_pope.jsonl").exists()
    assert "pope\tf1\t0.859469" in capsys.readouterr().out


def test_subset_join_gives_the_same_records_as_the_full_file(tmp_path):
    full, sub = tmp_path / "full", tmp_path / "sub"
    assert score(["--predictions", str(ANSWERS), "--questions", str(QUESTIONS), "--format", "llava",
                  "--name", "m", "--root", str(full_root(tmp_path))], full) == 0
    assert score(["--predictions", str(SUB_ANSWERS), "--questions", str(SUB_QUESTIONS), "--format", "llava",
                  "--name", "m", "--root", str(excerpt_root(tmp_path))], sub) == 0
    small, big = records(sub), records(full)
    assert len(small) == 72 and {k.split("-")[0] for k in small} == set(SPLITS)
    assert all(small[k] == big[k] for k in small)  # each answer landed on the same benchmark example
    # LLaVA question_id 10000001 (category random) answered "No" -> POPE random question 1 (label yes)
    assert small["random-1"]["prediction"] == "No" and small["random-1"]["score"] == 0.0


@pytest.mark.parametrize("edit, expected", [
    ("full-answers", "8838 of 8910 predictions match no pope example"),
    ("drop-answer", "answers 71 of the 72 questions"),
    ("dup-question", "question_id 1 is on lines 1, 2 of"),
    ("no-category", "matches 3 pope examples (adversarial-1, popular-1, random-1)"),
    ("no-questions", "--format llava needs --questions FILE"),
])
def test_ambiguous_and_partial_llava_joins_are_refused_in_one_line(tmp_path, capsys, edit, expected):
    answers, questions = SUB_ANSWERS, SUB_QUESTIONS
    q_lines = SUB_QUESTIONS.read_text().splitlines(keepends=True)
    if edit == "full-answers":
        answers, questions = ANSWERS, QUESTIONS
    elif edit == "drop-answer":
        answers = tmp_path / "a.jsonl"
        answers.write_text("".join(SUB_ANSWERS.read_text().splitlines(keepends=True)[1:]))
    elif edit == "dup-question":
        questions = tmp_path / "q.jsonl"
        questions.write_text(q_lines[0] + q_lines[0])
    elif edit == "no-category":
        questions = tmp_path / "q.jsonl"
        questions.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "category"}) + "\n"
                                     for x in q_lines))
    argv = ["--predictions", str(answers), "--format", "llava", "--name", "m", "--root", str(excerpt_root(tmp_path))]
    if edit != "no-questions":
        argv += ["--questions", str(questions)]
    assert score(argv, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written on a refused join


def test_lmms_eval_samples_join_by_image_and_question_and_refuse_another_pope_version(tmp_path, capsys):
    lmms, llava = tmp_path / "lmms", tmp_path / "llava"
    root = excerpt_root(tmp_path)
    assert score(["--predictions", str(LMMS), "--format", "lmms-eval", "--name", "m", "--root", str(root)], lmms) == 0
    assert score(["--predictions", str(SUB_ANSWERS), "--questions", str(SUB_QUESTIONS), "--format", "llava",
                  "--name", "m", "--root", str(root)], llava) == 0
    assert records(lmms) == records(llava)  # the same answers through either format
    # POPE at head redrew the random split: those samples do not all belong to it
    assert score(["--predictions", str(LMMS), "--format", "lmms-eval", "--name", "m",
                  "--root", str(excerpt_root(tmp_path, "head"))], tmp_path / "x") == 2
    err = capsys.readouterr().err
    assert "predictions match no pope example" in err and "(partial join)" in err


def test_ablate_and_ablate_written_lmms_samples_rescore_to_the_same_records(tmp_path):
    root = excerpt_root(tmp_path)
    first = tmp_path / "first"
    assert score(["--predictions", str(SUB_ANSWERS), "--questions", str(SUB_QUESTIONS), "--format", "llava",
                  "--name", "m", "--root", str(root)], first) == 0
    for fmt, path in (("ablate", first / "examples" / "pope.jsonl"),
                      ("lmms-eval", first / "examples" / "lmms-eval" / "samples_pope.jsonl")):
        again = tmp_path / fmt
        assert score(["--predictions", str(path), "--format", fmt, "--name", "m", "--root", str(root)], again) == 0
        assert records(again) == records(first)


# ------------------------------------------------------------------------------------------- in a study
STUDY_YAML = two_point_study("with-reference", "two points and a published model on the same POPE files")


@pytest.fixture
def study(tmp_path):
    studies, spec, points, runs = write_study(tmp_path, STUDY_YAML)
    root = excerpt_root(tmp_path)
    others = ({"gqa": 0.41, "vqav2": 0.52, "textvqa": 0.23}, {"gqa": 0.44, "vqav2": 0.50, "textvqa": 0.27})
    for p, probs, other in zip(points, ([0.6, 0.4], [0.4, 0.6]), others, strict=True):  # always "Yes" / "No"
        # other benchmarks as headline scores only: the report's across-benchmark tests need more than one
        write_pope_run(runs / p.run_key, p.to_dict(), root, probs, {b: {"accuracy": v} for b, v in other.items()})
    return studies, spec.name, root, {p.name: p.run_key for p in points}


def test_collect_and_report_compare_design_points_with_the_reference(study, tmp_path, capsys):
    studies, name, root, keys = study
    ref = tmp_path / "references" / "llava-v1.5-13b"
    assert main(["score", "pope", "--predictions", str(SUB_ANSWERS), "--questions", str(SUB_QUESTIONS),
                 "--format", "llava", "--name", "llava-v1.5-13b", "--root", str(root), "--out", str(ref),
                 "--study", name, "--studies-dir", str(studies)]) == 0
    assert main(["collect", name, "--studies-dir", str(studies)]) == 0
    tables = studies / name / "tables"
    runs = pd.read_parquet(tables / "runs.parquet").set_index("run_key")
    assert runs.loc["ref:llava-v1.5-13b", "source"] == "reference"
    assert runs.loc["ref:llava-v1.5-13b", "point"] == "llava-v1.5-13b"
    assert (runs.drop("ref:llava-v1.5-13b")["source"] == "design").all()
    examples = pd.read_parquet(tables / "examples.parquet")
    ref_ex = examples[examples["run_key"] == "ref:llava-v1.5-13b"]
    assert len(ref_ex) == 72 and ref_ex["fingerprint"].nunique() == 1

    out = tmp_path / "report"
    assert main(["report", name, "--studies-dir", str(studies), "--out", str(out)]) == 0
    tests = pd.read_csv(out / "references.csv")
    assert set(tests["method"].str.split("-").str[0]) == {"mcnemar", "bootstrap", "permutation"}
    ref_scores = {k: v["score"] for k, v in records(ref).items()}
    for point, run_key in keys.items():
        own = {r["example_id"]: r["score"] for r in map(json.loads, (tmp_path / "runs" / run_key / "examples" /
                                                                     "pope.jsonl").read_text().splitlines())}
        rows = tests[(tests["alternate"] == run_key) & (tests["base"] == "ref:llava-v1.5-13b")]
        boot = rows[rows["method"].str.startswith("bootstrap")].iloc[0]
        expected = sum(own[k] - ref_scores[k] for k in own) / len(own)  # paired by example id
        assert boot["n"] == 72 and boot["effect"] == pytest.approx(expected)
        assert boot["comparison"] == f"{point}@7 vs llava-v1.5-13b"
    assert "## Against reference models" in (out / "report.md").read_text()


def test_collect_refuses_a_reference_scored_on_other_pope_files(study, tmp_path, capsys):
    studies, name, root, keys = study
    first = tmp_path / "first"
    assert score(["--predictions", str(SUB_ANSWERS), "--questions", str(SUB_QUESTIONS), "--format", "llava",
                  "--name", "m", "--root", str(root)], first) == 0
    # the same ids under other files: POPE head's adversarial split ("imange" fixed) with the pinned others
    adv = tmp_path / "adv-head"
    shutil.copytree(root, adv)
    shutil.copy(FIX / "pope" / "head" / "coco_pope_adversarial.json", adv / "pope" / "coco")
    assert main(["score", "pope", "--predictions", str(first / "examples" / "pope.jsonl"), "--format", "ablate",
                 "--name", "adv-model", "--root", str(adv), "--out", str(tmp_path / "ref"), "--study", name,
                 "--studies-dir", str(studies)]) == 0
    assert main(["collect", name, "--studies-dir", str(studies)]) == 2
    err = capsys.readouterr().err
    assert "benchmark pope" in err and "ref:adv-model" in err
    assert main(["collect", name, "--studies-dir", str(studies), "--allow-mixed-benchmarks"]) == 0


def test_lmms_samples_on_pope_head_are_refused_at_the_spelling_fix(tmp_path, capsys):
    """POPE's head fixed "imange" -> "image" (commit 109985c): the released question no longer exists there."""
    assert score(["--predictions", str(LMMS), "--format", "lmms-eval", "--name", "m",
                  "--root", str(excerpt_root(tmp_path, "head"))], tmp_path / "x") == 2
    err = capsys.readouterr().err
    assert "line 11 (doc_id 10): image 'COCO_val2014_000000210789', question 'Is there an umbrella in the imange?'" \
        in err


def test_llava_answers_to_a_question_file_with_shared_ids_pick_their_question_by_prompt(tmp_path):
    """LLaVA's TextVQA OCR file uses the image id as question_id (shared by an image's questions); the answer's
    ``prompt`` tells which question it answered, as LLaVA's own m4c evaluation joins them."""
    from ablate.eval.reference import read_llava

    folder = FIX / "llava" / "eval" / "textvqa"
    questions = folder / "llava_textvqa_val_v051_ocr.jsonl"
    preds = read_llava(folder / "answers" / "llava-v1.5-13b.jsonl", questions)
    assert len(preds) == 30 and len({(p.image, p.text) for p in preds}) == 30
    first = next(p for p in preds if p.where.endswith("(question_id 003a8ae2ef43b901)"))
    assert (first.image, first.output) == ("003a8ae2ef43b901.jpg", "Dakota digital")
    assert first.text.startswith("What is the brand of this camera?\nReference OCR token: DAKOTA")
    shared = [p for p in preds if "(question_id 831bcec304a17054)" in p.where]
    assert len(shared) == 2 and shared[0].text != shared[1].text
    lines = (folder / "answers" / "llava-v1.5-13b.jsonl").read_text().splitlines(keepends=True)
    blind = tmp_path / "a.jsonl"  # without 'prompt' the shared ids cannot be told apart
    blind.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "prompt"}) + "\n"
                             for x in lines))
    from ablate.config import ConfigError

    with pytest.raises(ConfigError, match=r"question_id \w+ is on lines \d+, \d+ of .*matches 0 of them"):
        read_llava(blind, questions)

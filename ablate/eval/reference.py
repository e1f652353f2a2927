"""Score a published model's released outputs into the same per-example records a run writes.

Papers release their models' answers (LLaVA's eval.zip ships ``answers/llava-v1.5-13b.jsonl`` per benchmark;
lmms-eval's ``--log_samples`` writes ``*_samples_<task>.jsonl``), but those files are keyed by *their* ids:
LLaVA's ``question_id`` is the line id of the LLaVA question file that was answered, lmms-eval's ``doc_id`` is
a row index of a Hugging Face copy.  ``ablate score`` joins each prediction to the benchmark's own example
(image name + question text, disambiguated by fields such as POPE's ``category`` = split), refuses joins that
are ambiguous (one prediction, two examples) or partial (an unmatched prediction or an unanswered example),
scores every example with the benchmark's own scorer and writes a *reference run directory*
(``point.json`` with ``source: reference``, ``examples/<benchmark>.jsonl``, lmms-eval samples,
``fingerprints.json``, ``results.json``, ``DONE``) that ``ablate collect`` reads like a design point's.

Formats (``--format``):
- ``llava``: answers ``{question_id, prompt, text, answer_id, model_id, metadata}`` (``model_vqa*.py``) plus
  ``--questions`` = the question file they answered (``{question_id, image, text, category?}``).
- ``lmms-eval``: ``--log_samples`` lines ``{doc_id, doc, target, arguments, resps, filtered_resps, ...}``;
  ``doc`` holds the dataset row without its image (``question``, ``image_source``/``image``, ``category``...)
  or, for samples ablate itself wrote, ``example_id``.
- ``ablate``: records with ``example_id`` and ``prediction`` (a run's ``examples/<benchmark>.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate import rundir
from ablate.config import ConfigError
from ablate.eval.benchmarks import Benchmark, BenchmarkFormatError, Example, get_benchmark
from ablate.jsonfiles import iter_objects, read_object, sha256_file

FORMATS = ("ablate", "llava", "lmms-eval")
REFERENCE_PREFIX = "ref:"  # run_key of a reference model: ref:<label>
REFERENCES_FILE = "references.json"  # beside a study's manifest: the reference models collect adds
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
# dataset-row keys that name the image / hold the question, in the order they are tried (lmms-eval docs)
IMAGE_KEYS = ("image_source", "image", "image_file", "image_path", "file_name", "image_id", "imageId")
TEXT_KEYS = ("question", "text", "prompt", "caption", "sentence")


@dataclass
class Prediction:
    """One released output and what identifies its question."""

    where: str  # "<file>: line N (question_id Q)" for messages
    output: str
    example_id: str | None = None  # known directly (ablate format, ablate-written lmms samples)
    image: str | None = None
    text: str | None = None
    hints: dict[str, str] = field(default_factory=dict)  # fields that may equal an example's meta (split)


# --------------------------------------------------------------------------------------------- readers
def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return iter_objects(path, ConfigError)  # released files are often kept compressed (.gz)


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: key {key!r}: unexpected value {value!r}")
    return value


def read_ablate(path: Path) -> list[Prediction]:
    out = []
    for lineno, rec in _lines(path):
        where = f"{path}: line {lineno}"
        ex_id = _need(rec, "example_id", (str, int), where)
        out.append(Prediction(where, str(_need(rec, "prediction", str, where)), example_id=str(ex_id)))
    return out


def read_llava(path: Path, questions: Path | None) -> list[Prediction]:
    """LLaVA answers joined to the question file they answered by ``question_id``; where the question file
    shares one id between questions (TextVQA's OCR file: the image id), the answer's ``prompt`` picks one."""
    if questions is None:
        raise ConfigError(f"{path}: --format llava needs --questions FILE (the LLaVA question file these answers "
                          "answered; its question_ids are the answers' ids)")
    asked: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    total = 0
    for lineno, rec in _lines(questions):
        qid = str(_need(rec, "question_id", (str, int), f"{questions}: line {lineno}"))
        _need(rec, "text", str, f"{questions}: line {lineno}")
        asked.setdefault(qid, []).append((lineno, rec))
        total += 1
    out, seen = [], {}
    for lineno, rec in _lines(path):
        where = f"{path}: line {lineno}"
        qid = str(_need(rec, "question_id", (str, int), where))
        if qid not in asked:
            raise ConfigError(f"{where}: question_id {qid} is not in {questions}; expected the question file these "
                              "answers were generated from")
        cands = asked[qid]
        if len(cands) > 1:
            prompt = rec.get("prompt")
            cands = [c for c in cands if isinstance(prompt, str) and c[1]["text"].strip() == prompt.strip()]
            if len(cands) != 1:
                lines = ", ".join(str(n) for n, _ in asked[qid])
                raise ConfigError(f"{where}: question_id {qid} is on lines {lines} of {questions} and the answer's "
                                  f"'prompt' matches {len(cands)} of them; expected exactly one (ambiguous join)")
        qline, q = cands[0]
        if qline in seen:
            raise ConfigError(f"{where}: question_id {qid} answered again (first on line {seen[qline]}); expected one "
                              "answer per question")
        seen[qline] = lineno
        qwhere = f"{questions}: line {qline}"
        hints = {k: str(v) for k, v in q.items() if k not in ("question_id", "image", "text") and
                 isinstance(v, str | int)}
        out.append(Prediction(f"{where} (question_id {qid})", str(_need(rec, "text", str, where)),
                              image=str(_need(q, "image", str, qwhere)), text=q["text"], hints=hints))
    if len(seen) < total:
        first = next(f"line {n} (question_id {k})" for k, rows in asked.items() for n, _ in rows if n not in seen)
        raise ConfigError(f"{path}: answers {len(seen)} of the {total} questions of {questions} (first unanswered: "
                          f"{first}); expected an answer to every question (partial join)")
    return out


def _lmms_output(rec: dict[str, Any], where: str) -> str:
    """The filtered response (what lmms-eval scores), else the raw one."""
    for key in ("filtered_resps", "resps"):
        value = rec.get(key)
        while isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where}: expected 'filtered_resps' (or 'resps') holding a generated string")


def read_lmms(path: Path) -> list[Prediction]:
    out, seen = [], {}
    for lineno, rec in _lines(path):
        where = f"{path}: line {lineno}"
        doc_id = _need(rec, "doc_id", (str, int), where)
        if doc_id in seen:
            raise ConfigError(f"{where}: doc_id {doc_id} also on line {seen[doc_id]}; expected one sample per doc "
                              "(a repeats>1 log?)")
        seen[doc_id] = lineno
        doc = _need(rec, "doc", dict, where)
        pred = Prediction(f"{where} (doc_id {doc_id})", _lmms_output(rec, where))
        if "example_id" in doc:  # samples ablate wrote: doc_id is already the benchmark's id
            pred.example_id = str(doc["example_id"])
        else:
            pred.image = next((str(doc[k]) for k in IMAGE_KEYS if isinstance(doc.get(k), str | int)), None)
            pred.text = next((doc[k] for k in TEXT_KEYS if isinstance(doc.get(k), str)), None)
            if pred.image is None or pred.text is None:
                raise ConfigError(f"{where}: doc has no image name ({'/'.join(IMAGE_KEYS)}) or question "
                                  f"({'/'.join(TEXT_KEYS)}); expected one of each to join to the benchmark")
            pred.hints = {k: str(v) for k, v in doc.items() if isinstance(v, str | int) and k not in TEXT_KEYS}
        out.append(pred)
    return out


def read_predictions(path: Path, fmt: str, questions: Path | None = None) -> list[Prediction]:
    if fmt not in FORMATS:
        raise ConfigError(f"--format: invalid value {fmt!r}; allowed: {', '.join(FORMATS)}")
    preds = {"ablate": lambda: read_ablate(path), "llava": lambda: read_llava(path, questions),
             "lmms-eval": lambda: read_lmms(path)}[fmt]()
    if not preds:
        raise ConfigError(f"{path}: no predictions; expected one JSON object per line")
    return preds


# ------------------------------------------------------------------------------------------------ join
def _stem(image: str) -> str:
    return Path(str(image)).stem


def _texts(text: str) -> list[str]:
    """Keys a question text is tried under: the whole (stripped) text, then its first line (the question
    without the instruction that follows it)."""
    full = text.strip()
    first = full.split("\n", 1)[0].strip()
    return [full, first] if first != full else [full]


def _agrees(ex: Example, pred: Prediction, meta_values: dict[str, set[str]]) -> bool:
    """False when the prediction names a value of one of the benchmark's meta fields (POPE's ``category`` =
    the split) that is not this example's."""
    hints = set(pred.hints.values())
    return all(str(ex.meta[key]) in hints for key, values in meta_values.items() if hints & values)


def join(bench: Benchmark, examples: list[Example], preds: list[Prediction], source: Path) -> list[tuple[Example, str]]:
    """(example, output) for every example of ``bench``, in benchmark order; ambiguous or partial joins raise."""
    by_id = {ex.example_id: ex for ex in examples}
    index: dict[tuple[str, str], list[Example]] = {}
    for ex in examples:
        for key in _texts(ex.prompt):
            index.setdefault((_stem(ex.image.name), key), []).append(ex)
    meta_values: dict[str, set[str]] = {}
    for ex in examples:
        for key, value in ex.meta.items():
            meta_values.setdefault(key, set()).add(str(value))
    chosen: dict[str, tuple[str, str]] = {}
    unmatched: list[Prediction] = []
    for pred in preds:
        if pred.example_id is not None:
            cands = [by_id[pred.example_id]] if pred.example_id in by_id else []
        else:
            cands = []
            for key in _texts(pred.text or ""):
                cands = index.get((_stem(pred.image or ""), key), [])
                if cands:
                    break
            cands = [ex for ex in cands if _agrees(ex, pred, meta_values)]
        if not cands:
            unmatched.append(pred)
            continue
        if len(cands) > 1:
            ids = ", ".join(ex.example_id for ex in cands[:4])
            raise ConfigError(f"{pred.where}: matches {len(cands)} {bench.id} examples ({ids}); expected exactly one "
                              "(ambiguous join: image and question do not identify one example)")
        ex_id = cands[0].example_id
        if ex_id in chosen:
            raise ConfigError(f"{pred.where}: answers {bench.id} example {ex_id} already answered by "
                              f"{chosen[ex_id][0]}; expected one prediction per example (ambiguous join)")
        chosen[ex_id] = (pred.where, pred.output)
    if unmatched:
        first = unmatched[0]
        what = first.example_id if first.example_id is not None else f"image {first.image!r}, question {first.text!r}"
        raise ConfigError(f"{source}: {len(unmatched)} of {len(preds)} predictions match no {bench.id} example under "
                          f"{bench.root} (first: {first.where}: {what}); expected the benchmark files these answers "
                          "were made on (partial join)")
    missing = [ex.example_id for ex in examples if ex.example_id not in chosen]
    if missing:
        raise ConfigError(f"{source}: {len(missing)} of {len(examples)} {bench.id} examples have no prediction (first: "
                          f"{missing[0]}); expected a prediction for every example (partial join)")
    return [(ex, chosen[ex.example_id][1]) for ex in examples]


# ------------------------------------------------------------------------------------------ scoring
def _json(path: Path) -> dict[str, Any]:
    return read_object(path, ConfigError)


def _write_json(path: Path, data: Any) -> None:
    rundir.write_json(path, data, indent=1)


def score_predictions(benchmark: str, predictions: str | Path, *, fmt: str, name: str, root: str | Path,
                      out: str | Path, questions: str | Path | None = None) -> dict[str, float]:
    """Score released outputs on ``benchmark`` into the reference run directory ``out``; returns the metrics.

    Another benchmark scored later under the same ``out`` is added to it (one reference model, many benchmarks).
    """
    from ablate.eval.fingerprint import write_fingerprints
    from ablate.eval.runner import LMMS_DIR, lmms_samples, write_jsonl

    if not LABEL.match(name):
        raise ConfigError(f"--name: invalid value {name!r}; expected letters, digits and . _ + - (a model label)")
    predictions, out = Path(predictions), Path(out)
    qfile = Path(questions) if questions else None
    try:
        bench = get_benchmark(benchmark, root, closed_set_mode="generate")  # released outputs are text
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    preds = read_predictions(predictions, fmt, qfile)
    try:
        examples = bench.load()
    except BenchmarkFormatError as exc:
        raise ConfigError(str(exc)) from None
    pairs = join(bench, examples, preds, predictions)
    records = [bench.score(ex, output) for ex, output in pairs]
    metrics = bench.aggregate(records)
    point = _json(out / rundir.POINT)
    if point and point.get("name") != name:
        raise ConfigError(f"{out}: holds reference {point.get('name')!r}; expected {name!r} (choose another --out)")
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / rundir.EXAMPLES / f"{bench.id}.jsonl", records)
    write_jsonl(out / rundir.EXAMPLES / LMMS_DIR / f"samples_{bench.id}.jsonl",
                lmms_samples(bench, [ex for ex, _ in pairs], records))
    fps = write_fingerprints(out, {bench.id: str(bench.fingerprint)})
    sources = dict(point.get("sources") or {})
    sources[bench.id] = {"predictions": str(predictions.resolve()), "predictions_sha256": sha256_file(predictions),
                         "format": fmt, **({"questions": str(qfile.resolve()), "questions_sha256": sha256_file(qfile)}
                                           if qfile else {})}
    run_key = REFERENCE_PREFIX + name
    _write_json(out / rundir.POINT, {"run_key": run_key, "design_key": None, "name": name, "source": "reference",
                                     "axes": {}, "sources": sources})
    results = _json(out / rundir.RESULTS)
    scores = dict(results.get("scores") or {})
    scores[bench.id] = {k: float(v) for k, v in metrics.items()}
    counts = dict(results.get("n") or {})
    counts[bench.id] = len(records)
    fingerprints = json.loads(fps.read_text())
    _write_json(out / rundir.RESULTS, {"run_key": run_key, "scores": scores, "n": counts, "timings": {},
                                       "fingerprints": {b: f for b, f in fingerprints.items() if b in scores}})
    rundir.write_atomic(out / rundir.DONE, "reference\n")
    return metrics


# -------------------------------------------------------------------------------------- registration
def register(study: str, studies_dir: str | Path, name: str, run_dir: Path) -> Path:
    """Add (or replace) reference ``name`` in the study's ``references.json`` so ``ablate collect`` includes it."""
    from ablate.results import find_manifest

    path = find_manifest(study, studies_dir).parent / REFERENCES_FILE
    data = _json(path)
    refs = [r for r in data.get("references", []) if r.get("name") != name]
    refs.append({"name": name, "run_dir": str(run_dir.resolve())})
    _write_json(path, {"references": sorted(refs, key=lambda r: r["name"])})
    return path


def cli_score(args: argparse.Namespace) -> int:
    """``ablate score BENCHMARK --predictions FILE --format F --name LABEL [--questions FILE] [--root ROOT]``."""
    out = Path(args.out) if args.out else Path("references") / args.name
    metrics = score_predictions(args.benchmark, args.predictions, fmt=args.format, name=args.name, root=args.root,
                                out=out, questions=args.questions)
    for metric, value in metrics.items():
        print(f"{args.benchmark}\t{metric}\t{value:.6g}")
    print(f"reference {args.name}: {out / 'examples' / (args.benchmark + '.jsonl')}")
    if args.study:
        print(f"added to study {args.study}: {register(args.study, args.studies_dir, args.name, out)}")
    return 0

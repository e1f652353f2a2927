"""``ablate data check``: validate data before any job is submitted, with the readers the jobs use.

Training files go through the training reader (``ablate.data.llava.read_records``: every record, images
present, a sample decoded); benchmarks go through their own loaders (``Benchmark.load`` validates every file
of the benchmark's layout, ``ablate.eval.benchmarks.layout``), then every example's image is checked present
and decoded -- so ``data check`` can never pass a file a job would reject.  Scope:

- ``ablate data check [OVERRIDES]``: exactly the data mix and benchmarks of the composed config;
- ``ablate data check --study FILE [OVERRIDES]``: those of every point of the study (each once);
- ``ablate data check DIR``: the training files and the benchmarks present under DIR (absent ones skipped).

Prints counts per file / benchmark; returns non-zero with every problem listed (the first few per file).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablate.config import ConfigError
from ablate.data.llava import DataStats, read_records
from ablate.data.untrusted import DEFAULT_MAX_IMAGE_PIXELS, ImageTooLargeError, open_image
from ablate.registry import BENCHMARKS, group_files

MAX_PROBLEMS_PER_FILE = 5
DECODE = ("sample", "all", "none")  # which training images `data check` decodes (benchmark images: all)
DECODE_SAMPLE = 1000  # training images decoded per file with --decode sample (fixed seed)
LLAVA_SKIP = ("scenes.json",)  # JSON files a generated data root holds that are not LLaVA files


@dataclass
class Report:
    """Counts per file and problems found."""

    counts: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    image_root: Path | None = None  # benchmark images must stay under it (set by check_root)
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    _per_file: dict[str, int] = field(default_factory=dict)

    def problem(self, file: Path | str, msg: str) -> None:
        key = str(file)
        if f"{file}: {msg}" in self.problems:  # the same file rejected for two benchmarks (textvqa, -ocr)
            return
        self._per_file[key] = self._per_file.get(key, 0) + 1
        if self._per_file[key] <= MAX_PROBLEMS_PER_FILE:
            self.problems.append(f"{file}: {msg}")
        elif self._per_file[key] == MAX_PROBLEMS_PER_FILE + 1:
            self.problems.append(f"{file}: ... more problems (see the count below)")

    def finish(self) -> None:
        for key, n in self._per_file.items():
            if n > MAX_PROBLEMS_PER_FILE:
                self.problems.append(f"{key}: {n} problems in all")


def decode_ok(report: Report, source: Path, where: str, image: Path) -> bool:
    """Decode ``image`` fully (``verify()`` misses truncated files), within the pixel limit."""
    try:
        open_image(image, report.max_pixels)
    except ImageTooLargeError as err:
        report.problem(source, f"{where}: {err}")
        return False
    except Exception as err:  # noqa: BLE001 - any decoder error means a corrupt image
        report.problem(source, f"{where}: image {image} corrupt ({type(err).__name__}: {str(err)[:80]})")
        return False
    return True


# ----------------------------------------------------------------------------------------- benchmarks
def present_benchmarks(eval_root: Path) -> list[str]:
    """Benchmarks with files under ``eval_root`` (DIR mode: absent benchmarks are not checked).  A benchmark
    is present when the folder of any file of its layout exists (``tallyqa/``, ``refer/refcoco/``) and every
    file only it needs (textvqa-ocr's OCR file) exists."""
    present = []
    for bid in BENCHMARKS.names():
        cls = BENCHMARKS.get(bid)
        specs = cls.layout.files_for(bid).values()
        if any((eval_root / s.path).parent.is_dir() for s in specs) and \
                all((eval_root / s.path).exists() for s in specs if bid in s.only):
            present.append(bid)
    return present


def _split_message(msg: str) -> tuple[str, str]:
    """(file, rest) of a loader message ``FILE: where: expected ...`` (the file is the part before ': ')."""
    head, sep, rest = msg.partition(": ")
    return (head, rest) if sep else ("", msg)


def check_benchmarks(eval_root: Path, ids: Iterable[str], r: Report, *, decode: bool = True) -> None:
    """Each benchmark's own loader (``Benchmark.load``: every file of its layout, keys and types, ids, not
    empty, images inside the root), then every example's image present (and fully decoded if ``decode``).
    One problem line per rejected file, naming it; the images missing from one benchmark are one line."""
    from ablate.eval.benchmarks import BenchmarkFormatError, get_benchmark

    seen: set[Path] = set()
    for bid in ids:
        if bid not in BENCHMARKS:
            r.problem("eval.benchmarks", f"invalid value {bid!r}; allowed: {', '.join(BENCHMARKS.names())}")
            continue
        bench = get_benchmark(bid, eval_root)
        files = [str(eval_root / s.path) for s in bench.layout.files_for(bid).values()]
        try:
            examples = bench.load()
        except BenchmarkFormatError as exc:
            file, rest = _split_message(str(exc))
            if "not found (" in rest:
                rest += f"; `ablate data prepare {bench.layout.name} --from DIR` writes it"
            r.problem(file, rest)
            continue
        images: dict[Path, str] = {}  # image -> its first example, in file order
        for ex in examples:
            images.setdefault(ex.image, ex.example_id)
        missing = [im for im in images if im not in seen and not im.is_file()]
        if missing:
            first = missing[0]
            r.problem(files[0], f"{bid}: {len(missing)} of {len(images)} images missing, e.g. {first} "
                                f"(example {images[first]})")
        elif decode:
            for ex in examples:
                if ex.image not in seen:
                    seen.add(ex.image)
                    decode_ok(r, files[0], f"{bid} example {ex.example_id}", ex.image)
        seen.update(ex.image for ex in examples)
        r.counts[bid] = (f"{len(examples)} examples, {len(images)} images, fingerprint "
                         f"{(bench.fingerprint or '')[:12]} ({', '.join(files)})")


# ------------------------------------------------------------------------------------------- training
def training_files(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, json, image dir) of LLaVA files under ``root``: top-level JSON files (generated roots) and the
    ``conf/data`` mix sources that exist there."""
    found: dict[Path, tuple[str, Path, Path]] = {}
    images = root / "images" if (root / "images").is_dir() else root
    for path in sorted(root.glob("*.json")):
        if path.name not in LLAVA_SKIP:
            found[path] = (path.stem, path, images)
    for conf in group_files("data").values():
        spec = yaml.safe_load(conf.read_text()) or {}
        for src in [*spec.get("align", []), *spec.get("finetune", [])]:
            path = root / src["json"]
            if path.is_file():
                found.setdefault(path, (src["name"], path, root / src.get("images", ".")))
    return list(found.values())


def check_training(root: Path, r: Report, decode: str = "sample") -> None:
    check_training_files(training_files(root), r, decode)


def check_training_files(files: Iterable[tuple[str, Path, Path]], r: Report, decode: str = "sample") -> None:
    """Each (source name, LLaVA JSON, image folder): every record through the training reader, images decoded
    per ``decode``; a missing file is one problem line."""
    for name, path, images in files:
        if not path.is_file():
            r.problem(path, f"missing (data source {name!r}; expected a LLaVA-format JSON list)")
            continue
        stats = DataStats()
        try:
            records = read_records(path, images, source=name, stats=stats)
        except ValueError as err:  # BadDataError: malformed JSON / not a list
            r.problem(path, str(err).removeprefix(f"{path}: "))
            continue
        for problem in stats.examples:
            r.problem(path, problem.split(f"{path}: ", 1)[-1])
        with_image = [x for x in records if x.image is not None]
        if not records:
            r.problem(path, "no usable records; expected at least one")
        chosen = with_image
        if decode == "none":
            chosen = []
        elif decode == "sample" and len(with_image) > DECODE_SAMPLE:
            chosen = random.Random(0).sample(with_image, DECODE_SAMPLE)
        bad = sum(not decode_ok(r, path, f"record {x.index} (id {x.example_id!r})", x.image) for x in chosen)
        r.counts[str(path)] = (f"{stats.read[name]} records ({len(with_image)} with image, "
                               f"{len(records) - len(with_image)} language-only, {sum(stats.skipped.values()) + bad} "
                               f"bad; {len(chosen)} images decoded)")


def check_root(root: str | Path, *, decode: str = "sample",
               max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Report:
    """DIR mode: the LLaVA training files found under ``root`` and every benchmark present under its eval root
    (``root/eval`` or ``root`` itself); absent benchmarks are not problems."""
    root = Path(root)
    report = Report(max_pixels=max_pixels)
    if not root.is_dir():
        report.problem(root, "not a directory")
        return report
    check_training(root, report, decode)
    eval_root = root / "eval" if (root / "eval").is_dir() else root
    check_benchmarks(eval_root, present_benchmarks(eval_root), report)
    if not report.counts and not report.problems:
        report.problem(root, "no LLaVA training files and no benchmarks found")
    report.finish()
    return report


def check_scope(cfgs: Sequence[Any], *, decode: str = "sample", max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
                quick: bool = False) -> tuple[Report, list[str]]:
    """Config/study mode: exactly the training sources and benchmarks the composed configs use, each distinct
    (JSON, image folder) and (eval root, benchmark) checked once however many mixes or points share it.
    ``quick`` (``ablate sweep``): training files only checked to exist, benchmark images only checked to
    exist.  Returns the report and warnings (a data root that does not exist at all is a warning, as is an
    eval root inside it: written before the jobs run, e.g. by ``ablate data synth``; an eval root that does not
    exist elsewhere is a problem per benchmark, naming its missing file)."""
    from ablate.data.mixes import STAGE_DATA

    report, warnings = Report(max_pixels=max_pixels), []
    sources: dict[tuple[Path, Path], tuple[str, str]] = {}  # (json, images) -> (source name, data mix id)
    benchmarks: dict[Path, dict[str, None]] = {}  # eval root -> benchmark ids, in order
    for cfg in cfgs:
        data, ev = cfg.data, cfg.eval
        root = Path(data.root)
        pending = not root.exists()  # a data root not written yet (ablate data synth / prepare)
        if pending:
            line = f"{root}: data root does not exist yet; training files not checked before submit"
            warnings += [line] if line not in warnings else []
        else:
            for stage in STAGE_DATA:
                for s in getattr(data, stage):
                    sources.setdefault((root / s.json, root / s.images), (s.name, data.id))
        if pending and Path(ev.root).is_relative_to(root):
            continue  # written with its data root
        benchmarks.setdefault(Path(ev.root), {}).update(dict.fromkeys(ev.benchmarks))
    if quick:
        for (js, images), (name, mix) in sources.items():
            for path, ok, key in ((js, js.is_file(), "json"), (images, images.is_dir(), "images")):
                if not ok:
                    report.problem(path, f"missing (data mix {mix!r}: {name}.{key})")
    else:
        check_training_files([(name, js, im) for (js, im), (name, _) in sources.items()], report, decode)
    for eval_root, ids in benchmarks.items():
        check_benchmarks(eval_root, ids, report, decode=not quick and decode != "none")
    report.finish()
    return report, warnings


def _configs(args: argparse.Namespace) -> list[Any]:
    """The composed configs ``args`` scopes the check to: a study's points, or one config from overrides."""
    from ablate.design import compose, expand, load_studies

    overrides = list(getattr(args, "overrides", None) or [])
    if getattr(args, "study", None):
        return [p.config for study in load_studies(args.study) for p in expand(study, overrides)]
    return [compose(overrides)]


def cli_check(args: argparse.Namespace) -> int:
    max_pixels = getattr(args, "max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)
    decode = getattr(args, "decode", "sample")
    overrides = list(getattr(args, "overrides", None) or [])
    root = getattr(args, "root", None)
    if root is None and overrides and "=" not in overrides[0]:  # `ablate data check DIR`
        root, overrides = overrides[0], overrides[1:]
        if overrides or getattr(args, "study", None):
            raise ConfigError(f"data check {root}: a DIR takes no overrides or --study (got "
                              f"{' '.join(overrides) or '--study'}); use OVERRIDES or --study FILE to scope")
    warnings: list[str] = []
    if root is not None:
        report = check_root(root, decode=decode, max_pixels=max_pixels or None)
    else:
        report, warnings = check_scope(_configs(args), decode=decode, max_pixels=max_pixels or None)
    width = max((len(k) for k in report.counts), default=0)
    for key, value in report.counts.items():
        print(f"{key.ljust(width)}  {value}")
    for line in warnings:
        print(f"warning: {line}")
    if report.problems:
        print(f"\n{len(report.problems)} problem(s):")
        for p in report.problems:
            print(f"  {p}")
        return 1
    print("ok")
    return 0

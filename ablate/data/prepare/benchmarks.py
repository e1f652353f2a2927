"""Benchmark preparers: one per benchmark family, built from the benchmark's own ``Layout``.

The layout already says which upstream files a benchmark reads, where they go and which image folders it
links, so preparing is generic: place each release file as distributed (found by its upstream names under
--from), link the folders the loader reads first (``Layout.probes``), read the examples with the loader,
link the folder of every image they name, then validate with ``ablate data check``'s benchmark check (the
loader again, and every image present).  A benchmark added with a layout gets its preparer here for free.
"""

from __future__ import annotations

from pathlib import Path

from ablate.data.prepare import register
from ablate.data.prepare.base import PrepareError, Preparer, Sources, link_dir, link_images, place_file
from ablate.eval.benchmarks import BENCHMARKS, BenchmarkFormatError, get_benchmark
from ablate.eval.benchmarks.layout import Layout


class LayoutPreparer(Preparer):
    """Prepare the benchmarks of one ``Layout`` (e.g. ``textvqa`` = textvqa + textvqa-ocr)."""

    kind = "benchmark"

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.name = layout.name
        files = []
        for spec in layout.files.values():
            optional = spec.only and not set(layout.benchmarks) <= set(spec.only)
            files.append(" or ".join(spec.upstream) + (f" (optional: {', '.join(spec.only)})" if optional else ""))
        folders = [f"folder {' or '.join(names)}" for names in layout.dirs.values()]
        self.expects = "; ".join(files + folders) + (f"  [{layout.source}]" if layout.source else "")
        self.produces = ", ".join([s.path for s in layout.files.values()] + [f"{d}/ (link)" for d in layout.dirs])

    def _required(self, bid: str) -> list[str]:
        return [s.path for s in self.layout.files_for(bid).values()]

    def present(self, out: Path) -> list[str]:
        return [b for b in self.layout.benchmarks if all((out / p).is_file() for p in self._required(b))]

    def build(self, src: Sources, out: Path) -> dict[str, int]:
        layout = self.layout
        for spec in layout.files.values():
            required = not spec.only or set(layout.benchmarks) <= set(spec.only)
            path = src.file(spec.upstream, f"{layout.name}'s {Path(spec.path).name} ({layout.source})",
                            required=required)
            if path is not None:
                place_file(path, out / spec.path)
        for d, glob in layout.probes.items():
            found = [c for name in layout.dirs[d] for c in src.folders(name) if next(c.glob(glob), None)]
            if not found:
                raise PrepareError(f"{src.root}: no folder named {' or '.join(map(repr, layout.dirs[d]))} holding "
                                   f"{glob!r} found under it; expected {layout.name}'s {Path(d).name}/ folder")
            link_dir(out / d, found[0])
        counts: dict[str, int] = {}
        images: dict[str, None] = {}
        for bid in self.present(out):
            try:
                examples = get_benchmark(bid, out).read()
            except BenchmarkFormatError as exc:
                raise PrepareError(str(exc)) from None
            counts[f"{bid} examples"] = len(examples)
            images.update(dict.fromkeys(str(ex.image.relative_to(out)) for ex in examples))
        link_images(out, images, src, layout.dirs, f"{layout.name}'s images ({layout.source})")
        counts["images"] = len(images)
        return counts

    def validate(self, out: Path) -> None:
        from ablate.data.check import Report, check_benchmarks

        report = Report()
        check_benchmarks(out, self.present(out), report, decode=False)
        if report.problems:
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise PrepareError(report.problems[0] + more)


_seen: set[str] = set()
for _cls in BENCHMARKS.values():
    if _cls.layout.name not in _seen:
        _seen.add(_cls.layout.name)
        register(LayoutPreparer(_cls.layout))

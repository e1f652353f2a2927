"""Writes analysis/study.ipynb: the notebook is generated from these cells so it stays reviewable as code.

The notebook only calls ablate.results / ablate.report / ablate.stats; no analysis logic lives in it.
Run `python analysis/make_notebook.py` after editing the cells below.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

CELLS: list[tuple[str, str]] = [
    ("markdown", "# Study analysis\n\nLoads a collected study with `ablate.results`, runs every test of "
                 "`ablate.stats` through `ablate.report.analyse`, and draws the report's plots. Set `ABLATE_STUDY` "
                 "(a study name, manifest or folder) and `ABLATE_STUDIES_DIR` before starting the kernel."),
    ("code", "import os\nfrom pathlib import Path\n\nfrom IPython.display import Image, display\n\n"
             "from ablate import report\nfrom ablate.results import collect\n\n"
             "STUDY = os.environ.get('ABLATE_STUDY', 'demo')\n"
             "STUDIES_DIR = os.environ.get('ABLATE_STUDIES_DIR', 'studies')\n"
             "RESAMPLES = int(os.environ.get('ABLATE_RESAMPLES', '2000'))\n"
             "CORRECTION = os.environ.get('ABLATE_CORRECTION', 'holm')\n"
             "FIGURES = Path(os.environ.get('ABLATE_FIGURES', 'figures'))\n"
             "FIGURES.mkdir(parents=True, exist_ok=True)"),
    ("code", "results = collect(STUDY, studies_dir=STUDIES_DIR)\n"
             "print(len(results.runs), 'runs;', len(results.scores), 'scores;', len(results.examples), 'examples')\n"
             "results.runs.head()"),
    ("markdown", "## Scores (headline metric per benchmark)"),
    ("code", "report.score_table(results)"),
    ("markdown", "## Every comparison under every test"),
    ("code", "tests = report.analyse(results, correction=CORRECTION, n_resamples=RESAMPLES)\n"
             "report.summary(tests)"),
    ("code", "tests[tests['lost_after_correction']][['comparison', 'benchmark', 'method', 'pvalue', 'p_adj']]"),
    ("markdown", "## Plots"),
    ("code", "delta = report.delta_table(results)\n"
             "display(Image(report.plot_delta_heatmap(delta, tests, FIGURES / 'delta_heatmap.png')))\n"
             "display(Image(report.plot_forest(tests, FIGURES / 'forest.png')))\n"
             "for path in report.plot_axis_bars(results, tests, FIGURES):\n"
             "    display(Image(path))"),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [make[kind](src) for kind, src in CELLS]
    return nb


if __name__ == "__main__":
    path = Path(__file__).with_name("study.ipynb")
    nbformat.write(build(), path)
    print(path)

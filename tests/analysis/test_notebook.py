"""analysis/study.ipynb runs top to bottom on the fixture study (nbclient), so it cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "analysis" / "study.ipynb"


def test_notebook_matches_its_generator():
    spec = importlib.util.spec_from_file_location("make_notebook", REPO / "analysis" / "make_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    saved = nbformat.read(NOTEBOOK, as_version=4)
    assert [(c.cell_type, c.source) for c in saved.cells] == [(c.cell_type, c.source) for c in mod.build().cells]


def test_notebook_executes_on_fixture_study(fixture_study, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("ABLATE_STUDY", fixture_study["study"])
    monkeypatch.setenv("ABLATE_STUDIES_DIR", str(fixture_study["studies_dir"]))
    monkeypatch.setenv("ABLATE_RESAMPLES", "200")
    monkeypatch.setenv("ABLATE_FIGURES", str(tmp_path / "fig"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # heatmap, forest, 2 bar charts
    text = "".join(o.get("text", "") for o in outputs)
    assert "6 runs; 36 scores; 4440 examples" in text
    summary_html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "naive_vs_letterbox" in summary_html
    assert (tmp_path / "fig" / "forest.png").exists()

"""The job body never imports the launcher (issue 16): a static import graph of the package (every
``import`` statement, function-level ones included) has no path from ``ablate.job`` or ``ablate.rundir`` to
``ablate.launch``, and each of them imports alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ablate

PACKAGE = Path(ablate.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the ablate modules it imports anywhere in its source."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert "ablate.job" in graph["ablate.launch"]  # launch -> job (module level)
    assert "ablate.train.loop" in graph["ablate.job"]  # job -> train.loop (inside run_point)


@pytest.mark.parametrize("module", ["ablate.job", "ablate.rundir", "ablate.run_states", "ablate.distributed"])
def test_no_path_back_to_the_launcher(module: str) -> None:
    assert "ablate.launch" not in reachable(import_graph(), module)


def test_rundir_and_distributed_import_without_torch() -> None:
    code = ("import sys; import ablate.rundir, ablate.distributed, ablate.run_states; "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("module", ["ablate.launch", "ablate.job"])
def test_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]

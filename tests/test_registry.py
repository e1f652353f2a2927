"""The registries: lazy targets (listing and validating IDs import no torch), unique IDs, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ablate.config import ConfigError
from ablate.registry import REGISTRIES, Registry

ROOT = Path(__file__).resolve().parents[1]


def test_a_target_is_imported_on_first_get_only() -> None:
    reg = Registry("things", "thing", "thing.id", {"dumps": "json:dumps", "path-join": "os.path:join"})
    assert reg.names() == ["dumps", "path-join"] and reg.target("path-join") == "os.path:join"
    assert reg.get("dumps")([1]) == "[1]" and reg["path-join"]("a", "b") == "a/b"
    assert reg.origin("dumps") == "ablate"
    with pytest.raises(ValueError, match="^thing 'dumps' registered twice"):
        reg.register("dumps", "json:loads")
    with pytest.raises(ConfigError, match=r"^thing.id: invalid value 'load'; allowed: dumps, path-join$"):
        reg.get("load")
    reg.register("loads", "json:loads")
    assert reg.origin("loads") == __name__  # who registered it: the calling module


def test_listing_every_family_and_validating_a_study_import_no_torch() -> None:
    code = ("import contextlib, io, sys\nfrom ablate.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    assert main(['list']) == 0 and main(['sweep', 'sweeps/demo.yaml', '--dry-run']) == 0\n"
            "print(len(out.getvalue().splitlines()), 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines, torch_loaded = proc.stdout.split()
    assert int(lines) > 50 and torch_loaded == "False"


def test_every_builtin_target_resolves() -> None:
    for reg in REGISTRIES.values():
        for name in reg.names():
            assert callable(reg.get(name)), f"{reg.family} {name}: {reg.target(name)}"

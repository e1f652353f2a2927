"""Fixtures for the launch tests: a real local SLURM cluster for the session, and a clean study workspace.

The cluster is started by scripts/slurm-local.sh (installs Debian's packages on first use) and stopped at the
end only if this session started it.  Tests that need it are marked ``slurm``; they skip, saying why, only
where this machine cannot run it (not root, no apt-get).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm-local.sh"
HERE = Path(__file__).resolve().parent
STANDIN_BODY = "jobs_fixture:run_point"


def _cluster_running() -> bool:
    return subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """A running single-node SLURM cluster with accounting; yields the node name."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root on Linux (installs packages, starts daemons)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    started_here = not _cluster_running()
    up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.fail(f"scripts/slurm-local.sh up failed:\n{up.stdout}\n{up.stderr}")
    yield subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    if started_here:
        subprocess.run([str(SCRIPT), "down"], capture_output=True, timeout=120)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cwd (runs/, studies/, MLflow store) whose jobs run the stand-in train/eval body."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABLATE_JOB_BODY", STANDIN_BODY)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("ABLATE_TEST_FAIL_SEEDS", raising=False)
    return tmp_path

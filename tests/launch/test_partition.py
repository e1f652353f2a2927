"""A SLURM request the partition cannot serve stops ``ablate sweep`` with one line naming the key, the
request and the offer (the local cluster: 1 node, 8 CPUs, no GPUs); an sbatch rejection is one line too."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.cli import main
from ablate.partition import _gpus, _minutes

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "sweeps" / "demo.yaml")


def test_slurm_time_and_gres_parsing() -> None:
    assert [_minutes(v) for v in ("UNLIMITED", "30", "02:00:00", "1-00:00:00", "00:10:30")] == [None, 30, 120, 1440, 11]
    assert [_gpus(g) for g in ("(null)", "gpu:8", "gpu:a100:4(S:0-1)", "gpu:a100:4,gpu:h100:2")] == [0, 8, 4, 6]


def _sweep(capsys: pytest.CaptureFixture, *overrides: str) -> tuple[int, str]:
    rc = main(["sweep", DEMO, "--launcher", "slurm", *overrides])
    captured = capsys.readouterr()
    return rc, captured.err.strip()


@pytest.mark.slurm
def test_default_slurm_launcher_is_refused_in_one_line(slurm_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, err = _sweep(capsys)
    assert rc != 0 and err.splitlines() == [
        f"error: {DEMO}: launcher.gpus_per_node: requests 8 GPUs per node; partition 'debug' offers 0 GPUs per node"]
    rc, err = _sweep(capsys, "launcher.gpus_per_node=0")  # once pended forever in PD (PartitionConfig)
    assert rc != 0 and err == (f"error: {DEMO}: launcher.cpus_per_task: requests 8 tasks x 8 CPUs = 64 CPUs per node; "
                               "partition 'debug' offers 8 CPUs per node")
    small = ["launcher.gpus_per_node=0", "launcher.tasks_per_node=1", "launcher.cpus_per_task=1"]
    rc, err = _sweep(capsys, *small, "launcher.nodes=2")
    assert rc != 0 and err.endswith("launcher.nodes: requests 2 nodes; partition 'debug' offers 1 node(s)")
    rc, err = _sweep(capsys, *small, "launcher.partition=gpu")
    assert rc != 0 and err == "error: launcher.partition: invalid value 'gpu'; this cluster has: debug"
    rc, err = _sweep(capsys, *small, "+launcher.extra.constraint=nosuchfeature")
    assert rc != 0 and err.splitlines()[-1] == ("error: study demo: sbatch rejected the job array: sbatch: error: "
                                                "Batch job submission failed: Invalid feature specification")
    assert not (tmp_path / "studies" / "demo" / "manifest.json").exists()

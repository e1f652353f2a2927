"""launcher.nodes=2: the generated batch script asks for 2 nodes x tasks_per_node tasks under one srun, and
every task maps SLURM's environment to one rendezvous (one MASTER_ADDR = the first node, global RANK from
SLURM_PROCID, the device from SLURM_LOCALID: two tasks of a node never pick the same GPU).  Two slurmd nodes
were not made to work on this machine (see docs/scale.md), so the mapping and the script are tested here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ablate.design import compose


def test_two_node_batch_script(tmp_path: Path) -> None:
    from ablate.launch import make_executor

    cfg = compose(["launcher=slurm", "launcher.nodes=2", "launcher.tasks_per_node=8", "launcher.gpus_per_node=8"])
    ex = make_executor(cfg.launcher, tmp_path / "%j")
    script = ex._make_submission_file_text("python -m submitit.core._submit '%j'", "uid")
    lines = script.splitlines()
    for expected in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8"):
        assert expected in lines, script
    srun = [ln for ln in lines if ln.startswith("srun")]
    assert len(srun) == 1 and "--kill-on-bad-exit=1" in srun[0]
    port = [ln for ln in lines if "MASTER_PORT" in ln]
    assert port and lines.index(port[0]) < lines.index(srun[0])  # picked once, on the first node, before srun


@pytest.mark.parametrize(("procid", "localid", "node"), [(0, 0, "gpu-a1"), (7, 7, "gpu-a1"), (9, 1, "gpu-a2"),
                                                       (15, 7, "gpu-a2")])
def test_slurm_environment_maps_to_one_rendezvous(monkeypatch: pytest.MonkeyPatch, procid: int, localid: int,
                                                  node: str) -> None:
    from ablate.distributed import export_slurm_environment

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "LOCAL_WORLD_SIZE", "GROUP_RANK"):
        monkeypatch.setenv(var, "")  # recorded, so the export's values are undone after the test (a bare
        monkeypatch.delenv(var)  # delenv of an unset variable records nothing, and RANK leaked into later tests)
    env = {"SLURM_JOB_ID": "123", "SLURM_JOB_NODELIST": "gpu-a[1-2]", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_NNODES": "2", "SLURM_NTASKS": "16", "SLURM_NTASKS_PER_NODE": "8", "SLURM_TASKS_PER_NODE": "8(x2)",
           "SLURM_PROCID": str(procid), "SLURM_LOCALID": str(localid), "SLURM_NODEID": str(procid // 8),
           "SLURMD_NODENAME": node, "SLURM_STEP_NODELIST": "gpu-a[1-2]", "MASTER_PORT": "23456",
           "SUBMITIT_EXECUTOR": "slurm"}  # set by the sbatch script submitit writes
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    mapped = export_slurm_environment()
    assert mapped == {"rank": procid, "world_size": 16, "local_rank": localid, "master_addr": "gpu-a1",
                      "master_port": 23456}
    assert os.environ["RANK"] == str(procid) and os.environ["MASTER_ADDR"] == "gpu-a1"
    from ablate.distributed import pick_device

    assert pick_device("cpu", localid).type == "cpu"

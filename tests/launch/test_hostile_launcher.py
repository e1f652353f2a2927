"""Launcher strings reach the sbatch script (``#SBATCH --partition=...``): a newline there would be a shell line.
Every such string is checked before anything is submitted (docs/reliability.md); nothing runs, nothing is
queued, no manifest is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from ablate.cli import main
from ablate.config import ConfigError, check_launcher_strings

REPO = Path(__file__).resolve().parents[2]
SLURM_SMALL = ["launcher.gpus_per_node=0", "launcher.tasks_per_node=1", "launcher.cpus_per_task=1",
               "launcher.time_min=20", "launcher.signal_delay_s=5"]
TINY = {"vision": "tiny-clip", "image": "letterbox", "projector": "mlp", "llm": "tiny-llama",
        "recipe": "single-stage", "data": "shapes", "train": "tiny", "eval": "shapes"}

HOSTILE = "gpu\ntouch PWNED\n#"
ALLOWED = "allowed: letters, digits, '_', '.', '+', '-' (comma-separated list)"


def hostile_study(path: Path, override: str) -> Path:
    path.write_text(yaml.safe_dump({"study": "hostile", "mode": "points", "seeds": [7], "baseline": TINY,
                                    "points": {"base": {}}, "overrides": [override]}))
    return path


@pytest.mark.parametrize("key", ["partition", "account", "qos"])
def test_newline_in_a_launcher_string_is_refused_before_submit(workspace: Path, capsys: pytest.CaptureFixture,
                                                               key: str) -> None:
    study = hostile_study(workspace / "hostile.yaml", f'launcher.{key}="{HOSTILE}"')
    before = study.read_bytes()
    rc = main(["sweep", str(study), "--launcher", "slurm", *SLURM_SMALL])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [f"error: {study}: point 'base' (seed 7): launcher.{key}: invalid value {HOSTILE!r}; {ALLOWED}"]
    assert not (workspace / "PWNED").exists() and not (workspace / "studies").exists()
    assert not (workspace / "runs").exists() and study.read_bytes() == before


@pytest.mark.parametrize("value", ["gpu;touch PWNED", "$(touch PWNED)", "gpu touch", "`id`", "a,,b", ""])
def test_shell_characters_in_partition_are_refused(workspace: Path, capsys: pytest.CaptureFixture,
                                                   value: str) -> None:
    rc = main(["sweep", str(hostile_study(workspace / "h.yaml", "launcher.id=slurm")), "--dry-run",
               f"launcher.partition='{value}'"])
    assert rc == 2
    assert f"launcher.partition: invalid value {value!r}; {ALLOWED}" in capsys.readouterr().err
    assert not (workspace / "PWNED").exists()


def test_extra_sbatch_keys_and_values_are_checked() -> None:
    launcher = OmegaConf.load(REPO / "conf" / "launcher" / "slurm.yaml")
    launcher.partition, launcher.extra = "gpu,gpu-long", {"constraint": "a100&ib", "gres": "gpu:8", "exclusive": True}
    check_launcher_strings(launcher)  # real sbatch syntax passes
    launcher.extra = {"constraint": "a100\ntouch PWNED"}
    with pytest.raises(ConfigError, match=r"^launcher\.extra\.constraint: invalid value 'a100\\ntouch PWNED'; "
                                          r"allowed: letters, digits and"):
        check_launcher_strings(launcher)
    launcher.extra = {"x\ntouch PWNED\n#": "1"}
    with pytest.raises(ConfigError, match=r"^launcher\.extra: invalid key 'x\\ntouch PWNED\\n#'; allowed: an sbatch"):
        check_launcher_strings(launcher)


@pytest.mark.slurm
def test_the_executor_itself_refuses_an_unchecked_partition(slurm_cluster: str, tmp_path: Path) -> None:
    """submitit's SlurmExecutor needs ``srun`` on the PATH: on a fresh machine the cluster fixture installs it."""
    from ablate.launch import slurm_executor

    launcher = OmegaConf.load(REPO / "conf" / "launcher" / "slurm.yaml")
    launcher.partition = "gpu"
    text = slurm_executor(launcher, tmp_path / "%j")._make_submission_file_text("python -m x", "uid")
    assert "#SBATCH --partition=gpu\n" in text
    launcher.partition = HOSTILE
    with pytest.raises(ConfigError, match=r"launcher\.partition: invalid value 'gpu\\ntouch PWNED\\n#'"):
        slurm_executor(launcher, tmp_path / "%j")


def _job_ids() -> set[str]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID", "-S", "now-1hours"], capture_output=True,
                         text=True, timeout=30).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.mark.slurm
def test_hostile_partition_queues_nothing_on_a_real_cluster(slurm_cluster: str, workspace: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    study = hostile_study(workspace / "hostile.yaml", f'launcher.partition="{HOSTILE}"')
    before = _job_ids()
    assert main(["sweep", str(study), "--launcher", "slurm", *SLURM_SMALL]) == 2
    assert "launcher.partition: invalid value" in capsys.readouterr().err
    assert _job_ids() == before
    assert not (workspace / "PWNED").exists() and not (workspace / "studies").exists()

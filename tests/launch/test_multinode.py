"""launcher.nodes=2: the generated batch script asks for 2 nodes x tasks_per_node tasks under one srun, and
every task maps SLURM's environment to one rendezvous (one MASTER_ADDR = the first node, global RANK from
SLURM_PROCID, the device from SLURM_LOCALID: two tasks of a node never pick the same GPU).

The real test: a second SLURM cluster of its own (``two_node_cluster``: own slurm.conf through SLURM_CONF,
own ClusterName, controller and node ports, state and spool dirs; two slurmd started with ``-N`` for two
node names on 127.0.0.1; the machine's munged; no accounting) runs a ``launcher.nodes=2`` sweep of the real
job body: one FSDP run over one gloo rank per node, against the same run on one node.  The shared test
cluster (scripts/slurm-local.sh) is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from ablate.design import compose

# the settings both local clusters share (scripts/slurm-local.sh writes them into the shared cluster too)
COMMON_CONF = Path(__file__).resolve().parents[2] / "scripts" / "slurm-common.conf"


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


# ------------------------------------------------------------------------------ a real two-node cluster
def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _local_names() -> list[str]:
    """Two node names that resolve to this machine (the first node's name is every rank's MASTER_ADDR, so it
    must resolve, as on a real cluster): the host's short name and another alias of a loopback address.
    ``localhost`` is left out: SLURM reads NodeName=localhost as the host's own name."""
    host = socket.gethostname().split(".")[0]
    names = [host]
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.split("#")[0].split()
        if fields and fields[0].startswith("127."):
            names += [n for n in fields[1:] if n not in names and n != "localhost" and "." not in n]
    return [n for n in names if _resolves_local(n)][:2]


def _resolves_local(name: str) -> bool:
    try:
        return socket.gethostbyname(name).startswith("127.")
    except OSError:
        return False


def _conf(state: Path, names: list[str], ctld_port: int, node_ports: list[int]) -> str:
    nodes = "\n".join(f"NodeName={n} NodeAddr=127.0.0.1 Port={p} CPUs=2 Sockets=1 CoresPerSocket=2 "
                      "ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN" for n, p in zip(names, node_ports, strict=True))
    return f"""ClusterName=ablatetwo{os.getpid()}
SlurmctldHost={socket.gethostname().split(".")[0]}(127.0.0.1)
SlurmctldPort={ctld_port}
{nodes}
PartitionName=two Nodes=ALL Default=YES MaxTime=INFINITE State=UP
SlurmUser=root
SlurmdUser=root
{COMMON_CONF.read_text()}AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool/%n
SlurmctldPidFile={state}/run/slurmctld.pid
SlurmdPidFile={state}/run/slurmd-%n.pid
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdLogFile={state}/log/slurmd-%n.log
"""


def _stop(pidfile: Path) -> None:
    """SIGTERM the daemon named in its PID file (never by process name), wait, then SIGKILL."""
    if not pidfile.is_file():
        return
    pid = int(pidfile.read_text().strip() or 0)
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _logs(state: Path) -> str:
    return "\n".join(f"---- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:])
                     for f in sorted((state / "log").glob("*.log")))


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A second SLURM cluster with two nodes on this machine, for this module only: yields (slurm.conf,
    node names); every daemon it started is stopped by its PID file afterwards."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a SLURM cluster needs root on Linux (starts slurmctld and slurmd)")
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "munge") if shutil.which(b) is None
               and not Path("/usr/sbin", b).exists()]
    if missing:
        pytest.skip(f"SLURM/munge not installed ({', '.join(missing)}): run scripts/slurm-local.sh up once")
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        pytest.skip("munged is not running (scripts/slurm-local.sh up starts it)")
    names = _local_names()
    if len(names) < 2:
        pytest.skip(f"two node names resolving to a loopback address are needed (/etc/hosts has {names})")
    state = tmp_path_factory.mktemp("slurm-two")
    for sub in ("ctld", "spool", "log", "run"):
        (state / sub).mkdir()
    ctld_port, *node_ports = _free_ports(3)
    conf = state / "slurm.conf"
    conf.write_text(_conf(state, names, ctld_port, node_ports))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf), "-i"], env=env, check=True, timeout=60)
        for name in names:
            subprocess.run(["/usr/sbin/slurmd", "-f", str(conf), "-N", name], env=env, check=True, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], env=env, capture_output=True, text=True)
            idle = [ln.split()[0] for ln in out.stdout.splitlines() if ln.split()[1:] == ["idle"]]
            if sorted(idle) == sorted(names):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"two-node cluster: nodes not idle after 60 s: {out.stdout}{out.stderr}\n{_logs(state)}")
            time.sleep(0.5)
        yield conf, names
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"two-node cluster: {exc}\n{_logs(state)}")
    finally:
        subprocess.run(["scancel", "--full", "--quiet", "-u", "root"], env=env, capture_output=True, timeout=30)
        for pidfile in sorted((state / "run").glob("slurmd-*.pid")):
            _stop(pidfile)
        _stop(state / "run" / "slurmctld.pid")


def _wait_gone(job_ids: list[str], env: dict[str, str], timeout: float, report: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], env=env, capture_output=True,
                             text=True).stdout.split()
        if not [j for j in out if j.split("_")[0] in job_ids]:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs {job_ids} still queued after {timeout}s\n{report()}")
        time.sleep(2)


@pytest.mark.slurm
def test_two_node_job_trains_one_fsdp_run_across_both_nodes(two_node_cluster: tuple[Path, list[str]],
                                                              workspace: Path, capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``launcher.nodes=2 launcher.tasks_per_node=1``: one job, one srun task per node, one gloo rank each,
    both joining at the first node of the job's node list (one MASTER_ADDR); they train ONE run (one run
    directory, one checkpoint holding both ranks' shards) whose loss curve is the one-node run's."""
    from test_launch import SLURM_SMALL, _train_losses, slurm_report, sweep, write_study

    from ablate.shapes.world import write_world

    conf, names = two_node_cluster
    monkeypatch.setenv("SLURM_CONF", str(conf))
    monkeypatch.delenv("ABLATE_JOB_BODY")
    write_world(workspace / "data" / "shapes", 32, 0)
    size = ["data.synthetic.size=32", "train.finetune.global_batch=4", "train.finetune.per_device_batch=2",
            "train.max_steps=4", "train.sharding=full", "eval.limit=2", "eval.max_new_tokens=2",
            "eval.benchmarks=[pope]", "runtime.progress=false", "runtime.dist_timeout_s=120"]
    jobs: list[str] = []
    for nodes in (1, 2):
        study = write_study(workspace / f"n{nodes}.yaml", f"n{nodes}")
        rc, out = sweep(capsys, str(study), "--launcher", "slurm", *SLURM_SMALL, f"launcher.nodes={nodes}", *size,
                        f"runtime.runs_dir=runs{nodes}", f"tracking.uri=sqlite:///runs{nodes}/mlflow.db",
                        "--studies-dir", f"studies{nodes}")
        assert rc == 0 and "1 jobs submitted" in out, out
        manifest = json.loads((workspace / f"studies{nodes}" / f"n{nodes}" / "manifest.json").read_text())
        jobs += [j.split("_")[0] for j in manifest["submissions"][-1]["job_ids"]]

    def report() -> str:
        return slurm_report("studies1/n1", "studies2/n2")

    _wait_gone(jobs, dict(os.environ), 600, report)
    done = {n: list(Path(f"runs{n}").glob("*/DONE")) for n in (1, 2)}
    assert len(done[1]) == 1 and len(done[2]) == 1, f"runs not done: {done}\n{report()}"
    one, two = done[1][0].parent, done[2][0].parent
    assert one.name == two.name, "launcher.nodes is not part of the run identity"

    logs = {f.name: f.read_text() + f.with_suffix(".out").read_text()  # submitit: one .err/.out pair per task
            for f in (workspace / "studies2").rglob("*_log.err")}
    assert len(logs) == 2, f"one log per task expected: {sorted(logs)}"
    placed, joined = set(), []
    for text in logs.values():
        placed |= {n for n in ("node=0(2)", "node=1(2)") if n in text}  # submitit's SLURM_NODEID of the task
        joined += [ln for ln in text.splitlines() if "joined gloo process group at" in ln]
    assert placed == {"node=0(2)", "node=1(2)"}, f"one task per node expected: {placed}\n{report()}"
    step = f"StepId={jobs[-1]}.0"
    for name in names:  # each slurmd launched one task of the job's srun step
        slurmd_log = (conf.parent / "log" / f"slurmd-{name}.log").read_text()
        assert f"launch task {step} request" in slurmd_log, f"slurmd {name} ran no task of {step}"
    assert len(joined) == 2 and {ln.split("rank ")[1].split(" ")[0] for ln in joined} == {"0/2", "1/2"}, joined
    addrs = {ln.split(" at ")[1].rsplit(":", 1)[0] for ln in joined}
    assert addrs == {sorted(names)[0]}, f"one MASTER_ADDR (the first node of the job's list) expected: {addrs}"

    ckpts = [p for p in (two / "checkpoints").glob("step-*") if p.is_dir()]
    assert len(ckpts) == 1, ckpts
    shards = sorted(p.name for p in (ckpts[0] / "shards").glob("*.safetensors"))
    assert len(shards) == 2 and len(list(ckpts[0].glob("rng-rank*.safetensors"))) == 2, shards
    single, across = _train_losses(one), _train_losses(two)
    assert len(single) == len(across) == 4
    torch.testing.assert_close(torch.tensor(across), torch.tensor(single), rtol=1e-3, atol=1e-4)

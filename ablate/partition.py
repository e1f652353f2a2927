"""What a SLURM partition can serve, checked against ``cfg.launcher`` before anything is submitted.

Why it exists: a request the cluster cannot serve either fails in ``sbatch`` deep inside submitit (a 30-line
traceback ending in ``Invalid generic resource (gres) specification``) or, worse, is accepted and pends
forever (``PD (PartitionConfig)``) without a word.  ``check`` reads the partition (``scontrol show partition
-o``: nodes, MaxTime, MaxCPUsPerNode, MaxMemPerNode; ``sinfo -N``: CPUs, memory and GPUs of its nodes) and
raises one ``ConfigError`` line naming the launcher key, the request and what the partition offers;
``sbatch_error`` turns an sbatch rejection into one line too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from ablate.config import ConfigError


@dataclass(frozen=True)
class Offer:
    name: str
    nodes: int
    cpus_per_node: int
    mem_mb_per_node: int | None  # None: not limited / unknown
    gpus_per_node: int
    max_time_min: int | None  # None: UNLIMITED


def _run(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        raise ConfigError(f"launcher=slurm: {cmd[0]} not found on this machine; expected a SLURM client "
                          "(or use launcher=local)")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode:
        raise ConfigError(f"launcher.partition: `{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def _minutes(value: str) -> int | None:
    """SLURM time (``UNLIMITED``, ``MM``, ``HH:MM:SS``, ``D-HH:MM:SS``) -> minutes."""
    if value in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = value.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def _gpus(gres: str) -> int:
    """GPUs in a node's GRES (``gpu:8``, ``gpu:a100:4(S:0-1)``, ``(null)``)."""
    total = 0
    for item in gres.split(","):
        m = re.match(r"gpu(?::[^:(]+)?:(\d+)", item.strip())
        if m:
            total += int(m.group(1))
    return total


def offer(partition: str | None) -> Offer:
    """What ``partition`` (or the default partition) offers per node."""
    lines = [ln for ln in _run(["scontrol", "show", "partition", "-o"]).splitlines() if ln.strip()]
    fields = [dict(kv.split("=", 1) for kv in ln.split() if "=" in kv) for ln in lines]
    chosen = next((f for f in fields if f.get("PartitionName") == partition) if partition else
                  (f for f in fields if f.get("Default") == "YES"), None)
    if chosen is None:
        names = ", ".join(f.get("PartitionName", "?") for f in fields)
        raise ConfigError(f"launcher.partition: invalid value {partition!r}; this cluster has: {names}"
                          if partition else "launcher.partition: null but the cluster has no default partition; "
                          f"expected one of: {names}")
    name = chosen["PartitionName"]
    nodes = _run(["sinfo", "-N", "-h", "-p", name, "-o", "%N|%c|%m|%G"]).splitlines()
    per_node = [ln.split("|") for ln in nodes if ln.strip()]
    cpus = max((int(n[1]) for n in per_node), default=0)
    mem = max((int(re.sub(r"\D", "", n[2]) or 0) for n in per_node), default=0)
    gpus = max((_gpus(n[3]) for n in per_node), default=0)
    if chosen.get("MaxCPUsPerNode", "UNLIMITED") != "UNLIMITED":
        cpus = min(cpus, int(chosen["MaxCPUsPerNode"]))
    limit = chosen.get("MaxMemPerNode", "UNLIMITED")
    if limit not in ("UNLIMITED", "") and limit.rstrip("M").isdigit():
        mem = min(mem, int(limit.rstrip("M"))) if mem else int(limit.rstrip("M"))
    return Offer(name, int(chosen.get("TotalNodes", len({n[0] for n in per_node}) or 0)), cpus, mem or None, gpus,
                 _minutes(chosen.get("MaxTime", "UNLIMITED")))


def check(launcher: Any, where: str = "") -> Offer:
    """Raise one line for the first request of ``launcher`` that its partition cannot serve."""
    o = offer(launcher.partition or None)
    at = f"{where}: " if where else ""
    tasks, cpt = int(launcher.tasks_per_node), int(launcher.cpus_per_task)
    problems = [
        ("nodes", int(launcher.nodes) > o.nodes, f"{launcher.nodes} nodes", f"{o.nodes} node(s)"),
        ("gpus_per_node", int(launcher.gpus_per_node) > o.gpus_per_node, f"{launcher.gpus_per_node} GPUs per node",
         f"{o.gpus_per_node} GPUs per node"),
        ("cpus_per_task", tasks * cpt > o.cpus_per_node,
         f"{tasks} tasks x {cpt} CPUs = {tasks * cpt} CPUs per node", f"{o.cpus_per_node} CPUs per node"),
        ("mem_gb", launcher.mem_gb is not None and o.mem_mb_per_node is not None
         and float(launcher.mem_gb) * 1024 > o.mem_mb_per_node, f"{launcher.mem_gb} GB per node",
         f"{(o.mem_mb_per_node or 0) / 1024:.1f} GB per node"),
        ("time_min", o.max_time_min is not None and int(launcher.time_min) > o.max_time_min,
         f"{launcher.time_min} min", f"at most {o.max_time_min} min"),
    ]
    for key, bad, asked, offered in problems:
        if bad:
            raise ConfigError(f"{at}launcher.{key}: requests {asked}; partition {o.name!r} offers {offered}")
    return o


def sbatch_error(exc: BaseException, study: str) -> ConfigError | None:
    """One line for an sbatch rejection hidden in a submitit exception (None if it is something else)."""
    text = "\n".join(str(x) for x in (exc, getattr(exc, "output", None), getattr(exc, "stderr", None)) if x)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if "sbatch: error" in ln]
    if not lines:
        return None
    return ConfigError(f"study {study}: sbatch rejected the job array: {lines[-1]}")

"""MLflow tracking: one experiment per study, one run per design point (resumed by ``run_key``).

``Tracker`` is what the job body and the training loop log through.  It finds the run tagged
``ablate.run_key=<run_key>`` in the study's experiment and continues it, or creates it: a requeued or resumed
job never opens a second run.  Params are the axis levels (``axis.<axis>``) and the flattened resolved config
(``cfg.<dotted.key>``), clipped to MLflow's limits (values <= 6000 chars, <= 100 params per batch); tags are
those of DESIGN.md §3.

Stores
------
* ``tracking=sqlite`` (default): ``sqlite:///runs/mlflow.db``.  Many SLURM jobs may write at once, so every
  store call is retried with exponential backoff + jitter on "database is locked"/OperationalError, the
  schema is created under an exclusive file lock (MLflow's first-use migrations are not concurrency-safe),
  the database is switched to WAL journaling and every connection waits up to ``SQLITE_BUSY_TIMEOUT_S``
  for a lock.  WAL needs a local filesystem: on NFS/Lustre, prefer the server mode below.
* ``tracking=server``: any MLflow URI (``http://host:5000``, ``postgresql://...``).  For a cluster, start one
  tracking server, e.g. ``mlflow server --backend-store-uri postgresql://... --artifacts-destination
  /shared/mlruns --host 0.0.0.0 --port 5000`` (or with a SQLite backend on the server's local disk: one
  writer process serializes all jobs), and launch with ``tracking=server`` and ``MLFLOW_TRACKING_URI`` set.
"""

from __future__ import annotations

import fcntl
import json
import logging
import random
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

MAX_PARAM_VALUE = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
SQLITE_BUSY_TIMEOUT_S = 60
RETRY_ATTEMPTS = 12
RETRY_BASE_S = 0.05
RETRY_CAP_S = 5.0
RETRYABLE = ("database is locked", "operationalerror", "database table is locked", "busy", "disk i/o error")

T = TypeVar("T")


def _is_retryable(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(marker in text for marker in RETRYABLE)


def retry(fn: Callable[..., T], *args: Any, attempts: int = RETRY_ATTEMPTS, **kwargs: Any) -> T:
    """Call ``fn``; on a locked/busy database, retry with exponential backoff plus full jitter."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not _is_retryable(exc):
                raise
            delay = random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt))
            log.debug("tracking store busy (%s); retry %d in %.2fs", type(exc).__name__, attempt + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------------ helpers
def flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Dotted keys and string values of a nested mapping/list (list items by index)."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from flatten(v, f"{prefix}{k}.")
    elif isinstance(node, list | tuple) and node and any(isinstance(v, Mapping | list) for v in node):
        for i, v in enumerate(node):
            yield from flatten(v, f"{prefix}{i}.")
    else:
        value = json.dumps(list(node)) if isinstance(node, list | tuple) else str(node)
        yield prefix.rstrip("."), value[:MAX_PARAM_VALUE]


def code_version() -> str:
    """The git commit of the ablate checkout (``-dirty`` when modified), else the package version."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from ablate import __version__

        return str(__version__)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (query string dropped), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


def prepare_store(uri: str) -> str:
    """Make a tracking URI ready for concurrent use and return the URI the client should use.

    SQLite: create the folder, then, under an exclusive lock on ``<db>.lock``, switch the file to WAL and
    let MLflow create its schema once; the returned URI carries a busy timeout for every connection.
    """
    db = sqlite_path(uri)
    if db is None:
        return uri
    db.parent.mkdir(parents=True, exist_ok=True)
    client_uri = uri if "timeout=" in uri else f"{uri}{'&' if '?' in uri else '?'}timeout={SQLITE_BUSY_TIMEOUT_S}"
    with open(f"{db}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            con = sqlite3.connect(db, timeout=SQLITE_BUSY_TIMEOUT_S)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
            from mlflow.tracking import MlflowClient

            retry(MlflowClient(tracking_uri=client_uri).search_experiments, max_results=1)  # creates tables
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return client_uri


# ------------------------------------------------------------------------------------------------ tracker
class Tracker:
    """One MLflow run per design point; a context manager that marks the run FINISHED or FAILED on exit.

    ``Tracker(cfg, run_key=..., design_key=..., study=..., point_name=...)``; ``axes`` (axis -> level ID)
    defaults to the config's axis groups.  Only rank 0 should construct one.
    """

    def __init__(self, cfg: Any, *, run_key: str, design_key: str, study: str, point_name: str,
                 axes: Mapping[str, str] | None = None) -> None:
        from mlflow.tracking import MlflowClient
        from omegaconf import OmegaConf

        from ablate.design import axis_levels

        self.cfg = cfg
        self.run_key, self.design_key, self.study, self.point_name = run_key, design_key, study, point_name
        self.axes = dict(axes) if axes is not None else axis_levels(cfg)
        self.uri = prepare_store(str(cfg.tracking.uri))
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self._experiment(study, str(Path(cfg.tracking.artifact_root).resolve() / study))
        self.run_id, self.resumed = self._find_or_create_run()
        resolved = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
        params = {f"axis.{k}": v for k, v in self.axes.items()}
        params.update({f"cfg.{k}": v for k, v in flatten(resolved)})
        self.log_params(params)

    # -- setup
    def _experiment(self, name: str, artifact_location: str) -> str:
        exp = retry(self.client.get_experiment_by_name, name)
        if exp is not None:
            return exp.experiment_id
        try:
            return retry(self.client.create_experiment, name, artifact_location=artifact_location)
        except Exception:  # another job created it between our lookup and create
            exp = retry(self.client.get_experiment_by_name, name)
            if exp is None:
                raise
            return exp.experiment_id

    def _find_or_create_run(self) -> tuple[str, bool]:
        found = retry(self.client.search_runs, [self.experiment_id],
                      filter_string=f"tags.`ablate.run_key` = '{self.run_key}'", max_results=1,
                      order_by=["attributes.start_time ASC"])
        if found:
            run_id = found[0].info.run_id
            retry(self.client.update_run, run_id, status="RUNNING")
            log.info("mlflow: resuming run %s (run_key %s)", run_id, self.run_key)
            return run_id, True
        tags = {"ablate.run_key": self.run_key, "ablate.design_key": self.design_key, "ablate.study": self.study,
                "ablate.point": self.point_name, "ablate.code_version": code_version()}
        run = retry(self.client.create_run, self.experiment_id, run_name=self.point_name, tags=tags)
        log.info("mlflow: created run %s (run_key %s)", run.info.run_id, self.run_key)
        return run.info.run_id, False

    # -- logging
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params not yet on the run (a resumed run keeps its first values), 100 per batch."""
        from mlflow.entities import Param

        existing = retry(self.client.get_run, self.run_id).data.params if self.resumed else {}
        todo = [Param(k, str(v)[:MAX_PARAM_VALUE]) for k, v in params.items() if k not in existing]
        for i in range(0, len(todo), MAX_PARAMS_PER_BATCH):
            retry(self.client.log_batch, self.run_id, params=todo[i:i + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step or 0)) for k, v in metrics.items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            retry(self.client.log_batch, self.run_id, metrics=items[i:i + MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        retry(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        retry(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def set_status(self, status: str) -> None:
        """``RUNNING``, ``FINISHED``, ``FAILED`` or ``KILLED``."""
        if status == "RUNNING":
            retry(self.client.update_run, self.run_id, status="RUNNING")
        else:
            retry(self.client.set_terminated, self.run_id, status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.set_status("FINISHED" if exc_type is None else "FAILED")

"""Running the search's jobs as Ray tasks: a local Ray instance by default (``num_cpus`` workers),
or an existing cluster by address (``ray start --head`` on one machine, ``--ray-address HOST:PORT``
elsewhere).  Finished jobs are read from and written to the on-disk cache (qat.search.cache) as
they complete, so an interrupted search resumes without re-running any finished job; a rich
progress bar on stderr counts the jobs.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from qat.search.cache import JobCache
from qat.search.errors import SearchError


@dataclass
class Job:
    kind: str  # cache folder: 'base', 'measured', 'hessian', 'price', 'evaluate', 'finetune', 'verify'
    key: str  # content key: everything the result depends on
    fn: Callable[..., dict]
    args: tuple = ()
    label: str = ""
    blobs: dict[str, str] = field(default_factory=dict)  # result field -> artefact name stored as bytes


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse (one line naming it) a Ray address nothing listens on, instead of Ray's long retries."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SearchError(f"--ray-address {address}: expected HOST:PORT (or ray://HOST:PORT)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise SearchError(f"--ray-address {address}: no Ray cluster reachable there ({exc.strerror or exc})") \
            from None


class Runner:
    """Ray session for one search (``with Runner(...) as r: r.run(jobs)``)."""

    def __init__(self, cache: JobCache, address: str | None = None, workers: int | None = None,
                 progress: bool = True):
        self.cache, self.address, self.workers, self.progress = cache, address, workers, progress
        self._started = False
        self._puts: dict[int, Any] = {}
        self.executed = 0  # jobs actually run (not found in the cache)

    def __enter__(self) -> "Runner":
        if self.address:
            check_address(self.address)
        return self

    def _ensure_ray(self) -> None:
        """Start (or connect to) Ray the first time a job must really run: a search whose jobs are
        all in the cache needs no Ray at all."""
        import ray

        if ray.is_initialized():
            return
        # local workers inherit the driver's environment: this source tree first on their path
        root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        if not self.address and root not in path.split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join([root] + ([path] if path else []))
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        kw: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False, "logging_level": "ERROR"}
        for attempt in range(3):  # Ray gives a local node 30 s to start; a busy machine can need a retry
            try:
                if self.address:
                    ray.init(address=self.address, **kw)
                else:
                    ray.init(num_cpus=self.workers or os.cpu_count() or 1, **kw)
                break
            except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception for a slow start
                ray.shutdown()
                if attempt == 2 or "timed out during startup" not in str(exc):
                    where = f"--ray-address {self.address}" if self.address else "local Ray instance"
                    raise SearchError(f"{where}: Ray did not start ({str(exc).splitlines()[0]})") from None
        self._started = True

    def __exit__(self, *exc) -> None:
        if self._started:
            import ray

            ray.shutdown()

    def _put(self, value: Any) -> Any:
        """Large arguments (model bytes, data) go to the object store once."""
        import ray

        if isinstance(value, (int, float, str, bool, type(None), tuple, list)):
            return value
        k = id(value)
        if k not in self._puts:
            self._puts[k] = (ray.put(value), value)  # keep value alive so id() stays unique
        return self._puts[k][0]

    def run(self, jobs: list[Job], title: str) -> dict[str, dict]:
        """Results of ``jobs`` by key: cached ones read, the others run as Ray tasks (all at once;
        each result is stored in the cache the moment it arrives)."""
        import ray
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        out: dict[str, dict] = {}
        todo = []
        for j in jobs:
            hit = self.cache.get(j.kind, j.key)
            if hit is not None and all(self.cache.get_bytes(j.kind, j.key, n) is not None for n in j.blobs.values()):
                for f, n in j.blobs.items():
                    hit[f] = self.cache.get_bytes(j.kind, j.key, n)
                out[j.key] = hit
            elif j.key not in {t.key for t in todo}:
                todo.append(j)
        console = Console(stderr=True, quiet=not self.progress)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False, disable=not self.progress or not sys.stderr) as prog:
            task = prog.add_task(title, total=len(jobs), completed=len(jobs) - len(todo))
            pending = {}
            if todo:
                self._ensure_ray()
            for j in todo:
                remote = ray.remote(num_cpus=1, max_retries=1)(j.fn)
                pending[remote.remote(*(self._put(a) for a in j.args))] = j
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                j = pending.pop(done[0])
                try:
                    res = ray.get(done[0])
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    msg = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
                    raise SearchError(f"{j.kind} job {j.label or j.key[:12]} failed: {msg}") from None
                stored = json.loads(json.dumps({k: v for k, v in res.items() if k not in j.blobs}, sort_keys=True))
                for f, n in j.blobs.items():
                    self.cache.put_bytes(j.kind, j.key, n, res[f])
                    stored[f] = res[f]
                self.cache.put(j.kind, j.key, {k: v for k, v in stored.items() if k not in j.blobs})
                out[j.key] = stored
                self.executed += 1
                prog.update(task, advance=1)
        return {j.key: out[j.key] for j in jobs}

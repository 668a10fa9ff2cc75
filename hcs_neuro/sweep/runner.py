"""The resumable runner: the missing points of a grid on Dask, each saved as soon as it is done.

:func:`run_sweep` submits the missing points to Dask (a local multi-process cluster, or an
existing scheduler by address), persists each finished point atomically as
``OUT/points/<point_id>.json`` as it completes (on the client, so no shared file system is
needed), and records a raising point with its error instead of stopping. Dask is imported only
here, when a sweep runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from hcs_neuro import __version__
from hcs_neuro.core.errors import ConfigError, OutputError
from hcs_neuro.core.io import (
    MARKER_NAME,
    check_output_dir,
    output_dir_marker,
    prepare_output_dir,
    write_json_atomic,
)
from hcs_neuro.core.progress import progress as progress_bar
from hcs_neuro.sweep.grid import Point, expand_grid, pending_points, point_path
from hcs_neuro.sweep.results import assemble_results, write_results
from hcs_neuro.sweep.spec import SweepSpec
from hcs_neuro.sweep.worker import Brian2Preload

# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


def run_point(evaluate: Callable, target_cfg: dict, params: dict, seed: int) -> dict:
    """Evaluate one point (on a worker); never raises for errors of the target itself.

    Returns
    -------
    dict
        ``metrics`` (name -> float), ``run_time_s`` (wall time of ``evaluate``),
        ``cpu_time_s`` (CPU time of the worker process meanwhile, all its threads), ``error``
        (``""`` or ``"ExceptionType: message"``), ``traceback`` and ``worker`` (host:pid).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    error, tb, metrics = "", "", {}
    try:
        result = evaluate(target_cfg, dict(params), int(seed))
        if not isinstance(result, Mapping):
            raise TypeError(f"target returned {type(result).__name__}, not a dict of metrics")
        for key, value in result.items():
            if isinstance(value, (bool, np.bool_)):
                value = float(value)
            if not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"metric {key!r} is {type(value).__name__}, not a number")
            metrics[str(key)] = float(value)
    except Exception as exc:  # recorded, not fatal: the sweep goes on
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        tb = traceback.format_exc(limit=20)[-4000:]
        metrics = {}
    return {"metrics": metrics, "run_time_s": time.perf_counter() - t0,
            "cpu_time_s": time.process_time() - c0, "error": error,
            "traceback": tb, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def write_point(out: Path, point: Point, rec: dict) -> None:
    data = {"point_id": point.point_id, "params": point.params, "seed": point.seed,
            "eval_seed": point.eval_seed, "finished_utc": utc_now(), **rec}
    write_json_atomic(point_path(out, point), data)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape sweep results (absent ones omitted)."""

    out = {"python": platform.python_version(), "hcs_neuro": __version__}
    for dist in ("numpy", "brian2", "dask", "distributed", "pandas", "xarray", "pyarrow",
                 "h5netcdf", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class SweepResult:
    """What :func:`run_sweep` did (an interrupted sweep raises instead; its finished points
    stay on disk). Times are wall-clock seconds on the client."""

    spec: SweepSpec
    out: Path
    n_rows: int
    n_computed: int
    n_errors: int
    n_workers: int
    cluster_start_s: float
    compute_wall_s: float
    table: Any = None
    files: dict = field(default_factory=dict)

    @property
    def throughput_points_per_s(self) -> float:
        """Points computed in this run per second of compute wall time (cluster start excluded)."""
        return self.n_computed / self.compute_wall_s if self.compute_wall_s > 0 else float("nan")

    def summary(self) -> dict:
        """JSON-able summary with stable snake_case keys."""
        return {"name": self.spec.name, "out": str(self.out), "n_rows": self.n_rows,
                "n_computed": self.n_computed, "n_errors": self.n_errors,
                "n_workers": self.n_workers, "cluster_start_s": self.cluster_start_s,
                "compute_wall_s": self.compute_wall_s,
                "throughput_points_per_s": self.throughput_points_per_s,
                "files": {k: str(v) for k, v in self.files.items()}}


#: How long to try to reach an existing scheduler (``--scheduler``) before giving up.
CONNECT_TIMEOUT = "20s"


class _LocalOrRemote:
    """Context manager yielding a dask Client: a new LocalCluster or an existing scheduler."""

    def __init__(self, scheduler: str | None, n_workers: int, brian2: bool):
        self.scheduler, self.n_workers, self.brian2 = scheduler, n_workers, brian2
        self.cluster = self.client = None

    def __enter__(self):
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"--scheduler {self.scheduler}: cannot connect ({exc})") from None
        else:
            # worker processes start with Ctrl-C ignored (POSIX keeps an ignored signal ignored
            # across exec, and Python then installs no KeyboardInterrupt handler): a Ctrl-C reaches
            # only this process, which closes the cluster, instead of every worker printing a traceback

            main = threading.current_thread() is threading.main_thread()
            old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                self.cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1,
                                            processes=True, dashboard_address=":0",
                                            silence_logs=logging.CRITICAL)
            finally:
                if main:
                    signal.signal(signal.SIGINT, old)
            self.client = Client(self.cluster)
        try:
            if self.brian2:
                self.client.register_plugin(Brian2Preload())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.client

    def __exit__(self, *exc):
        # closing while tasks run (Ctrl-C) makes distributed log cancelled-task and closed-stream
        # noise; the interruption itself is reported by the caller
        quiet = [logging.getLogger(n) for n in ("distributed", "distributed.client", "distributed.worker",
                                                   "distributed.nanny", "distributed.scheduler", "tornado")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.CRITICAL)
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close()
            if self.cluster is not None:
                with contextlib.suppress(Exception):
                    self.cluster.close()
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)
        return False


def run_sweep(spec: SweepSpec, out: str | os.PathLike | None = None, *,
              scheduler: str | None = None, n_workers: int | None = None, client=None,
              progress: bool = True, retry_errors: bool = False) -> SweepResult:
    """Run every missing point x seed of ``spec`` on Dask, then assemble the results.

    Parameters
    ----------
    spec : SweepSpec
    out : path-like, optional
        Output folder (default ``spec.out``). Finished points already there are reused.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); default: a new
        ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``.
    n_workers : int, optional
        Local workers (default: the CPU count, at most the number of missing points).
    client : distributed.Client, optional
        Use this client instead (tests, notebooks); ``scheduler``/``n_workers`` are then ignored.
    progress : bool
        tqdm progress bar as points complete.
    retry_errors : bool
        Recompute points whose file records an error.

    Returns
    -------
    SweepResult

    Notes
    -----
    Each finished point is written atomically to ``OUT/points/<point_id>.json`` by the client
    as soon as its future completes. A task whose worker dies is rescheduled by Dask (up to
    ``distributed.scheduler.allowed-failures`` times, default 3); beyond that it is recorded
    with a ``KilledWorker`` error. KeyboardInterrupt closes the cluster and propagates; running
    again computes only the missing points.
    """
    out = Path(out) if out is not None else spec.out
    if scheduler and n_workers:
        raise ConfigError("--workers applies to the local cluster only; with --scheduler the "
                          "cluster's own workers are used")
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"--workers {n_workers}: must be >= 1")
    target = spec.target
    _check_sweep_dir(out)  # a file there, or a foreign folder: refused before anything starts
    if target.before_run is not None:  # e.g. the python target imports its function only now
        try:
            target.before_run(spec.target_cfg)
        except ConfigError as exc:
            raise ConfigError(f"sweep spec {spec.source}: {exc}") from None
    points = expand_grid(spec)
    todo = pending_points(spec, out, retry_errors=retry_errors)
    started = utc_now()

    n_errors_run, cluster_start_s, compute_wall_s, used_workers = 0, 0.0, 0.0, 0
    if not todo:
        _prepare_sweep_dir(out)
    else:
        if n_workers is None:
            n_workers = max(1, min(os.cpu_count() or 1, len(todo)))
        t0 = time.perf_counter()
        manager = _LocalOrRemote(scheduler, n_workers, target.needs_brian2(spec.target_cfg)) \
            if client is None else None
        cl = manager.__enter__() if manager is not None else client  # an unreachable scheduler fails here
        try:
            _prepare_sweep_dir(out)  # written only once the cluster is there
            write_metadata(spec, out, points, status="running", started=started)
            from distributed import as_completed

            if client is not None and target.needs_brian2(spec.target_cfg):
                cl.register_plugin(Brian2Preload())
            used_workers = len(cl.scheduler_info(n_workers=-1)["workers"])
            cluster_start_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            futures = {}
            if target.group_key is not None:  # neighbours can reuse one compiled network
                todo = sorted(todo, key=lambda p: (
                    target.group_key(spec.target_cfg, p.params, p.eval_seed), p.index))
            for p in todo:
                fut = cl.submit(run_point, target.evaluate, spec.target_cfg, p.params,
                                p.eval_seed, key=f"hcs-sweep-{p.point_id}", pure=False)
                futures[fut] = p
            bar = progress_bar(total=len(todo), enabled=progress, unit="point", desc=f"sweep {spec.name}")
            try:
                for fut in as_completed(futures):
                    p = futures.pop(fut)
                    try:
                        rec = fut.result()
                    except Exception as exc:  # KilledWorker after repeated losses, ...
                        rec = {"metrics": {}, "run_time_s": float("nan"), "cpu_time_s": float("nan"),
                               "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                               "traceback": "", "worker": ""}
                    if not rec["error"]:
                        missing = [m for m in spec.metrics if m not in rec["metrics"]]
                        if missing:
                            rec["error"] = f"MissingMetric: target returned no {missing}"
                    n_errors_run += bool(rec["error"])
                    write_point(out, p, rec)
                    bar.update(1)
            finally:
                bar.close()
                for fut in futures:
                    fut.cancel()
            compute_wall_s = time.perf_counter() - t1
        finally:
            if manager is not None:
                manager.__exit__(None, None, None)

    table = assemble_results(spec, out)
    files = write_results(spec, out, table)
    n_errors = int((table["error"] != "").sum())
    result = SweepResult(spec=spec, out=out, n_rows=len(table), n_computed=len(todo),
                         n_errors=n_errors, n_workers=used_workers,
                         cluster_start_s=cluster_start_s, compute_wall_s=compute_wall_s,
                         table=table, files=files)
    write_metadata(spec, out, points, status="complete", started=started,
                    run=result.summary())
    files["metadata"] = out / "sweep.json"
    return result


#: Kind recorded in the marker of a sweep output folder.
SWEEP_KIND = "sweep"


def _is_legacy_sweep_dir(out: Path) -> bool:
    """A sweep folder written before folders were marked: a sweep.json with a name and status."""
    try:
        meta = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and "name" in meta and "status" in meta and "spec" in meta


def _check_sweep_dir(out: Path) -> None:
    """Refuse, before any work, an output folder that a sweep may not fill: a file, the current
    folder, a place that cannot be written, or a non-empty folder that is not an earlier sweep's."""

    if out.is_dir() and any(out.iterdir()):
        marker = output_dir_marker(out)
        if (marker is not None and marker.get("kind") == SWEEP_KIND) or _is_legacy_sweep_dir(out):
            return
        what = "was not written by hcs-neuro" if marker is None else f"holds an hcs-neuro {marker.get('kind')}"
        raise OutputError(f"sweep output folder {str(out)!r}: the folder exists, is not empty and {what}; "
                          "nothing was changed: name a new or empty folder (--out)")
    check_output_dir(out, option="sweep output folder", kind=SWEEP_KIND)


def _prepare_sweep_dir(out: Path) -> None:
    """Create (or reuse) the sweep's output folder: new, empty, or an earlier sweep's (resumed).

    A folder written by an older hcs-neuro (sweep.json, no marker) gets its marker now."""

    if out.is_dir() and output_dir_marker(out) is None and _is_legacy_sweep_dir(out):
        write_json_atomic(out / MARKER_NAME, {"written_by": "hcs-neuro", "kind": SWEEP_KIND, "files": []})
        return
    prepare_output_dir(out, option="sweep output folder", kind=SWEEP_KIND)


def write_metadata(spec: SweepSpec, out: Path, points: list[Point], *, status: str,
                    started: str, run: dict | None = None) -> None:
    meta = {
        "name": spec.name,
        "status": status,
        "spec_file": spec.source,
        "spec": spec.raw,
        "target": {"kind": spec.target_kind, "cfg": spec.target_cfg},
        "parameters": [{"name": p.name, "column": p.column, "unit": p.unit, "kind": p.kind,
                        "values": list(p.values)} for p in spec.parameters],
        "seeds": list(spec.seeds),
        "seed_mode": spec.seed_mode,
        "metrics": list(spec.metrics),
        "n_rows": len(points),
        "versions": package_versions(),
        "started_utc": started,
    }
    if run is not None:
        meta["finished_utc"] = utc_now()
        meta["last_run"] = run
    write_json_atomic(out / "sweep.json", meta)



"""Brian2 devices: build once, compile once, rerun many times. The one home of compiled-project reuse.

* :class:`BuiltNetwork` switches the process to a device, builds the Brian2 objects a caller
  describes, and with ``cpp_standalone`` compiles the project once
  (``device.build(run=False)``); :meth:`BuiltNetwork.run` then starts the compiled binary with
  new values of state variables, arrays or TimedArrays (``run_args``) and no recompilation
  (Brian2 >= 2.6). cpp_standalone is one global device per process, so one network is *built*
  at a time; each keeps its own project folder and runs use separate results folders.
* :func:`cached_project_dir` keeps project folders between processes: Brian2 rewrites only the
  generated files whose content changed and ``make`` recompiles only those, so a second build of
  the same (or a same-sized) network takes seconds.
* :class:`ProcessCache` keeps one compiled object per process while consecutive uses share a
  key (a sweep worker reusing one network for many points); :data:`WORKER_CACHE` is the one
  the sweep workers use.
* :class:`StandaloneCircuit` is a compiled H x N hypercolumn circuit that reruns with new drives.

Run-time settable in a :class:`StandaloneCircuit` (state variables, passed as ``run_args``): the
drives ``exc.drive``, per-cell ``exc.bias``, per-hypercolumn ``inh.k_hc`` (k), ``inh.max_level``
and ``inh.refine`` (refinement). Everything in the circuit namespace (``tau_m``, ``w_ie``, ...),
the network size, ``dt``, the duration, the monitors and the random seed are compiled in: a new
value needs a new build.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hcs_neuro.brian import b2, limit_compile_jobs
from hcs_neuro.brian.hypercolumn import build_hypercolumns
from hcs_neuro.core.circuit_file import CircuitSpec
from hcs_neuro.core.errors import ConfigError

__all__ = ["DEVICES", "project_key", "cached_project_dir", "cache_root", "BuiltNetwork", "ProcessCache",
           "WORKER_CACHE", "StandaloneCircuit"]

#: Brian2 devices hcs-neuro builds networks on.
DEVICES = ("cpp_standalone", "runtime")


def project_key(description: dict) -> str:
    """A short hash of everything that shapes a project's generated code (a JSON-able dict)."""
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]


def cache_root() -> Path:
    """``$HCS_NEURO_CACHE`` (default ``~/.cache/hcs-neuro``)``/standalone``: safe to delete."""
    return Path(os.environ.get("HCS_NEURO_CACHE") or Path.home() / ".cache" / "hcs-neuro") / "standalone"


def cached_project_dir(key: str):
    """A persistent cpp_standalone project folder that no other process is using, and its lock.

    Folders are ``cache_root()/<key>-<slot>``; each is locked (``flock``) while in use, so
    concurrent processes take different slots. Returns ``(folder, lock file or None)``; without a
    writable cache (or with 16 slots busy) a temporary folder and None.
    """
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path(tempfile.mkdtemp(prefix="hcs_net_")), None
    for slot in range(16):
        d = root / f"{key}-{slot}"
        fh = open(root / f"{key}-{slot}.lock", "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        d.mkdir(exist_ok=True)
        for old in d.glob("results_*"):
            shutil.rmtree(old, ignore_errors=True)
        return d, fh
    return Path(tempfile.mkdtemp(prefix="hcs_net_")), None


class BuiltNetwork:
    """Brian2 objects built on a device; with cpp_standalone compiled once and rerun.

    Parameters
    ----------
    build : callable
        ``build(b2) -> handles``: creates the objects; ``handles.network`` is the explicit
        :class:`brian2.Network` to run.
    duration_ms : float
        Simulated time of one run.
    device : {"cpp_standalone", "runtime"}
    directory : str or Path, optional
        Project folder (cpp_standalone). Default: ``cached_project_dir(cache_key)`` when a key is
        given, else a temporary folder removed by :meth:`close`.
    cache_key : str, optional
        Key of a persistent project folder (:func:`project_key`).
    seed : int
        Seed of Brian2's random generators.
    float32 : bool
        Compile with float32 state variables.
    codegen_target : str
        Code generation target of the runtime device (default "numpy").
    drop_static : sequence of str
        Globs of the project's ``static_arrays`` removed by :meth:`close` in a cached folder (the
        values passed through ``run_args`` are written there).

    Attributes
    ----------
    handles
        What ``build`` returned.
    compile_time_s : float
        Building and (cpp_standalone) compiling.
    """

    def __init__(self, build: Callable[[Any], Any], duration_ms: float, *, device: str = "cpp_standalone",
                 directory=None, cache_key: str | None = None, seed: int = 0, float32: bool = False,
                 codegen_target: str | None = "numpy", drop_static: tuple[str, ...] = ()):
        if device not in DEVICES:
            raise ConfigError(f"device = {device!r}: allowed {', '.join(DEVICES)}")
        # free the Brian2 objects of earlier builds in this process, so that generated code objects
        # get their plain names again (no "_1" suffix): identical files, nothing recompiled
        gc.collect()
        self.device_name, self.duration_ms = device, float(duration_ms)
        self._lock = None
        if directory is None and device == "cpp_standalone" and cache_key is not None:
            self.directory, self._lock = cached_project_dir(cache_key)
        else:
            self.directory = Path(tempfile.mkdtemp(prefix="hcs_net_")) if directory is None else Path(directory)
        self._tmp = directory is None and self._lock is None
        self._drop_static = tuple(drop_static)
        self._runs = 0
        t0 = time.perf_counter()
        self._old_dtype = b2.prefs.core.default_float_dtype
        self._old_target = b2.prefs.codegen.target
        b2.BrianLogger.suppress_hierarchy("brian2.codegen.generators")
        b2.device.reinit()
        if device == "cpp_standalone":
            limit_compile_jobs()
            b2.set_device("cpp_standalone", build_on_run=False, directory=str(self.directory))
        else:
            b2.set_device("runtime")
            if codegen_target is not None:
                b2.prefs.codegen.target = codegen_target
        try:
            if float32:
                b2.prefs.core.default_float_dtype = np.float32
            b2.seed(int(seed))
            self.handles = build(b2)
            if device == "cpp_standalone":
                self.handles.network.run(self.duration_ms * b2.ms)
                b2.device.build(directory=str(self.directory), run=False, compile=True, with_output=False)
                self._device = b2.get_device()
        except BaseException:
            self._restore()
            self._release()
            raise
        self.compile_time_s = time.perf_counter() - t0

    def run(self, run_args: dict | None = None, results_directory: str | None = None) -> None:
        """Run once: the compiled binary with ``run_args`` (cpp_standalone, any number of runs,
        each in its own results folder), or the runtime network (one run per build)."""
        self._runs += 1
        if self.device_name == "cpp_standalone":
            self._device.run(directory=str(self.directory), results_directory=results_directory or
                             f"results_{self._runs}", with_output=False, run_args=run_args or {})
            return
        if self._runs > 1:
            raise RuntimeError("a runtime network runs once (build one per run)")
        if run_args:
            raise RuntimeError("run_args are for cpp_standalone; set the values before a runtime run")
        self.handles.network.run(self.duration_ms * b2.ms)

    def drop_results(self, results_directory: str) -> None:
        """Remove a results folder whose values have been read."""
        shutil.rmtree(self.directory / results_directory, ignore_errors=True)

    def _restore(self) -> None:
        b2.prefs.core.default_float_dtype = self._old_dtype
        b2.prefs.codegen.target = self._old_target
        b2.device.reinit()
        b2.set_device("runtime")

    def _release(self) -> None:
        if self._tmp:
            shutil.rmtree(self.directory, ignore_errors=True)
        elif self.device_name == "cpp_standalone":
            for pattern in self._drop_static:
                for f in (self.directory / "static_arrays").glob(pattern):
                    f.unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def close(self) -> None:
        """Switch the process back to the runtime device and free the project folder."""
        self._restore()
        self._release()
        self.handles = None


class ProcessCache:
    """One compiled object per process, reused while consecutive uses share a key.

    Brian2's standalone device is process-global, so a process holds one compiled network at a
    time; a sweep worker evaluating neighbouring points with the same network shape reuses it.

    Attributes
    ----------
    key, obj
        The current key and object (None when empty).
    builds, reuses : int
        Counts of :meth:`get` calls that built and that reused.
    """

    def __init__(self):
        self.key: str | None = None
        self.obj = None
        self.builds = 0
        self.reuses = 0

    def get(self, key: str, factory: Callable[[], Any]) -> tuple[Any, bool]:
        """``(object, built)``: the cached object for ``key``, or a new one from ``factory()``
        (the previous one is closed first)."""
        if self.key == key and self.obj is not None:
            self.reuses += 1
            return self.obj, False
        self.evict()
        self.obj = factory()
        self.key = key
        self.builds += 1
        return self.obj, True

    def evict(self) -> None:
        """Close and forget the cached object."""
        if self.obj is not None:
            obj, self.obj = self.obj, None
            obj.close()
        self.key = None


#: The cache of a sweep worker process (evicted by the worker plugin at teardown).
WORKER_CACHE = ProcessCache()


class StandaloneCircuit:
    """A compiled H x N hypercolumn circuit that reruns with new drives.

    Parameters
    ----------
    spec : CircuitSpec
    n_hypercolumns, n_channels, k : int
    duration_ms : float
        Simulated time per run.
    dt_ms : float, optional
        Time step (default 0.1 ms).
    directory : str or Path, optional
        Project directory (default: a fresh temporary directory, removed by :meth:`close`).
    seed : int
        Seed of the compiled random number generators (membrane noise, Poisson input).
    float32 : bool
        Use ``prefs.core.default_float_dtype = float32`` (faster; loses the exactness of deep
        refinement levels, so the default is float64).
    monitors : tuple of str
        ``"spikes"`` to record spike monitors (off for benchmarks).
    tie_break : bool
        The per-channel "lower index wins" bias of :func:`hcs_neuro.brian.hypercolumn.build_hypercolumns`.

    Attributes
    ----------
    compile_time_s : float
        Wall time of building and compiling the project.
    """

    def __init__(self, spec: CircuitSpec, n_hypercolumns: int, n_channels: int, k: int, *, duration_ms: float,
                 dt_ms: float | None = None, directory=None, seed: int = 0, float32: bool = False,
                 monitors: tuple[str, ...] = (), tie_break: bool = False):

        self.n_hypercolumns, self.n_channels, self.k = n_hypercolumns, n_channels, k
        self.duration_ms = float(duration_ms)

        def build(_b2):
            return build_hypercolumns(spec, n_hypercolumns, n_channels, k, np.zeros((n_hypercolumns, n_channels)),
                                      dt_ms=dt_ms, monitors=monitors, tie_break=tie_break, name="sa")

        self._built = BuiltNetwork(build, self.duration_ms, device="cpp_standalone", directory=directory, seed=seed,
                                   float32=float32, codegen_target=None)
        self.circuit = self._built.handles
        self.directory = self._built.directory
        self.compile_time_s = self._built.compile_time_s
        self._runs = 0

    def run(self, drives, *, k=None, bias=None, results_directory: str | None = None) -> dict:
        """Run the compiled binary with new drives (and optionally k per hypercolumn, bias).

        Returns
        -------
        dict
            ``winners`` (H, N) bool, ``win_time_ms`` (H, N), ``decision_time_ms`` (H,),
            ``decision_local_time_ms`` (H,), ``levels`` (H,) and ``run_time_s`` (wall time of the
            binary including reading results).
        """
        c = self.circuit
        d = np.asarray(drives, dtype=float)
        if d.shape != (self.n_hypercolumns, self.n_channels):
            raise ConfigError(f"drives must have shape ({self.n_hypercolumns}, {self.n_channels}), got {d.shape}")
        run_args = {c.exc.drive: d.ravel()}
        if k is not None:
            kk = np.broadcast_to(np.asarray(k, dtype=float), (self.n_hypercolumns,))
            run_args[c.inh.k_hc] = np.repeat(kk, c.kwta.n_pool)
        if bias is not None:
            run_args[c.exc.bias] = np.asarray(bias, dtype=float).ravel()
        self._runs += 1
        res = results_directory or f"results_{self._runs}"
        t0 = time.perf_counter()
        self._built.run(run_args, results_directory=res)
        out = {
            "winners": c.winners(),
            "win_time_ms": c.win_time_ms(),
            "decision_time_ms": c.kwta.decision_time_ms(),
            "decision_local_time_ms": c.kwta.decision_local_time_ms(),
            "levels": c.kwta.levels(),
        }
        out["run_time_s"] = time.perf_counter() - t0
        if results_directory is None and self._runs > 1:
            self._built.drop_results(f"results_{self._runs - 1}")
        return out

    def close(self) -> None:
        """Switch the process back to the runtime device; remove a temporary project directory."""
        self._built.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

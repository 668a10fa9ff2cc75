"""Compile a hypercolumn circuit once with Brian2's cpp_standalone device, rerun it with new inputs.

``device.build(run=False)`` compiles the project; :meth:`StandaloneCircuit.run` then calls
``device.run(run_args={...}, results_directory=...)``, which starts the compiled binary with new
values of state variables and no recompilation.

Run-time settable (state variables, passed as ``run_args``): the drives ``exc.drive``, per-cell
``exc.bias``, per-hypercolumn ``inh.k_hc`` (k), ``inh.max_level`` and ``inh.refine``
(refinement). Everything in the circuit namespace (``tau_m``, ``w_ie``, ``urgency_rate``, ...),
the network size, ``dt``, the duration, the monitors and the random seed are compiled in: a new
value needs a new :class:`StandaloneCircuit`.

cpp_standalone is one global device per process: this class switches the process to it while it
compiles and back to the runtime device afterwards (``device.reinit()``/``device.activate()``),
so only one :class:`StandaloneCircuit` can be *built* at a time; each instance keeps its own
project directory, and runs of one instance use separate results directories. Parallel
processes must use separate ``directory`` values.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hcs_neuro.brian import limit_compile_jobs
from hcs_neuro.core.circuit_file import CircuitSpec
from hcs_neuro.core.errors import ConfigError

__all__ = ["StandaloneCircuit"]


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

    Attributes
    ----------
    compile_time_s : float
        Wall time of building and compiling the project.
    """

    def __init__(self, spec: CircuitSpec, n_hypercolumns: int, n_channels: int, k: int, *, duration_ms: float,
                 dt_ms: float | None = None, directory=None, seed: int = 0, float32: bool = False,
                 monitors: tuple[str, ...] = (), tie_break: bool = False):
        from hcs_neuro.brian import b2

        from hcs_neuro.brian.hypercolumn import build_hypercolumns

        self._tmp = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="hcs_standalone_")) if directory is None else Path(directory)
        self.n_hypercolumns, self.n_channels, self.k = n_hypercolumns, n_channels, k
        self.duration_ms = float(duration_ms)
        self._runs = 0
        t0 = time.perf_counter()
        old_dtype = b2.prefs.core.default_float_dtype
        b2.device.reinit()
        limit_compile_jobs()
        b2.set_device("cpp_standalone", build_on_run=False, directory=str(self.directory))
        try:
            if float32:
                b2.prefs.core.default_float_dtype = np.float32
            b2.seed(int(seed))
            self.circuit = build_hypercolumns(spec, n_hypercolumns, n_channels, k,
                                              np.zeros((n_hypercolumns, n_channels)), dt_ms=dt_ms,
                                              monitors=monitors, tie_break=tie_break, name="sa")
            self.circuit.network.run(self.duration_ms * b2.ms)
            b2.device.build(directory=str(self.directory), run=False, compile=True, with_output=False)
        except Exception:
            b2.prefs.core.default_float_dtype = old_dtype
            b2.device.reinit()
            b2.set_device("runtime")
            raise
        self.compile_time_s = time.perf_counter() - t0
        self._old_dtype = old_dtype
        self._device = b2.get_device()

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
        self._device.run(directory=str(self.directory), results_directory=res, with_output=False,
                         run_args=run_args)
        out = {
            "winners": c.winners(),
            "win_time_ms": c.win_time_ms(),
            "decision_time_ms": c.kwta.decision_time_ms(),
            "decision_local_time_ms": c.kwta.decision_local_time_ms(),
            "levels": c.kwta.levels(),
        }
        out["run_time_s"] = time.perf_counter() - t0
        if results_directory is None and self._runs > 1:
            shutil.rmtree(self.directory / f"results_{self._runs - 1}", ignore_errors=True)
        return out

    def close(self) -> None:
        """Switch the process back to the runtime device; remove a temporary project directory."""
        from hcs_neuro.brian import b2

        b2.prefs.core.default_float_dtype = self._old_dtype
        b2.device.reinit()
        b2.set_device("runtime")
        if self._tmp:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



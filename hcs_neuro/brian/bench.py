"""Fidelity and latency benchmark of a hypercolumn circuit against the exact top-k.

Every trial is one hypercolumn with N drives drawn i.i.d. uniform in [0, 1]; many trials run as
many hypercolumns of one network (runtime device) or of one compiled cpp_standalone binary that
is rerun batch after batch with new drives (``device.run(run_args=...)``).

Definitions (``docs/guide/concepts.md``):

* reference top-k: the k largest drives; among exactly equal drives the lower channel index wins
  (the tie rule of ``hcs_neuro.core.kwta``; with continuous random drives ties have probability 0);
* strict agreement: winner set == reference set;
* tie-tolerant agreement (``tie_tol`` = 1% of the hypercolumn's drive range): every channel whose
  drive exceeds the k-th largest by more than tie_tol wins, every channel more than tie_tol
  below it loses, channels within tie_tol of it may go either way;
* over-/under-selection: trials with more / fewer than k winners;
* margin: k-th minus (k+1)-th largest drive (drive units); psychometric curve = agreement per
  margin bin;
* decision latency: simulated (grid) time from stimulus onset (t = 0) to the interneuron's first
  spike, i.e. the step of the k-th excitatory spike; undecided trials are excluded from the
  latency statistics and counted in ``undecided``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hcs_neuro.brian import b2
from hcs_neuro.brian.device import StandaloneCircuit
from hcs_neuro.brian.hypercolumn import build_hypercolumns
from hcs_neuro.core.agreement import psychometric, score_trials
from hcs_neuro.core.circuit_file import CircuitSpec, check_k
from hcs_neuro.core.errors import ConfigError

__all__ = [
    "run_bench",
    "random_drives",
    "DEFAULT_BATCH",
]

#: Hypercolumns simulated together by default (bounds memory; see ``run_bench(batch_size=...)``).
DEFAULT_BATCH = 10000


def random_drives(n_trials: int, n_channels: int, seed: int) -> np.ndarray:
    """Drives i.i.d. uniform in [0, 1), shape (n_trials, n_channels), from ``seed``."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n_trials, n_channels))


def _simulate_runtime(spec, drives, k, dt_ms, duration_ms, codegen_target, progress):
    b2.prefs.codegen.target = codegen_target
    H, N = drives.shape
    t0 = time.perf_counter()
    c = build_hypercolumns(spec, H, N, k, drives, dt_ms=dt_ms, monitors=())
    c.run(duration_ms, report="text" if progress else None)
    wall = time.perf_counter() - t0
    return {
        "winners": c.winners(),
        "decision_time_ms": c.kwta.decision_time_ms(),
        "decision_local_time_ms": c.kwta.decision_local_time_ms(),
        "levels": c.kwta.levels(),
    }, wall


def run_bench(spec: CircuitSpec, *, k: int, n_channels: int = 32, trials: int = 2000, seed: int = 0,
              noise: float | None = None, dt_ms: float | None = None, device: str = "runtime",
              duration_ms: float | None = None, tie_tol: float = 0.01, batch_size: int = DEFAULT_BATCH,
              codegen_target: str = "numpy", progress: bool = False, return_raw: bool = False,
              standalone_dir=None, standalone_factory=None) -> dict[str, Any]:
    """Winner agreement, decision latency and wall time of ``spec`` on random drives.

    Parameters
    ----------
    spec : CircuitSpec
    k, n_channels : int
        Winners per hypercolumn and channels N (0 < k < N).
    trials : int
        Number of hypercolumns (one trial each). Use >= 10,000 for a figure at the 99.9% level.
    seed : int
        Seed of the drives (and of Brian2's noise); same seed, same result.
    noise : float, optional
        Membrane-noise standard deviation in mV (overrides the circuit's ``sigma*`` parameter).
    dt_ms : float, optional
        Time step (ms; default 0.1).
    device : {"runtime", "cpp_standalone"}
        cpp_standalone compiles once and reruns each batch via ``run_args``.
    duration_ms : float, optional
        Simulated time per batch (default: the circuit's ``circuit.duration``).
    tie_tol : float
        Tie tolerance as a fraction of the drive range.
    batch_size : int
        Hypercolumns simulated together.
    codegen_target : str
        Brian2 runtime code generation target ("numpy": no compilation; "cython").
    return_raw : bool
        Also return the per-trial arrays under ``"raw"`` (not JSON-able as is).
    standalone_dir : path, optional
        Project folder of the cpp_standalone build (default: a temporary one).
    standalone_factory : callable, optional
        Builds the compiled circuit on cpp_standalone; takes the arguments of
        :class:`hcs_neuro.brian.device.StandaloneCircuit` (the default) and returns an object with
        its ``compile_time_s``, ``run(drives)`` and ``close()``. Sweeps pass one that reuses a
        network compiled for an earlier point.

    Returns
    -------
    dict
        Stable keys: ``circuit``, ``k``, ``n_channels``, ``trials``, ``seed``, ``dt_ms``,
        ``duration_ms``, ``noise_mv``, ``device``, ``tie_tol``, ``strict_agreement``,
        ``tie_tolerant_agreement``, ``over_selection``, ``under_selection`` (trial counts),
        ``undecided``, ``latency_ms_median``, ``latency_ms_p95``, ``latency_local_ms_median``,
        ``refined_fraction``, ``max_level_used``, ``wall_time_s``, ``wall_time_per_trial_s``,
        ``sim_time_per_trial_s``, ``compile_time_s``, ``psychometric_margin_lo`` /
        ``_margin_hi`` / ``_margin_center`` / ``_strict`` / ``_tie_tolerant`` / ``_n_trials``.
    """

    check_k(int(k), int(n_channels))
    duration_ms = spec.duration_ms if duration_ms is None else float(duration_ms)
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if device not in ("runtime", "cpp_standalone"):
        raise ConfigError(f"device must be 'runtime' or 'cpp_standalone', got {device!r}")
    if noise is not None:
        sig = next((p for p in spec.params if p.name.startswith("sigma")), None)
        if sig is None:
            raise ConfigError(f"{spec.source}: circuit has no sigma* parameter, cannot add membrane noise")
        if noise < 0:
            raise ConfigError(f"noise must be >= 0 mV, got {noise}")
        spec = spec.with_overrides({sig.dotted: f"{float(noise)} mV"})
    dt_eff = float(dt_ms) if dt_ms is not None else float(b2.defaultclock.dt / b2.ms)
    drives = random_drives(trials, n_channels, seed)
    batches = [drives[i : i + batch_size] for i in range(0, trials, batch_size)]
    results = []
    t_start = time.perf_counter()
    compile_time = 0.0
    sim_time = 0.0
    if device == "runtime":
        b2.seed(seed)
        for bd in batches:
            r, wall = _simulate_runtime(spec, bd, k, dt_ms, duration_ms, codegen_target, progress)
            sim_time += wall
            results.append(r)
    else:
        size = len(batches[0])
        sa = (standalone_factory or StandaloneCircuit)(spec, size, n_channels, k, duration_ms=duration_ms, dt_ms=dt_ms, seed=seed,
                               directory=standalone_dir)
        try:
            compile_time = sa.compile_time_s
            for bd in batches:
                pad = size - len(bd)
                full = np.vstack([bd, np.zeros((pad, n_channels))]) if pad else bd
                r = sa.run(full)
                sim_time += r["run_time_s"]
                results.append({key: (v[: len(bd)] if isinstance(v, np.ndarray) else v) for key, v in r.items()})
        finally:
            sa.close()
    wall_total = time.perf_counter() - t_start
    winners = np.concatenate([r["winners"] for r in results])
    lat = np.concatenate([r["decision_time_ms"] for r in results])
    lat_local = np.concatenate([r["decision_local_time_ms"] for r in results])
    levels = np.concatenate([r["levels"] for r in results])
    sc = score_trials(drives, winners, k, tie_tol)
    ps = psychometric(sc["margin"], sc["strict"])
    pt = psychometric(sc["margin"], sc["tie_tolerant"])
    decided = np.isfinite(lat)
    out: dict[str, Any] = {
        "circuit": spec.name,
        "source": spec.source,
        "k": int(k),
        "n_channels": int(n_channels),
        "trials": int(trials),
        "seed": int(seed),
        "dt_ms": dt_eff,
        "duration_ms": float(duration_ms),
        "noise_mv": float(noise) if noise is not None else None,
        "device": device,
        "tie_tol": float(tie_tol),
        "strict_agreement": float(sc["strict"].mean()),
        "tie_tolerant_agreement": float(sc["tie_tolerant"].mean()),
        "over_selection": int((sc["n_winners"] > k).sum()),
        "under_selection": int((sc["n_winners"] < k).sum()),
        "undecided": int((~decided).sum()),
        "latency_ms_median": float(np.median(lat[decided])) if decided.any() else None,
        "latency_ms_p95": float(np.percentile(lat[decided], 95)) if decided.any() else None,
        "latency_local_ms_median": float(np.median(lat_local[decided])) if decided.any() else None,
        "refined_fraction": float((levels > 0).mean()),
        "max_level_used": int(levels.max()) if levels.size else 0,
        "max_levels": int(spec.max_levels),
        "wall_time_s": float(wall_total),
        "wall_time_per_trial_s": float(wall_total / trials),
        "sim_time_per_trial_s": float(sim_time / trials),
        "compile_time_s": float(compile_time),
        "psychometric_margin_lo": ps["margin_lo"],
        "psychometric_margin_hi": ps["margin_hi"],
        "psychometric_margin_center": ps["margin_center"],
        "psychometric_strict": ps["agreement"],
        "psychometric_tie_tolerant": pt["agreement"],
        "psychometric_n_trials": ps["n_trials"],
    }
    if return_raw:
        out["raw"] = {"drives": drives, "winners": winners, "latency_ms": lat, "levels": levels, **sc}
    return out

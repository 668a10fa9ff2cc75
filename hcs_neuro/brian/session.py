"""Simulate a converted model as a Brian2 spiking network on many images.

The network of :mod:`hcs_neuro.core.topology` (input neurons, one excitatory group and one
interneuron group per layer, feed-forward synapses for the non-zero weights, E->I and I->E
synapses of every hypercolumn) is built once in one explicit :class:`brian2.Network`. Images are
presented one after another, each in its own period of ``plan.steps_per_image`` time steps;
the state is reset at the start of every period, and the input levels come from a
:class:`brian2.TimedArray` indexed by the image. With ``device="cpp_standalone"`` (the default)
the project is compiled once and rerun on chunks of images by changing only the TimedArray
through ``run_args``; ``n_jobs`` forked processes run chunks in parallel, each in its own
results directory. ``device="runtime"`` builds the same network with Brian2's runtime device
(NumPy code generation), one chunk per build: the slow reference path for tests and for the
"naive" baseline of ``analysis/bench_network.py``.

Schedule within one time step (Brian2 slots, by ``order``)::

    start       reset at the first step of each image (own clock, one tick per image)
                I: count_prev = count; theta -= g while racing and undecided
    thresholds  0 E 'cross' (score >= theta) and E 'spike' (emission of winners)
                1 E: done = 1, t_cross = t for the cells that crossed
                2 E->I: count += 1 per crossing
                3 I 'spike' (count == k, or every positive cell crossed) and 'overshoot' (count > k)
                4 I: decided = 1 / on overshoot: count, theta restored, g /= f
                5 I->E: inhibition of the hypercolumn / rewind of this step's crossings
    synapses    feed-forward: acc_post += w * level_pre (input and emission spikes)

so the interneuron's inhibition lands in the step of the k-th crossing and no later crossing
can slip in.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from hcs_neuro.core.topology import NetworkPlan, RaceParams, plan_network
from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.spiking_result import SpikingLayer, SpikingResult

__all__ = ["load_race_circuit", "simulate", "SimulationSession", "NetworkRunner", "default_chunk", "DEFAULT_CIRCUIT"]

#: Built-in whole-network circuit (``circuits/network_race.toml``).
DEFAULT_CIRCUIT = "network_race"

_RACE_KEYS = {"dt": str, "refine_factor": int, "max_levels": (int, str), "float32": bool}


def load_race_circuit(path_or_name=None) -> RaceParams:
    """Load a whole-network race circuit file (``circuits/network_*.toml``) into RaceParams.

    Parameters
    ----------
    path_or_name : str or Path, optional
        A TOML file, or the name of a built-in circuit (default ``network_race``).

    Raises
    ------
    ConfigError
        Missing file, TOML error, unknown key, a value out of range, a missing citation, or a
        single-hypercolumn circuit file (``[neuron]`` section) given where a network race circuit
        is needed.
    """
    from hcs_neuro.core.units import TIME, parse_quantity

    name = DEFAULT_CIRCUIT if path_or_name is None else str(path_or_name)
    p = Path(name)
    if p.suffix != ".toml" and not p.exists():
        res = resources.files("hcs_neuro.circuits") / f"{name}.toml"
        if not res.is_file():
            raise ConfigError(f"circuit {name!r} is neither a file nor a built-in network circuit "
                              f"(built-in: {DEFAULT_CIRCUIT})")
        text, src = res.read_text(), f"{name}.toml (built-in)"
    else:
        if not p.is_file():
            raise ConfigError(f"circuit file {p} does not exist")
        text, src = p.read_text(), str(p)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{src}: not valid TOML: {exc}") from None
    if "race" not in raw:
        if "neuron" in raw:
            raise ConfigError(f"{src}: a single-hypercolumn circuit ([neuron] section); whole networks need a "
                              f"network race circuit with a [race] section, e.g. {DEFAULT_CIRCUIT}")
        raise ConfigError(f"{src}: missing section [race]")
    for section in raw:
        if section not in ("circuit", "race", "citations"):
            raise ConfigError(f"{src}: unknown section [{section}] (allowed: circuit, race, citations)")
    race = raw["race"]
    for key, value in race.items():
        if key not in _RACE_KEYS:
            raise ConfigError(f"{src}: unknown field race.{key} (allowed: {', '.join(_RACE_KEYS)})")
    cites = raw.get("citations", {})
    for key in race:
        if f"race.{key}" not in cites:
            raise ConfigError(f"{src}: race.{key} needs a citation (citations.\"race.{key}\")")
    dt_ms = 0.1
    if "dt" in race:
        si, dim = parse_quantity(race["dt"], f"{src}: race.dt")
        if dim != TIME:
            raise ConfigError(f"{src}: race.dt must be a time such as \"0.1 ms\", got {race['dt']!r}")
        dt_ms = si * 1e3
    levels = race.get("max_levels", "auto")
    if isinstance(levels, str):
        if levels != "auto":
            raise ConfigError(f"{src}: race.max_levels = {levels!r}: allowed an integer 0..40 or \"auto\"")
        levels = None
    f = race.get("refine_factor", 4)
    f32 = race.get("float32", False)
    if not isinstance(f32, bool):
        raise ConfigError(f"{src}: race.float32 must be true or false, got {f32!r}")
    name = raw.get("circuit", {}).get("name", p.stem)
    return RaceParams(dt_ms=float(dt_ms), refine_factor=f, max_levels=levels, float32=f32, name=str(name), source=src)


@dataclass
class _Handles:
    net: object
    ta: object
    exc: object
    inh: object
    mon_spike: object
    mon_cross: object
    mon_inh: object
    mon_over: object
    exc_offset: np.ndarray
    inh_offset: np.ndarray


def _layout(plan: NetworkPlan) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of each layer's cells in the one excitatory group (input pixels first) and of its
    interneurons in the one interneuron group."""
    exc = np.cumsum([0, plan.n_inputs] + [lp.n_cells for lp in plan.layers])
    inh = np.cumsum([0] + [lp.n_hypercolumns for lp in plan.layers])
    return exc, inh


def _build(plan: NetworkPlan, chunk: int, b2, levels=None):
    """Build the Brian2 objects for ``chunk`` images per run (current device).

    All layers share one excitatory group (input pixels first, then every layer's cells) and one
    interneuron group, so the compiled project has few code objects (compile time); per-cell
    constants hold each layer's k, windows and activity steps.
    """
    from hcs_neuro.brian.hypercolumn import SAME_STEP_ORDER, in_same_step

    dt = plan.race.dt_ms * b2.ms
    T = plan.steps_per_image
    net = b2.Network(name="hcs_net")
    vals = np.zeros((chunk, plan.n_inputs))
    if levels is not None:
        vals[:len(levels)] = levels
    # One row per image, on the step grid (dt): row n is read at time n * dt (see hcs_exc_reset
    # below). A row period of T * dt would do too, but its ratio to dt is not an exact integer in
    # floating point for some T (168 * 0.1 ms / 0.1 ms = 168.00000000000003), and Brian2 then
    # warns that the time grids are not aligned (harmlessly: its lookup rounds).
    ta = b2.TimedArray(vals, dt=dt, name="hcs_input_levels")
    clock = b2.Clock(dt=dt, name="hcs_clock")
    img_clock = b2.Clock(dt=T * dt, name="hcs_image_clock")
    eo, io = _layout(plan)
    n_exc, n_inh = int(eo[-1]), int(io[-1])
    ns = {"inp": ta, "n_steps": T, "f": float(plan.race.refine_factor), "image_period": T * dt, "row_dt": dt}

    # per-cell constants (input cells: an empty race window, emission at step 0)
    def cells(attr, input_value):
        return np.concatenate([np.full(plan.n_inputs, input_value, dtype=float)] +
                              [np.broadcast_to(np.asarray(attr(lp), dtype=float), (lp.n_cells,)) for lp in plan.layers])

    def hcs(attr):
        return np.concatenate([np.broadcast_to(np.asarray(attr(lp), dtype=float), (lp.n_hypercolumns,))
                               for lp in plan.layers])

    I = b2.NeuronGroup(
        n_inh,
        """theta : 1
        g : 1
        count : 1
        count_prev : 1
        decided : 1
        t_dec : second
        k : 1 (constant)
        theta0 : 1 (constant)
        g0 : 1 (constant)
        floor_score : 1 (constant)
        race_start : 1 (constant)
        race_end : 1 (constant)
        racing = (t_in_timesteps % n_steps) >= race_start and (t_in_timesteps % n_steps) < race_end : boolean""",
        threshold="decided < 0.5 and racing and (abs(count - k) < 0.5 or (count < k + 0.5 and theta <= floor_score))",
        reset="decided = 1\nt_dec = t",
        events={"overshoot": "decided < 0.5 and count > k + 0.5"},
        namespace=ns, clock=clock, name="hcs_inh")
    I.k = hcs(lambda lp: lp.k)
    I.theta0 = hcs(lambda lp: lp.theta0)
    I.g0 = hcs(lambda lp: lp.g0)
    I.floor_score = hcs(lambda lp: lp.floor)
    I.race_start = hcs(lambda lp: lp.race_start)
    I.race_end = hcs(lambda lp: lp.race_start + lp.window_steps)
    I.run_regularly("theta = theta0\ng = g0\ncount = 0\ndecided = 0", clock=img_clock, when="start", order=0,
                    name="hcs_inh_reset")
    I.run_regularly("count_prev = count\ntheta = theta - g * int(racing and decided < 0.5)", when="start", order=1,
                    name="hcs_inh_ramp")
    I.run_on_event("overshoot", "count = count_prev\ntheta = theta + g\ng = clip(g / f, 1, g)",
                   when="thresholds", order=SAME_STEP_ORDER["inh_reset"])
    in_same_step("inh_threshold", I.thresholder["spike"], I.thresholder["overshoot"])
    in_same_step("inh_reset", I.resetter["spike"])

    E = b2.NeuronGroup(
        n_exc,
        """acc : 1
        done : 1
        inhibited : 1
        t_cross : second
        theta : 1 (linked)
        bias_level : 1 (constant)
        tie : 1 (constant)
        C : 1 (constant)
        acc_floor : 1 (constant)
        act_step : 1 (constant)
        act_top : 1 (constant)
        is_input : 1 (constant)
        pix : integer (constant)
        race_start : 1 (constant)
        race_end : 1 (constant)
        emit_step : 1 (constant)
        racing = (t_in_timesteps % n_steps) >= race_start and (t_in_timesteps % n_steps) < race_end : boolean
        level = clip(ceil(acc / act_step), 0, act_top) : 1""",
        threshold="done > 0.5 and (t_in_timesteps % n_steps) == emit_step", reset="",
        events={"cross": "racing and done < 0.5 and inhibited < 0.5 and acc > acc_floor and acc * C + tie >= theta"},
        namespace=ns, clock=clock, name="hcs_exc")
    hc_global = np.concatenate([np.zeros(plan.n_inputs, np.int64)] +
                               [lp.hypercolumn_of + io[L] for L, lp in enumerate(plan.layers)])
    E.theta = b2.linked_var(I, "theta", index=hc_global)
    E.bias_level = cells(lambda lp: lp.bias, 0)
    E.tie = cells(lambda lp: lp.tie, 0)
    E.C = cells(lambda lp: lp.n_channels, 1)
    E.acc_floor = cells(lambda lp: 0.5 if lp.positive_only else -1e30, 0.5)
    E.act_step = cells(lambda lp: lp.act_step, 1)
    E.act_top = cells(lambda lp: lp.act_top, plan.input_top)
    E.is_input = cells(lambda lp: 0, 1)
    E.pix = np.concatenate([np.arange(plan.n_inputs), np.zeros(n_exc - plan.n_inputs, np.int64)])
    E.race_start = cells(lambda lp: lp.race_start, -1)
    E.race_end = cells(lambda lp: lp.race_start + lp.window_steps, -1)
    E.emit_step = cells(lambda lp: lp.emit_step, 0)
    E.run_regularly("acc = bias_level + is_input * inp(floor(t / image_period + 0.5) * row_dt, pix)\ndone = is_input * int(acc > 0.5)\ninhibited = 0",
                    clock=img_clock, when="start", order=0, name="hcs_exc_reset")
    E.run_on_event("cross", "done = 1\nt_cross = t", when="thresholds", order=SAME_STEP_ORDER["exc_reset"])
    in_same_step("exc_threshold", E.thresholder["cross"], E.thresholder["spike"])

    circ_e = np.arange(plan.n_inputs, n_exc)
    circ_i = hc_global[plan.n_inputs:]
    s_ei = b2.Synapses(E, I, on_pre="count_post += 1", on_event="cross", clock=clock, name="hcs_ei")
    s_ei.connect(i=circ_e, j=circ_i)
    in_same_step("e_to_i", s_ei.pre)
    s_ie = b2.Synapses(I, E, on_pre={"inh": "inhibited_post = 1",
                                     "rewind": "done_post = done_post * int(t_cross_post < t - 0.5 * dt)"},
                       on_event={"inh": "spike", "rewind": "overshoot"}, clock=clock, name="hcs_ie")
    s_ie.connect(i=circ_i, j=circ_e)
    in_same_step("i_to_e", s_ie.inh, s_ie.rewind)
    ff = b2.Synapses(E, E, "w : 1 (constant)", on_pre="acc_post += w * level_pre", clock=clock, namespace=ns,
                     name="hcs_ff")
    pre = np.concatenate([lp.pre + eo[L] for L, lp in enumerate(plan.layers)])
    post = np.concatenate([lp.post + eo[L + 1] for L, lp in enumerate(plan.layers)])
    ff.connect(i=pre, j=post)
    ff.w = np.concatenate([lp.weight for lp in plan.layers]).astype(float)
    ms = b2.SpikeMonitor(E, variables=["t_cross"], name="hcs_mon_spike")
    mc = b2.EventMonitor(E, "cross", variables=[], name="hcs_mon_cross")
    mi = b2.SpikeMonitor(I, variables=[], name="hcs_mon_inh")
    mo = b2.EventMonitor(I, "overshoot", variables=[], name="hcs_mon_over")
    net.add(I, E, s_ei, s_ie, ff, ms, mc, mi, mo)
    return _Handles(net, ta, E, I, ms, mc, mi, mo, eo, io)


def _collect(plan: NetworkPlan, h: _Handles, n: int) -> dict:
    """Read the monitors of one run (``n`` real images) into compact per-image arrays."""
    dt = plan.race.dt_ms
    T = plan.steps_per_image

    def steps(mon):
        return np.rint(np.asarray(mon.t_) * 1e3 / dt).astype(np.int64)

    st, si = steps(h.mon_spike), np.asarray(h.mon_spike.i_).astype(np.int64)
    tc = np.rint(np.asarray(h.mon_spike.t_cross_) * 1e3 / dt).astype(np.int64)
    ct, ci = steps(h.mon_cross) // T, np.asarray(h.mon_cross.i_).astype(np.int64)
    it, ii = steps(h.mon_inh), np.asarray(h.mon_inh.i_).astype(np.int64)
    ot, oi = steps(h.mon_over) // T, np.asarray(h.mon_over.i_).astype(np.int64)
    eo, io = h.exc_offset, h.inh_offset
    out = {"layers": [], "n": n}
    for L, lp in enumerate(plan.layers):
        sel = (si >= eo[L + 1]) & (si < eo[L + 2]) & (st // T < n)
        img = st[sel] // T
        selc = (ci >= eo[L + 1]) & (ci < eo[L + 2]) & (ct < n)
        seli = (ii >= io[L]) & (ii < io[L + 1]) & (it // T < n)
        selo = (oi >= io[L]) & (oi < io[L + 1]) & (ot < n)
        dimg = it[seli] // T
        out["layers"].append({
            "img": img.astype(np.int32), "cell": (si[sel] - eo[L + 1]).astype(np.int32),
            "cross_step": (tc[sel] - img * T).astype(np.int32),
            "n_cross": np.bincount(ct[selc], minlength=n)[:n],
            "n_dec": np.bincount(dimg, minlength=n)[:n],
            "dec_img": dimg.astype(np.int32),
            "dec_step": (it[seli] - dimg * T).astype(np.int32),
            "n_over": np.bincount(ot[selo], minlength=n)[:n],
        })
    return out


class NetworkRunner:
    """A compiled network that reruns on chunks of input levels (one process).

    Parameters
    ----------
    plan : NetworkPlan
    chunk : int
        Images per run of the binary (compiled in; the last chunk is padded).
    device : {"cpp_standalone", "runtime"}
    directory : str or Path, optional
        cpp_standalone project directory (default: a cached folder, see :func:`_cached_project_dir`).
    seed : int
        Seed of Brian2's random generators (the race itself is deterministic: no random
        process is used; the seed is recorded for completeness).
    """

    def __init__(self, plan: NetworkPlan, chunk: int, *, device: str = "cpp_standalone", directory=None, seed: int = 0,
                 levels=None):
        import gc

        from hcs_neuro.brian import b2

        if device not in ("cpp_standalone", "runtime"):
            raise ConfigError(f"device = {device!r}: allowed 'cpp_standalone' or 'runtime'")
        # free the Brian2 objects of earlier builds in this process, so that generated code objects
        # get their plain names again (no "_1" suffix): identical files, nothing recompiled
        gc.collect()
        self.plan, self.chunk, self.device_name = plan, int(chunk), device
        self._lock = None
        if directory is None and device == "cpp_standalone":
            self.directory, self._lock = _cached_project_dir(_project_key(plan, self.chunk))
        else:
            self.directory = Path(tempfile.mkdtemp(prefix="hcs_net_")) if directory is None else Path(directory)
        self._tmp = directory is None and self._lock is None
        self._runs = 0
        t0 = time.perf_counter()
        self._old_dtype = b2.prefs.core.default_float_dtype
        self._old_target = b2.prefs.codegen.target
        b2.BrianLogger.suppress_hierarchy("brian2.codegen.generators")
        if device == "cpp_standalone":
            from hcs_neuro.brian import limit_compile_jobs

            limit_compile_jobs()
            b2.device.reinit()
            b2.set_device("cpp_standalone", build_on_run=False, directory=str(self.directory))
        else:
            b2.device.reinit()
            b2.set_device("runtime")
            b2.prefs.codegen.target = "numpy"
        try:
            if plan.race.float32:
                b2.prefs.core.default_float_dtype = np.float32
            b2.seed(int(seed))
            self.h = _build(plan, self.chunk, b2, levels)
            if device == "cpp_standalone":
                self.h.net.run(self.chunk * plan.steps_per_image * plan.race.dt_ms * b2.ms)
                b2.device.build(directory=str(self.directory), run=False, compile=True, with_output=False)
                self._device = b2.get_device()
        except Exception:
            self._restore(b2)
            raise
        self.compile_time_s = time.perf_counter() - t0

    def _restore(self, b2):
        b2.prefs.core.default_float_dtype = self._old_dtype
        b2.prefs.codegen.target = self._old_target
        b2.device.reinit()
        b2.set_device("runtime")

    def run(self, levels: np.ndarray, tag: str = "") -> dict:
        """Run one chunk: ``levels`` (n <= chunk, n_inputs) integer input levels."""
        from hcs_neuro.brian import b2

        n = len(levels)
        vals = np.zeros((self.chunk, self.plan.n_inputs))
        vals[:n] = levels
        self._runs += 1
        if self.device_name == "cpp_standalone":
            res = f"results_{tag}{self._runs}"
            self._device.run(directory=str(self.directory), results_directory=res, with_output=False,
                             run_args={self.h.ta: vals})
            out = _collect(self.plan, self.h, n)
            shutil.rmtree(self.directory / res, ignore_errors=True)
        else:  # runtime: the levels were given at construction; one run per build
            if self._runs > 1:
                raise RuntimeError("a runtime NetworkRunner runs once (build one per chunk)")
            self.h.net.run(self.chunk * self.plan.steps_per_image * self.plan.race.dt_ms * b2.ms)
            out = _collect(self.plan, self.h, n)
        return out

    def close(self) -> None:
        from hcs_neuro.brian import b2

        self._restore(b2)
        if self._tmp:
            shutil.rmtree(self.directory, ignore_errors=True)
        elif self.device_name == "cpp_standalone":
            # input levels passed through run_args are written as static arrays; drop them
            for f in (self.directory / "static_arrays").glob("init_hcs_input_levels_values_*.dat*"):
                f.unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        self.h = None


def _project_key(plan: NetworkPlan, chunk: int) -> str:
    """A short hash of everything that shapes the generated code (sizes, windows, chunk, dtype)."""
    import hashlib
    import json

    text = json.dumps({"plan": plan.summary(), "chunk": int(chunk), "float32": plan.race.float32,
                       "n_inputs": plan.n_inputs, "version": 2}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cached_project_dir(key: str):
    """A persistent cpp_standalone project folder that no other process is using, and its lock.

    Brian2 rewrites only generated files whose content changed and ``make`` recompiles only
    those, so reusing a folder makes a second compilation of the same (or a same-sized) network
    take seconds instead of a full build. Folders live under ``$HCS_NEURO_CACHE`` (default
    ``~/.cache/hcs-neuro``)/``standalone/<key>-<slot>`` (``key``: :func:`_project_key`); each is
    locked (``flock``) while in use, so concurrent processes take different slots. Safe to delete.
    """
    import fcntl

    root = Path(os.environ.get("HCS_NEURO_CACHE") or Path.home() / ".cache" / "hcs-neuro") / "standalone"
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


# ---- parallel chunks (forked workers share the compiled project; separate results folders) ----
_WORKER: dict = {}


def _worker_run(args):
    idx, levels = args
    runner = _WORKER["runner"]
    return idx, runner.run(levels, tag=f"w{os.getpid()}_")


def _assemble(plan: NetworkPlan, levels: np.ndarray, parts: list, wall: float, metadata: dict) -> SpikingResult:
    """Dense SpikingResult from the compact per-chunk outputs (in image order)."""
    n = len(levels)
    dt = plan.race.dt_ms
    T = plan.steps_per_image
    layers = []
    pred = np.full(n, -1, np.int64)
    latency = np.full(n, np.nan)
    for L, lp in enumerate(plan.layers):
        shape = (n,) + tuple(lp.out_shape)
        counts = np.zeros((n, lp.n_cells), np.int64)
        first = np.full((n, lp.n_cells), np.nan)
        n_cross = np.zeros(n, np.int64)
        n_dec = np.zeros(n, np.int64)
        n_over = np.zeros(n, np.int64)
        for start, out in parts:
            o = out["layers"][L]
            m = len(o["n_cross"])
            np.add.at(counts, (o["img"] + start, o["cell"]), 1)
            first[o["img"] + start, o["cell"]] = o["cross_step"] * dt
            n_cross[start:start + m] = o["n_cross"]
            n_dec[start:start + m] = o["n_dec"]
            n_over[start:start + m] = o["n_over"]
            if L == len(plan.layers) - 1:
                pred[o["img"] + start] = o["cell"]
                latency[o["dec_img"] + start] = o["dec_step"] * dt
        sops = counts @ plan.fan_out[L]
        circuit = n_cross + (n_dec + n_over) * lp.n_channels
        n_inh = lp.n_hypercolumns
        layers.append(SpikingLayer(
            spike_counts=counts.reshape(shape), winners=(counts > 0).reshape(shape), first_spike_ms=first.reshape(shape),
            interneuron_spikes=n_dec, sops=sops.astype(np.int64), sops_circuit=circuit.astype(np.int64),
            neuron_updates=np.full(n, (lp.n_cells + n_inh) * T, np.int64), n_exc=lp.n_cells, n_inh=n_inh,
            n_synapses=lp.n_synapses))
    in_spikes = (levels > 0).astype(np.int64)
    return SpikingResult(
        pred=pred, decision_latency_ms=latency, input_spike_counts=in_spikes.reshape((n,) + plan.input_shape),
        input_sops=in_spikes @ plan.input_fan_out, layers=layers, dt_ms=dt, window_ms=plan.window_ms,
        wall_time_s=wall, metadata=metadata)


class SimulationSession:
    """A compiled network plus worker processes, reused for many blocks of images.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    circuit : str, Path or RaceParams, optional
    n_jobs : int
        Worker processes (forked after the single compilation; each run writes its own results
        folder inside the project).
    chunk : int
        Images per run of the compiled binary.
    seed : int
    directory : str or Path, optional
        Project directory (default: a cached folder, see :func:`_cached_project_dir`).

    Use as a context manager; :meth:`run` returns one :class:`SpikingResult` per block.
    """

    def __init__(self, model, *, circuit=None, n_jobs: int = 2, chunk: int = 64, seed: int = 0, directory=None):
        t0 = time.perf_counter()
        self.model = model
        self.race = circuit if isinstance(circuit, RaceParams) else load_race_circuit(circuit)
        self.plan = plan_network(model, self.race)
        self.n_jobs = max(1, int(n_jobs))
        self.chunk = max(1, int(chunk))
        self.seed = int(seed)
        self.runner = NetworkRunner(self.plan, self.chunk, device="cpp_standalone", directory=directory, seed=seed)
        self.compile_time_s = time.perf_counter() - t0
        self._pool = None
        if self.n_jobs > 1:
            _WORKER["runner"] = self.runner
            self._pool = mp.get_context("fork").Pool(self.n_jobs)

    def run(self, images, *, progress: bool = True) -> SpikingResult:
        """Simulate one block of images (float in [0, 1], shape (N, *input_shape))."""
        from hcs_neuro.core.reference import quantize_input

        t0 = time.perf_counter()
        levels = np.asarray(quantize_input(self.model, images), dtype=np.int64)
        levels = levels.reshape(len(levels), -1)
        n = len(levels)
        if n == 0:
            raise DataError("simulate: no images given (N = 0)")
        jobs = [(s, levels[s:s + self.chunk]) for s in range(0, n, self.chunk)]
        parts = []
        bar = None
        if progress:
            from hcs_neuro.core.progress import progress as progress_bar

            bar = progress_bar(total=n, desc="simulate", unit="img")
        try:
            if self._pool is not None and len(jobs) > 1:
                it = self._pool.imap_unordered(_worker_run, jobs)
            else:
                it = ((s, self.runner.run(lv)) for s, lv in jobs)
            for s, out in it:
                parts.append((s, out))
                if bar is not None:
                    bar.update(out["n"])
        finally:
            if bar is not None:
                bar.close()
        parts.sort(key=lambda p: p[0])
        run_s = time.perf_counter() - t0
        meta = {"circuit": self.race.name, "circuit_source": self.race.source, "device": "cpp_standalone",
                "n_jobs": self.n_jobs, "chunk": self.chunk, "seed": self.seed,
                "coding": "one spike per non-zero pixel carrying its input level",
                "compile_time_s": self.compile_time_s, "run_time_s": run_s, "float32": self.race.float32,
                "plan": self.plan.summary()}
        return _assemble(self.plan, levels, parts, run_s, meta)

    def iter_blocks(self, images, block: int, *, progress: bool = True):
        """Simulate ``images`` and yield ``(start, SpikingResult)`` per block of whole chunks.

        The workers keep simulating later chunks while the caller processes a block (e.g.
        validates it), so validation overlaps with simulation. Results come in image order.
        """
        from hcs_neuro.core.reference import quantize_input

        levels = np.asarray(quantize_input(self.model, images), dtype=np.int64)
        levels = levels.reshape(len(levels), -1)
        n = len(levels)
        if n == 0:
            raise DataError("simulate: no images given (N = 0)")
        per_block = max(1, int(block) // self.chunk) * self.chunk
        jobs = [(s, levels[s:s + self.chunk]) for s in range(0, n, self.chunk)]
        if self._pool is not None and len(jobs) > 1:
            it = self._pool.imap(_worker_run, jobs)
        else:
            it = ((s, self.runner.run(lv)) for s, lv in jobs)
        bar = None
        if progress:
            from hcs_neuro.core.progress import progress as progress_bar

            bar = progress_bar(total=n, desc="simulate", unit="img")
        parts, b_start, t0 = [], 0, time.perf_counter()
        try:
            for s, out in it:
                parts.append((s - b_start, out))
                if bar is not None:
                    bar.update(out["n"])
                end = s + out["n"]
                if end - b_start >= per_block or end >= n:
                    run_s = time.perf_counter() - t0
                    meta = {"circuit": self.race.name, "circuit_source": self.race.source,
                            "device": "cpp_standalone", "n_jobs": self.n_jobs, "chunk": self.chunk,
                            "seed": self.seed, "coding": "one spike per non-zero pixel carrying its input level",
                            "compile_time_s": self.compile_time_s, "run_time_s": run_s,
                            "float32": self.race.float32, "plan": self.plan.summary()}
                    result = _assemble(self.plan, levels[b_start:end], parts, run_s, meta)
                    yield b_start, result
                    parts, b_start, t0 = [], end, time.perf_counter()
        finally:
            if bar is not None:
                bar.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
        _WORKER.clear()
        self.runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def default_chunk(n: int, n_jobs: int) -> int:
    """Images per binary run: about N / (2 n_jobs), between 8 and 256 (each start of the binary
    creates every synapse and writes every array, so fewer, larger runs are cheaper; two runs per
    process keep the load balanced)."""
    return int(min(n, np.clip(-(-n // (2 * max(n_jobs, 1))), 8, 256)))


def simulate(model, images, *, circuit=None, n_jobs: int = 2, progress: bool = True, seed: int = 0,
             chunk: int | None = None, device: str = "cpp_standalone", directory=None) -> SpikingResult:
    """Simulate ``model`` as a spiking network on ``images``.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    images : ndarray, shape (N, *input_shape)
        Images in [0, 1] (quantized to the model's input levels as in the reference).
    circuit : str, Path or RaceParams, optional
        Whole-network race circuit (default ``circuits/network_race.toml``).
    n_jobs : int
        Processes running chunks in parallel (cpp_standalone; the project is compiled once).
    progress : bool
        Show a progress bar over images.
    seed : int
        Brian2 seed (the race uses no random numbers: results do not depend on it).
    chunk : int, optional
        Images per run of the compiled binary (default :func:`default_chunk`).
    device : {"cpp_standalone", "runtime"}
        ``runtime`` builds the same network per chunk with NumPy code generation (no compiler;
        slow): the naive path.
    directory : str or Path, optional
        cpp_standalone project directory (default: a persistent, locked folder per network shape
        under ``$HCS_NEURO_CACHE`` or ``~/.cache/hcs-neuro/standalone``, so that a second run of the
        same network recompiles nothing).

    Returns
    -------
    SpikingResult
        Arrays indexed like the reference's; ``metadata`` holds the plan summary (windows,
        synapse counts), the device, chunk size, ``compile_time_s`` and ``run_time_s``;
        ``wall_time_s`` includes the compilation.

    Raises
    ------
    DataError
        No images, or images that do not fit the model input.
    ConfigError, ModelError
        A bad circuit file or device, or a model that cannot be converted (full precision).
    """
    from hcs_neuro.core.reference import quantize_input

    t0 = time.perf_counter()
    if device not in ("cpp_standalone", "runtime"):
        raise ConfigError(f"device = {device!r}: allowed 'cpp_standalone' or 'runtime'")
    race = circuit if isinstance(circuit, RaceParams) else load_race_circuit(circuit)
    levels = np.asarray(quantize_input(model, images), dtype=np.int64)
    levels = levels.reshape(len(levels), -1)
    n = len(levels)
    if n == 0:
        raise DataError("simulate: no images given (N = 0)")
    n_jobs = max(1, int(n_jobs))
    chunk = default_chunk(n, n_jobs) if chunk is None else int(min(max(chunk, 1), n))
    if device == "runtime":
        plan = plan_network(model, race)
        return _simulate_runtime(model, plan, race, levels, chunk, progress, seed, t0)
    n_jobs = min(n_jobs, -(-n // chunk))
    with SimulationSession(model, circuit=race, n_jobs=n_jobs, chunk=chunk, seed=seed, directory=directory) as sess:
        result = sess.run(images, progress=progress)
    result.wall_time_s = time.perf_counter() - t0
    return result


def _simulate_runtime(model, plan, race, levels, chunk, progress, seed, t0) -> SpikingResult:
    """The runtime-device path: a network built per chunk (NumPy code generation)."""
    n = len(levels)
    parts = []
    starts = range(0, n, chunk)
    if progress:
        from hcs_neuro.core.progress import progress as progress_bar

        starts = progress_bar(starts, desc="simulate (runtime)", unit="chunk")
    build_s = 0.0
    for s in starts:
        lv = levels[s:s + chunk]
        runner = NetworkRunner(plan, len(lv), device="runtime", seed=seed, levels=lv)
        build_s += runner.compile_time_s
        try:
            parts.append((s, runner.run(lv)))
        finally:
            runner.close()
    wall = time.perf_counter() - t0
    meta = {"circuit": race.name, "circuit_source": race.source, "device": "runtime", "n_jobs": 1, "chunk": chunk,
            "seed": int(seed), "coding": "one spike per non-zero pixel carrying its input level",
            "compile_time_s": build_s, "run_time_s": wall - build_s, "float32": race.float32, "plan": plan.summary()}
    return _assemble(plan, levels, parts, wall, meta)

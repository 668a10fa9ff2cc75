"""The exact mode: a whole model as a phased integer race (``circuits/network_race.toml``).

Exact by construction: the spiking winners of every layer equal the reference's, so this
network is the validation instrument; the biophysical circuits are measured against the same
reference. This module plans the race (NumPy: windows and schedule), builds it in Brian2 and
reads its monitors back into a :class:`hcs_neuro.core.spiking_result.SpikingResult`;
:mod:`hcs_neuro.brian.session` compiles it once and runs it on many images.

What becomes what
-----------------
* Every **conv** layer: one synapse per *non-zero* weight instance (pre input unit, post output
  unit, efficacy = integer weight level x one drive unit). Pruned (zero-level) weights create no
  synapse. The bias level of the output channel is the cell's constant bias current, expressed
  as the integrator's value at the start of each image.
* Every **pooling** layer: unit synapses from the window's inputs (the reference's sum pooling
  of activity levels; :func:`hcs_neuro.core.reference.layer_forward`).
* The **linear readout**: one synapse per non-zero weight, bias as for conv; the class is decided
  by a k = 1 race of the readout cells (first to cross wins), see below.
* Every conv/pool **hypercolumn** (the C cells at one location): one k-WTA interneuron that
  counts its cells' threshold crossings and, at the k-th, inhibits the rest.
* The **input**: one input neuron per pixel that emits one spike carrying the integer input
  level (:func:`hcs_neuro.core.reference.quantize_input`) as a weight multiplier; zero pixels do not
  spike.

The phased integer race (one image)
-----------------------------------
Layer l is simulated in three phases, each a whole number of time steps:

1. *integration* (1 step): every winner of layer l-1 emits exactly one spike; synapses add
   ``level x w`` into the integrator ``acc`` of layer-l cells, which started the image at their
   bias level. After this step ``acc`` holds the exact integer drive of the reference.
2. *race* (``window_steps`` steps): each cell's **score** is ``acc * C + (C - 1 - c)`` (c = its
   channel), an integer that orders cells by drive and, within one drive, gives lower channel
   indices the higher score (the reference's tie rule "lower channel index wins", realised
   exactly). The hypercolumn's interneuron holds a threshold ``theta`` that falls by ``g`` score
   units per step from above the largest reachable score (a bound from the weights, not the
   data). A cell crosses when ``score >= theta`` and (conv/pool) its drive is positive; each
   crossing is a spike to the interneuron (``count += 1``). When ``count`` reaches ``k`` the
   interneuron spikes: its inhibition lands in the same step and the race of that hypercolumn
   ends with exactly the k highest scores crossed. If more cells cross in one step than slots
   remain (``count > k``, possible only while ``g > 1``), the interneuron emits an *overshoot*
   event: the cells that crossed in this step are rewound, ``theta`` steps back and ``g`` is
   divided by the refinement factor ``f`` (local time refinement, as in ``circuits/lif_kwta``).
   With ``g = 1`` at most one score is passed per step, so the race always ends exactly. If
   ``theta`` passes the score of drive 1 with fewer than k crossings, every positive cell has
   crossed and the interneuron decides (the reference's ``drive > 0`` rule).
3. *emission* (the next layer's integration step): every cell that won emits one spike.

The race needs at most ``ceil(range / g0) + L * f + 1`` steps (``g0 = f**L``; each refinement
level takes at most f steps), so :func:`plan_network` chooses L to minimise that bound.
No argmax, sort or top-k is evaluated in the simulated network.

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

from dataclasses import dataclass, field

import numpy as np

from hcs_neuro.brian.device import project_key
from hcs_neuro.brian.hypercolumn import SAME_STEP_ORDER, in_same_step
from hcs_neuro.core.circuit_file import RaceParams
from hcs_neuro.core.errors import ConfigError, ModelError
from hcs_neuro.core.quant import ACTIVITY_LEVEL_CODE, FLOAT_BITS, act_level_max
from hcs_neuro.core.spiking_result import SpikingLayer, SpikingResult
from hcs_neuro.core.topology import drive_bounds, layer_synapses

__all__ = ["LayerPlan", "NetworkPlan", "plan_network", "race_window", "RaceNetwork", "INPUT_CODING"]

#: How the race codes its input (recorded in every result's metadata).
INPUT_CODING = "one spike per non-zero pixel carrying its input level"


@dataclass
class LayerPlan:
    """One layer of the spiking network (all indices follow the reference's C-major flattening).

    Attributes
    ----------
    index, type : int, str
    out_shape : tuple
        ``(C, *spatial)`` as in the architecture.
    n_cells, n_channels, n_hypercolumns : int
        Excitatory cells (C x locations), C, and locations (one interneuron each; the readout
        has one hypercolumn of ``n_classes`` cells).
    k : int
        Winners per hypercolumn (C when the layer has no k-WTA: then every positive cell wins).
    positive_only : bool
        Cells need a positive drive to cross (conv/pool: True; readout: False).
    pre, post : ndarray of int64
        Feed-forward synapses into this layer (pre index in the previous layer's output or the
        input pixels, post index in this layer). Only non-zero weights.
    weight : ndarray of int64
        Integer weight level of each synapse.
    bias : ndarray of int64, shape (n_cells,)
        Bias level of each cell (drive units).
    act_top, act_step : int
        Largest output activity level and drive units per level (binary: 1, 1).
    drive_max, drive_min : int
        Bounds on any cell's drive from the weights (not from data).
    theta0, floor, g0, window_steps, levels : int
        Race: starting threshold (score units), the score at which a positive-only race stops
        (score of drive 1 = C), initial step g0 = f**levels and the race length in steps.
    race_start, emit_step : int
        First race step and the step at which winners emit (within the image's period).
    """

    index: int
    type: str
    out_shape: tuple
    n_cells: int
    n_channels: int
    n_hypercolumns: int
    k: int
    positive_only: bool
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    act_top: int
    act_step: int
    drive_max: int
    drive_min: int
    theta0: int = 0
    floor: int = 0
    g0: int = 1
    levels: int = 0
    window_steps: int = 0
    race_start: int = 0
    emit_step: int = 0

    @property
    def n_synapses(self) -> int:
        return int(self.pre.size)

    @property
    def hypercolumn_of(self) -> np.ndarray:
        """Hypercolumn (location) of every cell: cell ``c * L + s`` belongs to ``s``."""
        return np.tile(np.arange(self.n_hypercolumns), self.n_channels)

    @property
    def tie(self) -> np.ndarray:
        """Within-drive score offset ``C - 1 - c`` of every cell (lower channel, higher score)."""
        return np.repeat(np.arange(self.n_channels - 1, -1, -1), self.n_hypercolumns)


@dataclass
class NetworkPlan:
    """A whole model as a phased spiking network (NumPy arrays only)."""

    layers: list
    n_inputs: int
    input_shape: tuple
    input_top: int
    steps_per_image: int
    race: RaceParams
    input_fan_out: np.ndarray = field(repr=False, default=None)
    fan_out: list = field(repr=False, default_factory=list)

    @property
    def window_ms(self) -> float:
        return self.steps_per_image * self.race.dt_ms

    def summary(self) -> dict:
        """JSON-able description: per-layer cells, synapses, k, bounds and windows."""
        return {
            "circuit": self.race.name,
            "dt_ms": self.race.dt_ms,
            "refine_factor": self.race.refine_factor,
            "steps_per_image": self.steps_per_image,
            "window_ms": self.window_ms,
            "n_inputs": self.n_inputs,
            "layers": [
                {"index": p.index, "type": p.type, "n_cells": p.n_cells, "n_hypercolumns": p.n_hypercolumns,
                 "k": p.k, "n_synapses": p.n_synapses, "drive_max": p.drive_max, "drive_min": p.drive_min,
                 "g0": p.g0, "levels": p.levels, "race_steps": p.window_steps, "race_start_step": p.race_start,
                 "emit_step": p.emit_step}
                for p in self.layers
            ],
        }


def race_window(score_range: int, f: int, max_levels: int | None = None) -> tuple[int, int, int]:
    """Initial step, refinement levels and the worst-case race length for a score range.

    Parameters
    ----------
    score_range : int
        ``theta0 - floor`` in score units (>= 0).
    f : int
        Refinement factor.
    max_levels : int, optional
        Fixed L; default: the L in 0..40 minimising the bound.

    Returns
    -------
    g0, levels, steps : int
        ``g0 = f**L`` and ``steps = ceil(range / g0) + L * f + 2`` (the coarse descent, at most f
        steps per finer level, the decision step and one spare step).
    """
    score_range = max(int(score_range), 1)

    def steps(L):
        return -(-score_range // f ** L) + L * f + 2

    if max_levels is None:
        L = min(range(0, 41), key=lambda L: (steps(L), L))
    else:
        L = int(max_levels)
    return f ** L, L, steps(L)


def plan_network(model, race: RaceParams | None = None) -> NetworkPlan:
    """Turn a model into a :class:`NetworkPlan` (synapses, biases, k, race windows).

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
        Integer model (low-precision weights, integer input and activity levels).
    race : hcs_neuro.core.circuit_file.RaceParams, optional

    Returns
    -------
    NetworkPlan

    Raises
    ------
    ModelError
        Full-precision weights, activities or input (no integer levels to map onto synapses).
    ConfigError
        float32 requested but a score exceeds 2**24 (not exactly representable).
    """
    race = race or RaceParams()
    arch = model.architecture
    if arch.is_full_precision:
        raise ModelError(f"{arch.source}: full-precision (32-bit) weights, activities or input cannot be "
                         f"converted; the spiking network needs integer levels (weight_bits, act_bits, "
                         f"input_bits < 32)")
    in_top = act_level_max(arch.input_bits)
    in_k = arch.input_shape[0]
    layers = []
    for i, (spec, p) in enumerate(zip(arch.layers, model.layers)):
        pre, post, w = layer_synapses(spec, p)
        c = spec.out_shape[0]
        n_hc = int(np.prod(spec.out_shape[1:])) if not spec.is_readout else 1
        n_cells = int(np.prod(spec.out_shape))
        if spec.has_weights:
            bias = np.repeat(np.asarray(p.bias_levels, dtype=np.int64), n_cells // c)
        else:
            bias = np.zeros(n_cells, np.int64)
        d_max, d_min = drive_bounds(spec, p, in_top, in_k)
        if spec.is_readout:
            k, positive_only, act_top, act_step = 1, False, 1, 1
        else:
            k = spec.k if spec.k is not None else c
            positive_only = True
            if spec.act_bits == FLOAT_BITS:
                raise ModelError(f"{arch.source}: layer {i} has full-precision activities")
            act_top, act_step = act_level_max(spec.act_bits), int(p.act_step)
        lp = LayerPlan(i, spec.type, tuple(spec.out_shape), n_cells, c, n_hc, int(k), positive_only, pre, post, w,
                       bias, act_top, act_step, d_max, d_min)
        lp.theta0 = (max(d_max, 0) + 1) * c
        lp.floor = c if positive_only else min(d_min, d_max) * c
        lp.g0, lp.levels, lp.window_steps = race_window(lp.theta0 - lp.floor, race.refine_factor, race.max_levels)
        if race.float32 and max(abs(lp.theta0), abs(lp.floor)) + lp.g0 >= 2 ** 24:
            raise ConfigError(f"{race.source}: race.float32 = true but layer {i} reaches scores of "
                              f"{max(abs(lp.theta0), abs(lp.floor))} >= 2**24 (not exact in float32)")
        layers.append(lp)
        if not spec.is_readout:
            in_top = act_top
            in_k = int(k)
    # timeline: step 0 input spikes (integration of layer 0); race of layer l; emission = next integration
    step = 1
    for lp in layers:
        lp.race_start = step
        lp.emit_step = step + lp.window_steps
        step = lp.emit_step + 1
    n_inputs = int(np.prod(arch.input_shape))
    plan = NetworkPlan(layers=layers, n_inputs=n_inputs, input_shape=tuple(arch.input_shape), input_top=in_top,
                       steps_per_image=step, race=race)
    plan.input_top = act_level_max(arch.input_bits)
    plan.input_fan_out = np.bincount(layers[0].pre, minlength=n_inputs).astype(np.int64)
    plan.fan_out = [np.bincount(layers[i + 1].pre, minlength=lp.n_cells).astype(np.int64)
                    if i + 1 < len(layers) else np.zeros(lp.n_cells, np.int64) for i, lp in enumerate(layers)]
    return plan


@dataclass
class _Handles:
    network: object
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
        level = """ + ACTIVITY_LEVEL_CODE.format(drive="acc", step="act_step", top="act_top") + " : 1",
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




class RaceNetwork:
    """The exact race of one model, as :mod:`hcs_neuro.brian.session` runs it.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    race : hcs_neuro.core.circuit_file.RaceParams
    """

    #: Files of the compiled project holding the run-time input levels (removed after use).
    static_arrays = ("init_hcs_input_levels_values_*.dat*",)

    def __init__(self, model, race: RaceParams):
        self.model, self.race = model, race
        self.plan = plan_network(model, race)
        self.n_inputs = self.plan.n_inputs
        self.dt_ms = race.dt_ms
        self.float32 = race.float32

    def duration_ms(self, chunk: int) -> float:
        """Simulated time of ``chunk`` images."""
        return chunk * self.plan.steps_per_image * self.race.dt_ms

    def cache_key(self, chunk: int) -> str:
        """Key of the compiled project: everything that shapes the generated code."""
        return project_key({"plan": self.plan.summary(), "chunk": int(chunk), "float32": self.race.float32,
                            "n_inputs": self.plan.n_inputs, "version": 2})

    def build(self, b2, chunk: int, levels=None) -> _Handles:
        return _build(self.plan, chunk, b2, levels)

    def input_array(self, handles: _Handles):
        """The TimedArray of input levels (set per run through ``run_args``)."""
        return handles.ta

    def collect(self, handles: _Handles, n: int) -> dict:
        return _collect(self.plan, handles, n)

    def assemble(self, levels: np.ndarray, parts: list, wall: float, metadata: dict) -> SpikingResult:
        return _assemble(self.plan, levels, parts, wall, metadata)

    def metadata(self) -> dict:
        """What every result of this network records about it."""
        return {"circuit": self.race.name, "circuit_source": self.race.source, "mode": "exact",
                "coding": INPUT_CODING, "float32": self.race.float32, "plan": self.plan.summary()}

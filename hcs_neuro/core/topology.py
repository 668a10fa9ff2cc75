"""Convert a trained integer model into a spiking-network plan: synapses, bias levels, hypercolumns,
and the time windows of a phased integer race (NumPy only; :mod:`hcs_neuro.brian.session` builds it
in Brian2).

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hcs_neuro.core.errors import ConfigError, ModelError
from hcs_neuro.core.quant import FLOAT_BITS, act_level_max

__all__ = ["RaceParams", "LayerPlan", "NetworkPlan", "plan_network", "race_window", "layer_synapses",
           "drive_bounds"]


@dataclass(frozen=True)
class RaceParams:
    """Parameters of the phased integer race (``circuits/network_race.toml``).

    Attributes
    ----------
    dt_ms : float
        Simulation time step in ms (time is reported in ms; the race itself is exact at any dt
        because it counts steps).
    refine_factor : int
        Factor f by which the threshold step g shrinks on an overshoot (>= 2).
    max_levels : int or None
        Refinement levels L (g0 = f**L); None chooses the L that minimises the window.
    float32 : bool
        Compile the network with float32 state variables (scores must stay below 2**24).
    name, source : str
        Circuit name and file.
    """

    dt_ms: float = 0.1
    refine_factor: int = 4
    max_levels: int | None = None
    float32: bool = False
    name: str = "network_race"
    source: str = "<defaults>"

    def __post_init__(self):
        if not (isinstance(self.dt_ms, (int, float)) and 0 < self.dt_ms <= 10):
            raise ConfigError(f"{self.source}: race.dt = {self.dt_ms!r} ms: allowed 0 < dt <= 10 ms")
        if isinstance(self.refine_factor, bool) or not isinstance(self.refine_factor, int) or self.refine_factor < 2:
            raise ConfigError(f"{self.source}: race.refine_factor = {self.refine_factor!r}: allowed an integer >= 2")
        if self.max_levels is not None and (isinstance(self.max_levels, bool) or not isinstance(self.max_levels, int)
                                            or not 0 <= self.max_levels <= 40):
            raise ConfigError(f"{self.source}: race.max_levels = {self.max_levels!r}: allowed an integer 0..40 "
                              f"or \"auto\"")


@dataclass
class LayerPlan:
    """One layer of the spiking network (all indices follow the reference's C-major flattening).

    Attributes
    ----------
    index, type : int, str
    out_shape : tuple
        (C, *spatial) as in the architecture.
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


def _conv_pairs(in_shape, out_shape, kernel, stride, padding):
    """For every kernel offset: (offset tuple, pre spatial flat index, post spatial flat index)."""
    nd = len(in_shape) - 1
    in_sp, out_sp = in_shape[1:], out_shape[1:]
    pairs = []
    for off in np.ndindex(*((kernel,) * nd)):
        grids = np.meshgrid(*[np.arange(n) for n in out_sp], indexing="ij")
        ins = [g * stride - padding + d for g, d in zip(grids, off)]
        ok = np.ones(grids[0].shape, dtype=bool)
        for x, n in zip(ins, in_sp):
            ok &= (x >= 0) & (x < n)
        post_s = np.ravel_multi_index([g[ok] for g in grids], out_sp) if ok.any() else np.zeros(0, np.int64)
        pre_s = np.ravel_multi_index([x[ok] for x in ins], in_sp) if ok.any() else np.zeros(0, np.int64)
        pairs.append((off, np.asarray(pre_s, np.int64), np.asarray(post_s, np.int64)))
    return pairs


def layer_synapses(spec, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feed-forward synapses into one layer: ``(pre, post, weight_level)``, non-zero levels only.

    Indices are C-major flat indices of the layer's input and output (as ``ndarray.reshape``).
    """
    if spec.type == "linear":
        w = np.asarray(params.weight_levels, dtype=np.int64)
        post, pre = np.nonzero(w)
        return pre.astype(np.int64), post.astype(np.int64), w[post, pre]
    c_in, s_in = spec.in_shape[0], int(np.prod(spec.in_shape[1:]))
    c_out, s_out = spec.out_shape[0], int(np.prod(spec.out_shape[1:]))
    pres, posts, ws = [], [], []
    for off, pre_s, post_s in _conv_pairs(spec.in_shape, spec.out_shape, spec.kernel, spec.stride, spec.padding):
        if pre_s.size == 0:
            continue
        if spec.type.startswith("conv"):
            wd = np.asarray(params.weight_levels)[(slice(None), slice(None)) + off].astype(np.int64)  # (O, I)
            o, ci = np.nonzero(wd)
            levels = wd[o, ci]
        else:  # pooling: channel c pools channel c, unit weight
            o = ci = np.arange(c_out)
            levels = np.ones(c_out, dtype=np.int64)
        pres.append((ci[:, None] * s_in + pre_s[None, :]).ravel())
        posts.append((o[:, None] * s_out + post_s[None, :]).ravel())
        ws.append(np.repeat(levels, pre_s.size))
    if not pres:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(pres), np.concatenate(posts), np.concatenate(ws)


def _top_k_sum(w: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Sum of the k largest non-negative entries along ``axis``."""
    pos = np.sort(np.clip(w, 0, None), axis=axis)
    pos = np.flip(pos, axis=axis)
    return np.take(pos, np.arange(min(k, w.shape[axis])), axis=axis).sum(axis=axis)


def drive_bounds(spec, params, in_top: int, in_k: int) -> tuple[int, int]:
    """Largest and smallest drive any cell of a layer can reach, from the weights alone.

    Every input location holds at most ``in_k`` non-zero activities (k-WTA of the previous
    layer; all channels for the image), each at most ``in_top``. Per output channel and kernel
    offset the largest contribution is ``in_top`` x the sum of the ``in_k`` largest positive
    weights (symmetrically for the smallest), plus the bias.
    """
    if spec.type.startswith("pool"):
        return int(in_top * spec.kernel ** spec.spatial_dims), 0
    w = np.asarray(params.weight_levels, dtype=np.int64)
    b = np.asarray(params.bias_levels, dtype=np.int64)
    if spec.type == "linear":
        w = w.reshape((w.shape[0],) + tuple(spec.in_shape))  # (O, C, *spatial)
    # channel axis 1; sum over every other axis after the top-k over channels
    hi = _top_k_sum(w, in_k, axis=1)
    lo = -_top_k_sum(-w, in_k, axis=1)
    red = tuple(range(1, hi.ndim))
    d_max = in_top * (hi.sum(axis=red) if red else hi) + b
    d_min = in_top * (lo.sum(axis=red) if red else lo) + b
    return int(d_max.max()), int(d_min.min())


def plan_network(model, race: RaceParams | None = None) -> NetworkPlan:
    """Turn a model into a :class:`NetworkPlan` (synapses, biases, k, race windows).

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
        Integer model (low-precision weights, integer input and activity levels).
    race : RaceParams, optional

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

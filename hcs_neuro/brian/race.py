"""The exact mode: a whole model as a phased integer race (``circuits/network_race.toml``).

Exact by construction: the spiking winners of every layer equal the reference's (the race
compares exact integer scores and can only stop with exactly the k highest, see below), so this
network is the validation instrument; the biophysical circuits are measured against the same
reference. This module plans the race (NumPy: windows and schedule; :func:`ladder_race` is the
NumPy specification of one hypercolumn's race), builds it in Brian2 and reads its monitors back
into a :class:`hcs_neuro.core.spiking_result.SpikingResult`; :mod:`hcs_neuro.brian.session`
compiles it once and runs it on many images.

What becomes what
-----------------
* Every **conv** layer: one synapse per *non-zero* weight instance (pre input unit, post output
  unit, efficacy = integer weight level x one drive unit), created in presynaptic order (each
  spike's synapses contiguous in memory). Pruned (zero-level) weights create no synapse. The
  bias level of the output channel is the cell's constant bias current, expressed as the
  integrator's value at the start of each image.
* Every **pooling** layer: unit synapses from the window's inputs (the reference's sum pooling
  of activity levels; :func:`hcs_neuro.core.reference.layer_forward`).
* The **linear readout**: one synapse per non-zero weight, bias as for conv; the class is decided
  by a k = 1 race of the readout cells (the highest score wins), see below.
* Every conv/pool **hypercolumn** (the C cells at one location): one k-WTA interneuron that
  counts its cells' probes against a ladder of thresholds and tells them who won.
* The **input**: one input neuron per pixel that emits one spike carrying the integer input
  level (:func:`hcs_neuro.core.reference.quantize_input`) as a weight multiplier; zero pixels do
  not spike.

Every layer has its own excitatory group, interneuron group, probe (E->I) and reply (I->E)
synapses, so a gated schedule can run only the layer that can change.

The phased integer race (one image)
-----------------------------------
Step 0: every non-zero pixel emits one spike. Then layer l is simulated in a window of
``window_steps`` time steps; its cells integrated their input in the step before the window (the
previous layer's last step, or step 0):

1. *integration*: every winner of layer l-1 emits exactly one spike; synapses add ``level x w``
   into the integrator ``acc`` of the layer-l cells, which hold their bias level. After this step
   ``acc`` is the exact integer drive of the reference.
2. *race* (the window): each cell's **score** is ``acc * C + (C - 1 - c)`` (c = its channel), an
   integer that orders cells by drive and, within one drive, gives lower channel indices the
   higher score (the reference's tie rule "lower channel index wins", realised exactly). Scores
   are distinct within a hypercolumn. Each hypercolumn's interneuron holds a **ladder** of
   ``M = rungs`` staggered thresholds ``t_j = hi - j g`` (j = 1..M) below a top ``hi`` that
   starts above the largest reachable score (a bound from the weights, not the data). In every
   step each undecided cell whose score lies in the ladder's span ``[hi - M g, hi)`` (and, for
   conv/pool, whose drive is positive) sends one *probe* spike to its interneuron carrying the
   number of rungs it reaches (a graded spike); the interneuron then knows ``n_j``, the number of
   cells with a score ``>= t_j`` (``count``, the cells above ``hi``, plus the probes reaching rung
   j), for all M rungs at once: a multi-way search instead of a one-way falling threshold.
   With ``j*`` the first rung where ``n_j >= k``:

   * ``n_j* == k``: **decide**: the winners are exactly the cells with score ``>= t_j*``
     (the k highest scores); the interneuron replies to this step's probers (win or lose);
   * ``n_j* > k``: **refine**: the k-th score lies in ``[t_j*, t_j*-1)``; the ladder's top moves
     to ``t_j*-1`` (the cells above it are confirmed winners), ``g`` is divided by
     ``refine_factor`` f; probers are told win / lose / stay;
   * no rung reached (``n_M < k``): **descend**: the ladder moves down by ``M g`` (its new
     position is broadcast to the hypercolumn's cells); if it has passed the score of drive 1
     (``floor``) every positive cell has been counted and the interneuron decides (the
     reference's ``drive > 0`` rule).

   With ``g = 1`` every rung passes one score, so ``n_j`` grows by at most one per rung and the
   first rung with ``n_j >= k`` has ``n_j == k``: the race always ends with exactly the top-k
   scores (this is why the mode is exact by construction). ``rungs = 1`` is the earlier one-way
   race (one threshold falling by g per step, refined on an overshoot).
3. *emission* (the window's last step, after every hypercolumn has decided): every winner emits
   one spike into the next layer (that layer's integration step).

Window (worst case, from the weights): ``ceil(R / (M g0)) + L * ceil(f / M)`` steps for a score
range ``R = theta0 - floor`` and ``g0 = f**L`` (the coarse descent, then at most ``ceil(f/M)``
steps per finer level; the deciding step is the last of these). :func:`race_window` chooses L to
minimise it; with ``M = f`` it is ``1 + L`` where L is the smallest level with
``f**(L+1) >= R``. Steps per image: ``1 + sum of the windows``. No argmax, sort or top-k is
evaluated in the simulated network.

Neuron updates (:mod:`hcs_neuro.core.updates`)
----------------------------------------------
``clock`` runs every group at every step (one ``run``); ``gated`` and ``event`` run each image as
the phases of :meth:`NetworkPlan.phases` (the input at step 0, then each layer in its race window)
with only that phase's objects active (:func:`hcs_neuro.brian.device.run_gated`), so idle layers
are really skipped. Updates are counted from the simulation: 'tick' events (one per step in which
a layer's groups ran) x the layer's neurons for clock and gated, the interneurons' per-image event
counters (written by the synapses that carry the events) for event; the result's
``metadata[COUNT_BASIS_KEY]`` says so.

Schedule within one time step of a layer's window (Brian2 slots, by ``order``)::

    thresholds  0 E 'probe': undecided cells whose score lies in the ladder's span
                1 E->I: the interneuron counts the probes reaching each rung (h_1..h_M)
                2 I 'spike': every racing step until decided (a graded spike)
                3 I: decide / refine / descend (the ladder's new top, spacing, cut)
                4 I->E: replies to this step's probers (win / lose / new ladder); a descended
                  ladder is broadcast to every cell of the hypercolumn
                5 E 'spike': winners emit, in the window's last step (6: their activity level)
                7 I 'tick': one per step in which the layer ran (update counting)
    synapses    feed-forward: acc_post += w * level_pre (input and emission spikes)
    end         monitors; in the window's last step the interneurons' 'clean' event resets the
                layer (I->E 'clean' synapses) after recording its counters

so a decision and its replies land in the step of the probes, and the winners of a layer reach
the next layer's integrators in its last step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hcs_neuro.brian.device import project_key, run_gated
from hcs_neuro.core.circuit_file import RaceParams
from hcs_neuro.core.errors import ConfigError, ModelError
from hcs_neuro.core.quant import FLOAT_BITS, act_level_max
from hcs_neuro.core.spiking_result import COUNT_BASIS_KEY, SpikingLayer, SpikingResult
from hcs_neuro.core.topology import drive_bounds, layer_synapses
from hcs_neuro.core.updates import DEFAULT_UPDATES, check_update_policy, count_updates

__all__ = ["LayerPlan", "NetworkPlan", "plan_network", "race_window", "ladder_race", "RaceNetwork",
           "RaceHandles", "INPUT_CODING", "UPDATE_HOW", "RACE_COUNT_BASIS"]

#: How the race codes its input (recorded in every result's metadata).
INPUT_CODING = "one spike per non-zero pixel carrying its input level"

#: What each neuron-update policy counts in the race (``metadata[COUNT_BASIS_KEY]["neuron_updates"]["how"]``).
UPDATE_HOW = {
    "clock": "every excitatory cell and interneuron of a layer at every time step of the image period: the "
             "network ran every group at every step; counted as the layer's 'tick' events (one per step in "
             "which its groups ran, EventMonitor) x its cells and interneurons",
    "gated": "a layer's cells and interneurons at the steps of its race window, the only steps in which the "
             "network ran the layer's groups (one run per phase; the feed-forward input reaches the idle "
             "layer's integrators through synapses in the step before); counted as the layer's 'tick' events "
             "(EventMonitor) x its cells and interneurons",
    "event": "a cell at each step in which it received a synaptic event or emitted one: its integration "
             "step if a feed-forward spike reached it, each race step in which its interneuron replied to its "
             "probe or broadcast the ladder, and its last step (reset; winners emit); an interneuron at each "
             "racing step until it decided and at its reset. Counted by the interneurons' per-image counters "
             "(written by the synapses that carry these events, recorded by EventMonitor), in a gated run",
}

#: How the race obtains every count of its results (``metadata[COUNT_BASIS_KEY]``; neuron updates
#: are added per run with their policy).
RACE_COUNT_BASIS = {
    "input_spikes": {"basis": "counted", "how": "SpikeMonitor of the input neurons (one spike per non-zero "
                                                "quantized input level)"},
    "input_sops": {"basis": "computed", "how": "counted input spikes x existing synapses into layer 0"},
    "spikes": {"basis": "counted", "how": "SpikeMonitor of each layer's emissions (one spike per winner)"},
    "interneuron_spikes": {"basis": "counted", "how": "the interneurons' graded spikes (one per racing step until "
                                                      "decided), by their own counters recorded by EventMonitor"},
    "sops": {"basis": "computed", "how": "counted spikes x existing outgoing feed-forward synapses (non-zero "
                                         "weights) of each cell"},
    "sops_circuit": {"basis": "counted", "how": "probes (E->I) plus replies and broadcasts (I->E), by the "
                                                "interneurons' counters written by those synapses, recorded by "
                                                "EventMonitor"},
}


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
        Cells need a positive drive to win (conv/pool: True; readout: False).
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
        Race: the ladder's starting top (score units, above every reachable score), the score at
        which a positive-only race stops (score of drive 1 = C), the initial rung spacing
        g0 = f**levels and the race window in steps (worst case, :func:`race_window`).
    race_start, emit_step : int
        First step of the race window and its last step, in which the winners emit (within
        the image's period); the layer integrates its input at ``race_start - 1``.
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
    def race_end(self) -> int:
        """First step after the window (``emit_step + 1``)."""
        return self.race_start + self.window_steps

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

    def phases(self) -> list:
        """The image period as runs of steps with the same active layers (the gated schedule).

        Returns a list of ``(n_steps, inputs_active, layers)``: the input neurons at step 0, layer
        l in its race window (``race_start`` to ``emit_step``, where its winners emit). A layer's
        integration step is the previous layer's last step: the feed-forward synapses into it run
        with their presynaptic layer and write into its integrators while its groups are idle.
        """
        runs = []
        for s in range(self.steps_per_image):
            key = (s == 0, tuple(i for i, lp in enumerate(self.layers) if lp.race_start <= s <= lp.emit_step))
            if runs and runs[-1][1:] == key:
                runs[-1] = (runs[-1][0] + 1,) + key
            else:
                runs.append((1,) + key)
        return runs

    def summary(self) -> dict:
        """JSON-able description: per-layer cells, synapses, k, bounds and windows."""
        return {
            "circuit": self.race.name,
            "dt_ms": self.race.dt_ms,
            "refine_factor": self.race.refine_factor,
            "rungs": self.race.rungs,
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


def race_window(score_range: int, f: int, max_levels: int | None = None, rungs: int = 1) -> tuple[int, int, int]:
    """Initial rung spacing, refinement levels and the worst-case race window for a score range.

    Parameters
    ----------
    score_range : int
        ``theta0 - floor`` in score units (>= 0).
    f : int
        Refinement factor.
    max_levels : int, optional
        Fixed L; default: the L in 0..40 minimising the bound.
    rungs : int
        Thresholds M tested per step (1: the one-way falling threshold).

    Returns
    -------
    g0, levels, steps : int
        ``g0 = f**L`` and ``steps = ceil(range / (M g0)) + L * ceil(f / M)``: the coarse descent
        (M g0 score units per step), then at most ``ceil(f / M)`` steps per finer level; the step
        that decides is the last of these, and the winners emit in it.
    """
    score_range = max(int(score_range), 1)
    m = int(rungs)

    def steps(L):
        return -(-score_range // (m * f ** L)) + L * (-(-f // m))

    L = min(range(0, 41), key=lambda L: (steps(L), L)) if max_levels is None else int(max_levels)
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
        float32 requested but a score or a rung exceeds 2**24 (not exactly representable).
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
        lp.g0, lp.levels, lp.window_steps = race_window(lp.theta0 - lp.floor, race.refine_factor, race.max_levels,
                                                        race.rungs)
        # largest magnitude the race computes with: scores, the ladder's top and its lowest rung
        reach = max(abs(lp.theta0), abs(lp.floor)) + (race.rungs + 1) * lp.g0
        if race.float32 and reach >= 2 ** 24:
            raise ConfigError(f"{race.source}: race.float32 = true but layer {i} reaches scores of "
                              f"{reach} >= 2**24 (not exact in float32)")
        layers.append(lp)
        if not spec.is_readout:
            in_top = act_top
            in_k = int(k)
    # timeline: step 0 input spikes (integration of layer 0); the window of layer l, whose last step
    # is its emission and the integration step of layer l + 1
    step = 1
    for lp in layers:
        lp.race_start = step
        lp.emit_step = step + lp.window_steps - 1
        step = lp.emit_step + 1
    n_inputs = int(np.prod(arch.input_shape))
    plan = NetworkPlan(layers=layers, n_inputs=n_inputs, input_shape=tuple(arch.input_shape),
                       input_top=act_level_max(arch.input_bits), steps_per_image=step, race=race)
    plan.input_fan_out = np.bincount(layers[0].pre, minlength=n_inputs).astype(np.int64)
    plan.fan_out = [np.bincount(layers[i + 1].pre, minlength=lp.n_cells).astype(np.int64)
                    if i + 1 < len(layers) else np.zeros(lp.n_cells, np.int64) for i, lp in enumerate(layers)]
    return plan


def ladder_race(scores, eligible, k: int, theta0: int, floor: int, g0: int, f: int, rungs: int) -> tuple:
    """The race of one hypercolumn, step by step in NumPy: the specification the Brian2 network
    implements (the tests hold the simulation's winners and counts against it).

    Parameters
    ----------
    scores : array of int
        Distinct integer scores of the hypercolumn's cells (``drive * C + C - 1 - channel``).
    eligible : array of bool
        Cells that may win (positive drive for conv/pool; all for the readout).
    k, theta0, floor, g0, f, rungs : int
        As in :class:`LayerPlan` and :class:`hcs_neuro.core.circuit_file.RaceParams`.

    Returns
    -------
    winners : ndarray of bool
    probes : list of int
        Probe spikes per step (one entry per step until the decision, the deciding step
        included, so ``len(probes)`` is the number of steps).
    received : list of int
        Cells the interneuron replied to or broadcast to, per step.
    """
    s = np.asarray(scores, dtype=np.int64)
    el = np.asarray(eligible, dtype=bool)
    hi, g = int(theta0), int(g0)
    state = np.zeros(s.size, np.int8)  # 0 in play, 1 won, 2 lost (stale cells stay 0 and silent)
    local_hi = np.full(s.size, hi)
    local_g = np.full(s.size, g)
    probes, received = [], []
    for _ in range(theta0 - floor + 64 * 41 + 2):  # more than the window bound allows
        probe = el & (state == 0) & (s < local_hi) & (s >= local_hi - rungs * local_g)
        probes.append(int(probe.sum()))
        count = int((el & (s >= hi)).sum())
        n = count + np.array([int((probe & (s >= hi - j * g)).sum()) for j in range(1, rungs + 1)])
        below = int((n < k).sum())
        if (below < rungs and n[below] == k) or (below == rungs and hi - rungs * g <= floor):
            received.append(probes[-1])
            return el & (s >= hi - (below + 1) * g), probes, received
        if below < rungs:  # refine: replies to the probers
            lo = hi - (below + 1) * g
            hi, g = hi - below * g, g // f
            rcv = probe
            state[rcv & (s >= hi)] = 1
            state[rcv & (s < lo)] = 2
        else:  # descend: the new ladder is broadcast to every cell
            hi = hi - rungs * g
            rcv = np.ones(s.size, bool)
            state[rcv & el & (s >= hi)] = 1
        received.append(int(rcv.sum()))
        local_hi[rcv], local_g[rcv] = hi, g
    raise RuntimeError("ladder_race did not terminate")  # pragma: no cover - impossible (the window bound)


@dataclass
class RaceHandles:
    """The Brian2 objects of a built race (named handles).

    Attributes
    ----------
    network : brian2.Network
    ta : brian2.TimedArray
        Input levels, one row per image (set per run through ``run_args``).
    inp, mon_in
        Input neurons and their spike monitor.
    exc, inh : list
        Per layer: excitatory group, interneuron group.
    mon_emit, mon_clean, mon_tick : list
        Per layer: emissions, the interneurons' per-image counters ('clean' events), ticks.
    layer_objects : list of list
        Per layer: the objects that run in its window (the synapses into the next layer included).
    input_objects : list
        The objects that run at step 0 (input neurons, their monitor, the synapses into layer 0).
    clock : brian2.Clock
    """

    network: object
    ta: object
    inp: object
    mon_in: object
    exc: list
    inh: list
    mon_emit: list
    mon_clean: list
    mon_tick: list
    layer_objects: list
    input_objects: list
    clock: object = None


#: Order of the code objects inside one time step (Brian2 slot, order). The whole exchange of a
#: race step (probes, the interneuron's resolution, its replies, the emission of winners) happens
#: in the ``thresholds`` slot, so a decision and its replies land in the step of the probes;
#: feed-forward propagation follows in ``synapses``; monitors and the end-of-window reset of a
#: layer run in ``end``.
_SCHEDULE = {
    "probe": ("thresholds", 0),      # E: probe event (undecided, in the ladder's span)
    "e_to_i": ("thresholds", 1),     # probe synapses: the interneuron counts cells per rung
    "inh": ("thresholds", 2),        # I: one graded spike per racing step while undecided
    "inh_code": ("thresholds", 3),   # I: decide / refine / descend
    "i_to_e": ("thresholds", 4),     # replies to the probers, broadcast of a descended ladder
    "emit": ("thresholds", 5),       # E: winners emit (last step of the window); input at step 0
    "emit_code": ("thresholds", 6),  # E: the emitted activity level, once per winner
    "tick": ("thresholds", 7),       # I: one 'tick' per step the layer's groups run (counting)
    "mon_emit": ("end", 0),
    "clean": ("end", 1),             # I: 'clean' at the window's last step
    "clean_syn": ("end", 2),         # reset of the layer's cells for the next image
    "mon_clean": ("end", 3),         # per-hypercolumn counters of the image
    "clean_code": ("end", 4),        # reset of the interneurons
}

#: Counters an interneuron keeps per image (recorded by its 'clean' monitor).
_COUNTERS = ("n_ev", "n_probe", "n_rcv", "nhit", "nlast", "dec_step", "decided")


def _place(obj, slot: str) -> None:
    obj.when, obj.order = _SCHEDULE[slot]


def _rungs(m: int, fmt: str, join: str) -> str:
    return join.join(fmt.format(j=j) for j in range(1, m + 1))


def _resolve_code(M: int) -> str:
    """The interneuron's step: ``n_j = count + h_j`` cells reach rung j (``h_j``: probes this step);
    ``b`` rungs have fewer than k, so rung ``b + 1`` is the first with ``n >= k``."""
    return "\n".join([
        "b = " + _rungs(M, "int(count + h{j} < K)", " + "),
        "ns = " + _rungs(M, "(count + h{j}) * int(b == {j} - 1)", " + "),
        "dec = int((b < M - 0.5 and ns < K + 0.5) or (b > M - 0.5 and hi - M * g <= floor_score))",
        "hb = " + _rungs(M, "h{j} * int(b == {j})", " + "),
        "cut = hi - (b + 1) * g",
        "bcast = int(b > M - 0.5) * (1 - dec)",
        "lo = cut * (1 - bcast) - BIG * bcast",
        "hi = hi - b * g * (1 - dec)",
        "count = count + hb * (1 - dec)",
        "g = g / (1 + (f - 1) * int(b < M - 0.5) * (1 - dec))",
        "decided = dec",
        "dec_step = dec_step + (step - dec_step) * dec",
        "n_ev += 1",
        f"n_probe += h{M}",
        _rungs(M, "h{j} = 0", "\n"),
    ])


def _layer_namespace(plan: NetworkPlan, lp: LayerPlan) -> dict:
    r = plan.race
    return {"n_steps": plan.steps_per_image, "M": r.rungs, "f": float(r.refine_factor), "K": float(lp.k),
            "C": float(lp.n_channels), "theta0": float(lp.theta0), "g0": float(lp.g0), "floor_score": float(lp.floor),
            "race_start": lp.race_start, "emit_step": lp.emit_step, "act_step": float(lp.act_step),
            "act_top": float(lp.act_top), "acc_floor": 0.5 if lp.positive_only else -1e30, "BIG": 1e30}


def _build(plan: NetworkPlan, chunk: int, b2, levels=None) -> RaceHandles:
    """Build the Brian2 objects for ``chunk`` images per run (current device).

    Every layer has its own excitatory group (its cells), interneuron group (one per
    hypercolumn), probe synapses (E->I), reply synapses (I->E) and feed-forward synapses into it,
    so a gated schedule can run only the groups of the layers that can change
    (:meth:`NetworkPlan.phases`). Per-layer constants are compiled in (namespace).
    """
    dt = plan.race.dt_ms * b2.ms
    T = plan.steps_per_image
    M = plan.race.rungs
    net = b2.Network(name="hcs_net")
    vals = np.zeros((chunk, plan.n_inputs))
    if levels is not None:
        vals[:len(levels)] = levels
    # One row per image, on the step grid (dt): row n is read at time n * dt. A row period of
    # T * dt would do too, but its ratio to dt is not an exact integer in floating point for some
    # T, and Brian2 then warns that the time grids are not aligned.
    ta = b2.TimedArray(vals, dt=dt, name="hcs_input_levels")
    clock = b2.Clock(dt=dt, name="hcs_clock")

    inp = b2.NeuronGroup(
        plan.n_inputs,
        """pix : integer (constant)
        step = t_in_timesteps % n_steps : integer
        lev = inp(floor(t_in_timesteps / n_steps) * row_dt, pix) : 1""",
        threshold="step == 0 and lev > 0.5", reset="", namespace={"inp": ta, "n_steps": T, "row_dt": dt},
        clock=clock, name="hcs_in")
    inp.pix = np.arange(plan.n_inputs)
    _place(inp.thresholder["spike"], "emit")
    mon_in = b2.SpikeMonitor(inp, variables=[], when="end", order=0, name="hcs_mon_in")
    net.add(inp, mon_in)

    h = RaceHandles(net, ta, inp, mon_in, [], [], [], [], [], [], [inp, mon_in], clock)
    prev = inp
    racing = "step >= race_start and step <= emit_step"
    for L, lp in enumerate(plan.layers):
        ns = _layer_namespace(plan, lp)
        E = b2.NeuronGroup(
            lp.n_cells,
            """acc : 1
            hi : 1
            g : 1
            win : 1
            done : 1
            probed : 1
            got : 1
            first_step : 1
            upd_step : 1
            lev : 1
            bias_level : 1 (constant)
            tie : 1 (constant)
            score = acc * C + tie : 1
            step = t_in_timesteps % n_steps : integer
            level = clip(ceil(acc / act_step), 0, act_top) : 1""",
            threshold="step == emit_step and win > 0.5", reset="lev = level",
            events={"probe": f"{racing} and done < 0.5 and acc > acc_floor and score < hi and score >= hi - M * g"},
            namespace=ns, clock=clock, name=f"hcs_e{L}")
        E.bias_level = lp.bias.astype(float)
        E.acc = lp.bias.astype(float)
        E.tie = lp.tie.astype(float)
        E.hi = float(lp.theta0)
        E.g = float(lp.g0)
        E.first_step = -1
        E.upd_step = -1
        _place(E.thresholder["probe"], "probe")
        _place(E.thresholder["spike"], "emit")
        _place(E.resetter["spike"], "emit_code")

        rung_vars = "\n".join(f"h{j} : 1" for j in range(1, M + 1))
        I = b2.NeuronGroup(  # noqa: E741 (the interneurons)
            lp.n_hypercolumns,
            f"""hi : 1
            g : 1
            count : 1
            decided : 1
            cut : 1
            lo : 1
            bcast : 1
            n_ev : 1
            n_probe : 1
            n_rcv : 1
            nhit : 1
            nlast : 1
            dec_step : 1
            {rung_vars}
            step = t_in_timesteps % n_steps : integer""",
            threshold=f"{racing} and decided < 0.5", reset=_resolve_code(M),
            events={"clean": "step == emit_step", "tick": "i == 0"},
            namespace=ns, clock=clock, name=f"hcs_i{L}")
        I.hi = float(lp.theta0)
        I.g = float(lp.g0)
        I.dec_step = -1
        _place(I.thresholder["spike"], "inh")
        _place(I.resetter["spike"], "inh_code")
        _place(I.thresholder["tick"], "tick")
        _place(I.thresholder["clean"], "clean")
        I.run_on_event("clean", "\n".join(
            ["hi = theta0", "g = g0", "dec_step = -1"] +
            [f"{v} = 0" for v in ("count", "decided", "cut", "lo", "bcast", "n_ev", "n_probe", "n_rcv", "nhit",
                                  "nlast")] + [f"h{j} = 0" for j in range(1, M + 1)]),
            when=_SCHEDULE["clean_code"][0], order=_SCHEDULE["clean_code"][1])

        hc = lp.hypercolumn_of
        cells = np.arange(lp.n_cells)
        s_ei = b2.Synapses(E, I, on_pre="\n".join(
            [f"h{j}_post += int(score_pre >= hi_pre - {j} * g_pre)" for j in range(1, M)] +
            [f"h{M}_post += 1", "probed_pre = 1",
             "first_step_pre = first_step_pre + (step_pre - first_step_pre) * int(first_step_pre < -0.5)"]),
            on_event="probe", namespace=ns, clock=clock, name=f"hcs_ei{L}")
        s_ei.connect(i=cells, j=hc)
        _place(s_ei.pre, "e_to_i")
        s_ie = b2.Synapses(I, E, on_pre={
            "reply": "\n".join([
                "rcv = int(probed_post > 0.5 or bcast_pre > 0.5)",
                "win_post = int(win_post > 0.5 or (rcv > 0 and done_post < 0.5 and (score_post >= hi_pre or "
                "(decided_pre > 0.5 and score_post >= cut_pre))))",
                "done_post = int(done_post > 0.5 or (rcv > 0 and (score_post >= hi_pre or score_post < lo_pre or "
                "decided_pre > 0.5)))",
                "hi_post = hi_post + (hi_pre - hi_post) * rcv",
                "g_post = g_post + (g_pre - g_post) * rcv",
                "upd_step_post = upd_step_post + (step_post - upd_step_post) * rcv",
                "n_rcv_pre += rcv",
                "nhit_pre += got_post",
                "got_post = 0",
                "probed_post = 0"]),
            "clean": "\n".join([
                "nlast_pre += int(upd_step_post > emit_step - 0.5)",
                "acc_post = bias_level_post", "hi_post = theta0", "g_post = g0",
                "win_post = 0", "done_post = 0", "probed_post = 0", "got_post = 0",
                "first_step_post = -1", "upd_step_post = -1"])},
            on_event={"reply": "spike", "clean": "clean"}, namespace=ns, clock=clock, name=f"hcs_ie{L}")
        s_ie.connect(i=hc, j=cells)
        _place(s_ie.reply, "i_to_e")
        _place(s_ie.clean, "clean_syn")

        ff = b2.Synapses(prev, E, "w : 1 (constant)", on_pre="acc_post += w * lev_pre\ngot_post = 1", clock=clock,
                         namespace=dict(ns, inp=ta, row_dt=dt), name=f"hcs_ff{L}")
        # synapses ordered by presynaptic cell (then target): each spike's synapses are contiguous
        order = np.lexsort((lp.post, lp.pre))
        ff.connect(i=lp.pre[order], j=lp.post[order])
        ff.w = lp.weight[order].astype(float)

        m_emit = b2.SpikeMonitor(E, variables=["first_step"], when=_SCHEDULE["mon_emit"][0],
                                 order=_SCHEDULE["mon_emit"][1], name=f"hcs_mon_e{L}")
        m_clean = b2.EventMonitor(I, "clean", variables=list(_COUNTERS), when=_SCHEDULE["mon_clean"][0],
                                  order=_SCHEDULE["mon_clean"][1], name=f"hcs_mon_c{L}")
        m_tick = b2.EventMonitor(I, "tick", variables=[], when="end", order=0, name=f"hcs_mon_t{L}")
        objs = [E, I, s_ei, s_ie, m_emit, m_clean, m_tick]
        net.add(*objs, ff)
        # the synapses into this layer run with their presynaptic layer (or the input)
        (h.layer_objects[-1] if h.layer_objects else h.input_objects).append(ff)
        h.exc.append(E)
        h.inh.append(I)
        h.mon_emit.append(m_emit)
        h.mon_clean.append(m_clean)
        h.mon_tick.append(m_tick)
        h.layer_objects.append(objs)
        prev = E
    return h


def _collect(plan: NetworkPlan, h: RaceHandles, n: int) -> dict:
    """Read the monitors of one run (``n`` real images) into compact per-image arrays."""
    T = plan.steps_per_image
    dt_s = plan.race.dt_ms * 1e-3

    def steps(mon):
        return np.rint(np.asarray(mon.t_) / dt_s).astype(np.int64)

    it = steps(h.mon_in)
    keep = it // T < n
    out = {"n": n, "input": {"img": (it[keep] // T).astype(np.int32),
                             "pix": np.asarray(h.mon_in.i_)[keep].astype(np.int32)}, "layers": []}
    for L, lp in enumerate(plan.layers):
        me, mc, mt = h.mon_emit[L], h.mon_clean[L], h.mon_tick[L]
        st = steps(me)
        sel = st // T < n
        ct = steps(mc) // T
        selc = ct < n
        tk = steps(mt) // T
        rec = {v: np.asarray(getattr(mc, v))[selc] for v in _COUNTERS}
        img = ct[selc]

        def per_image(x):
            return np.bincount(img, weights=x, minlength=n)[:n].astype(np.int64)

        ro = L == len(plan.layers) - 1
        out["layers"].append({
            "img": (st[sel] // T).astype(np.int32), "cell": np.asarray(me.i_)[sel].astype(np.int32),
            "first_step": np.rint(np.asarray(me.first_step)[sel]).astype(np.int32),
            "n_dec": per_image(rec["decided"]), "n_ev": per_image(rec["n_ev"]), "n_probe": per_image(rec["n_probe"]),
            "n_rcv": per_image(rec["n_rcv"]), "nhit": per_image(rec["nhit"]), "nlast": per_image(rec["nlast"]),
            # interneurons updated in the last step for their reset, unless they decided in it
            "inh_last": per_image((rec["dec_step"] != lp.emit_step).astype(np.int64)),
            "n_clean": np.bincount(img, minlength=n)[:n],
            "ticks": np.bincount(tk[tk < n], minlength=n)[:n],
            "dec_img": img.astype(np.int32) if ro else None,
            "dec_step": np.rint(rec["dec_step"]).astype(np.int32) if ro else None,
        })
    return out


def _assemble(plan: NetworkPlan, levels: np.ndarray, parts: list, wall: float, metadata: dict,
              updates: str) -> SpikingResult:
    """Dense SpikingResult from the compact per-chunk outputs (in image order).

    Every count comes from the simulation: spikes from the spike monitors, circuit events and
    event-policy updates from the interneurons' per-image counters (recorded by their 'clean'
    monitors), clock/gated updates from the layers' 'tick' monitors (one tick per step in which
    the layer's groups ran) x the layer's neurons.
    """
    n = len(levels)
    dt = plan.race.dt_ms
    layers = []
    pred = np.full(n, -1, np.int64)
    latency = np.full(n, np.nan)
    in_counts = np.zeros((n, plan.n_inputs), np.int64)
    for start, out in parts:
        np.add.at(in_counts, (out["input"]["img"] + start, out["input"]["pix"]), 1)
    per_layer = []
    for L, lp in enumerate(plan.layers):
        shape = (n,) + tuple(lp.out_shape)
        counts = np.zeros((n, lp.n_cells), np.int64)
        first = np.full((n, lp.n_cells), np.nan)
        agg = {k: np.zeros(n, np.int64) for k in ("n_dec", "n_ev", "n_probe", "n_rcv", "nhit", "nlast", "inh_last",
                                                  "n_clean", "ticks")}
        for start, out in parts:
            o = out["layers"][L]
            m = len(o["n_ev"])
            np.add.at(counts, (o["img"] + start, o["cell"]), 1)
            first[o["img"] + start, o["cell"]] = o["first_step"] * dt
            for k in agg:
                agg[k][start:start + m] = o[k]
            if L == len(plan.layers) - 1:
                pred[o["img"] + start] = o["cell"]
                latency[o["dec_img"] + start] = o["dec_step"] * dt
        if (agg["n_clean"] != lp.n_hypercolumns).any() or (agg["n_dec"] != lp.n_hypercolumns).any():
            raise RuntimeError(f"layer {L}: a hypercolumn did not decide within its window (a bug: the race "
                               f"window is a worst-case bound)")
        n_inh = lp.n_hypercolumns
        ticked = count_updates("clock", n, n_neurons=lp.n_cells + n_inh,
                               tick_image=np.repeat(np.arange(n), agg["ticks"]))
        # event policy: every cell at its integration step if it received input (nhit), at each
        # race step in which its interneuron replied to it or broadcast (n_rcv), and in the last
        # step (its reset; winners emit) unless already counted then (nlast); every interneuron
        # at each racing step until it decided (n_ev) and at its reset (inh_last)
        event_exc = agg["nhit"] + agg["n_rcv"] + lp.n_cells - agg["nlast"]
        event_inh = agg["n_ev"] + agg["inh_last"]
        upd = event_exc + event_inh if updates == "event" else ticked
        per_layer.append({"active_steps": _mean(agg["ticks"]), "ticked": _mean(ticked),
                          "event": _mean(event_exc + event_inh), "event_exc": _mean(event_exc),
                          "event_inh": _mean(event_inh)})
        layers.append(SpikingLayer(
            spike_counts=counts.reshape(shape), winners=(counts > 0).reshape(shape),
            first_spike_ms=first.reshape(shape), interneuron_spikes=agg["n_ev"], sops=(counts @ plan.fan_out[L]).astype(np.int64),
            sops_circuit=(agg["n_probe"] + agg["n_rcv"]).astype(np.int64),
            neuron_updates=upd.astype(np.int64), n_exc=lp.n_cells, n_inh=n_inh, n_synapses=lp.n_synapses))
    metadata = dict(metadata)
    metadata["updates"] = updates
    metadata[COUNT_BASIS_KEY] = {**{k: dict(v) for k, v in RACE_COUNT_BASIS.items()},
                                 "neuron_updates": {"basis": "counted", "policy": updates, "how": UPDATE_HOW[updates]}}
    # what each layer's neurons would count under the clock/gated rule of this run and under event
    metadata["update_counts_per_layer"] = per_layer
    return SpikingResult(
        pred=pred, decision_latency_ms=latency, input_spike_counts=in_counts.reshape((n,) + plan.input_shape),
        input_sops=in_counts @ plan.input_fan_out, layers=layers, dt_ms=dt, window_ms=plan.window_ms,
        wall_time_s=wall, metadata=metadata)


def _mean(x) -> float:
    return float(np.mean(x)) if len(x) else 0.0


class RaceNetwork:
    """The exact race of one model, as :mod:`hcs_neuro.brian.session` runs it.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    race : hcs_neuro.core.circuit_file.RaceParams
    updates : {"clock", "gated", "event"}
        Neuron-update policy (:mod:`hcs_neuro.core.updates`): ``clock`` runs every group at
        every step (one run); ``gated`` and ``event`` run each image as the phases of
        :meth:`NetworkPlan.phases`, with only the active layers' objects in each
        (:func:`hcs_neuro.brian.device.run_gated`). The spikes are the same under every policy.
    """

    #: Files of the compiled project holding the run-time input levels (removed after use).
    static_arrays = ("init_hcs_input_levels_values_*.dat*",)

    def __init__(self, model, race: RaceParams, updates: str = DEFAULT_UPDATES):
        self.model, self.race = model, race
        self.updates = check_update_policy(updates)
        self.plan = plan_network(model, race)
        self.n_inputs = self.plan.n_inputs
        self.dt_ms = race.dt_ms
        self.float32 = race.float32

    @property
    def gated(self) -> bool:
        """Whether the network runs the gated schedule (``gated`` and ``event`` policies)."""
        return self.updates != "clock"

    def duration_ms(self, chunk: int) -> float:
        """Simulated time of ``chunk`` images."""
        return chunk * self.plan.steps_per_image * self.race.dt_ms

    def cache_key(self, chunk: int) -> str:
        """Key of the compiled project: everything that shapes the generated code. The clocked and
        the gated schedule share a project folder (they differ only in main.cpp)."""
        return project_key({"plan": self.plan.summary(), "chunk": int(chunk), "float32": self.race.float32,
                            "n_inputs": self.plan.n_inputs, "version": 3})

    def build(self, b2, chunk: int, levels=None) -> RaceHandles:
        return _build(self.plan, chunk, b2, levels)

    def schedule(self, b2, chunk: int):
        """The run of ``chunk`` images for :class:`hcs_neuro.brian.device.BuiltNetwork`: None (one
        clocked ``run``) or a function running the gated phases."""
        if not self.gated:
            return None

        def run(h: RaceHandles) -> None:
            phases = []
            for n_steps, inputs, layers in self.plan.phases():
                objs = list(h.input_objects) if inputs else []
                for L in layers:
                    objs += h.layer_objects[L]
                phases.append((n_steps, objs))
            run_gated(h.network, phases, chunk, self.race.dt_ms * b2.ms, clock=h.clock)

        return run

    def input_array(self, handles: RaceHandles):
        """The TimedArray of input levels (set per run through ``run_args``)."""
        return handles.ta

    def collect(self, handles: RaceHandles, n: int) -> dict:
        return _collect(self.plan, handles, n)

    def assemble(self, levels: np.ndarray, parts: list, wall: float, metadata: dict) -> SpikingResult:
        return _assemble(self.plan, levels, parts, wall, metadata, self.updates)

    def metadata(self) -> dict:
        """What every result of this network records about it."""
        return {"circuit": self.race.name, "circuit_source": self.race.source, "mode": "exact",
                "coding": INPUT_CODING, "float32": self.race.float32, "updates": self.updates,
                "plan": self.plan.summary()}

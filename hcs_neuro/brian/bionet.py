"""Biophysical mode: a whole model as a network of LIF / conductance hypercolumns (issue 25).

Built from a network circuit file (``circuits/lif_net.toml``, ``lif_pool_net.toml``,
``cond_net.toml``; :class:`hcs_neuro.core.circuit_file.NetworkCircuit`) and run by
:mod:`hcs_neuro.brian.session` exactly like the exact race (:class:`hcs_neuro.brian.race.RaceNetwork`):
compiled once, rerun on chunks of images, returning the same
:class:`~hcs_neuro.core.spiking_result.SpikingResult`, so :mod:`hcs_neuro.measure.validate`
validates it unchanged. Agreement with the reference is *measured*, not guaranteed.

The design in neuroscience terms (code terms in brackets)
---------------------------------------------------------
Every conv/pool location is a hypercolumn: C excitatory cells (one per channel), a pool of
``n_interneurons`` interneurons, one *sentinel* excitatory cell and one *gate* cell. The readout
is one hypercolumn of ``n_classes`` cells with k = 1 (no sentinel). Cells interact only through
``brian2.Synapses``: no linked variables, no veto flags, no global layer clock, no state taken back.

1. **Feed-forward input charges a persistent plateau.** A presynaptic spike opens an AMPA-like
   current ``s_ff`` (decay ``tau_syn``) whose charge is stored in a non-decaying dendritic plateau
   ``P`` (graded persistent activity, Egorov et al. 2002, Nature 420:173): after the transient,
   ``P`` holds the sum of the weights of the winners that fired, whatever their arrival times.
2. **One weight rule.** ``w = level x G_l``, ``G_l = (V_th - V_rest) / (B_l + Delta_l + 1)``
   (times ``g_L`` for conductance circuits, where drives are currents); ``B_l`` bounds any drive of
   layer l from the weights alone (:func:`hcs_neuro.core.topology.drive_bounds`), ``Delta_l`` is the
   largest scout offset (5.): no cell reaches threshold before its race starts. Biases are
   constant currents ``(bias_level - tie_offset) x G_l``. Input pixels are graded receptors: each
   non-zero pixel delivers one onset charge ``w x level`` (``input_coding = "onset_charge"``).
3. **Input completion opens the race (no layer clock).** An interneuron's first spike means "this
   hypercolumn has decided". A gate cell per hypercolumn counts the first spikes of the upstream
   hypercolumns that have synapses onto it, through fully depressing synapses (one release per
   presentation; Tsodyks & Markram 1997), and fires when all have decided; its spike reaches the
   hypercolumn after ``settle`` (axonal delay) and starts the urgency. Layer 0 is gated by the
   stimulus onset.
4. **The race is a collapsing decision bound (urgency).** The threshold falls as ``V_th - u(t)``
   (Churchland, Kiani & Shadlen 2008); all cells of a hypercolumn see the same bound, so they cross
   in the order of their drives. The bound stops at a floor between drive 0 and drive 1 (cells
   need a positive drive); the readout has no floor.
5. **Speed control by early-warning (scout) events.** The bound falls at three speeds
   ``R0 > R1 > R2`` (one tie step per ``fine_steps_per_tick`` steps). It slows to R1 once k cells of
   the hypercolumn are within ``Delta_1`` of the bound, and to R2 once k cells are within
   ``Delta_2``. With ``Delta_1 >= a (R0 + R1) + 2`` and ``Delta_2 >= a (R1 + R2) + 2`` tie steps
   (a = 1 + brake delay in steps), the k-th crossing happens at the fine speed: exact without
   taking a step back. Speeds: S = (B + 1) / eps tie steps to cover, t = (S a^2 n_f)^(1/3),
   R0 = S / t, R1 = t / (a n_f) (integers >= 1). *Numerical method:* a scout event stands for a
   more excitable twin cell sharing the cell's inputs; it is implemented as extra thresholds of the
   same membrane (a twin would duplicate every feed-forward synapse). Scout events reach the
   hypercolumn's cells through synapses (the brake).
6. **k-WTA inhibition through synapses.** Excitatory spikes excite the interneuron (a counter
   without leak: it fires at the k-th spike, then tonically every ``t_ref_i`` while its count stays
   >= k); its GABA_A conductance with a hyperpolarising reversal holds every loser below rest
   while the bound keeps falling. With zero delays (``lif_net``) the same-step order of
   :data:`hcs_neuro.brian.hypercolumn.SAME_STEP_ORDER` applies (a zero-delay synapse, no rewind).
7. **Ties** (:data:`TIE_RULES`): a fixed excitability gradient over the channel index (channel c
   gets ``-(c + 0.5 + 0.25 / n_f) x tie_span / C`` drive units of bias: lower index = more
   excitable, the reference's rule "lower channel index wins"); ``"random"``: a random excitability
   rank per hypercolumn (seeded by ``network.tie_seed``); ``"none"``: no heterogeneity (tied cells
   cross together and all win).
8. **Sentinel.** A cell with drive just above the floor fires when the bound reaches the floor and
   excites the interneuron by k: the decision of a hypercolumn with fewer than k positive cells.
9. **Readout.** Each winner spikes once (time-to-first-spike code). The class is the first readout
   cell to spike; no argmax.
10. **Protocol** (:data:`PROTOCOL`). One image per ``t_image``; at each onset an explicit reset
    returns every cell and synapse to rest (independent trials from rest). The plateau is
    persistent by design, so it needs this reset.

Float64 is required (a tie step is ~0.3 uV in Fashion-MNIST conv1); the neuron method is the
circuit file's (Euler in the shipped files).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hcs_neuro.brian.device import project_key
from hcs_neuro.brian.hypercolumn import SAME_STEP_ORDER, circuit_namespace, in_same_step
from hcs_neuro.brian.race import plan_network
from hcs_neuro.core.circuit_file import NetworkCircuit
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.spiking_result import COUNT_BASIS_KEY, SpikingLayer, SpikingResult

__all__ = ["BioLayer", "BioPlan", "plan_bio", "BioNetwork", "TIE_RULES", "PROTOCOL", "NUMERICAL_METHODS",
           "INPUT_CODING", "memory_limit_mb"]

#: What each ``network.tie`` value does (recorded in every result).
TIE_RULES = {
    "gradient": "fixed excitability gradient over channel index (bias -(c + 1/2 + 1/(4 n_f)) x tie_span / C drive "
                "units): lower channel index wins exact ties, as in the reference",
    "random": "random excitability rank per hypercolumn (seeded by network.tie_seed): exact ties go to a random "
              "channel",
    "none": "no excitability heterogeneity: exactly tied cells cross together and all win",
}
#: The per-image protocol (recorded in every result).
PROTOCOL = ("one image per network.t_image; at each stimulus onset an explicit reset returns every cell, synapse, "
            "gate and interneuron to rest (independent trials from rest)")
#: Mechanisms that are numerical methods rather than biophysics (recorded in every result).
NUMERICAL_METHODS = (
    "scout (early-warning) events are extra thresholds on the cell's own membrane, standing in for a more "
    "excitable twin cell that shares its inputs",
    "zero-delay synapses are delivered in a fixed same-step order (E threshold, E->I, I threshold, I->E) when a "
    "circuit's delays are 0; no state is taken back",
)
#: Input coding of the biophysical networks.
INPUT_CODING = "onset charge: each non-zero pixel delivers one synaptic charge of level x weight at stimulus onset"


@dataclass
class BioLayer:
    """One layer of the biophysical network: synapses, drive bounds, race speeds and tie offsets.

    Drive units: one integer unit of the reference's drive; ``G`` volts of steady depolarisation
    per unit; ``eps`` = one tie step (``tie_span / C`` units).
    """

    index: int
    type: str
    C: int
    S: int
    k: int
    positive_only: bool
    pre: np.ndarray
    post: np.ndarray
    level: np.ndarray
    bias_level: np.ndarray
    B: int
    drive_min: int
    eps: float
    cap: int
    cap2: int
    delta: float
    delta2: float
    G: float
    slope: float
    u_max: float
    tie_offset: np.ndarray
    n_f: int = 1
    up_pre: np.ndarray = None
    up_post: np.ndarray = None
    n_up: np.ndarray = None
    fan_out: np.ndarray = None

    @property
    def n_real(self) -> int:
        return self.C * self.S

    @property
    def n_sent(self) -> int:
        return self.S if self.positive_only else 0


@dataclass
class BioPlan:
    """A whole model as a biophysical network (NumPy only): layers, input wiring, timing, size."""

    layers: list
    n_inputs: int
    input_shape: tuple
    input_fan_out: np.ndarray
    dt: float
    steps_per_image: int
    settle: float
    circuit: NetworkCircuit
    n_exc: int = 0
    n_synapses: dict = field(default_factory=dict)
    memory_estimate_bytes: int = 0
    summary: dict = field(default_factory=dict)


def plan_bio(model, circuit: NetworkCircuit) -> BioPlan:
    """Per-layer scales, race speeds, tie offsets and gate wiring of the biophysical network.

    Raises
    ------
    ConfigError
        ``fine_steps_per_tick`` shorter than the inhibitory latency (the race could not be exact).
    ModelError
        A model that cannot be converted (full precision).
    """
    base = plan_network(model)
    dt = circuit.dt_ms * 1e-3
    theta = circuit.si("v_threshold") - circuit.si("v_rest")
    n_f = int(circuit.net("fine_steps_per_tick", 1))
    need = 1 + int(round((circuit.si("delay_ei") + circuit.si("delay_ie")) / dt))
    if n_f < need:
        raise ConfigError(f"{circuit.source}: network.fine_steps_per_tick = {n_f} < 1 + inhibitory latency in "
                          f"steps ({need}); the race could not be exact")
    d_b = int(round(circuit.net_time_s("brake_delay", "0 ms") / dt))
    a = d_b + 1
    span = float(circuit.net("tie_span", 1.0))
    tie = circuit.net("tie", "gradient")
    rng = np.random.default_rng(int(circuit.net("tie_seed", 0)))
    scale = float(circuit.net("speed_scale", 1.0))
    layers = []
    for li, lp in enumerate(base.layers):
        C, S, k = lp.n_channels, lp.n_hypercolumns, int(lp.k)
        eps = span / C
        B = int(lp.drive_max)
        s_ticks = (B + 1) / eps
        t_phase = (s_ticks * a * a * n_f) ** (1 / 3)
        cap2 = max(1, int(round(scale * t_phase / (a * n_f))))
        cap = max(cap2, int(round(scale * s_ticks / t_phase)))
        delta = (a * (cap + cap2) + 2) * eps
        delta2 = (a * (cap2 + 1.0 / n_f) + 2) * eps
        G = theta / (B + delta + 1)
        slope = G * eps / (n_f * dt)  # fine speed: one tie step per n_f time steps
        floor = eps / 16 if lp.positive_only else min(lp.drive_min, -1) - 2.0
        u_max = theta - G * floor
        # offsets sit off the grid of bound levels (multiples of eps / n_f), so no cell lies
        # exactly on a level the bound passes
        sub = 0.5 + 0.25 / n_f
        if tie == "gradient":
            off = np.repeat((np.arange(C) + sub) * eps, S)
        elif tie == "random":
            off = ((np.stack([rng.permutation(C) for _ in range(S)], axis=1) + sub) * eps).reshape(-1)
        else:
            off = np.full(C * S, sub * eps)
        bl = BioLayer(lp.index, lp.type, C, S, k, bool(lp.positive_only), lp.pre, lp.post, lp.weight,
                      np.asarray(lp.bias, dtype=float), B, int(lp.drive_min), eps, cap, cap2, delta, delta2, G,
                      slope, u_max, off, n_f=n_f, fan_out=base.fan_out[li])
        # gate wiring: upstream hypercolumns with at least one synapse onto each hypercolumn
        if li == 0:
            bl.up_pre, bl.up_post = np.zeros(S, np.int64), np.arange(S)
        else:
            s_prev = layers[li - 1].S
            pairs = np.unique(np.stack([lp.pre % s_prev, lp.post % S], axis=1), axis=0)
            bl.up_pre, bl.up_post = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
        bl.n_up = np.bincount(bl.up_post, minlength=S).astype(float)
        layers.append(bl)
    t_image = circuit.net_time_s("t_image", "400 ms")
    plan = BioPlan(layers=layers, n_inputs=base.n_inputs, input_shape=tuple(base.input_shape),
                   input_fan_out=base.input_fan_out, dt=dt, steps_per_image=int(round(t_image / dt)),
                   settle=circuit.net_time_s("settle", "20 ms"), circuit=circuit)
    n_pool = circuit.n_interneurons
    plan.n_exc = int(sum(b.n_real + b.n_sent for b in layers))
    plan.n_synapses = {
        "feedforward": int(sum(b.pre.size for b in layers)),
        "brake": int(sum(b.n_real * (b.C + (1 if b.n_sent else 0)) for b in layers)),
        "e_to_i": int(sum((b.n_real + b.n_sent) * n_pool for b in layers)),
        "gate": int(sum(b.up_pre.size * n_pool for b in layers)),
    }
    plan.n_synapses["i_to_e"] = plan.n_synapses["e_to_i"]
    # Brian2 synapses (indices, weights, delays, queues) ~55 bytes each, 30 doubles per cell:
    # calibrated on the prototype (Fashion narrow model: 408 MB resident)
    plan.memory_estimate_bytes = int(sum(plan.n_synapses.values()) * 55 + plan.n_exc * 30 * 8)
    plan.summary = {
        "circuit": circuit.name, "dt_ms": circuit.dt_ms, "t_image_ms": t_image * 1e3, "window_ms": t_image * 1e3, "settle_ms": plan.settle * 1e3,
        "fine_steps_per_tick": n_f, "brake_delay_steps": d_b, "tie": tie, "tie_span": span,
        "n_exc": plan.n_exc, "n_synapses": plan.n_synapses,
        "memory_estimate_MB": round(plan.memory_estimate_bytes / 2 ** 20, 1),
        "layers": [{"index": b.index, "type": b.type, "C": b.C, "S": b.S, "k": b.k, "B": b.B, "eps": b.eps,
                    "speed_R0": b.cap, "speed_R1": b.cap2, "speed_R2": 1.0 / n_f, "delta1": b.delta,
                    "delta2": b.delta2, "G_mV": b.G * 1e3, "n_synapses": int(b.pre.size),
                    "tie_step_mV": b.G * b.eps * 1e3} for b in layers]}
    return plan


def memory_limit_mb() -> float:
    """Largest estimated network per process: ``$HCS_NEURO_MEMORY_LIMIT_MB`` or a third of the
    available memory (two worker processes plus the parent)."""
    env = os.environ.get("HCS_NEURO_MEMORY_LIMIT_MB", "")
    if env:
        try:
            return float(env)
        except ValueError:
            raise ConfigError(f"HCS_NEURO_MEMORY_LIMIT_MB = {env!r}: expected a number of MB") from None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 / 3
    except OSError:
        pass
    return 8192.0 / 3


# ------------------------------------------------------------------------------------------ build
@dataclass
class _Handles:
    network: object
    ta: object
    E: object
    I: object
    Gt: object
    mon_e: object
    mon_scout: object
    mon_i: object
    mon_g: object
    e_real: list
    e_sent: list
    i_off: list
    g_off: list


def _diff_vars(eqs: str) -> list:
    return re.findall(r"^\s*d([A-Za-z_]\w*)\s*/\s*dt\s*=", eqs, flags=re.M)


def _build(plan: BioPlan, chunk: int, b2, levels=None) -> _Handles:
    c = plan.circuit
    ns = circuit_namespace(c)
    dt = plan.dt * b2.second
    T = plan.steps_per_image
    L = plan.layers
    n_pool = c.n_interneurons
    net = b2.Network(name="bio_net")
    clock = b2.Clock(dt=dt, name="bio_clock")
    img_clock = b2.Clock(dt=T * dt, name="bio_img_clock")
    vals = np.zeros((chunk, plan.n_inputs))
    if levels is not None:
        vals[:len(levels)] = levels
    ta = b2.TimedArray(vals, dt=dt, name="bio_input_levels")
    ns.update({"inp": ta, "n_steps": T, "image_period": T * dt, "row_dt": dt})
    e_real, e_sent, i_off, g_off = [], [], [], []
    ne = ni = ng = 0
    for bl in L:
        e_real.append(ne)
        ne += bl.n_real
        e_sent.append(ne)
        ne += bl.n_sent
        i_off.append(ni)
        ni += bl.S * n_pool
        g_off.append(ng)
        ng += bl.S
    unit = "amp" if c.conductance_based else "volt"
    gl = c.si("g_L") if c.conductance_based else 1.0  # volt -> amp
    noise = bool(c.noise_term) and c.has("sigma_v") and c.si("sigma_v") > 0
    eqs = c.neuron_eqs.replace("{noise}", f" + {c.noise_term}" if noise else "")
    eqs += f"""
du/dt = on * urgency_slope * (1 + (cap2 - 1) * int(n2 < k_hc - 0.5) + (cap1 - cap2) * int(n1 < k_hc - 0.5)) : volt
bias : {unit} (constant)
urgency_slope : volt/second (constant)
cap1 : 1 (constant)
cap2 : 1 (constant)
k_hc : 1 (constant)
u_max : volt (constant)
scout_offset1 : volt (constant)
scout_offset2 : volt (constant)
on : 1
n1 : 1
n2 : 1
lev : 1
lev_prev : 1
done : 1
"""
    bound = "v_threshold - clip(u, 0*mV, u_max)"
    E = b2.NeuronGroup(
        ne, eqs, method=c.method, threshold=f"v > {bound} and done < 0.5", reset="v = v_reset\ndone = 1",
        events={"scout": f"int(v > {bound} - scout_offset1) + int(v > {bound} - scout_offset2) > lev + 0.5"},
        namespace=ns, clock=clock, name="bio_exc")
    E.run_on_event("scout", f"lev_prev = lev\nlev = int(v > {bound} - scout_offset1) + "
                            f"int(v > {bound} - scout_offset2)", when="thresholds", order=SAME_STEP_ORDER["exc_reset"])
    in_same_step("exc_threshold", E.thresholder["spike"], E.thresholder["scout"])
    in_same_step("exc_reset", E.resetter["spike"])

    def per_cell(f_real, f_sent):
        out = np.zeros(ne)
        for li, bl in enumerate(L):
            out[e_real[li]:e_real[li] + bl.n_real] = f_real(bl)
            if bl.n_sent:
                out[e_sent[li]:e_sent[li] + bl.n_sent] = f_sent(bl)
        return out

    E.bias_ = per_cell(lambda b: (b.bias_level - b.tie_offset) * b.G * gl, lambda b: 0.125 * b.eps * b.G * gl)
    E.urgency_slope_ = per_cell(lambda b: b.slope, lambda b: b.slope)
    E.cap1_ = per_cell(lambda b: b.cap * b.n_f, lambda b: b.cap * b.n_f)  # in units of the fine speed
    E.cap2_ = per_cell(lambda b: b.cap2 * b.n_f, lambda b: b.cap2 * b.n_f)
    E.k_hc_ = per_cell(lambda b: b.k, lambda b: b.k)
    E.u_max_ = per_cell(lambda b: b.u_max, lambda b: b.u_max)
    E.scout_offset1_ = per_cell(lambda b: b.delta * b.G, lambda b: -1.0)  # the sentinel never scouts
    E.scout_offset2_ = per_cell(lambda b: b.delta2 * b.G, lambda b: -1.0)
    reset_code = ["v = v_rest" if v == "v" else f"{v} = 0 * {v}" for v in _diff_vars(c.neuron_eqs)]
    reset_code += ["u = 0*mV", "on = 0", "n1 = 0", "n2 = 0", "lev = 0", "lev_prev = 0", "done = 0"]
    E.v = ns["v_rest"]
    E.run_regularly("\n".join(reset_code), clock=img_clock, when="start", order=0, name="bio_exc_reset")

    idvars = _diff_vars(c.inter_eqs)
    I = b2.NeuronGroup(ni, c.inter_eqs + "\nk_hc : 1 (constant)\nn_spk : 1\nt_first : second",
                       threshold="count > k_hc - 0.5",
                       reset="n_spk += 1\nt_first = t_first + (t - t_first) * int(n_spk < 1.5)",
                       refractory=ns["t_ref_i"], method="euler", namespace=ns, clock=clock, name="bio_inh")
    I.k_hc_ = np.concatenate([np.full(bl.S * n_pool, bl.k, float) for bl in L])
    I.t_first = -1 * b2.second
    in_same_step("inh_threshold", I.thresholder["spike"])
    in_same_step("inh_reset", I.resetter["spike"])
    ireset = ["count = 0", "n_spk = 0", "t_first = -1*second"] + [f"{v} = 0 * {v}" for v in idvars if v != "count"]
    I.run_regularly("\n".join(ireset), clock=img_clock, when="start", order=0, name="bio_inh_reset")

    Gt = b2.NeuronGroup(ng, "count_g : 1\nn_up : 1 (constant)\nfired : 1\nt_gate : second",
                        threshold="count_g > n_up - 0.5 and fired < 0.5", reset="fired = 1\nt_gate = t",
                        namespace=ns, clock=clock, name="bio_gate")
    Gt.n_up_ = np.concatenate([bl.n_up for bl in L])
    Gt.t_gate = -1 * b2.second
    Gt.run_regularly("count_g = 0\nfired = 0\nt_gate = -1*second", clock=img_clock, when="start", order=0,
                     name="bio_gate_reset")

    onset = b2.NeuronGroup(1, "x : 1", threshold="(t_in_timesteps % n_steps) == 0", reset="", namespace=ns, clock=clock,
                           name="bio_onset")
    pix = b2.NeuronGroup(plan.n_inputs, "level : 1\npix : integer (constant)",
                         threshold="(t_in_timesteps % n_steps) == 0 and level > 0.5", reset="", namespace=ns, clock=clock,
                         name="bio_pix")
    pix.pix = np.arange(plan.n_inputs)
    pix.run_regularly("level = inp(floor(t / image_period + 0.5) * row_dt, pix)", clock=img_clock, when="start",
                      order=0, name="bio_pix_reset")

    d_ff = c.net_time_s("feedforward_delay", "0 ms") * b2.second
    L0 = L[0]
    s_in = b2.Synapses(pix, E, f"w : {unit} (constant)", on_pre="s_ff_post += w * level_pre", delay=d_ff,
                       namespace=ns, clock=clock, name="bio_in")
    s_in.connect(i=L0.pre, j=L0.post + e_real[0])
    s_in.w_ = L0.level * L0.G * gl
    objects = [E, I, Gt, onset, pix, s_in]
    if len(L) > 1:
        s_ff = b2.Synapses(E, E, f"w : {unit} (constant)", on_pre="s_ff_post += w", delay=d_ff, namespace=ns,
                           clock=clock, name="bio_ff")
        s_ff.connect(i=np.concatenate([L[li].pre + e_real[li - 1] for li in range(1, len(L))]),
                     j=np.concatenate([L[li].post + e_real[li] for li in range(1, len(L))]))
        s_ff.w_ = np.concatenate([L[li].level * L[li].G * gl for li in range(1, len(L))])
        objects.append(s_ff)

    # E -> I (real cells weight 1, sentinel weight k), I -> E, scouts -> brake (cells of the hypercolumn)
    ei_pre, ei_post, ei_w, ie_pre, ie_post, br_pre, br_post = [], [], [], [], [], [], []
    for li, bl in enumerate(L):
        hc = np.tile(np.arange(bl.S), bl.C)  # hypercolumn of each real cell (C-major)
        real = np.arange(bl.n_real) + e_real[li]
        members = [real] + ([np.arange(bl.n_sent) + e_sent[li]] if bl.n_sent else [])
        mem_hc = [hc] + ([np.arange(bl.S)] if bl.n_sent else [])
        for p in range(n_pool):
            for cells, h, w in zip(members, mem_hc, [1.0, float(bl.k)]):
                ei_pre.append(cells)
                ei_post.append(i_off[li] + h * n_pool + p)
                ei_w.append(np.full(cells.size, w))
                ie_pre.append(i_off[li] + h * n_pool + p)
                ie_post.append(cells)
        all_cells = np.concatenate(members)
        order = np.argsort(np.concatenate(mem_hc), kind="stable")
        by_hc = all_cells[order].reshape(bl.S, -1)  # (S, members)
        br_pre.append(np.repeat(real, by_hc.shape[1]))
        br_post.append(by_hc[hc].reshape(-1))
    s_ei = b2.Synapses(E, I, "w_ei : 1 (constant)", on_pre=c.on_pre_ei, delay=ns["delay_ei"], namespace=ns,
                       clock=clock, name="bio_ei")
    s_ei.connect(i=np.concatenate(ei_pre), j=np.concatenate(ei_post))
    s_ei.w_ei_ = np.concatenate(ei_w)
    s_ie = b2.Synapses(I, E, on_pre=c.on_pre_ie, delay=ns["delay_ie"], namespace=ns, clock=clock, name="bio_ie")
    s_ie.connect(i=np.concatenate(ie_pre), j=np.concatenate(ie_post))
    s_br = b2.Synapses(E, E, on_pre="n1_post += int(lev_pre > 0.5) * int(lev_prev_pre < 0.5)\n"
                                    "n2_post += int(lev_pre > 1.5) * int(lev_prev_pre < 1.5)",
                       on_event="scout", delay=c.net_time_s("brake_delay", "0 ms") * b2.second, namespace=ns,
                       clock=clock, name="bio_brake")
    s_br.connect(i=np.concatenate(br_pre), j=np.concatenate(br_post))
    in_same_step("e_to_i", s_ei.pre, s_br.pre)
    in_same_step("i_to_e", s_ie.pre)

    # interneuron (first spike) -> downstream gates through fully depressing synapses; gate -> hypercolumn
    ig_pre, ig_post, ge_pre, ge_post = [], [], [], []
    for li, bl in enumerate(L):
        if li > 0:
            for p in range(n_pool):
                ig_pre.append(i_off[li - 1] + bl.up_pre * n_pool + p)
                ig_post.append(g_off[li] + bl.up_post)
        ge_pre.append(g_off[li] + np.tile(np.arange(bl.S), bl.C))
        ge_post.append(np.arange(bl.n_real) + e_real[li])
        if bl.n_sent:
            ge_pre.append(g_off[li] + np.arange(bl.S))
            ge_post.append(np.arange(bl.n_sent) + e_sent[li])
    s_og = b2.Synapses(onset, Gt, on_pre="count_g_post += 1", namespace=ns, clock=clock, name="bio_og")
    s_og.connect(i=np.zeros(L0.S, np.int64), j=g_off[0] + np.arange(L0.S))
    s_ge = b2.Synapses(Gt, E, on_pre="on_post += 1", delay=plan.settle * b2.second, namespace=ns, clock=clock,
                       name="bio_ge")
    s_ge.connect(i=np.concatenate(ge_pre), j=np.concatenate(ge_post))
    objects += [s_ei, s_ie, s_br, s_og, s_ge]
    if ig_pre:
        s_ig = b2.Synapses(I, Gt, "x_res : 1", on_pre=f"count_g_post += x_res / {n_pool}\nx_res = 0",
                           namespace=ns, clock=clock, name="bio_ig")
        s_ig.connect(i=np.concatenate(ig_pre), j=np.concatenate(ig_post))
        s_ig.x_res = 1
        s_ig.run_regularly("x_res = 1", clock=img_clock, when="start", order=0, name="bio_ig_reset")
        objects.append(s_ig)

    mon_e = b2.SpikeMonitor(E, variables=[], name="bio_mon_e")
    mon_scout = b2.EventMonitor(E, "scout", variables=[], name="bio_mon_scout")
    mon_i = b2.StateMonitor(I, ["n_spk", "t_first"], record=True, clock=img_clock, when="start", order=-1,
                            name="bio_mon_i")
    mon_g = b2.StateMonitor(Gt, ["t_gate"], record=True, clock=img_clock, when="start", order=-1, name="bio_mon_g")
    net.add(*objects, mon_e, mon_scout, mon_i, mon_g)
    return _Handles(net, ta, E, I, Gt, mon_e, mon_scout, mon_i, mon_g, e_real, e_sent, i_off, g_off)


# ------------------------------------------------------------------------------------------ read back
def _collect(plan: BioPlan, h: _Handles, n: int) -> dict:
    """Compact per-image arrays of one run (``n`` real images)."""
    dt = plan.dt
    T = plan.steps_per_image
    n_pool = plan.circuit.n_interneurons
    st = np.rint(np.asarray(h.mon_e.t_) / dt).astype(np.int64)
    si = np.asarray(h.mon_e.i_).astype(np.int64)
    sct = np.rint(np.asarray(h.mon_scout.t_) / dt).astype(np.int64)
    sci = np.asarray(h.mon_scout.i_).astype(np.int64)
    n_spk = np.asarray(h.mon_i.n_spk_)  # (n_inh, records): record m + 1 = end of image m
    t_first = np.asarray(h.mon_i.t_first_)
    t_gate = np.asarray(h.mon_g.t_gate_)
    out = {"n": n, "layers": []}
    onset = (np.arange(n) * T * dt)[:, None]
    for li, bl in enumerate(plan.layers):
        lo, hi = h.e_real[li], h.e_real[li] + bl.n_real
        sel = (si >= lo) & (si < hi) & (st // T < n)
        img = st[sel] // T
        sent_sel = (si >= h.e_sent[li]) & (si < h.e_sent[li] + bl.n_sent) & (st // T < n)
        scs = (sci >= lo) & (sci < hi) & (sct // T < n)
        ilo, ihi = h.i_off[li], h.i_off[li] + bl.S * n_pool
        tf = t_first[ilo:ihi, 1:n + 1].T
        tg = t_gate[h.g_off[li]:h.g_off[li] + bl.S, 1:n + 1].T
        out["layers"].append({
            "img": img.astype(np.int32), "cell": (si[sel] - lo).astype(np.int32),
            "step": (st[sel] - img * T).astype(np.int32),
            "n_sent": np.bincount(st[sent_sel] // T, minlength=n)[:n],
            "n_scout": np.bincount(sct[scs] // T, minlength=n)[:n],
            "inh_spikes": n_spk[ilo:ihi, 1:n + 1].T.sum(1).astype(np.int64),
            "dec_ms": np.where(tf >= 0, (tf - onset) * 1e3, np.nan)[:, ::n_pool],  # (n, S)
            "gate_ms": np.where(tg >= 0, (tg - onset) * 1e3, np.nan),
        })
    return out


def _stat(a: np.ndarray, f) -> float | None:
    a = a[np.isfinite(a)]
    return float(f(a)) if a.size else None


def _assemble(plan: BioPlan, levels: np.ndarray, parts: list, wall: float, metadata: dict) -> SpikingResult:
    n = len(levels)
    dt_ms = plan.dt * 1e3
    T = plan.steps_per_image
    n_pool = plan.circuit.n_interneurons
    layers, timing = [], []
    pred = np.full(n, -1, np.int64)
    latency = np.full(n, np.nan)
    ambiguous = 0
    for li, bl in enumerate(plan.layers):
        counts = np.zeros((n, bl.n_real), np.int64)
        first = np.full((n, bl.n_real), np.nan)
        inh, n_scout, n_sent = (np.zeros(n, np.int64) for _ in range(3))
        dec = np.full((n, bl.S), np.nan)
        gate = np.full((n, bl.S), np.nan)
        for start, out in parts:
            o = out["layers"][li]
            m = out["n"]
            np.add.at(counts, (o["img"] + start, o["cell"]), 1)
            first[o["img"] + start, o["cell"]] = o["step"] * dt_ms
            inh[start:start + m] = o["inh_spikes"]
            n_scout[start:start + m] = o["n_scout"]
            n_sent[start:start + m] = o["n_sent"]
            dec[start:start + m] = o["dec_ms"]
            gate[start:start + m] = o["gate_ms"]
        race = dec - gate - plan.settle * 1e3
        timing.append({"layer": li, "decision_ms_median": _stat(dec, np.median), "decision_ms_max": _stat(dec, np.max),
                       "race_ms_median": _stat(race, np.median),
                       "race_ms_p95": _stat(race, lambda a: np.percentile(a, 95)),
                       "undecided_hypercolumn_fraction": float(np.isnan(dec).mean())})
        if li == len(plan.layers) - 1:
            # the class is the first readout cell to spike (read from the spike times; no argmax of drives)
            f = np.where(np.isnan(first), np.inf, first)
            tmin = f.min(axis=1)
            ok = np.isfinite(tmin)
            at_first = f == tmin[:, None]
            ambiguous = int((ok & (at_first.sum(1) > 1)).sum())
            rows, cols = np.nonzero(at_first & ok[:, None])
            first_cell = np.full(n, -1, np.int64)
            first_cell[rows[::-1]] = cols[::-1]  # the cell that spiked first (lowest index if simultaneous)
            pred[ok] = first_cell[ok]
            latency[ok] = tmin[ok]
        members = bl.C + (1 if bl.n_sent else 0)
        circuit_ops = (counts.sum(1) + n_sent) * n_pool + n_scout * members + inh * members
        out_shape = (n,) + tuple(metadata["out_shapes"][li])
        layers.append(SpikingLayer(
            spike_counts=counts.reshape(out_shape), winners=(counts > 0).reshape(out_shape),
            first_spike_ms=first.reshape(out_shape), interneuron_spikes=inh,
            sops=(counts @ bl.fan_out).astype(np.int64), sops_circuit=circuit_ops.astype(np.int64),
            neuron_updates=np.full(n, (bl.n_real + bl.n_sent + bl.S * (n_pool + 1)) * T, np.int64),
            n_exc=bl.n_real, n_inh=bl.S * n_pool, n_synapses=int(bl.pre.size)))
    in_spikes = (levels > 0).astype(np.int64)
    meta = dict(metadata)
    meta["ambiguous_decisions"] = ambiguous
    meta["layer_timing"] = timing
    return SpikingResult(pred=pred, decision_latency_ms=latency,
                         input_spike_counts=in_spikes.reshape((n,) + tuple(plan.input_shape)),
                         input_sops=in_spikes @ plan.input_fan_out, layers=layers, dt_ms=dt_ms, window_ms=T * dt_ms,
                         wall_time_s=wall, metadata=meta)


#: How each count of a biophysical result is obtained (see hcs_neuro.core.spiking_result.count_basis).
_COUNT_BASIS = {
    "input_spikes": {"basis": "computed", "how": "one onset event per non-zero quantized input level"},
    "input_sops": {"basis": "computed", "how": "input events x existing fan-out into layer 0"},
    "spikes": {"basis": "counted", "how": "spike monitor of the excitatory cells (sentinels not included)"},
    "interneuron_spikes": {"basis": "counted", "how": "each interneuron's spike counter, read at the end of "
                                                       "every image"},
    "sops": {"basis": "computed", "how": "counted spikes x existing fan-out (non-zero weights) of each cell"},
    "sops_circuit": {"basis": "computed", "how": "counted E (and sentinel) spikes x interneurons per hypercolumn + "
                                                 "counted scout events and interneuron spikes x cells per hypercolumn"},
    "neuron_updates": {"basis": "computed", "how": "cells (excitatory, sentinel, interneuron, gate) x time steps "
                                                   "per image (every cell at every step)", "policy": "clock"},
}


class BioNetwork:
    """The biophysical network of one model, as :mod:`hcs_neuro.brian.session` runs it.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    circuit : hcs_neuro.core.circuit_file.NetworkCircuit

    Raises
    ------
    ConfigError
        A network whose memory estimate exceeds :func:`memory_limit_mb` (before anything is
        built), or a circuit whose timing cannot give an exact race.
    """

    #: Files of the compiled project holding the run-time input levels (removed after use).
    static_arrays = ("init_bio_input_levels_values_*.dat*",)
    #: Float64 is required: a tie step is a fraction of a microvolt.
    float32 = False

    def __init__(self, model, circuit: NetworkCircuit):
        self.model, self.circuit = model, circuit
        self.plan = plan_bio(model, circuit)
        limit = memory_limit_mb()
        est = self.plan.memory_estimate_bytes / 2 ** 20
        if est > limit:
            raise ConfigError(f"network too large: estimated {est:.0f} MB ({self.plan.n_exc} excitatory cells, "
                              f"{sum(self.plan.n_synapses.values())} synapses) > {limit:.0f} MB allowed per process "
                              f"(HCS_NEURO_MEMORY_LIMIT_MB)")
        self.n_inputs = self.plan.n_inputs
        self.dt_ms = circuit.dt_ms
        self._out_shapes = [list(s.out_shape) for s in model.architecture.layers]

    #: Simulated seconds per run of the compiled binary at most. The image clock (dt = T steps) and
    #: the step clock must tick together at every stimulus onset; cpp_standalone calls two clocks
    #: simultaneous when their times differ by at most 1e-14 s (absolute), and k x (T dt) and
    #: (k T) x dt drift apart by rounding as t grows: at 77 s (chunk 200 of 400 ms images) the
    #: onset's input charge was applied before the reset, which then erased it (2 of 200 images
    #: silent). Over dt = 0.01-0.1 ms and T up to 40,000 steps the earliest such mismatch is at
    #: 64 s; 16 s leaves a factor 4.
    MAX_RUN_S = 16.0

    @property
    def max_chunk(self) -> int:
        """Images per run at most (:data:`MAX_RUN_S`); sessions lower a larger chunk to it."""
        return max(1, int(self.MAX_RUN_S // (self.plan.steps_per_image * self.plan.dt)))

    def readout_steps(self) -> int:
        """Steps simulated after the last image so that the image clock (dt = T steps) surely ticks
        at its end, where the interneurons' counters are read. One step is not enough: Brian2 rounds
        a run's end to the image clock's grid when it lies within ``Clock.epsilon_dt`` (1e-4) of a
        tick, so for T >= 10,000 steps (``cond_net``: 20,000) the last tick happened or not
        depending on the order of a set of clocks (Python's hash seed). Steps after the last image
        are never read."""
        return 2 + int(np.ceil(2e-4 * self.plan.steps_per_image))

    def duration_ms(self, chunk: int) -> float:
        """Simulated time of ``chunk`` images, plus :meth:`readout_steps` in which the last image is read out."""
        return (chunk * self.plan.steps_per_image + self.readout_steps()) * self.dt_ms

    def cache_key(self, chunk: int) -> str:
        return project_key({"plan": self.plan.summary, "circuit": self.circuit.to_dict(), "chunk": int(chunk),
                            "n_inputs": self.n_inputs, "kind": "biophysical", "version": 2})

    #: Neuron-update policy: every cell at every step (the biophysical circuits have no gated schedule).
    updates = "clock"

    def build(self, b2, chunk: int, levels=None) -> _Handles:
        return _build(self.plan, chunk, b2, levels)

    def schedule(self, b2, chunk: int):
        """One clocked ``run`` per chunk (:class:`hcs_neuro.brian.device.BuiltNetwork`)."""
        return None

    def input_array(self, handles: _Handles):
        return handles.ta

    def collect(self, handles: _Handles, n: int) -> dict:
        return _collect(self.plan, handles, n)

    def assemble(self, levels: np.ndarray, parts: list, wall: float, metadata: dict) -> SpikingResult:
        return _assemble(self.plan, levels, parts, wall, {**metadata, "out_shapes": self._out_shapes})

    def metadata(self) -> dict:
        """What every result of this network records: mode, circuit, tie rule, protocol, numerical methods."""
        tie = self.circuit.net("tie", "gradient")
        return {"circuit": self.circuit.name, "circuit_source": self.circuit.source, "mode": "biophysical",
                "coding": INPUT_CODING, "float32": False, "tie_rule": {"name": tie, "what": TIE_RULES[tie]},
                "protocol": PROTOCOL, "numerical_methods": list(NUMERICAL_METHODS),
                "membrane_noise_mV": (self.circuit.si("sigma_v") * 1e3 if self.circuit.has("sigma_v") else 0.0),
                COUNT_BASIS_KEY: _COUNT_BASIS, "plan": self.plan.summary}

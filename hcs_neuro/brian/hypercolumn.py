"""Brian2 builder: H hypercolumns x N channels with k-WTA through shared inhibitory interneurons.

One explicit :class:`brian2.Network` holds one excitatory ``NeuronGroup`` for all H*N cells,
one interneuron group for all hypercolumns, and synapses made from index arrays. The k winners
emerge from spikes: an excitatory cell that crosses threshold spikes; the interneuron(s) of its
hypercolumn count those spikes and fire at the k-th; their inhibition silences the rest. No
argmax, sort or top-k is evaluated anywhere in the simulated network.

Notes
-----
Schedule within one time step (all inside Brian2's ``thresholds`` slot, by ``order``)::

    start        E, I: remember the state at the start of the step (X_prev = X)
    groups       integrate E (v, u, I_syn, ...) and I (local clock tl)
    thresholds 0 E threshold  -> excitatory spikes
               1 E reset      -> v = v_reset, done = 1 (each cell fires at most once)
               2 E->I         -> count += w_ei (every excitatory spike of this step is counted)
               3 I threshold  -> 'spike' if count reached k, 'overshoot' if it jumped past k
               4 I reset      -> on 'overshoot': count, clock rewound; time scale s /= factor
               5 I->E         -> on 'spike': inhibition (lands before the next step);
                                 on 'overshoot': rewind the hypercolumn's cells to X_prev

So inhibition lands in the same step as the k-th spike (no one-step lag), and when more cells
cross in one step than slots remain, the hypercolumn re-integrates that step at a finer local
time scale ``s`` (``refinement.factor`` times slower), up to ``refinement.max_levels`` times:
local adaptive time stepping, i.e. sub-step spike timing carried out by the neuron model. Because
the integration map of a cell is monotone in its drive and all cells of a hypercolumn share
their state history, the set of cells that have crossed is always an upper set of the drives,
and the race ends with exactly the top-k unless two drives differ by less than what the final
level resolves (``hcs_neuro.brian.theory``). With ``max_levels = 0`` the circuit is a plain race.

Drive enters as the dimensionless state variable ``drive`` of the excitatory cells (steady
depolarisation ``drive_gain * drive``); synaptic input from another layer is added with
``on_pre="I_syn_post += w"`` (``I_syn`` in volt for ``lif_*`` circuits, in amp for
``cond_kwta``). ``bias`` adds a per-cell offset, e.g. the tie-break "lower channel index wins"
(``tie_break=True``). Run-time settable state variables (also through cpp_standalone
``run_args``): ``exc.drive``, ``exc.bias``, ``inh.k_hc``, ``inh.max_level``, ``inh.refine``.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Any

import numpy as np

from hcs_neuro.brian import b2
from hcs_neuro.core.circuit_file import CircuitSpec, check_k
from hcs_neuro.core.errors import ConfigError, HCSError

__all__ = [
    "circuit_namespace",
    "HypercolumnCircuit",
    "KWTAHandles",
    "make_exc_group",
    "attach_kwta",
    "build_hypercolumns",
    "noise_enabled",
    "reset_for_stimulus",
    "TIE_BIAS_MV",
    "SAME_STEP_ORDER",
    "in_same_step",
]

#: Per-channel bias step (mV) of the "lower channel index wins" tie-break: far below the drive
#: differences that matter (1e-3 of a level of 20 mV / 2**8), far above what the deepest
#: refinement level resolves (~1e-7 mV with the lif_kwta defaults; see hcs_neuro.brian.theory).
TIE_BIAS_MV = 1e-5


#: The same-step k-WTA schedule: everything runs in Brian2's ``thresholds`` slot, in this order, so
#: the interneuron fires in the step of the k-th excitatory spike and its inhibition (or its
#: overshoot rewind) reaches the hypercolumn before the next step's threshold test.
SAME_STEP_ORDER = {
    "exc_threshold": 0,  # excitatory thresholders
    "exc_reset": 1,  # excitatory resets / on-event code
    "e_to_i": 2,  # E->I synapses: interneurons count the crossings
    "inh_threshold": 3,  # interneuron spike / overshoot thresholders
    "inh_reset": 4,  # interneuron resets / overshoot code
    "i_to_e": 5,  # I->E synapses: inhibition and rewind land in the same step
}


def circuit_namespace(spec: CircuitSpec) -> dict:
    """The Brian2 namespace of a circuit: every parameter as a Brian2 Quantity (SI value times its
    base units m, kg, s, A)."""
    base = (b2.metre, b2.kilogram, b2.second, b2.amp)
    ns = {}
    for p in spec.params:
        q = p.si
        for b, e in zip(base, p.dim):
            if e:
                q = q * b**e
        ns[p.name] = q
    return ns


def in_same_step(slot: str, *code_objects) -> None:
    """Place Brian2 thresholders, resetters or synaptic pathways at ``slot`` of :data:`SAME_STEP_ORDER`."""
    for obj in code_objects:
        obj.when = "thresholds"
        obj.order = SAME_STEP_ORDER[slot]


def noise_enabled(spec: CircuitSpec) -> bool:
    """True if the membrane-noise term is on (a ``sigma*`` parameter is > 0)."""
    return bool(spec.noise_term) and any(p.name.startswith("sigma") and p.value > 0 for p in spec.params)


def _diff_vars(eqs: str) -> list[str]:
    return re.findall(r"^\s*d([A-Za-z_]\w*)\s*/\s*dt\s*=", eqs, flags=re.M)


def make_exc_group(spec: CircuitSpec, n: int, *, name: str = "exc", clock=None, noise: bool | None = None):
    """Excitatory cells with the circuit's model, ready for :func:`attach_kwta`.

    Parameters
    ----------
    spec : CircuitSpec
    n : int
        Number of cells (all hypercolumns of a layer).
    name : str
        Brian2 name of the group (unique within a network).
    clock : brian2.Clock, optional
    noise : bool, optional
        Membrane noise on/off; default: on if a ``sigma*`` parameter is > 0.

    Returns
    -------
    brian2.NeuronGroup
        With ``drive = 0``, ``bias = 0``, ``v = v_rest``, ``s = 1``. Add inputs through
        ``drive`` (1) or ``I_syn`` (``on_pre="I_syn_post += w"``).
    """

    noise = noise_enabled(spec) if noise is None else noise
    eqs_text = spec.neuron_equations(noise=noise)
    eqs = b2.Equations(eqs_text)
    dvars = [v for v in _diff_vars(eqs_text)]
    extra = []
    for var in dvars:
        extra.append(f"{var}_prev : {_unit_name(eqs[var].dim)}")
    extra += ["s_prev : 1", "just : 1", "t_win : second"]
    if spec.coding == "latency":
        # first-spike-latency input: one input event at local time (1 - drive) * latency_max;
        # local time `tl` and the `got_in` flag are rewound with the rest of the state
        extra += ["dtl/dt = s : second", "tl_prev : second", "got_in : 1", "got_in_prev : 1"]
        dvars = dvars + ["tl", "got_in"]
    eqs = eqs + b2.Equations("\n".join(extra))
    ns = circuit_namespace(spec)
    kwargs: dict[str, Any] = dict(name=name, namespace=ns, method=spec.method(noise))
    if clock is not None:
        kwargs["clock"] = clock
    try:
        G = b2.NeuronGroup(
            n,
            eqs,
            threshold=f"({spec.threshold_expr}) and done < 0.5",
            reset="v = v_reset\ndone = 1\njust = 1\nt_win = t",
            **kwargs,
        )
    except Exception as exc:  # Brian2 raises many types for bad equations
        raise ConfigError(f"{spec.source}: the neuron model does not build in Brian2: {exc}") from None
    G.v = ns["v_rest"] if "v_rest" in ns else ns["v_reset"]
    G.s = 1
    G.t_win = -1 * b2.second
    if spec.coding == "poisson":
        # Poisson input: a Poisson-distributed number of input spikes (rate drive * rate_max) per
        # step of local time
        G.run_regularly(
            "I_syn += w_in * poisson(drive * rate_max * s * dt)", when="before_groups", name=f"{name}_poisson"
        )
    elif spec.coding == "latency":
        G.run_regularly(
            "arrive = int(got_in < 0.5 and tl >= (1 - drive) * latency_max)\n"
            "I_syn += w_in * arrive\ngot_in = got_in + arrive",
            when="before_groups", name=f"{name}_latency",
        )
    save = "\n".join([f"{v}_prev = {v}" for v in dvars] + ["s_prev = s", "just = 0"])
    G.run_regularly(save, when="start", name=f"{name}_save")
    in_same_step("exc_reset", G.resetter["spike"])
    in_same_step("exc_threshold", G.thresholder["spike"])
    G.add_attribute("hcs_diff_vars")
    G.hcs_diff_vars = tuple(dvars)  # remembered for attach_kwta's rewind code
    return G


def _unit_name(dim) -> str:
    from brian2.units.fundamentalunits import DIMENSIONLESS

    return "1" if dim is DIMENSIONLESS else repr(b2.get_unit(dim))


@dataclasses.dataclass
class KWTAHandles:
    """What :func:`attach_kwta` adds: the interneurons and the two synapse groups."""

    inh: Any
    syn_ei: Any
    syn_ie: Any
    n_hypercolumns: int
    n_pool: int
    hypercolumn_of: np.ndarray

    def decision_time_ms(self) -> np.ndarray:
        """Grid time of each hypercolumn's first interneuron spike (ms; NaN if none)."""
        t = np.asarray(self.inh.t_decision_[:: self.n_pool]) * 1e3
        return np.where(t >= 0, t, np.nan)

    def decision_local_time_ms(self) -> np.ndarray:
        """The same on the hypercolumn's local (refined) clock (ms; NaN if none)."""
        t = np.asarray(self.inh.tl_decision_[:: self.n_pool]) * 1e3
        return np.where(t >= 0, t, np.nan)

    def levels(self) -> np.ndarray:
        """Refinement levels used by each hypercolumn."""
        return np.asarray(self.inh.level_[:: self.n_pool]).astype(int)


def attach_kwta(network, exc_group, hypercolumn_of, n_hypercolumns: int, k: int, spec: CircuitSpec, *,
                name: str = "kwta", clock=None) -> KWTAHandles:
    """Wire k-WTA interneurons onto an existing excitatory group partitioned into hypercolumns.

    Parameters
    ----------
    network : brian2.Network
        The objects created here are added to it.
    exc_group : brian2.NeuronGroup
        Made by :func:`make_exc_group` (it needs the variables listed there).
    hypercolumn_of : array of int, shape (len(exc_group),)
        Hypercolumn index of every excitatory cell, in ``0 .. n_hypercolumns-1``.
    n_hypercolumns : int
    k : int
        Winners per hypercolumn (0 < k < cells of the smallest hypercolumn).
    spec : CircuitSpec
    name : str
        Prefix of the Brian2 names (unique per network).

    Returns
    -------
    KWTAHandles
        ``inh`` has ``spec.n_interneurons`` cells per hypercolumn (hypercolumn h owns
        ``h*n_pool .. h*n_pool+n_pool-1``); state variables ``k_hc``, ``max_level``, ``refine``
        are settable per hypercolumn at run time.
    """

    # The rewind code below is idempotent, but Brian2 cannot know that: it warns that the outcome
    # "may depend on the order of execution" and (numpy target) loops over the few events.
    b2.BrianLogger.suppress_hierarchy("brian2.codegen.generators.base")
    b2.BrianLogger.suppress_hierarchy("brian2.codegen.generators.numpy_generator")
    hc = np.asarray(hypercolumn_of, dtype=np.int64)
    if hc.shape != (len(exc_group),):
        raise ConfigError(f"hypercolumn_of must have one entry per excitatory cell ({len(exc_group)}), got shape {hc.shape}")
    if hc.size and (hc.min() < 0 or hc.max() >= n_hypercolumns):
        raise ConfigError(f"hypercolumn_of values must lie in 0..{n_hypercolumns - 1}")
    sizes = np.bincount(hc, minlength=n_hypercolumns)
    check_k(int(k), int(sizes.min()) if sizes.size else 0)
    n_pool = spec.n_interneurons
    ns = circuit_namespace(spec)
    extra = """
    count_prev : 1
    level : 1
    decided : 1
    t_decision : second
    tl_decision : second
    k_hc : 1
    max_level : 1
    refine : 1
    s : 1
    s_prev : 1
    dtl/dt = s : second
    tl_prev : second
    """
    eqs = b2.Equations(spec.inter_eqs) + b2.Equations(extra)
    kwargs: dict[str, Any] = dict(name=f"{name}_inh", namespace=ns, method=spec.inter_method)
    if clock is not None:
        kwargs["clock"] = clock
    refractory = ns["t_ref_i"] if "t_ref_i" in ns else False
    try:
        inh = b2.NeuronGroup(
            n_hypercolumns * n_pool,
            eqs,
            threshold="count > k_hc - 0.5 and (count < k_hc + 0.5 or level >= max_level)",
            reset="t_decision = t_decision * decided + t * (1 - decided)\n"
            "tl_decision = tl_decision * decided + tl * (1 - decided)\ndecided = 1",
            events={"overshoot": "count > k_hc + 0.5 and level < max_level and decided < 0.5"},
            refractory=refractory,
            **kwargs,
        )
    except Exception as exc:
        raise ConfigError(f"{spec.source}: the interneuron model does not build in Brian2: {exc}") from None
    inh.run_on_event("overshoot", "count = count_prev\ns = s_prev / refine\ntl = tl_prev\nlevel += 1",
                     when="thresholds", order=SAME_STEP_ORDER["inh_reset"])
    inh.run_regularly("count_prev = count\ns_prev = s\ntl_prev = tl", when="start", name=f"{name}_inh_save")
    inh.k_hc = k
    inh.max_level = spec.max_levels
    inh.refine = spec.refine_factor
    inh.s = 1
    inh.t_decision = -1 * b2.second
    inh.tl_decision = -1 * b2.second
    in_same_step("inh_threshold", inh.thresholder["spike"], inh.thresholder["overshoot"])
    in_same_step("inh_reset", inh.resetter["spike"])

    # index arrays: excitatory cell e of hypercolumn h <-> interneurons h*n_pool + p
    exc_idx = np.repeat(np.arange(len(exc_group)), n_pool)
    inh_idx = (np.repeat(hc, n_pool) * n_pool + np.tile(np.arange(n_pool), len(exc_group)))
    syn_kw = {} if clock is None else {"clock": clock}
    delay_ei = ns.get("delay_ei")
    delay_ie = ns.get("delay_ie")
    syn_ei = b2.Synapses(exc_group, inh, on_pre=spec.on_pre_ei, namespace=ns, name=f"{name}_ei",
                         delay=delay_ei, **syn_kw)
    syn_ei.connect(i=exc_idx, j=inh_idx)
    dvars = getattr(exc_group, "hcs_diff_vars", ("v",))
    rewind = ["r = 1 - done_post + just_post"]
    for v in dvars:
        rewind.append(f"{v}_post = {v}_prev_post * r + {v}_post * (1 - r)" if v == "v" else f"{v}_post = {v}_prev_post")
    rewind += ["s_post = s_prev_post / refine_pre", "done_post = done_post - just_post",
               "t_win_post = t_win_post * (1 - just_post) - second * just_post", "just_post = 0"]
    syn_ie = b2.Synapses(
        inh, exc_group, model="", namespace=ns, name=f"{name}_ie",
        on_pre={"pre": spec.on_pre_ie, "rewind": "\n".join(rewind)},
        on_event={"pre": "spike", "rewind": "overshoot"}, delay={"pre": delay_ie} if delay_ie is not None else None,
        **syn_kw,
    )
    syn_ie.connect(i=inh_idx, j=exc_idx)
    in_same_step("e_to_i", syn_ei.pre)
    in_same_step("i_to_e", syn_ie.pre, syn_ie.rewind)
    network.add(inh, syn_ei, syn_ie)
    return KWTAHandles(inh=inh, syn_ei=syn_ei, syn_ie=syn_ie, n_hypercolumns=n_hypercolumns, n_pool=n_pool,
                       hypercolumn_of=hc)


def reset_for_stimulus(exc_group, handles: KWTAHandles, spec: CircuitSpec) -> None:
    """Reset excitatory cells and interneurons to their pre-stimulus state (runtime device).

    Use between stimuli presented one after the other in one network: membrane at rest, every
    other integrated variable (urgency ``u``, synaptic and inhibitory conductances) at 0, local
    time scale 1, no winner, interneuron counts 0. Drives and biases are kept. Latencies
    (``t_win``, ``t_decision``) are absolute network times: subtract the stimulus onset.
    (With cpp_standalone, every ``device.run`` starts from the initial state anyway.)
    """

    ns = circuit_namespace(spec)
    for var in getattr(exc_group, "hcs_diff_vars", ("v",)):
        if var == "v":
            exc_group.v = ns["v_rest"]
        elif var == "tl":
            exc_group.tl = 0 * b2.second
        else:
            setattr(exc_group, f"{var}_", 0.0)
    exc_group.s = 1
    exc_group.done = 0
    exc_group.just = 0
    exc_group.t_win = -1 * b2.second
    inh = handles.inh
    inh.count_ = 0.0
    inh.count_prev_ = 0.0
    inh.level_ = 0.0
    inh.decided_ = 0.0
    inh.s_ = 1.0
    inh.tl_ = 0.0
    inh.t_decision = -1 * b2.second
    inh.tl_decision = -1 * b2.second


@dataclasses.dataclass
class HypercolumnCircuit:
    """A built circuit: one explicit network with named handles.

    Attributes
    ----------
    network : brian2.Network
    exc, inh : brian2.NeuronGroup
        All H*N excitatory cells (cell ``h*N + c`` is channel c of hypercolumn h) and all
        interneurons.
    kwta : KWTAHandles
    spikes_exc, spikes_inh, state, state_inh : monitors or None
        ``state`` records ``v`` and ``u`` of the cells in ``record_v``; ``state_inh`` records
        the interneurons' ``count`` of hypercolumn 0.
    spec : CircuitSpec
    n_hypercolumns, n_channels, k : int
    """

    network: Any
    exc: Any
    inh: Any
    kwta: KWTAHandles
    spikes_exc: Any
    spikes_inh: Any
    state: Any
    state_inh: Any
    spec: CircuitSpec
    n_hypercolumns: int
    n_channels: int
    k: int
    dt_ms: float

    def set_drives(self, drives) -> None:
        """Set the (H, N) drives (dimensionless, nominally in [0, 1])."""
        d = np.asarray(drives, dtype=float)
        if d.shape != (self.n_hypercolumns, self.n_channels):
            raise ConfigError(f"drives must have shape ({self.n_hypercolumns}, {self.n_channels}), got {d.shape}")
        self.exc.drive = d.ravel()

    def winners(self) -> np.ndarray:
        """Boolean (H, N): cells that fired (and were not rewound)."""
        return (np.asarray(self.exc.done_) > 0.5).reshape(self.n_hypercolumns, self.n_channels)

    def win_time_ms(self) -> np.ndarray:
        """(H, N) grid time of each winner's spike in ms (NaN for non-winners)."""
        t = np.asarray(self.exc.t_win_).reshape(self.n_hypercolumns, self.n_channels) * 1e3
        return np.where(self.winners(), t, np.nan)

    def run(self, duration_ms: float, report=None) -> None:
        self.network.run(duration_ms * b2.ms, report=report)


def build_hypercolumns(spec: CircuitSpec, n_hypercolumns: int, n_channels: int, k: int, drives=None, *,
                       dt_ms: float | None = None, monitors: tuple[str, ...] = ("spikes",),
                       record_v: Any = None, tie_break: bool = False, name: str = "hc") -> HypercolumnCircuit:
    """Build H hypercolumns x N channels with k-WTA in one explicit ``brian2.Network``.

    Parameters
    ----------
    spec : CircuitSpec
    n_hypercolumns, n_channels, k : int
        H, N and the number of winners (0 < k < N).
    drives : array (H, N), optional
        Dimensionless drives (set later with :meth:`HypercolumnCircuit.set_drives`).
    dt_ms : float, optional
        Time step in ms (default: Brian2's default clock, 0.1 ms).
    monitors : tuple of str
        Any of ``"spikes"`` (excitatory and interneuron spike monitors) and ``"state"``.
    record_v : sequence of int, optional
        Excitatory cells whose ``v`` (and ``u``) is recorded when ``"state"`` is requested.
    tie_break : bool
        Add a per-channel bias of ``-c * TIE_BIAS_MV`` mV so that among exactly equal drives
        the lower channel index wins (the tie rule of ``hcs_neuro.core.kwta``).
    name : str
        Prefix for Brian2 object names.

    Returns
    -------
    HypercolumnCircuit
    """

    if n_hypercolumns < 1:
        raise ConfigError(f"n_hypercolumns must be >= 1, got {n_hypercolumns}")
    check_k(int(k), int(n_channels))
    clock = b2.Clock(dt=dt_ms * b2.ms, name=f"{name}_clock") if dt_ms is not None else None
    if dt_ms is not None and not dt_ms > 0:
        raise ConfigError(f"dt_ms must be > 0, got {dt_ms}")
    net = b2.Network(name=f"{name}_network")
    exc = make_exc_group(spec, n_hypercolumns * n_channels, name=f"{name}_exc", clock=clock)
    net.add(exc)
    hc_of = np.repeat(np.arange(n_hypercolumns), n_channels)
    kw = attach_kwta(net, exc, hc_of, n_hypercolumns, k, spec, name=f"{name}_kwta", clock=clock)
    if tie_break:
        if exc.variables["bias"].dim != b2.mV.dim:
            raise ConfigError(f"{spec.source}: tie_break needs a bias in volt (neuron variable 'bias')")
        exc.bias = -np.tile(np.arange(n_channels), n_hypercolumns) * TIE_BIAS_MV * b2.mV
    spikes_exc = spikes_inh = state = state_inh = None
    mkw = {} if clock is None else {"clock": clock}
    if "spikes" in monitors:
        spikes_exc = b2.SpikeMonitor(exc, name=f"{name}_spikes_exc")
        spikes_inh = b2.SpikeMonitor(kw.inh, name=f"{name}_spikes_inh")
        net.add(spikes_exc, spikes_inh)
    if "state" in monitors:
        rec = np.arange(min(len(exc), n_channels)) if record_v is None else np.asarray(record_v)
        state = b2.StateMonitor(exc, ["v", "u"], record=rec, name=f"{name}_state", when="end", **mkw)
        state_inh = b2.StateMonitor(kw.inh, ["count"], record=np.arange(kw.n_pool), name=f"{name}_state_inh",
                                     when="end", **mkw)
        net.add(state, state_inh)
    circ = HypercolumnCircuit(network=net, exc=exc, inh=kw.inh, kwta=kw, spikes_exc=spikes_exc,
                              spikes_inh=spikes_inh, state=state, state_inh=state_inh, spec=spec, n_hypercolumns=n_hypercolumns,
                              n_channels=n_channels, k=int(k),
                              dt_ms=float(dt_ms) if dt_ms is not None else float(b2.defaultclock.dt / b2.ms))
    if drives is not None:
        circ.set_drives(drives)
    return circ


def _root_message(exc: BaseException) -> str:
    """The innermost cause of a Brian2 error, on one line (Brian2 wraps errors of user code in
    BrianObjectException with several paragraphs)."""
    seen = set()
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(exc))
        exc = nxt
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, (SyntaxError, KeyError)) else text


def check_with_brian(spec: CircuitSpec) -> None:
    """Build one small hypercolumn of ``spec`` (and its noisy variant) with Brian2's runtime device
    and run one step, so that an equation Brian2 cannot use (a syntax error, inconsistent units, an
    unknown function) is reported as one :class:`ConfigError` naming the circuit file, before any
    real work or compilation starts.

    Raises
    ------
    ConfigError
        With Brian2's own message for the offending expression.
    """

    if b2.get_device().__class__.__name__ != "RuntimeDevice":
        b2.device.reinit()
        b2.set_device("runtime")
    old_target = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"
    problem = None
    try:
        for noise in (False, True) if spec.noise_term.strip() else (False,):
            net = b2.Network(name="hcs_check_network")
            exc_group = make_exc_group(spec, 2, name="hcs_check_exc", noise=noise)
            net.add(exc_group)
            attach_kwta(net, exc_group, np.zeros(2, dtype=np.int64), 1, 1, spec, name="hcs_check_kwta")
            net.run(b2.defaultclock.dt)
    except HCSError:
        raise
    except Exception as exc:  # noqa: BLE001 (any Brian2 failure on user-written code)
        problem = _root_message(exc)
    finally:
        b2.prefs.codegen.target = old_target
    if problem is not None:
        field = _unparsable_field(spec)
        raise ConfigError(f"{spec.source}: Brian2 cannot use the circuit's "
                          f"{field or 'equations'} ({problem})")


def _unparsable_field(spec: CircuitSpec) -> str | None:
    """The first code field of ``spec`` that is not even valid expression syntax, as
    ``'field = "text"'`` (None if all parse: then the problem is units or names)."""

    fields = {"neuron.threshold_expr": spec.threshold_expr, "inhibition.on_pre_ei": spec.on_pre_ei,
              "inhibition.on_pre_ie": spec.on_pre_ie, "neuron.noise_term": spec.noise_term}
    for name, eqs in (("neuron.equations", spec.neuron_equations(False)), ("interneuron.equations", spec.inter_eqs)):
        for line in eqs.splitlines():
            body = line.split("#", 1)[0]
            if "=" in body and ":" in body:
                fields[f"{name} line {line.strip()!r}"] = body.split("=", 1)[1].rsplit(":", 1)[0]
    for name, code in fields.items():
        for stmt in str(code).splitlines():
            if not stmt.strip():
                continue
            text = stmt.split("=", 1)[1] if name.startswith("inhibition.") and "=" in stmt else stmt
            text = text.replace("+=", "").strip()
            try:
                ast.parse(text, mode="eval")
            except SyntaxError:
                return f"{name} = {str(code).strip()!r}" if " line " not in name else name
    return None


__all__.append("check_with_brian")

"""Competition dynamics of one hypercolumn inside a whole biophysical network (issue 25, item 5).

:func:`record_hypercolumn` builds the biophysical network of a model (:class:`hcs_neuro.brian.bionet.BioNetwork`,
exactly as :func:`hcs_neuro.brian.session.simulate` builds it) for ONE image on Brian2's runtime device,
adds monitors on the chosen hypercolumn's cells only, runs one image period and returns a
:class:`HypercolumnRecord` of plain arrays (ms, mV, the inhibitory variable in a named unit), with
the spiking winners beside the reference's (:func:`hcs_neuro.core.reference.forward`).

The added monitors only read state: the spikes are those of an unmonitored run (tested in
``tests/test_plot_dynamics.py`` against :func:`~hcs_neuro.brian.session.simulate`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from hcs_neuro.brian import b2
from hcs_neuro.brian.bionet import BioNetwork
from hcs_neuro.brian.device import BuiltNetwork
from hcs_neuro.brian.hypercolumn import SAME_STEP_ORDER
from hcs_neuro.core.circuit_file import NetworkCircuit, RaceParams, load_network_circuit
from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.reference import forward, quantize_input
from hcs_neuro.core.spiking_result import SpikingResult

__all__ = ["HypercolumnRecord", "record_hypercolumn", "hypercolumn_location", "inhibitory_variable"]

#: Display units of recorded variables: (Brian2 unit, unit name, factor from SI).
_DISPLAY = (("volt", "mV", 1e3), ("amp", "pA", 1e12), ("siemens", "nS", 1e9))


@dataclass
class HypercolumnRecord:
    """What :func:`record_hypercolumn` recorded for one hypercolumn and one image.

    Times are in ms from the stimulus onset, voltages in mV; ``inh`` is in ``inh_unit`` (for the
    current-based circuits ``g_inh`` is dimensionless, in multiples of the leak conductance g_L).
    Cell arrays are indexed by channel (0..C-1).
    """

    model: str
    circuit: str
    layer: int
    layer_type: str
    location: tuple
    hypercolumn: int
    k: int
    n_channels: int
    t_ms: np.ndarray
    v_mV: np.ndarray                 # (C, T) membrane potentials
    bound_mV: np.ndarray             # (T,) the collapsing threshold V_th - clip(u, 0, u_max)
    v_threshold_mV: float
    v_rest_mV: float
    inh_name: str                    # inhibitory input variable of the excitatory cells (e.g. g_inh)
    inh_unit: str
    inh: np.ndarray                  # (C, T)
    inter_name: str                  # recorded interneuron variable (v, or count for counter interneurons)
    inter_unit: str
    inter: np.ndarray                # (n_interneurons, T)
    spikes_ms: list                  # C arrays of excitatory spike times
    inter_spikes_ms: list            # n_interneurons arrays of interneuron spike times
    spiking_winners: np.ndarray      # (C,) bool: cells that spiked
    reference_winners: np.ndarray    # (C,) bool: the reference's k-WTA winners (readout: its argmax)
    reference_drive: np.ndarray      # (C,) exact integer drives of the reference
    gate_ms: float                   # the hypercolumn's gate spike (inputs complete); nan if none
    race_start_ms: float             # gate + settle: the bound starts to fall
    decision_ms: float               # first interneuron spike (the hypercolumn has decided); nan if none
    tie_rule: dict
    dt_ms: float
    t_image_ms: float
    image_index: int | None = None
    result: SpikingResult | None = field(default=None, repr=False)  # the whole network's spikes for this image

    @property
    def agree(self) -> bool:
        """Spiking winners equal the reference winners."""
        return bool(np.array_equal(self.spiking_winners, self.reference_winners))


def inhibitory_variable(circuit: NetworkCircuit) -> str:
    """The excitatory cells' variable that the interneurons' synapses increment (``on_pre_ie``)."""
    m = re.search(r"([A-Za-z_]\w*)_post\s*\+=", circuit.on_pre_ie)
    if not m:
        raise ConfigError(f"{circuit.source}: inhibition.on_pre_ie = {circuit.on_pre_ie!r}: no 'NAME_post += ...' "
                          f"to find the inhibitory input of the excitatory cells")
    return m.group(1)


def hypercolumn_location(model, layer: int, y: int | None = None, x: int | None = None):
    """Check ``layer`` and the location; return ``(location tuple, hypercolumn index S-major)``.

    The default location is the centre of the layer (``H // 2, W // 2``); a readout (linear)
    layer is one hypercolumn, location ``()``.

    Raises
    ------
    ConfigError
        A layer index out of range or a location outside the layer.
    """
    layers = model.architecture.layers
    n = len(layers)
    if not (isinstance(layer, (int, np.integer)) and 0 <= layer < n):
        raise ConfigError(f"--layer {layer}: allowed 0..{n - 1} ({n} layers: "
                          + ", ".join(f"{i} {s.type}" for i, s in enumerate(layers)) + ")")
    spec = layers[layer]
    spatial = () if spec.is_readout else tuple(int(s) for s in spec.out_shape[1:])
    if not spatial:
        if (y or 0) != 0 or (x or 0) != 0:
            raise ConfigError(f"--y {y} --x {x}: layer {layer} ({spec.type}) is one hypercolumn; give no location "
                              f"(or 0, 0)")
        return (), 0
    if len(spatial) == 1:
        if (y or 0) != 0:
            raise ConfigError(f"--y {y}: layer {layer} ({spec.type}) is one-dimensional; give --x only")
        loc = (spatial[0] // 2 if x is None else int(x),)
    else:
        loc = (spatial[0] // 2 if y is None else int(y), spatial[1] // 2 if x is None else int(x))
    names = ("--x",) if len(spatial) == 1 else ("--y", "--x")
    for name, v, size in zip(names, loc, spatial):
        if not 0 <= v < size:
            raise ConfigError(f"{name} {v}: outside layer {layer} ({spec.type}, {' x '.join(map(str, spatial))} "
                              f"locations); allowed 0..{size - 1}")
    return loc, int(np.ravel_multi_index(loc, spatial))


def _network_circuit(circuit) -> NetworkCircuit:
    spec = circuit if isinstance(circuit, (RaceParams, NetworkCircuit)) else load_network_circuit(circuit)
    if isinstance(spec, RaceParams):
        raise ConfigError(f"--circuit {spec.name}: the exact race has no membrane equation; choose lif_net, "
                          f"lif_pool_net or cond_net")
    return spec


def _display(q, name: str):
    """A recorded Brian2 quantity as (float array, unit name)."""
    dim = b2.get_dimensions(q)
    arr = np.asarray(q)
    if dim.is_dimensionless:
        return arr.astype(float), ("multiples of g_L" if name.startswith("g") else "1")
    for si_unit, unit, f in _DISPLAY:
        if dim == getattr(b2, si_unit).dim:
            return arr.astype(float) * f, unit
    return arr.astype(float), str(dim)


@dataclass
class _Recording:
    handles: object
    state_e: object
    state_i: object
    spikes_i: object

    @property
    def network(self):
        return self.handles.network


def record_hypercolumn(model, circuit, image, layer: int = 0, y: int | None = None, x: int | None = None, *,
                       seed: int = 0, image_index: int | None = None) -> HypercolumnRecord:
    """Simulate one image through the whole biophysical network and record one hypercolumn.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    circuit : str, Path or NetworkCircuit
        A biophysical network circuit (``lif_net``, ``lif_pool_net``, ``cond_net`` or a file).
    image : ndarray, shape ``input_shape``
        One image in [0, 1].
    layer : int
    y, x : int, optional
        Location of the hypercolumn in the layer (default: the centre; none for the readout).
    seed : int
        Brian2 seed (the shipped circuits are noise-free).
    image_index : int, optional
        Recorded for titles only.

    Returns
    -------
    HypercolumnRecord
        Traces at every time step (``dt``) of one image period, spikes, winners, and ``result``,
        the :class:`SpikingResult` of the whole network for this image.

    Raises
    ------
    ConfigError
        The exact race (``network_race``: no membrane equation), a layer out of range, a location
        outside the layer, or a circuit the network cannot use.
    DataError
        An image that does not fit the model input.
    """
    spec = _network_circuit(circuit)
    loc, s = hypercolumn_location(model, layer, y, x)
    img = np.asarray(image, dtype=float)
    if tuple(img.shape) != tuple(model.architecture.input_shape):
        raise DataError(f"image of shape {img.shape}; model {model.architecture.name} takes "
                        f"{tuple(model.architecture.input_shape)}")
    net = BioNetwork(model, spec)
    plan = net.plan
    bl = plan.layers[layer]
    C, S, n_pool = bl.C, bl.S, spec.n_interneurons
    levels = np.asarray(quantize_input(model, img[None]), dtype=np.int64).reshape(1, -1)
    inh_name = inhibitory_variable(spec)

    def build(b2_):
        h = net.build(b2_, 1, levels)
        cells = h.e_real[layer] + np.arange(C) * S + s  # C-major: cell of channel c at hypercolumn s
        inter = h.i_off[layer] + s * n_pool + np.arange(n_pool)
        inter_var = "v" if "v" in h.I.variables else "count"
        se = b2_.StateMonitor(h.E, ["v", inh_name, "u"], record=cells, clock=h.E.clock, name="bio_rec_exc")
        si = b2_.StateMonitor(h.I, [inter_var], record=inter, clock=h.I.clock, name="bio_rec_inh")
        # after the interneurons' thresholder (SAME_STEP_ORDER): a monitor at the default order would
        # read the spike space before it is filled and report each spike one step late
        sp = b2_.SpikeMonitor(h.I[int(inter[0]):int(inter[-1]) + 1], variables=[], when="thresholds",
                              order=SAME_STEP_ORDER["i_to_e"] + 1, name="bio_rec_inh_spikes")
        h.network.add(se, si, sp)
        return _Recording(h, se, si, sp)

    t0 = time.perf_counter()
    # the network's own duration: one image period plus the steps in which it is read out
    # (BioNetwork.readout_steps); steps after the period are not read (spikes and traces end at T)
    built = BuiltNetwork(build, net.duration_ms(1), device="runtime", seed=seed)
    try:
        built.run()
        rec = built.handles
        h = rec.handles
        T = plan.steps_per_image
        dt_ms = plan.dt * 1e3
        out = net.collect(h, 1)
        wall = time.perf_counter() - t0
        result = net.assemble(levels, [(0, out)], wall, {**net.metadata(), "device": "runtime", "n_jobs": 1,
                                                          "chunk": 1, "seed": int(seed)})
        t_ms = np.asarray(rec.state_e.t_)[:T] * 1e3
        v_mV = np.asarray(rec.state_e.v_)[:, :T] * 1e3
        u = np.asarray(rec.state_e.u_)[0, :T]
        bound_mV = (spec.si("v_threshold") - np.clip(u, 0.0, bl.u_max)) * 1e3
        inh, inh_unit = _display(getattr(rec.state_e, inh_name)[:, :T], inh_name)
        inter_var = rec.state_i.record_variables[0]
        inter, inter_unit = _display(getattr(rec.state_i, inter_var)[:, :T], inter_var)
        if inter_var == "count":
            inter_unit = "excitatory spikes received"
        cells = h.e_real[layer] + np.arange(C) * S + s
        ei = np.asarray(h.mon_e.i_)
        et = np.asarray(h.mon_e.t_) * 1e3
        keep = et < T * dt_ms
        spikes = [et[keep & (ei == c)] for c in cells]
        ii = np.asarray(rec.spikes_i.i_)
        it = np.asarray(rec.spikes_i.t_) * 1e3
        inter_spikes = [it[(it < T * dt_ms) & (ii == p)] for p in range(n_pool)]
        lo = out["layers"][layer]
        gate = float(lo["gate_ms"][0, s])
        decision = float(lo["dec_ms"][0, s])
    finally:
        built.close()

    win = result.layers[layer].winners[0].reshape(C, -1)[:, s]
    ref = forward(model, img[None]).layers[layer]
    drive = np.asarray(ref.drive[0]).reshape(C, -1)[:, s]
    if ref.winners is None:  # the readout: the reference's class (lowest index on ties), k = 1
        ref_win = np.zeros(C, bool)
        ref_win[int(np.argmax(drive))] = True
    else:
        ref_win = np.asarray(ref.winners[0]).reshape(C, -1)[:, s].astype(bool)
    meta = net.metadata()
    return HypercolumnRecord(
        model=model.architecture.name, circuit=spec.name, layer=int(layer), layer_type=bl.type, location=loc,
        hypercolumn=s, k=int(bl.k), n_channels=C, t_ms=t_ms, v_mV=v_mV, bound_mV=bound_mV,
        v_threshold_mV=spec.si("v_threshold") * 1e3, v_rest_mV=spec.si("v_rest") * 1e3,
        inh_name=inh_name, inh_unit=inh_unit, inh=inh, inter_name=inter_var, inter_unit=inter_unit, inter=inter,
        spikes_ms=spikes, inter_spikes_ms=inter_spikes, spiking_winners=np.asarray(win, bool),
        reference_winners=ref_win, reference_drive=drive, gate_ms=gate,
        race_start_ms=gate + plan.settle * 1e3 if np.isfinite(gate) else float("nan"), decision_ms=decision,
        tie_rule=meta["tie_rule"], dt_ms=dt_ms, t_image_ms=T * dt_ms, image_index=image_index, result=result)

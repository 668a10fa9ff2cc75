"""What a spiking-network simulation returns: the contract between ``simulate`` (which fills it)
and ``validate``, ``energy`` reports and plots (which read it).

All arrays are batch-first (one row per image) and indexed exactly like the reference network's
arrays of :mod:`hcs_neuro.core.reference` (``ReferenceResult.layers[i].output``), so spiking and
reference quantities compare element by element. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SpikingLayer", "SpikingResult", "COUNT_BASIS_KEY", "COUNT_KINDS", "DEFAULT_COUNT_BASIS", "count_basis"]

#: Key of ``SpikingResult.metadata`` under which a simulator says how each of its counts was
#: obtained (see :data:`DEFAULT_COUNT_BASIS` for the form). A count the simulator does not name
#: keeps its default entry.
COUNT_BASIS_KEY = "count_basis"
#: The counts a :class:`SpikingResult` carries, by the name used in :data:`DEFAULT_COUNT_BASIS`.
COUNT_KINDS = ("input_spikes", "input_sops", "spikes", "interneuron_spikes", "sops", "sops_circuit",
               "neuron_updates")
#: How each count of a result is obtained when its metadata does not say otherwise: what
#: :mod:`hcs_neuro.brian.race` fills today. ``basis`` is ``"counted"`` (read from the simulation's
#: monitors) or ``"computed"`` (derived: from the input levels, from counted events times a
#: fan-out, or from the schedule); ``how`` says from what. ``neuron_updates`` also names its
#: ``policy``: ``clock`` (every cell at every step), ``gated`` (a layer's cells only while the layer
#: can change) or ``event`` (a cell when it receives or emits an event). A simulator that counts
#: its neuron updates records e.g. ``{"neuron_updates": {"basis": "counted", "how": "...",
#: "policy": "event"}}`` under :data:`COUNT_BASIS_KEY`.
DEFAULT_COUNT_BASIS = {
    "input_spikes": {"basis": "computed",
                     "how": "one spike per non-zero quantized input level (the race's input coding)"},
    "input_sops": {"basis": "computed", "how": "input spikes x existing fan-out into layer 0"},
    "spikes": {"basis": "counted", "how": "spike monitor of the excitatory cells"},
    "interneuron_spikes": {"basis": "counted", "how": "spike monitor of the interneurons"},
    "sops": {"basis": "computed", "how": "counted spikes x existing fan-out (non-zero weights) of each cell"},
    "sops_circuit": {"basis": "computed",
                     "how": "counted threshold-crossing, interneuron and overshoot events x their k-WTA fan-out"},
    "neuron_updates": {"basis": "computed", "how": "cells x time steps of the race schedule (every cell at every "
                                                   "step)", "policy": "clock"},
}


@dataclass
class SpikingLayer:
    """Spiking activity of one layer (conv, pool or readout) over a batch of images.

    Attributes
    ----------
    spike_counts : ndarray of int64, shape ``(n_images, *layer.out_shape)``
        Spikes emitted by each excitatory unit during the image's window.
    winners : ndarray of bool, same shape
        Units that won their hypercolumn's competition (emitted >= 1 spike that reaches the next
        layer). For the readout: the class unit(s) that decided.
    first_spike_ms : ndarray of float64, same shape
        Time of each unit's first spike from stimulus onset, NaN where it never spiked.
    interneuron_spikes : ndarray of int64, shape (n_images,)
        Spikes of this layer's inhibitory interneurons, per image.
    sops : ndarray of int64, shape (n_images,)
        Synaptic operations caused by this layer's spikes, counted in the simulation: spikes of
        each excitatory unit times its number of existing outgoing feed-forward synapses (into the
        next layer). ``sops_circuit`` counts the k-WTA circuit's own synaptic events (E->I and
        I->E) separately.
    sops_circuit : ndarray of int64, shape (n_images,)
    neuron_updates : ndarray of int64, shape (n_images,)
        State updates of this layer's neurons (excitatory + inhibitory) under the simulator's
        update policy; how they were obtained (counted or computed, and the policy) is recorded in
        ``SpikingResult.metadata[COUNT_BASIS_KEY]`` (default: :data:`DEFAULT_COUNT_BASIS`, neurons
        x time steps in which the layer was simulated).
    n_exc, n_inh, n_synapses : int
        Excitatory cells, interneurons and existing feed-forward synapses into this layer
        (pruned zero-level weights create none).
    """

    spike_counts: np.ndarray
    winners: np.ndarray
    first_spike_ms: np.ndarray
    interneuron_spikes: np.ndarray
    sops: np.ndarray
    sops_circuit: np.ndarray
    neuron_updates: np.ndarray
    n_exc: int
    n_inh: int
    n_synapses: int


@dataclass
class SpikingResult:
    """Result of simulating a model on a batch of images as a spiking network.

    Attributes
    ----------
    pred : ndarray of int64, shape (n_images,)
        Class decided by spikes; -1 where no readout unit decided within the window.
    decision_latency_ms : ndarray of float64, shape (n_images,)
        Simulated time from stimulus onset to the readout decision (NaN if none).
    input_spike_counts : ndarray of int64, shape ``(n_images, *input_shape)``
    input_sops : ndarray of int64, shape (n_images,)
        Synaptic operations caused by input spikes (into the first layer).
    layers : list of SpikingLayer
        One per architecture layer, same order as ``model.architecture.layers``.
    dt_ms : float
        Simulation time step.
    window_ms : float
        Simulated time per image.
    wall_time_s : float
        Wall-clock time of the whole simulation (build + compile + run).
    metadata : dict
        Circuit name, device, coding, seeds and any run parameters (JSON-able); optionally
        :data:`COUNT_BASIS_KEY`: how each count was obtained (:func:`count_basis`).
    """

    pred: np.ndarray
    decision_latency_ms: np.ndarray
    input_spike_counts: np.ndarray
    input_sops: np.ndarray
    layers: list
    dt_ms: float
    window_ms: float
    wall_time_s: float
    metadata: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(self.pred.shape[0])

    def total_sops(self) -> np.ndarray:
        """Synaptic operations per image: input + feed-forward + k-WTA circuit events."""
        total = self.input_sops.astype(np.int64).copy()
        for layer in self.layers:
            total += layer.sops + layer.sops_circuit
        return total

    def total_spikes(self) -> np.ndarray:
        """Spikes per image: input, excitatory and inhibitory."""
        axes = lambda a: tuple(range(1, a.ndim))  # noqa: E731
        total = self.input_spike_counts.sum(axis=axes(self.input_spike_counts)).astype(np.int64)
        for layer in self.layers:
            total += layer.spike_counts.sum(axis=axes(layer.spike_counts)) + layer.interneuron_spikes
        return total


def count_basis(result) -> dict:
    """How each count of ``result`` was obtained: :data:`DEFAULT_COUNT_BASIS` updated by
    ``result.metadata[COUNT_BASIS_KEY]`` (a count named there replaces its default entry). A result
    whose metadata names another neuron-update policy (``update_policy`` or ``updates``) without
    saying how its updates were obtained gets ``basis = "unknown"`` for them, never a default that
    could be wrong.

    Raises
    ------
    ValueError
        A recorded entry that is not a dict with ``basis`` ``"counted"`` or ``"computed"``, or a
        count name not in :data:`COUNT_KINDS`.
    """
    out = {k: dict(v) for k, v in DEFAULT_COUNT_BASIS.items()}
    meta = getattr(result, "metadata", None) or {}
    policy = meta.get("update_policy", meta.get("updates"))
    if isinstance(policy, str) and policy != out["neuron_updates"]["policy"]:
        # a simulator that names another policy but not how it obtained its counts: say so
        out["neuron_updates"] = {"basis": "unknown", "policy": policy,
                                 "how": f"the simulator ran the {policy!r} update policy but did not record how its "
                                        f"neuron updates were obtained (metadata[{COUNT_BASIS_KEY!r}])"}
    given = meta.get(COUNT_BASIS_KEY) or {}
    if not isinstance(given, dict):
        raise ValueError(f"metadata[{COUNT_BASIS_KEY!r}] must be a dict of count name -> entry")
    for name, entry in given.items():
        if name not in COUNT_KINDS:
            raise ValueError(f"metadata[{COUNT_BASIS_KEY!r}]: unknown count {name!r} (allowed: {', '.join(COUNT_KINDS)})")
        if not isinstance(entry, dict) or entry.get("basis") not in ("counted", "computed"):
            raise ValueError(f"metadata[{COUNT_BASIS_KEY!r}][{name!r}] must be a dict with basis 'counted' or "
                             f"'computed', got {entry!r}")
        out[name] = dict(entry)
    return out

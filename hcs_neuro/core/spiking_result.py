"""What a spiking-network simulation returns: the contract between ``simulate`` (which fills it)
and ``validate``, ``energy`` reports and plots (which read it).

All arrays are batch-first (one row per image) and indexed exactly like the reference network's
arrays of :mod:`hcs_neuro.core.reference` (``ReferenceResult.layers[i].output``), so spiking and
reference quantities compare element by element. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SpikingLayer", "SpikingResult"]


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
        State updates of this layer's neurons (excitatory + inhibitory): neurons x time steps in
        which the layer was simulated.
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
        Circuit name, device, coding, seeds and any run parameters (JSON-able).
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

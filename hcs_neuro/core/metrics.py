"""Metric keys: one spelling for every number hcs-neuro reports (JSON files, tables, sweeps).

Rules (checked by the tests for the circuit benchmark, the network validation and the sweeps):

* snake_case;
* a quantity with a unit carries the unit right after the quantity, before any statistic:
  ``latency_ms_median``, ``wall_time_s``, ``noise_mv``; counts and fractions have none;
* the definitions are those of ``docs/guide/concepts.md``.

:data:`METRICS` maps every scalar key to its unit and meaning; :data:`CIRCUIT_METRICS` and
:data:`NETWORK_METRICS` are the scalar results a circuit or network sweep records.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Metric", "METRICS", "CIRCUIT_METRICS", "NETWORK_METRICS", "unknown_keys"]


class Metric(NamedTuple):
    """Unit (``""`` for counts and fractions) and meaning of a metric key."""

    unit: str
    meaning: str


METRICS: dict[str, Metric] = {
    # agreement of spiking winners with the reference (definitions: docs/guide/concepts.md)
    "strict_agreement": Metric("", "fraction of hypercolumns whose spiking winner set equals the reference top-k set"),
    "tie_tolerant_agreement": Metric("", "fraction of hypercolumns correct up to drives within tie_tol of the k-th"),
    "over_selection": Metric("", "hypercolumns with more than k winners (count)"),
    "under_selection": Metric("", "hypercolumns with fewer than k winners (count)"),
    "undecided": Metric("", "hypercolumns whose interneuron never fired (count)"),
    "class_agreement": Metric("", "fraction of images whose spiking class equals the reference class"),
    "spiking_accuracy": Metric("", "fraction of images whose spiking class equals the label"),
    "reference_accuracy": Metric("", "fraction of images whose reference class equals the label"),
    "accuracy_difference": Metric("", "spiking_accuracy - reference_accuracy"),
    "undecided_fraction": Metric("", "fraction of images without a readout decision"),
    "min_conditional_agreement_strict": Metric("", "lowest per-layer conditional strict agreement"),
    "min_conditional_agreement_tie_tolerant": Metric("", "lowest per-layer conditional tie-tolerant agreement"),
    "sop_check_passed": Metric("", "simulated SOPs equal the analytic count wherever winners agree (bool)"),
    "tie_tol": Metric("", "near-tie tolerance, fraction of each hypercolumn's drive range"),
    # timing
    "latency_ms_median": Metric("ms", "median decision latency from stimulus onset"),
    "latency_ms_p95": Metric("ms", "95th percentile of the decision latency"),
    "latency_ms_mean": Metric("ms", "mean decision latency"),
    "latency_ms_min": Metric("ms", "shortest decision latency"),
    "latency_ms_max": Metric("ms", "longest decision latency"),
    "latency_local_ms_median": Metric("ms", "median latency in the hypercolumn's local (refined) time"),
    "refined_fraction": Metric("", "fraction of hypercolumns that used local time refinement"),
    "max_level_used": Metric("", "deepest refinement level used"),
    "dt_ms": Metric("ms", "simulation time step"),
    "window_ms": Metric("ms", "simulated time per image"),
    "duration_ms": Metric("ms", "simulated time per stimulus"),
    "noise_mv": Metric("mV", "membrane-noise standard deviation"),
    # activity and operations (counted in the simulation unless the key says analytic)
    "spikes_per_image": Metric("", "excitatory and input spikes per image (counted)"),
    "spikes_per_neuron_per_image": Metric("", "excitatory spikes per excitatory neuron per image (counted)"),
    "input_spikes_per_image": Metric("", "input spikes per image (counted)"),
    "sops_per_image": Metric("", "synaptic operations per image: spikes x existing fan-out (counted)"),
    "energy_loihi_pj_per_image": Metric("pJ", "energy per image priced by the Loihi profile (computed from counts)"),
    # cost of computing
    "wall_time_s": Metric("s", "wall time of the simulation"),
    "wall_time_per_trial_s": Metric("s", "wall time per trial"),
    "sim_time_per_trial_s": Metric("s", "simulation wall time per trial, without building"),
    "compile_time_s": Metric("s", "building and compiling the network"),
    "images_per_s": Metric("1/s", "images simulated per second after compiling"),
    "run_time_s": Metric("s", "wall time of one sweep point on its worker"),
    "cpu_time_s": Metric("s", "CPU time of one sweep point's worker process"),
}

#: Scalar results of ``hcs_neuro.brian.bench.run_bench`` a circuit sweep can record.
CIRCUIT_METRICS = (
    "strict_agreement", "tie_tolerant_agreement", "over_selection", "under_selection",
    "undecided", "latency_ms_median", "latency_ms_p95", "latency_local_ms_median",
    "refined_fraction", "max_level_used", "wall_time_s", "wall_time_per_trial_s",
    "sim_time_per_trial_s", "compile_time_s",
)

#: Scalar results of a network sweep point (validation, counts, energy).
NETWORK_METRICS = (
    "class_agreement", "spiking_accuracy", "reference_accuracy", "accuracy_difference",
    "undecided_fraction", "min_conditional_agreement_strict",
    "min_conditional_agreement_tie_tolerant", "latency_ms_mean", "latency_ms_median",
    "latency_ms_p95", "spikes_per_neuron_per_image", "input_spikes_per_image",
    "sop_check_passed", "wall_time_s", "images_per_s", "compile_time_s",
    "spikes_per_image", "sops_per_image", "energy_loihi_pj_per_image",
)


def unknown_keys(keys, *, structural=()) -> list[str]:
    """Keys that are neither registered metrics nor listed as ``structural`` (names, settings,
    nested tables): a test uses this to keep every writer on the registered spellings."""
    return sorted(k for k in keys if k not in METRICS and k not in structural)

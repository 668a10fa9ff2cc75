"""The spiking network reproduces the reference exactly (ties included), on Brian2's runtime
device (NumPy code generation, no compiler) and once with cpp_standalone."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.core import reference
from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.brian.race import plan_network
from hcs_neuro.core.circuit_file import RaceParams, load_race_circuit
from hcs_neuro.core.model import random_model
from hcs_neuro.brian.session import simulate
from hcs_neuro.core.topology import output_fan_out

from test_convert import TINY, tiny_model


def _images(n, seed=0, shape=(1, 6, 6)):
    return np.random.default_rng(seed).random((n,) + shape)


def _assert_exact(model, images, sp):
    """Every layer's spiking winners equal the reference winners (strict, ties to lower index)."""
    r = reference.forward(model, images)
    for i, (sl, rl) in enumerate(zip(sp.layers, r.layers)):
        if rl.winners is not None:
            np.testing.assert_array_equal(sl.winners, rl.winners, err_msg=f"layer {i}")
            assert sl.spike_counts.max() <= 1  # one spike per winner
            np.testing.assert_array_equal(sl.spike_counts, rl.winners.astype(np.int64))
    np.testing.assert_array_equal(sp.pred, r.pred)
    return r


def test_tiny_model_exact_agreement_runtime():
    """Random images through a random tiny model: identical winners in every layer and class."""
    m = tiny_model(0)
    x = _images(4)
    sp = simulate(m, x, device="runtime", progress=False)
    r = _assert_exact(m, x, sp)
    # SOPs counted in the simulation = reference winners x analytic fan-out (hcs_neuro.measure.energy),
    # layer by layer, image by image (winners agree here)
    for i, rl in enumerate(r.layers[:-1]):
        fan = output_fan_out(m, i)
        analytic = rl.winners.reshape(len(x), -1).astype(np.int64) @ fan.reshape(-1)
        np.testing.assert_array_equal(sp.layers[i].sops, analytic)
    levels = reference.quantize_input(m, x)
    np.testing.assert_array_equal(sp.input_sops,
                                  (levels > 0).reshape(len(x), -1) @ output_fan_out(m, -1).reshape(-1))
    assert sp.layers[0].n_synapses == plan_network(m).layers[0].n_synapses
    plan = plan_network(m)
    # decision latency: inside the readout's race window (ms = steps x dt)
    lo = plan.layers[-1].race_start * plan.race.dt_ms
    hi = plan.layers[-1].emit_step * plan.race.dt_ms
    assert np.all((sp.decision_latency_ms >= lo) & (sp.decision_latency_ms < hi))
    # every hypercolumn decided exactly once per image
    for sl, lp in zip(sp.layers, plan.layers):
        np.testing.assert_array_equal(sl.interneuron_spikes, lp.n_hypercolumns)
    # winners' first spikes lie inside their layer's race window
    for sl, lp in zip(sp.layers, plan.layers):
        t = sl.first_spike_ms[sl.winners]
        assert np.all((t >= lp.race_start * plan.race.dt_ms - 1e-9) & (t < lp.emit_step * plan.race.dt_ms))
        assert np.all(np.isnan(sl.first_spike_ms[~sl.winners]))
    assert r.pred.shape == sp.pred.shape


def test_exact_ties_follow_lower_index_rule():
    """All weights equal: every channel of a hypercolumn has the same drive (exact ties
    everywhere); the circuit must pick the k lowest channel indices, as the reference."""
    arch = load_architecture(TINY)
    m = random_model(arch, seed=3)
    for i, spec in enumerate(arch.layers):
        if spec.has_weights:
            m.layers[i].weight_levels = np.ones_like(m.layers[i].weight_levels)
            m.layers[i].bias_levels = np.zeros_like(m.layers[i].bias_levels)
    x = _images(2, seed=1)
    sp = simulate(m, x, device="runtime", progress=False)
    r = _assert_exact(m, x, sp)
    # the test is not vacuous: ties at the k-th drive are everywhere in layer 0
    d = r.layers[0].drive
    assert (d[:, 0] == d[:, 5]).all()


def test_coarse_refinement_factor_changes_timing_not_winners():
    """refine_factor = 2 instead of 4: a different race schedule, the same (exact) winners."""
    m = tiny_model(2)
    x = _images(2, seed=4)
    c = simulate(m, x, device="runtime", progress=False, circuit=RaceParams(refine_factor=2))
    _assert_exact(m, x, c)


def test_builtin_race_circuit_loads():
    race = load_race_circuit()
    assert race.name == "network_race" and race.dt_ms == pytest.approx(0.1) and race.refine_factor >= 2

# cpp_standalone (compiled once, two forked processes, padded last chunk) is exercised end to end by
# tests/test_network_cli.py::test_validate_shipped_digits_model_end_to_end (one compilation for the suite).

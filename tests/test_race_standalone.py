"""The shipped digits model as a compiled (cpp_standalone) race under the three neuron-update
policies: the same spikes as the reference and as each other (the gated C++ loop of
:func:`hcs_neuro.brian.device.run_gated` changes which groups run, not what they compute), the
same spikes for the same seed, and neuron updates counted as the policy says. Slow: one
compilation of the whole network (about 2 min on a loaded 2-core machine; later policies reuse the
cached project and recompile main.cpp only)."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.brian.race import plan_network
from hcs_neuro.brian.session import simulate
from hcs_neuro.core import reference
from hcs_neuro.core.catalog import load_model_named
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.core.spiking_result import count_basis

pytestmark = [pytest.mark.slow, pytest.mark.standalone]


def test_policies_give_the_reference_spikes_and_their_own_counts():
    model = load_model_named("digits_hcs")
    images, _ = load_dataset("digits", "test", limit=32)
    ref = reference.forward(model, images)
    plan = plan_network(model)
    runs = {u: simulate(model, images, updates=u, n_jobs=2, chunk=16, progress=False)
            for u in ("clock", "gated", "event")}
    runs["gated_again"] = simulate(model, images, updates="gated", n_jobs=2, chunk=16, progress=False)  # same seed
    for name, sp in runs.items():
        np.testing.assert_array_equal(sp.pred, ref.pred, err_msg=name)
        for sl, rl in zip(sp.layers, ref.layers):
            if rl.winners is not None:
                np.testing.assert_array_equal(sl.winners, rl.winners, err_msg=name)
        for sl, cl in zip(sp.layers, runs["clock"].layers):
            for f in ("spike_counts", "first_spike_ms", "interneuron_spikes", "sops_circuit"):
                np.testing.assert_array_equal(getattr(sl, f), getattr(cl, f), err_msg=f"{name} {f}")
        np.testing.assert_array_equal(sp.decision_latency_ms, runs["clock"].decision_latency_ms)
    for sl, lp in zip(runs["clock"].layers, plan.layers):
        np.testing.assert_array_equal(sl.neuron_updates, (lp.n_cells + lp.n_hypercolumns) * plan.steps_per_image)
    for sl, lp in zip(runs["gated"].layers, plan.layers):
        np.testing.assert_array_equal(sl.neuron_updates, (lp.n_cells + lp.n_hypercolumns) * lp.window_steps)
    for sl, v in zip(runs["event"].layers, runs["clock"].metadata["update_counts_per_layer"]):
        assert float(sl.neuron_updates.mean()) == pytest.approx(v["event"])
    for u in ("clock", "gated", "event"):
        nu = count_basis(runs[u])["neuron_updates"]
        assert nu["basis"] == "counted" and nu["policy"] == u

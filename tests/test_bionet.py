"""Biophysical networks (issue 25): a whole model as LIF / conductance hypercolumns with
inhibition through synapses (:mod:`hcs_neuro.brian.bionet`), on a small random model.

Most tests use Brian2's runtime device (NumPy code generation, a network built per chunk: a few
seconds for the tiny model). The cpp_standalone comparison compiles a project (about a minute on
two busy cores) and is marked ``slow`` and ``standalone``.
"""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.brian.bionet import BioNetwork, plan_bio
from hcs_neuro.brian.session import make_network, simulate
from hcs_neuro.core import reference
from hcs_neuro.core.catalog import circuit_text, shipped_circuit_names
from hcs_neuro.core.circuit_file import NETWORK_FORMS, NetworkCircuit, load_circuit, load_network_circuit
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.measure.validate import validate
from hcs_neuro.pipeline import run_network, validation_summary

from test_convert import tiny_model
from test_simulate import _assert_exact, equal_weights_model  # exactness check; the all-ties model

#: Shorter presentations than the shipped 400 ms: the tiny model decides in < 100 ms.
FAST = {"network.t_image": "150 ms"}


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 6, 6))


def _lif(**over) -> NetworkCircuit:
    return load_network_circuit("lif_net").with_overrides({**FAST, **over})


def _run(model, x, circuit, seed=0):
    return simulate(model, x, circuit=circuit, device="runtime", n_jobs=1, progress=False, seed=seed)




def test_shipped_network_circuits_load_and_single_names_map_to_them():
    assert set(shipped_circuit_names("network")) == {"lif_net", "lif_pool_net", "cond_net"}
    assert not set(shipped_circuit_names("network")) & set(shipped_circuit_names("hypercolumn"))
    for single, net in NETWORK_FORMS.items():
        c = load_network_circuit(single)
        assert isinstance(c, NetworkCircuit) and c.name == net
    assert load_network_circuit("cond_net").conductance_based and not load_network_circuit("lif_net").conductance_based
    with pytest.raises(ConfigError, match="whole-network circuit"):
        load_circuit("lif_net")  # the single-hypercolumn loader refuses a network file


def test_noise_free_network_equals_reference_including_ties():
    """Noise-free lif_net: every layer's winners and the class equal the reference on random images.
    Stated bound: any margin >= 0 (exact ties included): the excitability gradient realises the tie
    rule and the three-speed race crosses the k-th cell at one tie step per time step."""
    m = tiny_model(0)
    x = _images(3)
    sp = _run(m, x, _lif())
    _assert_exact(m, x, sp)
    assert np.all(np.isfinite(sp.decision_latency_ms))
    meta = sp.metadata
    assert meta["mode"] == "biophysical" and meta["circuit"] == "lif_net"
    assert meta["tie_rule"]["name"] == "gradient" and "reset" in meta["protocol"]
    assert any("scout" in s for s in meta["numerical_methods"])


def test_validator_validates_it_unchanged_end_to_end():
    """The pipeline's run_network + Validator on a biophysical run (runtime device)."""
    m = tiny_model(2)
    x = _images(3, seed=4)
    labels = reference.forward(m, x).pred
    run = run_network(m, x, labels, circuit=_lif(), device="runtime", n_jobs=1, energy=True, progress=False,
                      profiles=["loihi"])
    v = validation_summary(run)
    assert v["class_agreement"] == 1.0 and v["spiking_accuracy"] == 1.0
    assert all(L["conditional_agreement_strict"] == 1.0 for L in v["layers"])
    assert v["mode"] == "biophysical" and v["tie_rule"]["name"] == "gradient"
    assert run.energy["totals"]["sops_per_image"] > 0


def test_all_equal_weights_lower_index_wins():
    m = equal_weights_model()
    x = _images(2, seed=1)
    r = _assert_exact(m, x, _run(m, x, _lif()))
    s = -np.sort(-r.layers[0].drive, axis=1)
    assert np.mean(s[:, 1] == s[:, 2]) > 0.5  # ties at the k-th drive are common: the test is not vacuous


def test_without_tie_heterogeneity_ties_over_select():
    """tie = none: exactly tied cells cross in the same step and all win (over-selection)."""
    m = equal_weights_model()
    x = _images(1, seed=1)
    sp = _run(m, x, _lif(**{"network.tie": "none"}))
    assert sp.layers[0].winners.sum() > reference.forward(m, x).layers[0].winners.sum()


def test_weight_rule_and_bound():
    """w = level x G_l with G_l = (V_th - V_rest) / (B_l + Delta_l + 1): no drive reaches threshold
    before its race starts; the tie gradient spans less than one drive unit."""
    plan = plan_bio(tiny_model(0), _lif())
    for bl in plan.layers:
        assert bl.G * (bl.B + bl.delta + 1) == pytest.approx(20e-3)
        assert bl.cap >= bl.cap2 >= 1
        assert bl.delta > bl.delta2 > 0
        assert bl.tie_offset.max() < 1.0


def test_inhibition_is_synaptic_not_linked():
    """Every state variable of the excitatory cells is their own (no linked variable); losers are
    silenced by Synapses from the interneurons onto the GABA conductance."""
    from hcs_neuro.brian import b2

    net = BioNetwork(tiny_model(0), _lif())
    b2.device.reinit()
    b2.set_device("runtime")
    h = net.build(b2, 1)
    for name, var in h.E.variables.items():
        owner = getattr(var, "owner", None)
        if owner is not None and hasattr(owner, "name") and name not in ("t", "dt", "t_in_timesteps", "N"):
            assert owner.name == h.E.name, f"{name} belongs to {owner.name}"
    ie = [o for o in h.network.objects if isinstance(o, b2.Synapses) and o.source is h.I and o.target is h.E]
    assert len(ie) == 1 and "g_inh_post" in ie[0].pre.code
    assert not any(isinstance(o, b2.Synapses) and "count_g" in str(getattr(o, "pre", "")) and o.target is h.I
                   for o in h.network.objects)


def test_noise_lowers_agreement_same_seed_same_spikes():
    """Membrane noise (sigma_v = 2 mV, far above a tie step) lowers layer 0's per-cell agreement,
    averaged over three seeds: the noisy mean must be at least 0.05 below the noise-free 1.0.
    The same seed gives the same spikes."""
    m = tiny_model(0)
    x = _images(2, seed=5)
    r = reference.forward(m, x)
    noisy = _lif(**{"neuron.sigma_v": "2 mV"})
    agree = [np.mean(_run(m, x, noisy, seed=s).layers[0].winners == r.layers[0].winners) for s in (1, 2, 3)]
    assert np.mean(agree) <= 0.95
    a, b = _run(m, x, noisy, seed=7), _run(m, x, noisy, seed=7)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.first_spike_ms, lb.first_spike_ms)


def test_bad_circuit_files_refused(tmp_path):
    text = circuit_text("lif_net")[0]

    def refused(name, new_text, match, plan=False):
        f = tmp_path / f"{name}.toml"
        f.write_text(new_text)
        assert new_text != text
        with pytest.raises(ConfigError, match=match) as e:
            c = load_network_circuit(str(f))
            if plan:
                plan_bio(tiny_model(0), c)
        assert len(str(e.value).splitlines()) == 1

    refused("no_inter", text.replace("[interneuron]", "[interneuronX]"), r"unknown section \[interneuronX\]")
    refused("no_inter2", text.replace("[interneuron]\nequations = \"\"\"\ncount : 1\n\"\"\"\n", ""),
            r"missing section \[interneuron\]")
    refused("no_kinetics", text.replace('tau_syn = "2 ms"\n', "").replace("/ tau_syn", "/ tau_m"), "tau_syn")
    refused("units", text.replace('tau_inh = "5 ms"', 'tau_inh = "5 mV"'), "tau_inh must be a time")
    refused("uncited", text.replace('"neuron.tau_inh" =', '"neuron.tau_inhX" ='), "neuron.tau_inh needs a citation")
    refused("field", text.replace("[network]\n", "[network]\nspeed = 3\n"), "unknown field network.speed")
    refused("tie", text.replace('tie = "gradient"', 'tie = "alphabetical"'), "network.tie")
    refused("latency", text.replace('delay_ie = "0 ms"', 'delay_ie = "0.5 ms"'), "fine_steps_per_tick", plan=True)
    with pytest.raises(ConfigError, match="single-hypercolumn circuit"):
        f = tmp_path / "single.toml"
        f.write_text(circuit_text("lif_kwta")[0])
        load_network_circuit(str(f))
    with pytest.raises(ConfigError, match="neuron.tau_m must be a time"):
        _lif(**{"neuron.tau_m": "3 mV"})


def test_network_too_large_is_refused_before_build(monkeypatch):
    monkeypatch.setenv("HCS_NEURO_MEMORY_LIMIT_MB", "0.01")
    with pytest.raises(ConfigError, match=r"network too large: estimated .* MB"):
        make_network(tiny_model(0), "lif_net")


@pytest.mark.parametrize("policy", ["gated", "event"])
def test_biophysical_networks_refuse_gated_and_event_updates(policy):
    """The biophysical circuits run every cell at every step: only the clock policy is honest."""
    with pytest.raises(ConfigError, match=f"--updates {policy}: the biophysical circuit .* only 'clock'"):
        make_network(tiny_model(0), "lif_net", policy)
    assert make_network(tiny_model(0), "lif_net", "clock").updates == "clock"


@pytest.mark.parametrize("n_images", [1, 2])
def test_long_image_periods_are_read_out_to_the_last_image(n_images):
    """T = 10,000 steps per image (cond_net has 20,000): the run's one extra step used to fall within
    Brian2's Clock.epsilon_dt of the image clock, which then skipped the tick that reads the last
    image's interneuron counters (a broadcast error, depending on the hash seed)."""
    m = tiny_model(0)
    x = _images(n_images)
    circuit = load_network_circuit("lif_net").with_overrides({"network.t_image": "1000 ms"})
    assert make_network(m, circuit).plan.steps_per_image == 10_000
    sp = _run(m, x, circuit)
    _assert_exact(m, x, sp)
    assert np.all(np.isfinite(sp.decision_latency_ms))


@pytest.mark.parametrize("name", ["lif_net", "lif_pool_net", "cond_net"])
def test_a_run_is_short_enough_for_its_two_clocks_to_tick_together(name):
    """cpp_standalone calls two clocks simultaneous within 1e-14 s: up to max_chunk images per run,
    every onset of the image clock (k x T dt) equals the step clock's (k T x dt) within that; a
    chunk of 200 images of 400 ms (k = 192, 197) did not, and those two images went silent."""
    net = make_network(tiny_model(0), name)
    T, dt = net.plan.steps_per_image, net.plan.dt
    assert net.max_chunk * T * dt <= BioNetwork.MAX_RUN_S
    assert all(abs(k * (T * dt) - (k * T) * dt) <= 1e-14 for k in range(net.max_chunk + 1))
    assert any(abs(k * (4000 * 1e-4) - (k * 4000) * 1e-4) > 1e-14 for k in (192, 197))  # the failure seen


def test_cond_net_plans_with_its_delays():
    """cond_net: 0.5 ms synaptic delays need 11 steps per tie step; drives are currents (x g_L)."""
    plan = plan_bio(tiny_model(0), load_network_circuit("cond_net"))
    assert all(bl.n_f == 11 for bl in plan.layers)
    assert plan.summary["brake_delay_steps"] == 5


@pytest.mark.slow
@pytest.mark.standalone
def test_standalone_equals_runtime():
    """cpp_standalone (compiled once, rerun via run_args) and the runtime device give identical spikes."""
    m = tiny_model(1)
    x = _images(2, seed=2)
    c = _lif()  # noise-free: the two devices draw random numbers from different generators
    rt = _run(m, x, c, seed=4)
    sa = simulate(m, x, circuit=c, n_jobs=1, chunk=2, seed=4, progress=False)
    for la, lb in zip(rt.layers, sa.layers):
        np.testing.assert_array_equal(la.first_spike_ms, lb.first_spike_ms)
    v = validate(m, x, reference.forward(m, x).pred, sa)
    assert v["class_agreement"] == 1.0


def test_cli_simulate_maps_lif_kwta_to_its_network_form(tmp_path, capsys):
    """``hcs-neuro simulate --circuit lif_kwta`` runs lif_net (runtime device, one digits image) and
    the JSON names the mode, the tie rule, the protocol and the numerical methods."""
    import json

    from hcs_neuro.cli import main

    js = tmp_path / "s.json"
    status = main(["simulate", "digits_hcs", "--dataset", "digits", "--n-images", "1", "--circuit", "lif_kwta",
                   "--device", "runtime", "--no-progress", "--json", str(js)])
    out = capsys.readouterr().out
    assert status == 0 and "circuit lif_net" in out
    meta = json.loads(js.read_text())["metadata"]
    assert meta["mode"] == "biophysical" and meta["tie_rule"]["name"] == "gradient"
    assert meta["protocol"] and meta["numerical_methods"]
    assert meta["count_basis"]["spikes"]["basis"] == "counted"


def test_network_sweep_spec_sweeps_circuit_fields(tmp_path):
    """The sweeps' network target takes a biophysical circuit and its dotted fields as parameters;
    a value the circuit refuses fails when the spec is loaded."""
    from pathlib import Path

    import hcs_neuro.sweep.targets.network  # noqa: F401  (registers the target)
    from hcs_neuro.sweep.spec import load_sweep_spec

    spec = load_sweep_spec(Path(__file__).parents[1] / "analysis" / "sweeps" / "network_noise.toml")
    assert spec.parameters[0].name == "neuron.sigma_v" and spec.parameters[0].unit == "mV"
    assert spec.target_cfg["circuit"] == "lif_net"
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nname = "b"\nmetrics = ["class_agreement"]\n[target]\nkind = "network"\n'
                   'model = "digits_hcs"\ncircuit = "lif_net"\n[parameters]\n"neuron.tau_syn" = ["0 ms", "2 ms"]\n')
    with pytest.raises(ConfigError, match="tau_syn"):
        load_sweep_spec(bad)

"""The spiking network reproduces the reference exactly (ties included), on Brian2's runtime
device (NumPy code generation, no compiler); its counts (circuit events, interneuron spikes,
neuron updates under each policy) are held against the NumPy specification of the race
(:func:`hcs_neuro.brian.race.ladder_race`) and against independent monitors. cpp_standalone is
exercised end to end by tests/test_network_cli.py (and tests/test_race_standalone.py, slow)."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.brian import b2
from hcs_neuro.brian.race import RaceNetwork, ladder_race, plan_network
from hcs_neuro.brian.session import NetworkRunner, simulate
from hcs_neuro.core import reference
from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.circuit_file import RaceParams, load_race_circuit
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.model import random_model
from hcs_neuro.core.spiking_result import count_basis
from hcs_neuro.core.topology import output_fan_out
from hcs_neuro.core.updates import count_updates

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


def _spec(model, images, plan, r):
    """Per image and layer, the race of every hypercolumn by the NumPy specification
    (ladder_race) on the reference's drives: steps, probes, replies, the cells that receive
    feed-forward input, and the event-policy updates."""
    n = len(images)
    prev = reference.quantize_input(model, images).reshape(n, -1)
    out = []
    for i, lp in enumerate(plan.layers):
        drive = r.layers[i].drive.reshape(n, -1)
        C, H = lp.n_channels, lp.n_hypercolumns
        rec = {k: np.zeros(n, np.int64) for k in ("steps", "probes", "received", "hit", "last", "inh_event")}
        for b in range(n):
            d = drive[b].reshape(C, H)
            rec["hit"][b] = np.unique(lp.post[prev[b, lp.pre] > 0]).size
            for h in range(H):
                score = d[:, h] * C + (C - 1 - np.arange(C))
                el = d[:, h] > 0 if lp.positive_only else np.ones(C, bool)
                _, probes, received = ladder_race(score, el, lp.k, lp.theta0, lp.floor, lp.g0,
                                                  plan.race.refine_factor, plan.race.rungs)
                steps = len(probes)
                last = steps == lp.window_steps  # decided in the window's last step
                rec["steps"][b] += steps
                rec["probes"][b] += sum(probes)
                rec["received"][b] += sum(received)
                rec["last"][b] += received[-1] if last else 0
                rec["inh_event"][b] += steps + (0 if last else 1)
        rec["event"] = rec["hit"] + rec["received"] + lp.n_cells - rec["last"] + rec["inh_event"]
        out.append(rec)
        prev = r.layers[i].output.reshape(n, -1)
    return out


@pytest.mark.parametrize("updates", ["clock", "event"])
def test_tiny_model_exact_agreement_and_counts_runtime(updates):
    """Random images through a random tiny model: identical winners in every layer and class;
    SOPs, circuit events, interneuron spikes and neuron updates counted in the simulation equal
    the specification (reference drives through ladder_race) image by image."""
    m = tiny_model(0)
    x = _images(3)
    sp = simulate(m, x, device="runtime", progress=False, updates=updates)
    r = _assert_exact(m, x, sp)
    plan = plan_network(m)
    # SOPs = reference winners x analytic fan-out, layer by layer, image by image (winners agree here)
    for i, rl in enumerate(r.layers[:-1]):
        fan = output_fan_out(m, i)
        analytic = rl.winners.reshape(len(x), -1).astype(np.int64) @ fan.reshape(-1)
        np.testing.assert_array_equal(sp.layers[i].sops, analytic)
    levels = reference.quantize_input(m, x)
    np.testing.assert_array_equal(sp.input_spike_counts, (levels > 0).astype(np.int64))  # counted (monitor)
    np.testing.assert_array_equal(sp.input_sops,
                                  (levels > 0).reshape(len(x), -1) @ output_fan_out(m, -1).reshape(-1))
    assert sp.layers[0].n_synapses == plan.layers[0].n_synapses
    # decision latency: inside the readout's race window (ms = steps x dt)
    lo = plan.layers[-1].race_start * plan.race.dt_ms
    hi = plan.layers[-1].race_end * plan.race.dt_ms
    assert np.all((sp.decision_latency_ms >= lo - 1e-9) & (sp.decision_latency_ms < hi))
    # winners' first spikes (their first probe) lie inside their layer's race window
    for sl, lp in zip(sp.layers, plan.layers):
        t = sl.first_spike_ms[sl.winners]
        assert np.all((t >= lp.race_start * plan.race.dt_ms - 1e-9) & (t < lp.race_end * plan.race.dt_ms))
        assert np.all(np.isnan(sl.first_spike_ms[~sl.winners]))
    # counted circuit events against the specification
    spec = _spec(m, x, plan, r)
    for i, (sl, lp, rec) in enumerate(zip(sp.layers, plan.layers, spec)):
        np.testing.assert_array_equal(sl.interneuron_spikes, rec["steps"], err_msg=f"layer {i}")
        np.testing.assert_array_equal(sl.sops_circuit, rec["probes"] + rec["received"], err_msg=f"layer {i}")
        if updates == "event":
            np.testing.assert_array_equal(sl.neuron_updates, rec["event"], err_msg=f"layer {i}")
        else:  # every group ran at every step of the image period (ticks counted by a monitor)
            np.testing.assert_array_equal(sl.neuron_updates, (lp.n_cells + lp.n_hypercolumns) * plan.steps_per_image)
    basis = count_basis(sp)
    assert basis["neuron_updates"]["basis"] == "counted" and basis["neuron_updates"]["policy"] == updates
    assert {basis[k]["basis"] for k in ("input_spikes", "spikes", "interneuron_spikes", "sops_circuit")} == {"counted"}
    assert basis["sops"]["basis"] == basis["input_sops"]["basis"] == "computed"  # counted spikes x fan-out
    for v, lp, rec in zip(sp.metadata["update_counts_per_layer"], plan.layers, spec):
        assert v["event"] == pytest.approx(rec["event"].mean())
        assert v["active_steps"] == (plan.steps_per_image if updates == "clock" else lp.window_steps)


def test_gated_run_skips_idle_layers_and_changes_nothing_else():
    """The gated schedule runs each layer's groups in its window only (ticks = window steps) and
    gives the same spikes, circuit events and event counts as the clocked run."""
    m = tiny_model(1)
    x = _images(2, seed=2)
    clock = simulate(m, x, device="runtime", progress=False, updates="clock")
    gated = simulate(m, x, device="runtime", progress=False, updates="gated")
    _assert_exact(m, x, gated)
    plan = plan_network(m)
    for a, b, lp in zip(clock.layers, gated.layers, plan.layers):
        for f in ("spike_counts", "first_spike_ms", "interneuron_spikes", "sops", "sops_circuit"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        np.testing.assert_array_equal(b.neuron_updates, (lp.n_cells + lp.n_hypercolumns) * lp.window_steps)
        np.testing.assert_array_equal(a.neuron_updates, (lp.n_cells + lp.n_hypercolumns) * plan.steps_per_image)
    np.testing.assert_array_equal(clock.decision_latency_ms, gated.decision_latency_ms)
    assert [v["event"] for v in clock.metadata["update_counts_per_layer"]] == \
        [v["event"] for v in gated.metadata["update_counts_per_layer"]]
    assert count_basis(gated)["neuron_updates"]["policy"] == "gated"


def equal_weights_model():
    """The tiny model with every weight level 1 and every bias 0: exact ties in every hypercolumn."""
    arch = load_architecture(TINY)
    m = random_model(arch, seed=3)
    for i, spec in enumerate(arch.layers):
        if spec.has_weights:
            m.layers[i].weight_levels = np.ones_like(m.layers[i].weight_levels)
            m.layers[i].bias_levels = np.zeros_like(m.layers[i].bias_levels)
    return m


def test_exact_ties_follow_lower_index_rule():
    """All weights equal: every channel of a hypercolumn has the same drive (exact ties
    everywhere); the circuit must pick the k lowest channel indices, as the reference."""
    m = equal_weights_model()
    x = _images(2, seed=1)
    sp = simulate(m, x, device="runtime", progress=False)
    r = _assert_exact(m, x, sp)
    # the test is not vacuous: ties at the k-th drive are everywhere in layer 0
    d = r.layers[0].drive
    assert (d[:, 0] == d[:, 5]).all()


@pytest.mark.parametrize("race", [
    RaceParams(refine_factor=2),                             # 8 rungs, finer refinement
    RaceParams(refine_factor=4, rungs=1),                    # the one-way falling threshold
    RaceParams(refine_factor=4, rungs=3, max_levels=1),      # coarse descents (broadcasts), ceil(f/M) = 2
    RaceParams(float32=True),                                # float32 state: exact below 2**24 (checked)
], ids=["f2", "one-way", "descents", "float32"])
def test_other_ladders_change_timing_not_winners(race):
    """Other ladders: different race schedules (and counts), the same (exact) winners; the
    counted events still follow the specification (descents broadcast to every cell)."""
    m = tiny_model(2)
    x = _images(2, seed=4)
    sp = simulate(m, x, device="runtime", progress=False, circuit=race, updates="event")
    r = _assert_exact(m, x, sp)
    plan = plan_network(m, race)
    for sl, rec in zip(sp.layers, _spec(m, x, plan, r)):
        np.testing.assert_array_equal(sl.interneuron_spikes, rec["steps"])
        np.testing.assert_array_equal(sl.sops_circuit, rec["probes"] + rec["received"])
        np.testing.assert_array_equal(sl.neuron_updates, rec["event"])


def test_multi_bit_activities_emit_their_level():
    """2-bit activities: each winner's spike carries its level (ceil(drive / step), clipped)."""
    arch = load_architecture(dict(TINY, precision={"weight_bits": 2, "act_bits": 2}))
    m = random_model(arch, seed=5)
    x = _images(2, seed=6)
    sp = simulate(m, x, device="runtime", progress=False)
    _assert_exact(m, x, sp)


def test_builtin_race_circuit_loads():
    race = load_race_circuit()
    assert race.name == "network_race" and race.dt_ms == pytest.approx(0.1) and race.refine_factor >= 2
    assert race.rungs == 8


def test_unknown_update_policy_is_refused():
    with pytest.raises(ConfigError, match="updates"):
        simulate(tiny_model(0), _images(1), device="runtime", progress=False, updates="sometimes")


@pytest.mark.parametrize("updates", ["gated", "clock"])
def test_event_counters_equal_the_union_of_monitored_events(updates):
    """The event-policy figure comes from the interneurons' counters (written by the synapses that
    carry the events). Recorded independently here with extra monitors -- presynaptic spikes
    expanded through the synapse table (feed-forward receipts), probes, the interneurons' graded
    spikes (with their broadcast flag) and 'clean' events -- the union of (neuron, step) pairs per
    image (count_updates) must equal it, layer by layer, image by image. Ticks: every step of the
    image period (clock) or of the layer's window (gated)."""
    race = RaceParams(refine_factor=4, rungs=3, max_levels=1)  # descents too: broadcasts
    m = tiny_model(4)
    x = _images(2, seed=7)
    lv = reference.quantize_input(m, x).reshape(2, -1)
    network = RaceNetwork(m, race, updates=updates)
    plan = network.plan
    T = plan.steps_per_image
    runner = NetworkRunner(network, 2, device="runtime", levels=lv)
    try:
        h = runner.h
        extra = []
        for L in range(len(plan.layers)):
            mp = b2.EventMonitor(h.exc[L], "probe", variables=[], when="end", name=f"t_probe{L}")
            mi = b2.EventMonitor(h.inh[L], "spike", variables=["bcast"], when="end", name=f"t_inh{L}")
            h.network.add(mp, mi)
            h.layer_objects[L] += [mp, mi]
            extra.append((mp, mi))
        out = runner.run(lv)
        dt = plan.race.dt_ms * 1e-3

        def steps(mon):
            return np.rint(np.asarray(mon.t_) / dt).astype(np.int64)

        pre_t, pre_i = steps(h.mon_in), np.asarray(h.mon_in.i_)
        n_broadcasts = 0
        for L, lp in enumerate(plan.layers):
            C, H = lp.n_channels, lp.n_hypercolumns
            mp, mi = extra[L]
            imgs, stps, cells = [], [], []
            # feed-forward receipts: every synapse of every monitored presynaptic spike
            for t, i in zip(pre_t, pre_i):
                post = lp.post[lp.pre == i]
                imgs.append(np.full(post.size, t // T)), stps.append(np.full(post.size, t)), cells.append(post)
            # probes (each answered in its step), broadcasts of a descended ladder, the reset
            pt = steps(mp)
            imgs.append(pt // T), stps.append(pt), cells.append(np.asarray(mp.i_))
            it, ih, bc = steps(mi), np.asarray(mi.i_), np.asarray(mi.bcast) > 0.5
            ct, chc = steps(h.mon_clean[L]), np.asarray(h.mon_clean[L].i_)
            for t, hc in list(zip(it[bc], ih[bc])) + list(zip(ct, chc)):
                cs = np.arange(C) * H + hc
                imgs.append(np.full(C, t // T)), stps.append(np.full(C, t)), cells.append(cs)
            exc = count_updates("event", 2, event_image=np.concatenate(imgs), event_step=np.concatenate(stps),
                                event_neuron=np.concatenate(cells))
            inh = count_updates("event", 2, event_image=np.concatenate([it // T, ct // T]),
                                event_step=np.concatenate([it, ct]), event_neuron=np.concatenate([ih, chc]))
            o = out["layers"][L]
            np.testing.assert_array_equal(o["nhit"] + o["n_rcv"] + lp.n_cells - o["nlast"], exc, err_msg=f"layer {L}")
            np.testing.assert_array_equal(o["n_ev"] + o["inh_last"], inh, err_msg=f"layer {L}")
            np.testing.assert_array_equal(o["n_probe"], np.bincount(pt // T, minlength=2))
            np.testing.assert_array_equal(o["n_ev"], np.bincount(it // T, minlength=2))
            np.testing.assert_array_equal(o["ticks"], T if updates == "clock" else lp.window_steps)
            n_broadcasts += int(bc.sum())
            pre_t, pre_i = steps(h.mon_emit[L]), np.asarray(h.mon_emit[L].i_)
        assert n_broadcasts > 0  # not vacuous: descents broadcast the ladder
    finally:
        runner.close()


def test_count_updates_rule():
    """One counting rule: ticks x neurons (clock, gated); distinct (neuron, step) pairs (event)."""
    np.testing.assert_array_equal(count_updates("gated", 3, n_neurons=5, tick_image=[0, 0, 2]), [10, 0, 5])
    ev = count_updates("event", 2, event_image=[0, 0, 0, 1], event_step=[3, 3, 4, 9], event_neuron=[1, 1, 1, 0])
    np.testing.assert_array_equal(ev, [2, 1])  # two events of neuron 1 in step 3 are one update
    np.testing.assert_array_equal(count_updates("event", 2, event_image=[], event_step=[], event_neuron=[]), [0, 0])
    with pytest.raises(ConfigError, match="updates"):
        count_updates("sometimes", 1)

# cpp_standalone (compiled once, two forked processes, padded last chunk) is exercised end to end by
# tests/test_network_cli.py::test_validate_shipped_digits_model_end_to_end (one compilation for the suite).

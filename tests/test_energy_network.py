"""Network-level spike, SOP, MAC and energy accounting (hcs_neuro.measure.energy.network_energy).

The spiking side is a synthetic :class:`SpikingResult` built from the reference forward pass the
way a correct spiking network behaves (every winner spikes once, the readout's decision unit
spikes once), with its synapses enumerated by brute force from the weight arrays; so the
analytic counts of ``network_energy`` are checked against an independent synapse list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hcs_neuro.core import reference
from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.topology import layer_fan_out
from hcs_neuro.measure.energy import network_energy, spiking_energy_pj
from hcs_neuro.measure.profiles import get_profile
from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.model import random_model
from hcs_neuro.core.spiking_result import SpikingLayer, SpikingResult

TINY_2D = {
    "name": "tiny2d",
    "input": {"shape": [1, 6, 6], "bits": 2},
    "precision": {"weight_bits": 2, "act_bits": 1},
    "hcs": {"k": 2},
    "layers": [
        {"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
        {"type": "pool2d", "kernel": 2},
        {"type": "conv2d", "channels": 6, "kernel": 2, "stride": 2, "padding": 1, "k": 3},
        {"type": "linear", "channels": 3},
    ],
}
TINY_1D = {
    "name": "tiny1d",
    "input": {"shape": [2, 9], "bits": 3},
    "precision": {"weight_bits": 3, "act_bits": 1},
    "hcs": {"k": 1},
    "layers": [
        {"type": "conv1d", "channels": 3, "kernel": 3},
        {"type": "pool1d", "kernel": 3, "stride": 2, "padding": 1},
        {"type": "linear", "channels": 2},
    ],
}


def tiny_model(spec=TINY_2D, seed=3):
    return random_model(load_architecture(spec), seed=seed)


def brute_force_synapses(model, i):
    """(pre, post) flat index pairs of every existing feed-forward synapse into layer i."""
    spec = model.architecture.layers[i]
    pre_shape, post_shape = spec.in_shape, spec.out_shape
    pairs = []
    if spec.type == "linear":
        w = np.asarray(model.layers[i].weight_levels)
        for o in range(w.shape[0]):
            for j in range(w.shape[1]):
                if w[o, j] != 0:
                    pairs.append((j, o))
        return np.array(pairs)
    nd = spec.spatial_dims
    in_sp, out_sp = pre_shape[1:], post_shape[1:]
    kern = (spec.kernel,) * nd
    if spec.type.startswith("conv"):
        w = np.asarray(model.layers[i].weight_levels)
        taps = [(o, c) + d for o in range(w.shape[0]) for c in range(w.shape[1])
                for d in np.ndindex(*kern) if w[(o, c) + d] != 0]
    else:
        taps = [(c, c) + d for c in range(pre_shape[0]) for d in np.ndindex(*kern)]
    for (o, c, *d) in taps:
        for pos in np.ndindex(*out_sp):
            src = tuple(p * spec.stride - spec.padding + dd for p, dd in zip(pos, d))
            if all(0 <= s < n for s, n in zip(src, in_sp)):
                pairs.append((np.ravel_multi_index((c,) + src, pre_shape),
                              np.ravel_multi_index((o,) + pos, post_shape)))
    return np.array(pairs)


def synthetic_spiking(model, ref, x_levels, *, dt_ms=0.1, phase_ms=5.0):
    """What a correct spiking network emits: one spike per winner, sops from explicit synapses."""
    arch = model.architecture
    n = len(x_levels)
    syn = [brute_force_synapses(model, i) for i in range(len(arch.layers))]

    def sops_of(counts, pairs):
        flat = counts.reshape(len(counts), -1)
        return flat[:, pairs[:, 0]].sum(axis=1).astype(np.int64) if len(pairs) else np.zeros(len(counts), np.int64)

    in_counts = (np.asarray(x_levels) > 0).astype(np.int64)  # "single" input coding
    layers = []
    for i, spec in enumerate(arch.layers):
        if spec.is_readout:
            winners = np.zeros((n,) + spec.out_shape, dtype=bool)
            winners[np.arange(n), ref.pred] = True
        else:
            winners = np.array(ref.layers[i].winners, dtype=bool)  # a copy: tests mutate it
        counts = winners.astype(np.int64)
        first = np.where(winners, (i + 1) * phase_ms - 1.0, np.nan)
        n_hc = int(np.prod(spec.out_shape[1:])) if not spec.is_readout else 1
        sops = sops_of(counts, syn[i + 1]) if i + 1 < len(arch.layers) else np.zeros(n, np.int64)
        n_exc = int(np.prod(spec.out_shape))
        steps = int(round(phase_ms / dt_ms))
        layers.append(SpikingLayer(
            spike_counts=counts, winners=winners, first_spike_ms=first,
            interneuron_spikes=np.full(n, n_hc, dtype=np.int64),
            sops=sops, sops_circuit=counts.reshape(n, -1).sum(1) + n_hc,  # E->I + I->E events (made up)
            neuron_updates=np.full(n, (n_exc + n_hc) * steps, dtype=np.int64),
            n_exc=n_exc, n_inh=n_hc, n_synapses=len(syn[i])))
    return SpikingResult(
        pred=np.asarray(ref.pred, dtype=np.int64), decision_latency_ms=np.full(n, len(arch.layers) * phase_ms - 1.0),
        input_spike_counts=in_counts, input_sops=sops_of(in_counts, syn[0]), layers=layers,
        dt_ms=dt_ms, window_ms=len(arch.layers) * phase_ms, wall_time_s=0.0,
        metadata={"input_coding": "single", "synthetic": True})


def _data(model, n=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((n,) + tuple(model.architecture.input_shape))
    ref = reference.forward(model, images)
    return images, ref, reference.quantize_input(model, images)


@pytest.mark.parametrize("spec", [TINY_2D, TINY_1D], ids=["2d", "1d"])
def test_fan_out_equals_explicit_synapse_list(spec):
    model = tiny_model(spec)
    for i, layer in enumerate(model.architecture.layers):
        pairs = brute_force_synapses(model, i)
        fan = layer_fan_out(model, i)
        expected = np.bincount(pairs[:, 0], minlength=int(np.prod(layer.in_shape))) if len(pairs) else 0
        np.testing.assert_array_equal(fan.reshape(-1), expected)
        if layer.has_weights:  # synapse count = non-zero weight instances reaching real outputs
            assert fan.sum() == len(pairs)


@pytest.mark.parametrize("spec", [TINY_2D, TINY_1D], ids=["2d", "1d"])
def test_sops_from_simulation_equal_analytic_when_winners_agree(spec):
    model = tiny_model(spec)
    images, ref, x = _data(model)
    spk = synthetic_spiking(model, ref, x)
    e = network_energy(model, ref, spk, input_levels=x)
    n_layers = len(model.architecture.layers)
    assert e["sop_check"] == {"n_image_layers_winners_agree": len(images) * n_layers,
                              "n_sop_mismatches_where_winners_agree": 0,
                              "sops_equal_where_winners_agree": True, "n_recount_mismatches": 0}
    for l in e["layers"]:
        assert l["sops_out_per_image"] == pytest.approx(l["sops_out_analytic_per_image"], abs=0)
        assert l["n_synapses_in"] == l["n_synapses_in_simulated"]
    assert e["input"]["sops_per_image"] == e["input"]["sops_analytic_per_image"]
    # binary activities, one spike per winner: SOPs into a layer = the reference's effective ops,
    # as counted independently by reference.evaluate
    ev = reference.evaluate(model, images, np.zeros(len(images), dtype=np.int64))
    for l, r in zip(e["layers"], ev["layers"]):
        assert l["sops_in_analytic_per_image"] == pytest.approx(r["effective_ops_per_image"], rel=1e-12)
        assert l["effective_ops_per_image"] == pytest.approx(r["effective_ops_per_image"], rel=1e-12)
    assert e["per_image"]["sops"] == (spk.total_sops()).tolist()
    assert e["per_image"]["spikes"] == (spk.total_spikes()).tolist()


def test_sop_check_excludes_disagreeing_images_and_catches_miscounts():
    model = tiny_model()
    images, ref, x = _data(model)
    spk = synthetic_spiking(model, ref, x)
    syn1 = brute_force_synapses(model, 1)  # synapses from layer 0 into the pool
    # image 0, layer 0: move one winner to a losing channel at the same location; recount its SOPs
    w = spk.layers[0].winners
    loc = np.argwhere(w[0].any(axis=0))[0]
    on = int(np.flatnonzero(w[0, :, loc[0], loc[1]])[0])
    off = int(np.flatnonzero(~w[0, :, loc[0], loc[1]])[0])
    w[0, on, loc[0], loc[1]], w[0, off, loc[0], loc[1]] = False, True
    spk.layers[0].spike_counts = w.astype(np.int64)
    spk.layers[0].sops[0] = spk.layers[0].spike_counts[0].reshape(-1)[syn1[:, 0]].sum()
    e = network_energy(model, ref, spk, input_levels=x)
    n_layers = len(model.architecture.layers)
    assert e["sop_check"]["n_image_layers_winners_agree"] == len(images) * n_layers - 1
    assert e["sop_check"]["sops_equal_where_winners_agree"] is True
    assert e["sop_check"]["n_recount_mismatches"] == 0
    # a counting bug on an image whose winners agree is caught by both checks
    spk.layers[2].sops[3] += 1
    e = network_energy(model, ref, spk, input_levels=x)
    assert e["sop_check"]["n_sop_mismatches_where_winners_agree"] == 1
    assert e["sop_check"]["sops_equal_where_winners_agree"] is False
    assert e["layers"][2]["sop_check"]["n_recount_mismatches"] == 1


def test_dense_ops_and_energy_totals_add_up():
    model = tiny_model()
    images, ref, x = _data(model)
    spk = synthetic_spiking(model, ref, x)
    e = network_energy(model, ref, spk, profiles=["loihi", "cmos45_fp32"], input_levels=x)
    assert set(e["energy"]) == {"loihi", "cmos45_fp32"}
    for i, l in enumerate(e["layers"]):  # dense ops: every real tap, zero weights included
        dense = model.architecture.layers[i]
        ones = random_model(model.architecture, seed=1)
        if dense.has_weights:
            ones.layers[i].weight_levels = np.ones(dense.weight_shape, dtype=np.int64)
        assert l["dense_ops_per_image"] == len(brute_force_synapses(ones, i))
    loihi = e["energy"]["loihi"]
    t = e["totals"]
    expect = spiking_energy_pj(get_profile("loihi"), sops=float(spk.total_sops().mean()),
                               spikes=float(spk.total_spikes().mean()),
                               neuron_updates=float(sum(l.neuron_updates.mean() for l in spk.layers)))
    assert loihi["per_image_pj"]["total_pj"] == pytest.approx(expect["total_pj"], rel=1e-12)
    assert t["sops_per_image"] == pytest.approx(spk.total_sops().mean(), rel=1e-12)
    parts = sum(p["total_pj"] for p in loihi["per_layer_pj"]) + loihi["input_pj"]
    assert parts == pytest.approx(loihi["per_image_pj"]["total_pj"], rel=1e-12)
    fp32 = e["energy"]["cmos45_fp32"]
    macs = sum(l["dense_ops_per_image"] for l in e["layers"] if l["op_kind"] == "mac")
    adds = sum(l["dense_ops_per_image"] for l in e["layers"] if l["op_kind"] == "add")
    assert fp32["per_image_pj"]["dense_pj"] == pytest.approx(macs * 4.6 + adds * 0.9)
    assert fp32["per_image_pj"]["effective_pj"] < fp32["per_image_pj"]["dense_pj"]


def test_analytic_only_without_simulation():
    model = tiny_model()
    images, ref, x = _data(model)
    e = network_energy(model, ref, None, profiles="loihi", input_levels=x)
    assert e["has_spiking"] is False and e["sop_check"] is None
    assert e["totals"]["sops_per_image"] is None
    spk = synthetic_spiking(model, ref, x)
    assert e["totals"]["sops_analytic_per_image"] == pytest.approx(
        float(spk.total_sops().mean() - sum(l.sops_circuit.mean() for l in spk.layers)), rel=1e-12)


def test_bad_inputs_are_clear_errors():
    model = tiny_model()
    images, ref, x = _data(model)
    spk = synthetic_spiking(model, ref, x)
    with pytest.raises(ConfigError, match="unknown energy profile 'tpu'"):
        network_energy(model, ref, spk, profiles=["tpu"])
    with pytest.raises(ConfigError, match="input coding 'morse'"):
        network_energy(model, ref, spk, input_coding="morse")
    other = tiny_model(TINY_1D)
    with pytest.raises(DataError, match="layers"):
        network_energy(other, ref, None)
    with pytest.raises(DataError, match="spiking result has 5 images"):
        short = synthetic_spiking(model, reference.forward(model, images[:5]), x[:5])
        network_energy(model, ref, short)
    with pytest.raises(DataError, match="input levels"):
        network_energy(model, ref, spk, input_levels=x[:3])


# ---------------------------------------------------------------------------------------------
# CLI: hcs-neuro energy (analytic mode needs no simulation; bad input fails before any output)
# ---------------------------------------------------------------------------------------------

DIGITS_LIKE = dict(TINY_2D, name="digits-like", input={"shape": [1, 8, 8], "bits": 4},
                   layers=[{"type": "conv2d", "channels": 8, "kernel": 3, "padding": 1},
                           {"type": "pool2d", "kernel": 2},
                           {"type": "linear", "channels": 10}])


@pytest.fixture()
def model_file(tmp_path):
    from hcs_neuro.core.model import save_model

    return save_model(random_model(load_architecture(DIGITS_LIKE), seed=5), tmp_path / "m.npz")


def test_cli_energy_analytic_writes_json_and_folder(model_file, tmp_path, capsys):
    import json

    from hcs_neuro.cli import main

    rc = main(["energy", str(model_file), "--dataset", "digits", "--n-images", "30", "--analytic",
               "--profile", "loihi", "--profile", "cmos45_lowprec", "--json", str(tmp_path / "e.json"),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "L0 conv2d" in text and "loihi" in text and "chip-level" in text
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["n_images"] == 30 and set(e["energy"]) == {"loihi", "cmos45_lowprec"}
    assert e["has_spiking"] is False
    assert e["totals"]["effective_ops_per_image"] == pytest.approx(e["totals"]["sops_analytic_per_image"])
    for name in ("energy.json", "energy.md", "energy.png", "sops.png"):
        assert (tmp_path / "out" / name).stat().st_size > 100


@pytest.mark.parametrize("args, message", [
    (["--dataset", "digits", "--profile", "tpu"], "unknown energy profile 'tpu'"),
    (["--dataset", "digits", "--n-images", "0"], "--n-images: 0"),
    (["--dataset", "imagenet"], "dataset = 'imagenet'"),
])
def test_cli_energy_bad_input_exit_2_no_output(model_file, tmp_path, capsys, args, message):
    from hcs_neuro.cli import main

    rc = main(["energy", str(model_file), "--analytic", "--out", str(tmp_path / "out"),
               "--json", str(tmp_path / "e.json")] + args)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("circuit, message", [
    (str(Path(__file__).parents[1] / "circuits" / "lif_kwta.toml"), "single-hypercolumn circuit (no [network] section)"),
    ("no_such_circuit", "no_such_circuit"),
])
def test_cli_energy_circuit_that_does_not_fit(model_file, tmp_path, capsys, circuit, message):
    from hcs_neuro.cli import main

    rc = main(["energy", str(model_file), "--dataset", "digits", "--circuit", circuit,
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_energy_model_that_does_not_fit_the_dataset(tmp_path, capsys):
    from hcs_neuro.cli import main
    from hcs_neuro.core.model import save_model

    fashion_like = dict(DIGITS_LIKE, input={"shape": [1, 28, 28], "bits": 4})
    path = save_model(random_model(load_architecture(fashion_like), seed=0), tmp_path / "f.npz")
    rc = main(["energy", str(path), "--dataset", "digits", "--analytic", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "(1, 8, 8)" in err and "(1, 28, 28)" in err
    assert not (tmp_path / "out").exists()
    rc = main(["energy", "no-such-model", "--dataset", "digits", "--analytic"])
    assert rc == 2 and "not a shipped model" in capsys.readouterr().err


def test_cli_energy_simulated_counts_match_analytic(tmp_path, capsys):
    """The shipped digits model simulated (runtime device, no compile): every layer's winners agree,
    so simulated SOPs equal the analytic count image by image, and so do the spikes."""
    import json

    from hcs_neuro.cli import main

    rc = main(["energy", "digits_hcs", "--dataset", "digits", "--n-images", "6", "--device", "runtime",
               "--no-progress", "--profile", "loihi", "--json", str(tmp_path / "e.json")])
    assert rc == 0, capsys.readouterr().err
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["has_spiking"] is True
    assert e["sop_check"]["n_image_layers_winners_agree"] == 6 * len(e["layers"])
    assert e["sop_check"]["sops_equal_where_winners_agree"] is True
    assert e["sop_check"]["n_recount_mismatches"] == 0
    assert e["totals"]["sops_feedforward_per_image"] == pytest.approx(e["totals"]["sops_analytic_per_image"],
                                                                      rel=1e-12)
    for l in e["layers"]:
        assert l["sops_in_per_image"] == l["sops_in_analytic_per_image"]
        assert l["spikes_per_image"] == l["spikes_analytic_per_image"]
        assert l["n_synapses_in_simulated"] == l["n_synapses_in"]  # synapses = non-zero weight instances
        assert l["neuron_updates_per_image"] > 0
    loihi = e["energy"]["loihi"]["per_image_pj"]
    assert loihi["total_pj"] == pytest.approx(loihi["synaptic_ops_pj"] + loihi["spikes_pj"]
                                              + loihi["neuron_updates_pj"])


def test_merge_energy_of_blocks_equals_energy_of_all_images():
    from hcs_neuro.measure.energy import merge_energy

    model = tiny_model()
    images, ref, x = _data(model, n=11)
    spk = synthetic_spiking(model, ref, x)
    whole = network_energy(model, ref, spk, input_levels=x)
    parts = []
    for lo, hi in ((0, 4), (4, 5), (5, 11)):
        r = reference.forward(model, images[lo:hi])
        parts.append(network_energy(model, r, synthetic_spiking(model, r, x[lo:hi]), input_levels=x[lo:hi]))
    merged = merge_energy(parts)

    def close(a, b, where="root"):
        if isinstance(a, dict):
            assert set(a) == set(b), where
            for k in a:
                close(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (u, v) in enumerate(zip(a, b)):
                close(u, v, f"{where}[{i}]")
        elif isinstance(a, float):
            assert a == pytest.approx(b, rel=1e-12, abs=1e-9), where
        else:
            assert a == b, where

    close(merged, whole)
    with pytest.raises(ValueError):
        merge_energy([whole, network_energy(tiny_model(seed=4), ref, None, input_levels=x)])


def test_cli_energy_blocks_equal_one_pass(model_file, tmp_path):
    import json

    from hcs_neuro.cli import main

    for name, extra in (("one", []), ("blocks", ["--block", "7"])):
        assert main(["energy", str(model_file), "--dataset", "digits", "--n-images", "20", "--analytic",
                     "--json", str(tmp_path / f"{name}.json"), "--no-progress"] + extra) == 0
    one, blocks = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "blocks"))
    assert blocks["n_images"] == one["n_images"] == 20
    assert blocks["per_image"] == one["per_image"]
    for a, b in zip(one["layers"], blocks["layers"]):
        assert a["sops_out_analytic_per_image"] == pytest.approx(b["sops_out_analytic_per_image"], rel=1e-12)
        assert a["effective_ops_per_image"] == pytest.approx(b["effective_ops_per_image"], rel=1e-12)


def test_multibit_activities_follow_the_coding():
    """Multi-bit layers: one spike per active unit ("single", as simulate does) or level spikes ("count")."""
    spec = dict(TINY_2D, name="multibit", precision={"weight_bits": 2, "act_bits": 2})
    model = tiny_model(spec)
    images, ref, x = _data(model)
    assert ref.layers[0].output.max() > 1  # the test needs levels above 1
    spk = synthetic_spiking(model, ref, x)  # one spike per winner, "single" coding
    e = network_energy(model, ref, spk, input_levels=x)
    assert e["input_coding"] == "single" and e["sop_check"]["sops_equal_where_winners_agree"] is True
    c = network_energy(model, ref, spk, input_levels=x, input_coding="count")
    assert c["sop_check"]["sops_equal_where_winners_agree"] is False
    lvl = ref.layers[0].output
    fan = layer_fan_out(model, 1)
    assert c["layers"][0]["sops_out_analytic_per_image"] == pytest.approx(
        float((lvl.reshape(len(lvl), -1) @ fan.reshape(-1)).mean()))


def test_own_precision_profile_matches_the_arithmetic():
    from hcs_neuro.measure.energy import own_precision_profile

    def arch(**prec):
        return load_architecture(dict(TINY_2D, precision=dict({"weight_bits": 2, "act_bits": 1}, **prec)))

    assert own_precision_profile(arch()) == "cmos45_lowprec"  # ternary weights: sign-controlled adds
    assert own_precision_profile(arch(weight_bits=8)) == "cmos45_int8"  # 8-bit weights x 2-bit input
    assert own_precision_profile(arch(weight_bits=4, act_bits=2)) == "cmos45_int8"
    assert own_precision_profile(arch(weight_bits=32)) == "cmos45_fp32"
    assert own_precision_profile(arch(act_bits=32)) == "cmos45_fp32"


def test_every_count_is_labelled_and_counted_ones_equal_the_simulation_arrays():
    """The shipped digits model simulated (runtime device): every count of the energy JSON names its
    basis; each one labelled "counted" equals the simulation's own arrays (SpikingResult, filled from
    the monitors) image-mean for image-mean, and each computed one equals the formula its label names."""
    from hcs_neuro.core.reference import quantize_input
    from hcs_neuro.core.spiking_result import count_basis
    from hcs_neuro.pipeline import load_images, resolve_model, run_network

    model = resolve_model("digits_hcs")
    images, _labels = load_images(model, "digits", "test", None, 4)
    run = run_network(model, images, device="runtime", n_jobs=1, validate=False, energy=True, keep_first=True,
                      progress=False, profiles=["cmos45_snn", "cmos45_lowprec"])
    _x, _y, _ref, spk = run.first_block
    e = run.energy
    n = spk.n_images
    table = e["count_basis"]
    for section in ("input", "totals"):  # every count says how it was obtained
        for key, value in e[section].items():
            if key.endswith("_per_image") and value is not None:
                assert f"{section}.{key}" in table, key
    for key, value in e["layers"][0].items():
        if key.endswith("_per_image") and value is not None:
            assert f"layers.{key}" in table, key
    assert count_basis(spk)["spikes"]["basis"] == "counted"

    def flat(a):
        return np.asarray(a).reshape(n, -1).sum(1)

    sim = {  # every simulation count of the JSON and the SpikingResult array it must equal
        "input.spikes_per_image": flat(spk.input_spike_counts),
        "totals.input_spikes_per_image": flat(spk.input_spike_counts),
        "input.sops_per_image": np.asarray(spk.input_sops),
        "totals.excitatory_spikes_per_image": sum(flat(l.spike_counts) for l in spk.layers),
        "totals.interneuron_spikes_per_image": sum(np.asarray(l.interneuron_spikes) for l in spk.layers),
        "totals.neuron_updates_per_image": sum(np.asarray(l.neuron_updates) for l in spk.layers),
        "totals.sops_circuit_per_image": sum(np.asarray(l.sops_circuit) for l in spk.layers),
        "totals.sops_per_image": spk.total_sops(), "totals.spikes_per_image": spk.total_spikes(),
    }
    for key, arr in sim.items():
        section, name = key.split(".")
        assert e[section][name] == pytest.approx(float(np.mean(arr)), rel=1e-12), key
    per_layer = {"spikes_per_image": lambda l: flat(l.spike_counts),
                 "interneuron_spikes_per_image": lambda l: l.interneuron_spikes,
                 "sops_out_per_image": lambda l: l.sops, "sops_circuit_per_image": lambda l: l.sops_circuit,
                 "neuron_updates_per_image": lambda l: l.neuron_updates}
    for key, f in per_layer.items():
        for entry, layer in zip(e["layers"], spk.layers):
            assert entry[key] == pytest.approx(float(np.mean(f(layer))), rel=1e-12), key
    np.testing.assert_array_equal(e["per_image"]["spikes"], spk.total_spikes())
    checked = set(sim) | {f"layers.{k}" for k in per_layer} | {"per_image.spikes"}
    counted = {k for k, v in table.items() if v["basis"] == "counted"}
    assert counted and counted <= checked, counted - checked  # nothing labelled counted goes unchecked
    # computed ones: the formula their label names
    levels = quantize_input(model, images)
    assert table["input.spikes_per_image"]["basis"] == "counted"  # the race's input spike monitor
    np.testing.assert_array_equal(flat(spk.input_spike_counts), flat(levels > 0))
    np.testing.assert_array_equal(spk.input_sops, flat((levels > 0) * layer_fan_out(model, 0)))
    for i, layer in enumerate(spk.layers[:-1]):
        np.testing.assert_array_equal(layer.sops, flat(layer.spike_counts * layer_fan_out(model, i + 1)))
    nu = table["layers.neuron_updates_per_image"]
    assert nu["basis"] == "counted" and nu["policy"] == "clock"  # the default policy, counted from ticks
    if nu.get("policy") == "clock":  # every cell at every step of the schedule
        steps = spk.metadata["plan"]["steps_per_image"]
        for layer in spk.layers:
            np.testing.assert_array_equal(layer.neuron_updates, (layer.n_exc + layer.n_inh) * steps)


def test_neuron_updates_are_labelled_with_their_policy():
    """The energy dict prices the neuron updates counted under the run's policy and labels them
    (count_basis: counted, with the policy and how); gated and event count fewer than clock and
    Loihi prices exactly the counted figure."""
    from hcs_neuro.brian.session import simulate

    model = tiny_model()
    images, ref, x = _data(model, n=2)
    totals = {}
    for policy in ("clock", "gated", "event"):
        sp = simulate(model, images, device="runtime", progress=False, updates=policy)
        e = network_energy(model, ref, sp, profiles=["loihi"], input_levels=x)
        nu = e["count_basis"]["layers.neuron_updates_per_image"]
        assert nu["basis"] == "counted" and nu["policy"] == policy and nu["how"]
        t = e["totals"]["neuron_updates_per_image"]
        assert t == pytest.approx(sum(float(l.neuron_updates.mean()) for l in sp.layers))
        assert e["energy"]["loihi"]["per_image_pj"]["neuron_updates_pj"] == pytest.approx(t * 52.0)
        totals[policy] = t
    assert totals["gated"] < totals["clock"] and totals["event"] < totals["clock"]

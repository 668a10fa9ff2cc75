"""The one energy model (hcs_neuro.measure.energy): data movement for both sides, the comparison with
and without it, the break-even activity, and the basis of every count.

The spiking side is the synthetic result of test_energy_network (every winner spikes once, SOPs
from an explicit synapse list); the memory accesses are recounted here by brute force from those
counts and the architecture, independently of the pricing code.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_energy_network import _data, synthetic_spiking, tiny_model

from hcs_neuro.core.errors import DataError
from hcs_neuro.core.spiking_result import COUNT_BASIS_KEY, DEFAULT_COUNT_BASIS, count_basis
from hcs_neuro.measure.energy import (
    break_even,
    break_even_summary,
    layer_arrays,
    merge_energy,
    network_energy,
    reprice_energy,
)
from hcs_neuro.measure.profiles import get_profile, load_memory_table


def energy(spec=None, profiles=("cmos45_snn", "loihi", "truenorth", "cmos45_lowprec"), **meta):
    model = tiny_model() if spec is None else tiny_model(spec)
    images, ref, x = _data(model)
    spk = synthetic_spiking(model, ref, x)
    spk.metadata.update(meta)
    return model, spk, x, network_energy(model, ref, spk, list(profiles), input_levels=x)


def test_layer_arrays_size_the_memories():
    model = tiny_model()
    arch = model.architecture
    arrays = layer_arrays(model)
    assert arrays[0]["in_bytes"] == np.prod(arch.input_shape) * arch.input_bits / 8
    for i, (spec, a) in enumerate(zip(arch.layers, arrays)):
        assert a["n_out"] == np.prod(spec.out_shape)
        if spec.has_weights:
            assert a["weights_bytes"] == np.prod(spec.weight_shape) * spec.weight_bits / 8
        else:
            assert a["weights_bytes"] == 0 and a["n_biases"] == 0
        n_hc = 1 if spec.is_readout else np.prod(spec.out_shape[1:])
        assert a["potentials_bytes"] == (a["n_out"] + n_hc) * 4
        if i:
            assert a["in_bytes"] == arrays[i - 1]["activations_bytes"]


def test_spiking_data_movement_counts_every_access_once():
    model, spk, x, e = energy()
    mem = load_memory_table()
    arrays = layer_arrays(model)
    snn = e["energy"]["cmos45_snn"]
    n = spk.n_images
    total = 0.0
    for i, (l, a) in enumerate(zip(spk.layers, arrays)):
        sops_in = (spk.input_sops if i == 0 else spk.layers[i - 1].sops).mean()
        upd, circ = l.neuron_updates.mean(), l.sops_circuit.mean()
        spikes = l.spike_counts.reshape(n, -1).sum(1).mean() + l.interneuron_spikes.mean()
        bias = upd * a["n_out"] / (a["n_out"] + a["n_hypercolumns"]) if a["n_biases"] else 0.0
        expect = ((sops_in if a["n_weights"] else 0.0) * mem.access_pj(a["weights_bytes"])
                  + 2 * (sops_in + circ + upd) * mem.access_pj(a["potentials_bytes"])
                  + bias * (mem.access_pj(a["biases_bytes"]) if a["n_biases"] else 0.0)
                  + 2 * spikes * mem.access_pj(a["activations_bytes"]))
        if i == 0:
            expect += (x > 0).reshape(n, -1).sum(1).mean() * mem.access_pj(a["in_bytes"])
        assert snn["per_layer_pj"][i]["data_movement_pj"] == pytest.approx(expect, rel=1e-12)
        total += expect
    assert snn["data_movement_pj"]["total_pj"] == pytest.approx(total, rel=1e-12)
    t = snn["totals_pj"]
    assert t["with_data_movement_pj"] == pytest.approx(t["without_data_movement_pj"] + total, rel=1e-12)
    # compute only: the profile's figures x the counts
    p = get_profile("cmos45_snn")
    assert t["without_data_movement_pj"] == pytest.approx(
        spk.total_sops().mean() * p.synaptic_op_pj + spk.total_spikes().mean() * p.spike_pj
        + sum(l.neuron_updates.mean() for l in spk.layers) * p.neuron_update_pj, rel=1e-12)


def test_profiles_that_include_memory_take_no_memory_term():
    _model, _spk, _x, e = energy()
    for name in ("loihi", "truenorth"):
        p = e["energy"][name]
        assert p["data_movement_pj"] is None and "inside" in p["data_movement"]
        assert p["totals_pj"]["with_data_movement_pj"] == p["totals_pj"]["without_data_movement_pj"]
    rows = {r["profile"]: r for r in e["comparison"]["rows"]}
    assert rows["loihi"]["snn_without_data_movement_pj"] is None  # not separable from the chip's figure
    assert rows["loihi"]["ratio_without_data_movement"] is None
    assert rows["cmos45_snn"]["ratio_without_data_movement"] == pytest.approx(
        e["energy"]["cmos45_snn"]["totals_pj"]["without_data_movement_pj"]
        / e["energy"]["cmos45_lowprec"]["totals_pj"]["dense_without_data_movement_pj"])


def test_reference_data_movement_dense_and_sparse():
    model, _spk, _x, e = energy()
    mem = load_memory_table()
    ref = e["energy"]["cmos45_lowprec"]
    dense = sparse = 0.0
    for l, a in zip(e["layers"], layer_arrays(model)):
        w, b = mem.access_pj(a["weights_bytes"]), mem.access_pj(a["biases_bytes"])
        i, o = mem.access_pj(a["in_bytes"]), mem.access_pj(a["activations_bytes"])
        ops = l["dense_ops_per_image"]
        # Lemaire: every MAC reads its input (a linear layer each input once) and weight; outputs once
        dense += ((a["n_in"] if l["type"] == "linear" else ops) * i + (ops * w if a["n_weights"] else 0)
                  + (a["n_out"] * b if a["n_biases"] else 0) + a["n_out"] * o)
        # Dampfhoffer's bound: every weight, bias and input once
        sparse += a["n_in"] * i + a["n_weights"] * (w if a["n_weights"] else 0) + a["n_biases"] * (
            b if a["n_biases"] else 0) + a["n_out"] * o
    assert ref["data_movement_pj"]["dense"]["total_pj"] == pytest.approx(dense, rel=1e-12)
    assert ref["data_movement_pj"]["sparse"]["total_pj"] == pytest.approx(sparse, rel=1e-12)
    t = ref["totals_pj"]
    assert t["dense_with_data_movement_pj"] == pytest.approx(t["dense_without_data_movement_pj"] + dense)
    assert t["sparse_with_data_movement_pj"] == pytest.approx(t["sparse_without_data_movement_pj"] + sparse)
    assert t["sparse_without_data_movement_pj"] == ref["per_image_pj"]["effective_pj"]


def test_break_even_reproduces_the_reference_energy():
    _model, _spk, _x, e = energy()
    be = e["break_even"]
    a0 = be["measured_activity"]
    cells = sum(l["n_units"] for l in e["layers"])
    assert a0 == pytest.approx(sum(l["spikes_per_image"] for l in e["layers"]) / cells)
    snn = e["energy"]["cmos45_snn"]
    for r in [r for r in be["rows"] if r["profile"] == "cmos45_snn"]:
        with_dm = r["data_movement"]
        total = snn["totals_pj"]["with_data_movement_pj" if with_dm else "without_data_movement_pj"]
        assert r["fixed_pj"] + r["variable_pj"] == pytest.approx(total, rel=1e-12)
        # the variable part: excitatory spikes of every layer and the SOPs they cause downstream
        var = 0.0
        for i, pl in enumerate(snn["per_layer_pj"]):
            for key in ("spikes_pj",) + (("sops_in_pj",) if i else ()):
                var += pl["by_count_pj"][key] + (pl["by_count_data_movement_pj"][key] if with_dm else 0.0)
        assert r["variable_pj"] == pytest.approx(var, rel=1e-12)
        if r["a_star"] is not None:
            assert r["fixed_pj"] + r["a_star"] / a0 * r["variable_pj"] == pytest.approx(r["reference_pj"], rel=1e-9)
            assert r["k_over_c_conv"] == pytest.approx(be["k_over_c_conv"] * r["a_star"] / a0)
        else:
            assert r["fixed_pj"] >= r["reference_pj"]
        # without per-step neuron updates the fixed part loses them
        if r["a_star_without_step_updates"] is not None:
            fixed = r["fixed_pj"] - r["neuron_updates_pj"]
            assert fixed + r["a_star_without_step_updates"] / a0 * r["variable_pj"] == pytest.approx(
                r["reference_pj"], rel=1e-9)


def test_event_policy_updates_scale_with_activity():
    basis = {"neuron_updates": {"basis": "counted", "how": "cells that received an event", "policy": "event"}}
    _m, _s, _x, clock = energy()
    _m, _s, _x, event = energy(**{COUNT_BASIS_KEY: basis})
    assert event["count_basis"]["layers.neuron_updates_per_image"] == basis["neuron_updates"]
    assert event["break_even"]["neuron_updates_scale_with_activity"] is True
    rc = [r for r in clock["break_even"]["rows"] if r["profile"] == "cmos45_snn"]
    re_ = [r for r in event["break_even"]["rows"] if r["profile"] == "cmos45_snn"]
    for a, b in zip(rc, re_):
        assert b["variable_pj"] == pytest.approx(a["variable_pj"] + a["neuron_updates_pj"])
        assert b["a_star"] == b["a_star_without_step_updates"]


def test_no_break_even_when_the_fixed_part_costs_more():
    _m, _s, _x, e = energy()
    e["energy"]["cmos45_lowprec"]["totals_pj"]["dense_with_data_movement_pj"] = 1.0
    rows = [r for r in break_even(e)["rows"] if r["profile"] == "cmos45_snn" and r["reference"] == "dense"
            and r["data_movement"]]
    assert rows[0]["a_star"] is None and "costs more" in rows[0]["a_star_reason"]


def test_break_even_summary_and_reprice(tmp_path):
    _m, _s, _x, e = energy()
    s = break_even_summary(e)
    assert s["profile"] == "cmos45_snn" and set(s["comparisons"]) == {"without_dm_dense", "with_dm_dense",
                                                                      "with_dm_sparse"}
    assert break_even_summary(e, "loihi")["comparisons"].keys() == {"with_dm_dense", "with_dm_sparse"}
    # repricing the same counts with the same profiles changes nothing; another memory table does
    same = reprice_energy(e, ["cmos45_snn", "loihi", "truenorth", "cmos45_lowprec"])
    assert same["comparison"] == e["comparison"]
    mem = tmp_path / "mem.toml"
    mem.write_text('[memory]\ndescription = "x"\ncitation = "y"\nword_bits = 64\n'
                   '[[memory.levels]]\nname = "reg"\naccess = "1 pJ"\n')
    cheap = reprice_energy(e, ["cmos45_snn", "cmos45_lowprec"], memory=str(mem))
    assert cheap["energy"]["cmos45_snn"]["data_movement_pj"]["total_pj"] < \
        e["energy"]["cmos45_snn"]["data_movement_pj"]["total_pj"]


def test_merge_recomputes_comparison_and_break_even():
    from hcs_neuro.core import reference

    model = tiny_model()
    images, ref, x = _data(model, n=10)
    whole = network_energy(model, ref, synthetic_spiking(model, ref, x), input_levels=x)
    parts = []
    for lo, hi in ((0, 3), (3, 10)):
        r = reference.forward(model, images[lo:hi])
        parts.append(network_energy(model, r, synthetic_spiking(model, r, x[lo:hi]), input_levels=x[lo:hi]))
    merged = merge_energy(parts)
    for a, b in zip(merged["break_even"]["rows"], whole["break_even"]["rows"]):
        for k, v in a.items():
            if isinstance(v, float):
                assert v == pytest.approx(b[k], rel=1e-9), k
    assert merged["break_even"]["measured_activity"] == pytest.approx(whole["break_even"]["measured_activity"])


def test_count_basis_defaults_and_overrides():
    _m, spk, _x, e = energy()
    assert count_basis(spk) == DEFAULT_COUNT_BASIS
    table = e["count_basis"]
    assert table["layers.spikes_per_image"]["basis"] == "counted"
    assert table["layers.neuron_updates_per_image"] == {**DEFAULT_COUNT_BASIS["neuron_updates"]}
    assert table["layers.neuron_updates_per_image"]["basis"] == "computed"
    assert table["input.spikes_per_image"]["basis"] == "computed"  # from the input levels
    assert table["totals.sops_per_image"]["basis"] == "computed"
    assert table["totals.excitatory_spikes_per_image"]["basis"] == "counted"
    # every count of the result says how it was obtained
    for section in ("input", "totals"):
        for key, value in e[section].items():
            if key.endswith("_per_image") and value is not None:
                assert f"{section}.{key}" in table, key
    for key, value in e["layers"][0].items():
        if key.endswith("_per_image") and value is not None:
            assert f"layers.{key}" in table, key
    assert "simulated" not in str(e["energy"]["loihi"]["basis"])
    spk.metadata[COUNT_BASIS_KEY] = {"neuron_updates": {"basis": "measured"}}
    model = tiny_model()
    images, ref, x = _data(model)
    with pytest.raises(DataError, match="basis 'counted' or 'computed'"):
        network_energy(model, ref, spk, input_levels=x)


def test_plot_break_even_axes_and_models():
    import matplotlib.pyplot as plt

    from hcs_neuro.plotting.energy import plot_break_even

    _m, _s, _x, e = energy()
    s = break_even_summary(e)
    none = dict(s, model="no-break-even", comparisons={k: dict(c, a_star=None) for k, c in s["comparisons"].items()})
    fig, ax = plt.subplots()
    out = plot_break_even([s, none], ax=ax)
    assert out is ax
    assert "spikes per neuron per image" in ax.get_ylabel() and "k / C" in ax.get_xlabel()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("tiny2d" in t and "measured" in t for t in labels)
    assert any("no break-even" in t.get_text() for t in ax.texts)
    plt.close(fig)


def test_cli_plot_break_even_writes_figure_and_json(tmp_path, capsys):
    import json

    from hcs_neuro.cli import main
    from hcs_neuro.core.io import write_json_atomic

    _m, _s, _x, e = energy()
    write_json_atomic(tmp_path / "e.json", e)
    rc = main(["plot", "break-even", str(tmp_path / "e.json"), "--out", str(tmp_path / "be.png"),
               "--json", str(tmp_path / "be.json")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "be.png").stat().st_size > 1000
    out = json.loads((tmp_path / "be.json").read_text())
    assert out["models"][0]["model"] == "e" and out["models"][0]["architecture"] == "tiny2d" and "a*" in out["formula"]
    (tmp_path / "bad.json").write_text('{"layers": []}')
    rc = main(["plot", "break-even", str(tmp_path / "bad.json"), "--out", str(tmp_path / "bad.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "not an energy result" in err and not (tmp_path / "bad.png").exists()


def test_break_even_tool_analytic(tmp_path):
    """analysis/tools/break_even.py without a simulation, on the digits model."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "analysis" / "tools" / "break_even.py"
    spec = importlib.util.spec_from_file_location("break_even_tool", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert "fashion_fp32" not in tool.integer_models() and "digits_hcs" in tool.integer_models()
    assert tool.main(["--out", str(tmp_path), "--models", "digits_hcs", "--n-images", "10", "--analytic"]) == 0
    out = json.loads((tmp_path / "break_even.json").read_text())
    assert out["analytic"] is True and out["models"][0]["model"] == "digits_hcs"
    assert (tmp_path / "break_even.png").stat().st_size > 1000 and (tmp_path / "energy_digits_hcs.json").exists()


def test_a_policy_without_a_basis_is_not_labelled_by_default():
    _m, spk, _x, _e = energy(update_policy="gated")
    b = count_basis(spk)["neuron_updates"]
    assert b["basis"] == "unknown" and b["policy"] == "gated"
    spk.metadata[COUNT_BASIS_KEY] = {"neuron_updates": {"basis": "counted", "how": "x", "policy": "gated"}}
    assert count_basis(spk)["neuron_updates"]["basis"] == "counted"

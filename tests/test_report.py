"""The one-page report folder: contents, atomicity (no partial report on error)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcs_neuro.energy import network_energy
from hcs_neuro.report import REPORT_NAME, conditional_reference_winners, write_report
from test_energy_network import _data, synthetic_spiking, tiny_model


def _validation(n):  # the shape of hcs_neuro.validate.validate's dict (keys from the team contract)
    return {"n_images": n, "class_agreement": 1.0, "spiking_accuracy": 0.5, "reference_accuracy": 0.5,
            "latency_ms": {"median": 19.0, "p95": 19.0},
            "spikes_per_neuron_per_image": 0.2,
            "layers": [{"index": i, "strict": 1.0, "tie_tolerant": 1.0} for i in range(4)],
            "psychometric": {"margin": [0.01, 0.1], "agreement": [1.0, 1.0], "n": [3, 5]}}


def test_report_folder_has_page_figures_and_json(tmp_path):
    model = tiny_model()
    images, ref, x = _data(model, n=6)
    spk = synthetic_spiking(model, ref, x)
    e = network_energy(model, ref, spk, input_levels=x)
    v = _validation(6)
    path = write_report(tmp_path / "rep", model=model, reference=ref, spiking=spk, validation=v, energy=e,
                        title="tiny test")
    assert path == tmp_path / "rep" / REPORT_NAME
    text = path.read_text()
    assert text.startswith("# tiny test")
    assert "class agreement" in text and "100.00 %" in text
    assert "SOP cross-check" in text and "yes (0 mismatches" in text
    for png in ("raster.png", "latency.png", "sops.png", "energy.png", "psychometric.png",
                "agreement_L0.png", "agreement_L1.png", "agreement_L2.png"):
        assert (path.parent / png).stat().st_size > 1000, png
        assert f"]({png})" in text
    assert json.loads((path.parent / "validation.json").read_text())["class_agreement"] == 1.0
    assert json.loads((path.parent / "energy.json").read_text())["n_images"] == 6
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no temporary folders left


def test_no_partial_report_on_error(tmp_path):
    model = tiny_model()
    images, ref, x = _data(model, n=4)
    spk = synthetic_spiking(model, ref, x)
    e = network_energy(model, ref, spk, input_levels=x)
    bad = dict(e, layers=e["layers"][:1])  # an energy dict that does not fit the figures
    bad["energy"] = {"loihi": dict(e["energy"]["loihi"], per_layer_pj=[])}
    with pytest.raises(Exception):
        write_report(tmp_path / "rep", model=model, reference=ref, spiking=spk, validation={}, energy=bad)
    assert list(tmp_path.iterdir()) == []


def test_conditional_winners_follow_the_spiking_input():
    model = tiny_model()
    images, ref, x = _data(model, n=4)
    spk = synthetic_spiking(model, ref, x)
    for i in range(3):  # spiking = reference: conditional winners are the reference winners
        np.testing.assert_array_equal(conditional_reference_winners(model, ref, spk, i), ref.layers[i].winners)
    spk.layers[0].winners[:] = False  # silent layer 0: the pool then has no positive drive
    assert not conditional_reference_winners(model, ref, spk, 1).any()

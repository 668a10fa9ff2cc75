"""The one-page report folder: contents, atomicity (no partial report on error)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcs_neuro.measure.energy import network_energy
from hcs_neuro.report import REPORT_NAME, conditional_reference_winners, write_report
from test_energy_network import _data, synthetic_spiking, tiny_model


def _validation(model, images, spk, ref):
    """The real hcs_neuro.measure.validate dict of the synthetic (reference-reproducing) spiking result."""
    from hcs_neuro.measure.validate import validate

    labels = np.asarray(ref.pred) % 2  # any labels: accuracy is reported, agreement is what matters
    return validate(model, images, labels, spk, reference=ref)


def test_report_folder_has_page_figures_and_json(tmp_path):
    model = tiny_model()
    images, ref, x = _data(model, n=6)
    spk = synthetic_spiking(model, ref, x)
    e = network_energy(model, ref, spk, input_levels=x)
    v = _validation(model, images, spk, ref)
    assert v["class_agreement"] == 1.0 and v["min_conditional_agreement_strict"] == 1.0
    path = write_report(tmp_path / "rep", model=model, reference=ref, spiking=spk, validation=v, energy=e,
                        title="tiny test")
    assert path == tmp_path / "rep" / REPORT_NAME
    text = path.read_text()
    assert text.startswith("# tiny test")
    assert "class agreement" in text and "100.00 %" in text
    assert "conditional_agreement_tie_tolerant" in text and "latency_ms_median" in text
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


def test_report_states_when_tables_cover_only_the_first_block(tmp_path):
    model = tiny_model()
    images, ref, x = _data(model, n=5)
    spk = synthetic_spiking(model, ref, x)
    e = network_energy(model, ref, spk, input_levels=x)
    v = dict(_validation(model, images, spk, ref), n_images=5000)  # validated over more images in blocks
    path = write_report(tmp_path / "rep", model=model, reference=ref, spiking=spk, validation=v, energy=e)
    assert "validation over 5,000 images" in path.read_text() and "first 5 of them" in path.read_text()

"""``hcs-neuro simulate`` / ``validate``: bad input is a one-line error (exit 2, no partial
report); one end-to-end run on the shipped digits model (cpp_standalone)."""

from __future__ import annotations

import json

import pytest

from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.cli import main
from hcs_neuro.core.model import random_model, save_model

from test_convert import TINY


def _run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def fashion_shaped_model(tmp_path):
    arch = load_architecture(dict(TINY, input={"shape": [1, 28, 28], "bits": 4}))
    return str(save_model(random_model(arch), tmp_path / "f28.npz"))


@pytest.mark.parametrize("command", ["simulate", "validate"])
def test_model_and_dataset_that_do_not_fit(capsys, tmp_path, fashion_shaped_model, command):
    out = tmp_path / "report"
    args = [command, fashion_shaped_model, "--dataset", "digits", "--no-progress"]
    if command == "validate":
        args += ["--out", str(out)]
    status, _, err = _run(capsys, *args)
    assert status == 2
    assert err.startswith("hcs-neuro: error:") and "(1, 28, 28)" in err and "digits" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_single_hypercolumn_circuit_is_refused(capsys, tmp_path):
    out = tmp_path / "report"
    status, _, err = _run(capsys, "validate", "digits_hcs", "--dataset", "digits", "--n-images", "3",
                          "--circuit", "lif_kwta", "--out", str(out), "--no-progress")
    assert status == 2 and "[race]" in err and "network_race" in err
    assert not out.exists()


def test_bad_circuit_file_and_values(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[race]\nrefine_factor = 1\n[citations]\n"race.refine_factor" = "test"\n')
    status, _, err = _run(capsys, "simulate", "digits_hcs", "--dataset", "digits", "--circuit", str(bad))
    assert status == 2 and "refine_factor" in err and str(bad) in err
    uncited = tmp_path / "uncited.toml"
    uncited.write_text('[race]\nrefine_factor = 3\n')
    status, _, err = _run(capsys, "simulate", "digits_hcs", "--dataset", "digits", "--circuit", str(uncited))
    assert status == 2 and "citation" in err
    status, _, err = _run(capsys, "validate", "digits_hcs", "--dataset", "digits", "--n-images", "0")
    assert status == 2 and "--n-images" in err
    status, _, err = _run(capsys, "validate", "no_such_model", "--dataset", "digits")
    assert status == 2 and "no_such_model" in err


@pytest.mark.standalone
def test_validate_shipped_digits_model_end_to_end(capsys, tmp_path):
    """12 digits test images through the shipped model: exact agreement, JSON keys, report."""
    js, out = tmp_path / "v.json", tmp_path / "report"
    status, stdout, _ = _run(capsys, "validate", "digits_hcs", "--dataset", "digits", "--n-images", "12",
                             "--json", str(js), "--out", str(out), "--no-progress", "--block", "8")
    assert status == 0, stdout
    v = json.loads(js.read_text())
    for key in ("class_agreement", "spiking_accuracy", "reference_accuracy", "latency_ms_median",
                "spikes_per_neuron_per_image", "n_images", "layers", "sop_check_passed"):
        assert key in v
    assert v["n_images"] == 12 and v["class_agreement"] == 1.0 and v["sop_check_passed"]
    assert all(l["conditional_agreement_strict"] == 1.0 for l in v["layers"])
    assert (out / "report.md").is_file()
    assert "report:" in stdout
    # the header prints the window as the JSON holds it, in the shortest form (no float-sum tail)
    assert f"dt {v['dt_ms']:g} ms, window {v['window_ms']:g} ms per image" in stdout

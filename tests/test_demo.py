"""``hcs-neuro demo``: the main job as a smoke test (--quick), and its bad-input cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.cli import main
from hcs_neuro.core.model import random_model, save_model


def _check_demo(tmp_path, capsys, extra, n_expected):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--json", str(tmp_path / "demo.json"), "--no-progress"] + extra)
    text = capsys.readouterr().out
    assert rc == 0
    assert text.strip().splitlines()[-1] == f"report: {out / 'report.md'}"
    s = json.loads((tmp_path / "demo.json").read_text())
    assert s["n_images"] == n_expected
    # the shipped digits model is reproduced by the spiking network (target >= 99.5 % on the whole
    # split; the phased race is exact, so every image of this subset must agree)
    assert s["class_agreement"] == 1.0
    assert s["spiking_accuracy"] == s["reference_accuracy"]
    assert s["sops_equal_where_winners_agree"] is True
    assert s["sops_per_image"] > 0 and s["energy_per_image_uj"]["loihi"] > 0
    page = (out / "report.md").read_text()
    assert "class agreement" in page and "![spike raster" in page
    for name in ("raster.png", "latency.png", "energy.png", "sops.png", "psychometric.png", "validation.json",
                 "energy.json"):
        assert (out / name).is_file(), name
    return s


def test_demo_quick_runtime_device_writes_report(tmp_path, capsys):
    # the default suite: no C++ compile (runtime device, NumPy code generation), 20 images
    s = _check_demo(tmp_path, capsys, ["--quick", "--device", "runtime"], 20)
    assert s["device"] == "runtime"


@pytest.mark.slow
@pytest.mark.standalone
def test_demo_quick_standalone_writes_report(tmp_path, capsys):
    # the demo's own path: cpp_standalone, compiled once, two processes
    s = _check_demo(tmp_path, capsys, ["--quick"], 20)
    assert s["device"] == "cpp_standalone"


def test_demo_rejects_a_model_that_does_not_fit_digits(tmp_path, capsys):
    spec = {"name": "fashion-like", "input": {"shape": [1, 28, 28], "bits": 4},
            "layers": [{"type": "conv2d", "channels": 4, "kernel": 3}, {"type": "pool2d", "kernel": 2},
                       {"type": "linear", "channels": 10}]}
    path = save_model(random_model(load_architecture(spec), seed=0), tmp_path / "fashion.npz")
    out = tmp_path / "demo"
    rc = main(["demo", "--model", str(path), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "(1, 28, 28)" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [(["--n-images", "0"], "--n-images: 0"),
                                           (["--circuit", str(Path(__file__).parents[1] / "circuits" / "lif_kwta.toml")],
                                            "single-hypercolumn circuit (no [network] section)"),
                                           (["--model", "no-such-model"], "not a shipped model")])
def test_demo_bad_arguments(tmp_path, capsys, args, message):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--no-progress"] + args)
    assert rc == 2 and message in capsys.readouterr().err
    assert not out.exists()

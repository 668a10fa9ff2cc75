"""CLI: train / evaluate end to end, and one-line errors (exit 2, no output) for bad input."""

import json

import numpy as np
import pytest

from hcs_neuro.cli import main

TINY = """
name = "tiny"
[input]
shape = [1, 8, 8]
bits = 4
[hcs]
k = 0.25
[[layers]]
type = "conv2d"
channels = 8
kernel = 3
padding = 1
[[layers]]
type = "pool2d"
kernel = 2
k = 0.5
[[layers]]
type = "linear"
channels = 10
[training]
dataset = "digits"
epochs = 1
batch_size = 64
"""


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def _error(capsys, argv):
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("hcs-neuro: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_train_then_evaluate(tmp_path, config, capsys):
    out = tmp_path / "m.npz"
    rep = tmp_path / "train.json"
    assert main(["train", "--config", str(config), "--out", str(out), "--quiet", "--json", str(rep),
                 "--seed", "3", "--set", "adam_norm=tensor", "--manifest", str(tmp_path / "MANIFEST.json")]) == 0
    report = json.loads(rep.read_text())
    assert report["test_accuracy"] == report["test_accuracy_torch"]
    assert report["seed"] == 3 and "--seed 3" in report["command"]
    assert report["training"]["adam_norm"] == "tensor" and "--set adam_norm=tensor" in report["command"]
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["models"]["m"]["file"] == "m.npz"
    assert manifest["models"]["m"]["config"] == "tiny.toml"
    capsys.readouterr()
    ev = tmp_path / "eval.json"
    assert main(["evaluate", str(out), "--quiet", "--json", str(ev)]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "zero_weight_fraction" in text
    e = json.loads(ev.read_text())
    assert e["accuracy"] == pytest.approx(report["test_accuracy"])
    for key in ("macs_per_image", "effective_macs_per_image", "zero_weight_fraction", "layers"):
        assert key in e
    assert {"active_fraction", "active_per_hypercolumn"} <= set(e["layers"][0])


def test_manifest_records_the_config_relative_to_the_manifest(tmp_path, config, monkeypatch):
    """A config outside the manifest's folder is recorded as a path from that folder, not as given."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "tiny.toml", "--out", "models/m.npz", "--quiet", "--epochs", "1",
                 "--manifest", "models/MANIFEST.json"]) == 0
    entry = json.loads((models / "MANIFEST.json").read_text())["models"]["m"]
    assert entry["config"] == "../tiny.toml"
    assert (models / entry["config"]).resolve() == config.resolve()


def test_train_set_overlaps_a_named_option(tmp_path, config):
    """``--set`` may name a field that has its own option too: the option, when given, wins."""
    rep = tmp_path / "r.json"
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "m.npz"), "--quiet", "--json", str(rep),
                 "--set", "lr=0.03", "--set", "batch_size=16", "--batch-size", "64"]) == 0
    training = json.loads(rep.read_text())["training"]
    assert training["lr"] == 0.03 and training["batch_size"] == 64


@pytest.mark.parametrize("extra,match", [
    (["--dataset", "cifar"], "--dataset 'cifar'"),
    (["--k", "0"], "k = 0"),
    (["--k", "99"], "k = 99"),
    (["--k", "abc"], "--k 'abc'"),
    (["--weight-bits", "9"], "weight_bits = 9"),
    (["--act-bits", "0"], "act_bits = 0"),
    (["--epochs", "0"], "epochs"),
    (["--set", "adam_norm=layer"], "command line: adam_norm = 'layer'"),
    (["--set", "beta1=1.5"], "command line: beta1 = 1.5: allowed 0 <= beta1 < 1"),
    (["--set", "eps=0"], "eps = 0.0"),
    (["--lr", "-1"], "argument --lr: -1: allowed a number > 0"),
    (["--set", "lr=-1"], "command line: lr = -1.0"),
    (["--set", "momentum=0.9"], "unknown key 'momentum'"),
    (["--set", "lr"], "expected KEY=VALUE"),
    (["--set", "distill_weight=1.5"], "command line: distill_weight = 1.5: allowed 0 <= distill_weight <= 1"),
    (["--set", "distill_temp=0"], "command line: distill_temp = 0.0: allowed > 0"),
    (["--teacher", "no_such_model"], "model 'no_such_model': no such file, and not a shipped model"),
    (["--teacher", "missing.npz"], "missing.npz: model file not found"),
    (["--set", "teacher=missing.npz"], "missing.npz: model file not found"),
])
def test_train_bad_arguments(tmp_path, config, capsys, extra, match):
    out = tmp_path / "m.npz"
    err = _error(capsys, ["train", "--config", str(config), "--out", str(out), "--quiet", *extra])
    assert match in err
    assert not out.exists()


def test_train_missing_data(tmp_path, config, capsys, monkeypatch):
    monkeypatch.delenv("HCS_NEURO_DATA", raising=False)
    out = tmp_path / "m.npz"
    err = _error(capsys, ["train", "--config", str(config), "--dataset", "mnist", "--data-dir",
                          str(tmp_path / "nowhere"), "--out", str(out), "--quiet"])
    assert "nowhere" in err and not out.exists()


def test_train_bad_config(tmp_path, capsys):
    out = tmp_path / "m.npz"
    err = _error(capsys, ["train", "--config", str(tmp_path / "none.toml"), "--out", str(out)])
    assert "none.toml" in err
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("kernel = 3", "kernel = \"3\""))
    err = _error(capsys, ["train", "--config", str(bad), "--out", str(out)])
    assert "bad.toml" in err and "kernel" in err
    bad.write_text(TINY.replace("padding = 1", "padding = 1\nwidth = 2"))
    assert "unknown key 'width'" in _error(capsys, ["train", "--config", str(bad), "--out", str(out)])
    assert list(tmp_path.glob("*.npz")) == []


def test_evaluate_bad_models(tmp_path, capsys):
    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.core.model import random_model, save_model

    arch = load_architecture({"input": {"shape": [1, 8, 8], "bits": 4},
                              "layers": [{"type": "conv2d", "channels": 8, "kernel": 3, "padding": 1},
                                         {"type": "linear", "channels": 10}]})
    good = save_model(random_model(arch, 0), tmp_path / "good.npz")
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[:300])
    assert "trunc.npz" in _error(capsys, ["evaluate", str(trunc), "--dataset", "digits"])
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(tmp_path / "shape.npz", **dict(arrays, layer0_weight_levels=np.zeros((8, 2, 3, 3), np.int8)))
    assert "layer0_weight_levels" in _error(capsys, ["evaluate", str(tmp_path / "shape.npz"), "--dataset", "digits"])
    np.savez(tmp_path / "obj.npz", **dict(arrays, metadata_json=np.array([{"a": 1}], dtype=object)))
    assert "metadata_json" in _error(capsys, ["evaluate", str(tmp_path / "obj.npz"), "--dataset", "digits"])
    assert "nope" in _error(capsys, ["evaluate", "nope", "--dataset", "digits"])
    assert "dataset = 'x'" in _error(capsys, ["evaluate", str(good), "--dataset", "x"])


def test_train_teacher_of_another_dataset_is_refused(tmp_path, config, capsys):
    """A teacher must take the same images and classes: one line naming the teacher, no output."""
    out = tmp_path / "m.npz"
    err = _error(capsys, ["train", "--config", str(config), "--out", str(out), "--quiet",
                          "--teacher", "fashion_fp32_wide"])
    assert "teacher" in err and "fashion_fp32_wide.npz" in err and "[1, 28, 28]" in err and "[1, 8, 8]" in err
    assert not out.exists()


def test_train_with_a_teacher_records_it(tmp_path, config, capsys):
    out, rep = tmp_path / "m.npz", tmp_path / "r.json"
    assert main(["train", "--config", str(config), "--out", str(out), "--quiet", "--teacher", "digits_hcs_wide",
                 "--set", "distill_weight=0.7", "--json", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["training"]["teacher"].endswith("digits_hcs_wide.npz")
    assert report["training"]["distill_weight"] == 0.7
    assert "--teacher digits_hcs_wide" in report["command"]
    assert report["teacher_train_accuracy"] > 0.9  # the shipped wide digits model on its own training images


def test_train_init_of_another_network_is_refused(tmp_path, config, capsys):
    """A warm start must have the same layers: one line naming the file and what differs, no output."""
    out = tmp_path / "m.npz"
    err = _error(capsys, ["train", "--config", str(config), "--out", str(out), "--quiet", "--init", "fashion_fp32_wide"])
    assert "init" in err and "fashion_fp32_wide.npz" in err and "[1, 28, 28]" in err and "[1, 8, 8]" in err
    assert not out.exists()
    assert "nope" in _error(capsys, ["train", "--config", str(config), "--out", str(out), "--quiet", "--init", "nope"])


def test_train_with_init_records_it(tmp_path, config, capsys):
    """Train, then train on from that model (a plain continuation): the command and the report name it."""
    first, out, rep = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "r.json"
    assert main(["train", "--config", str(config), "--out", str(first), "--quiet"]) == 0
    assert main(["train", "--config", str(config), "--out", str(out), "--quiet", "--init", str(first),
                 "--json", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["training"]["init"] == str(first) and f"--init {first}" in report["command"]
    manifest = tmp_path / "models" / "MANIFEST.json"
    manifest.parent.mkdir()
    assert main(["train", "--config", str(config), "--out", str(manifest.parent / "c.npz"), "--quiet",
                 "--init", str(first), "--manifest", str(manifest)]) == 0
    assert json.loads(manifest.read_text())["models"]["c"]["init"] == "../a.npz"

"""The shipped models reproduce the accuracies their manifest claims, and the learning-curve option."""

import json
from pathlib import Path

import numpy as np
import pytest


from conftest import fashion_test_split  # noqa: E402
from hcs_neuro.cli import main  # noqa: E402
from hcs_neuro.core.datasets import load_dataset  # noqa: E402
from hcs_neuro.core.model import load_model  # noqa: E402
from hcs_neuro.core.reference import evaluate  # noqa: E402
from hcs_neuro.train import torch_forward  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"
MANIFEST = json.loads((MODELS / "MANIFEST.json").read_text())["models"]
DIGITS_MODELS = ["digits_hcs", "digits_hcs_wide"]
FASHION_MODELS = ["fashion_hcs_ternary", "fashion_hcs_ternary_plain", "fashion_hcs_ternary_wide",
                  "fashion_hcs_ternary_wide_shadow", "fashion_hcs_ternary_wide_act2", "fashion_hcs_ternary_wide_2stage",
                  "fashion_fp32", "fashion_fp32_wide"]


def test_manifest_lists_every_shipped_model_and_each_is_checked():
    assert {p.name for p in MODELS.glob("*.npz")} == {entry["file"] for entry in MANIFEST.values()}
    assert set(DIGITS_MODELS) | set(FASHION_MODELS) == set(MANIFEST)


@pytest.mark.parametrize("name", DIGITS_MODELS)
def test_digits_models_reproduce_manifest_accuracy(name):
    entry = MANIFEST[name]
    x, y = load_dataset("digits", "test")
    ev = evaluate(load_model(MODELS / entry["file"]), x, y, progress=False, ops=False)
    assert ev["n_images"] == entry["n_test"]
    assert ev["accuracy"] == entry["test_accuracy"]


@pytest.mark.fashion
@pytest.mark.parametrize("name", FASHION_MODELS)
def test_fashion_models_reproduce_manifest_accuracy(name):
    """PyTorch integer forward pass on all 10,000 test images (equal to the reference: test_training)."""
    entry = MANIFEST[name]
    x, y = fashion_test_split()
    logits, _ = torch_forward(load_model(MODELS / entry["file"]), x, keep_layers=False)
    assert len(y) == entry["n_test"]
    assert float((np.argmax(logits, axis=1) == y).mean()) == pytest.approx(entry["test_accuracy"], abs=1e-12)


def test_learning_curve_option(tmp_path, capsys):
    cfg = MODELS / "configs" / "digits.toml"
    curve = tmp_path / "curve.json"
    rep = tmp_path / "rep.json"
    argv = ["train", "--config", str(cfg), "--epochs", "2", "--train-subset", "200", "--threads", "1",
            "--out", str(tmp_path / "m.npz"), "--quiet", "--curve", str(curve), "--json", str(rep)]
    assert main(argv) == 0
    rows = json.loads(curve.read_text())["epochs"]
    assert [r["epoch"] for r in rows] == [1, 2]
    # the last epoch's snapshot is the final model: same test accuracy as the training report
    assert rows[-1]["test_accuracy"] == json.loads(rep.read_text())["test_accuracy"]
    capsys.readouterr()
    bad = argv[:-4] + ["--curve", "/proc/hcs-neuro-test/c.json"]  # a place nothing can be written
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "--curve" in err and "cannot write" in err and "Traceback" not in err


def test_plot_curve(tmp_path, capsys):
    """`hcs-neuro plot curve` draws the shipped Fashion-MNIST curves; bad files are one-line errors."""
    curves = sorted((MODELS.parent / "docs" / "data" / "fashion_curves").glob("*.json"))
    assert len(curves) >= 2
    out = tmp_path / "c.png"
    assert main(["plot", "curve", *map(str, curves), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    colored = tmp_path / "colored.png"
    assert main(["plot", "curve", *map(str, curves[:2]), "--color", "C3", "--color", "tab:blue",
                 "--out", str(colored)]) == 0
    assert colored.stat().st_size > 10_000
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": [{"epoch": 1}]}')
    for argv, match in (([str(bad)], "train --curve"),
                        ([str(tmp_path / "missing.json")], "curve file not found"),
                        ([str(curves[0]), "--label", "a", "--label", "b"], "--label given 2 times"),
                        ([str(curves[0]), "--color", "C0", "--color", "C1"], "--color given 2 times"),
                        ([str(curves[0]), "--color", "notacolour"], "--color 'notacolour'")):
        capsys.readouterr()
        assert main(["plot", "curve", *argv, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err and "\n" not in err.strip()
    assert not (tmp_path / "x.png").exists()


def test_plot_curve_offset_shifts_a_second_stage(tmp_path, capsys, monkeypatch):
    """--offset N draws a curve N epochs to the right (a warm-started second stage after its first);
    one per file or none, and not negative."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    curve = tmp_path / "c.json"
    curve.write_text(json.dumps({"dataset": "digits", "n_test": 9, "epochs": [
        {"epoch": 1, "test_accuracy": 0.5}, {"epoch": 2, "test_accuracy": 0.6}]}))
    drawn = []
    plot = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, x, y, **kw: drawn.append(list(x)) or plot(self, x, y, **kw))
    out = tmp_path / "o.png"
    assert main(["plot", "curve", str(curve), str(curve), "--offset", "0", "--offset", "12", "--out", str(out)]) == 0
    assert drawn == [[1, 2], [13, 14]] and out.stat().st_size > 10_000
    for argv, match in ((["--offset", "3"], "--offset given 1 times for 2"), (["--offset", "-1", "--offset", "0"],
                                                                           "argument --offset: -1")):
        capsys.readouterr()
        assert main(["plot", "curve", str(curve), str(curve), *argv, "--out", str(tmp_path / "x.png")]) == 2
        assert match in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()

"""``hcs-neuro plot dynamics``: one hypercolumn of a whole biophysical network, for one image
(:mod:`hcs_neuro.brian.dynamics`, :mod:`hcs_neuro.plotting.dynamics`).

Small random models on Brian2's runtime device (a few seconds per network build).
"""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.brian.dynamics import record_hypercolumn
from hcs_neuro.brian.session import simulate
from hcs_neuro.cli import main
from hcs_neuro.core import reference
from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.circuit_file import load_network_circuit
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.model import random_model, save_model

from test_convert import TINY, tiny_model

#: The tiny model decides in < 100 ms (as in test_bionet).
FAST = {"network.t_image": "150 ms"}


def _lif():
    return load_network_circuit("lif_net").with_overrides(FAST)


def _nan_equal(a, b):
    np.testing.assert_array_equal(np.nan_to_num(a, nan=-1.0), np.nan_to_num(b, nan=-1.0))


def test_monitors_change_nothing_and_winners_match():
    """The recorded network's spikes (every layer: counts and first-spike times) equal an
    unmonitored runtime simulation of the same image and seed; the hypercolumn's winners are read
    from them, and the reference winners from the reference forward pass."""
    m = tiny_model(0)
    img = np.random.default_rng(0).random((1, 1, 6, 6))
    rec = record_hypercolumn(m, _lif(), img[0], layer=2, y=1, x=0, seed=3, image_index=7)
    sp = simulate(m, img, circuit=_lif(), device="runtime", n_jobs=1, progress=False, seed=3)
    for a, b in zip(rec.result.layers, sp.layers):
        np.testing.assert_array_equal(a.spike_counts, b.spike_counts)
        _nan_equal(a.first_spike_ms, b.first_spike_ms)
    np.testing.assert_array_equal(rec.result.pred, sp.pred)
    np.testing.assert_array_equal(rec.spiking_winners, sp.layers[2].winners[0][:, 1, 0])
    ref = reference.forward(m, img).layers[2]
    np.testing.assert_array_equal(rec.reference_winners, ref.winners[0][:, 1, 0])
    assert rec.agree and rec.k == 3 and rec.hypercolumn == 1 * 2 + 0 and rec.location == (1, 0)
    # traces at every step of one image period; each winner spiked once, at its first-spike time
    T = rec.t_ms.size
    assert T == 1500 and rec.v_mV.shape == (8, T) and rec.inh.shape == (8, T) and rec.inter.shape == (1, T)
    assert rec.inh_name == "g_inh" and rec.inh_unit == "multiples of g_L" and rec.inter_name == "count"
    first = sp.layers[2].first_spike_ms[0][:, 1, 0]
    for c in range(8):
        assert len(rec.spikes_ms[c]) == int(rec.spiking_winners[c])
        if rec.spiking_winners[c]:
            assert rec.spikes_ms[c][0] == pytest.approx(first[c])
    assert rec.race_start_ms > rec.gate_ms and rec.decision_ms >= rec.race_start_ms
    assert rec.inter_spikes_ms[0][0] == pytest.approx(rec.decision_ms)
    assert rec.v_mV[:, 0] == pytest.approx(rec.v_rest_mV) and rec.bound_mV[0] == pytest.approx(rec.v_threshold_mV)
    assert rec.inh.max() > 0 and rec.bound_mV.min() < rec.v_threshold_mV


def test_readout_with_an_interneuron_pool_and_the_plot():
    """The readout layer is one hypercolumn (no location); lif_pool_net records its 4 interneurons.
    The figure has three panels sharing the time axis."""
    import matplotlib.pyplot as plt

    from hcs_neuro.plotting.dynamics import plot_hypercolumn_dynamics

    m = tiny_model(1)
    img = np.random.default_rng(1).random((1, 6, 6))
    circuit = load_network_circuit("lif_pool_net").with_overrides(FAST)
    rec = record_hypercolumn(m, circuit, img, layer=3)
    assert rec.location == () and rec.k == 1 and rec.inter.shape[0] == 4 and len(rec.inter_spikes_ms) == 4
    assert rec.reference_winners.sum() == 1
    assert rec.reference_winners[reference.forward(m, img[None]).pred[0]]
    assert rec.spiking_winners[rec.result.pred[0]]
    axes = plot_hypercolumn_dynamics(rec)
    assert len(axes) == 3 and axes[0].get_shared_x_axes().joined(axes[0], axes[2])
    assert "mV" in axes[0].get_ylabel() and "ms" in axes[2].get_xlabel()
    plt.close(axes[0].figure)


def test_refusals_before_any_build():
    m = tiny_model(0)
    img = np.zeros((1, 6, 6))
    with pytest.raises(ConfigError, match="no membrane equation"):
        record_hypercolumn(m, "network_race", img)
    with pytest.raises(ConfigError, match="--layer 4: allowed 0..3"):
        record_hypercolumn(m, _lif(), img, layer=4)
    with pytest.raises(ConfigError, match="--x 6: outside layer 0"):
        record_hypercolumn(m, _lif(), img, layer=0, y=0, x=6)
    with pytest.raises(ConfigError, match="one hypercolumn"):
        record_hypercolumn(m, _lif(), img, layer=3, y=1)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    layers = TINY["layers"][:-1] + [{"type": "linear", "channels": 10}]
    arch = load_architecture(dict(TINY, input={"shape": [1, 8, 8], "bits": 4}, layers=layers))
    return str(save_model(random_model(arch, seed=2), tmp_path_factory.mktemp("m") / "tiny8.npz"))


def test_cli_writes_png_and_pdf(tmp_path, capsys, digits_model):
    out = tmp_path / "fig" / "dyn.png"
    argv = ["plot", "dynamics", digits_model, "--dataset", "digits", "--image", "1", "--layer", "2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert out.stat().st_size > 1000 and out.with_suffix(".pdf").stat().st_size > 1000
    assert "layer 2 (conv2d), hypercolumn (y, x) = (1, 1), k = 3" in text and "spiking winners [" in text
    assert "reference winners [" in text
    # an existing figure, or the PDF beside a new PNG name, is refused without --overwrite
    assert main(argv) == 2
    assert "exists" in capsys.readouterr().err
    out.unlink()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hcs-neuro: error:") and "dyn.pdf" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra, message", [
    (["--layer", "9"], "--layer 9: allowed 0..3"),
    (["--y", "0", "--x", "8"], "--x 8: outside layer 0"),
    (["--circuit", "network_race"], "the exact race has no membrane equation"),
    (["--image", "100000"], "--image 100000"),
])
def test_cli_refusals_are_one_line(tmp_path, capsys, digits_model, extra, message):
    out = tmp_path / "dyn.png"
    status = main(["plot", "dynamics", digits_model, "--dataset", "digits", "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("hcs-neuro: error:") and message in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()

"""Network plots run headless (Agg), draw on the given Axes, label axes with units, return it."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.measure.energy import network_energy
from hcs_neuro.plotting.network import (
    plot_agreement_map,
    plot_energy_bars,
    plot_latency_histogram,
    plot_psychometric,
    plot_psychometric_layers,
    plot_raster,
    plot_sop_bars,
)
from test_energy_network import _data, synthetic_spiking, tiny_model


@pytest.fixture(scope="module")
def run():
    model = tiny_model()
    images, ref, x = _data(model, n=8)
    spk = synthetic_spiking(model, ref, x)
    return model, ref, spk, network_energy(model, ref, spk, input_levels=x)


def _fresh_axes():
    from matplotlib.figure import Figure

    return Figure().add_subplot()


def test_raster_plots_one_point_per_winner(run):
    model, ref, spk, _ = run
    ax = _fresh_axes()
    assert plot_raster(spk, image=2, ax=ax) is ax
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == sum(int(l.winners[2].sum()) for l in spk.layers)
    assert "ms" in ax.get_xlabel()
    with pytest.raises(IndexError):
        plot_raster(spk, image=99, ax=_fresh_axes())


def test_agreement_map_fraction_and_categories(run):
    model, ref, spk, _ = run
    r = np.asarray(ref.layers[0].winners)
    s = r.copy()
    s[0, :, 1, 2] = ~s[0, :, 1, 2]  # image 0 disagrees at location (1, 2)
    ax = _fresh_axes()
    assert plot_agreement_map(r, s, ax=ax) is ax
    grid = ax.images[0].get_array()
    expected = np.ones(r.shape[2:])
    expected[1, 2] = 1 - 1 / len(r)
    np.testing.assert_allclose(grid, expected)
    ax = plot_agreement_map(r, s, image=0, ax=_fresh_axes())
    cat = np.asarray(ax.images[0].get_array())
    assert (cat == 1).sum() + (cat == 2).sum() == r.shape[1]  # every channel of the flipped location
    with pytest.raises(ValueError):
        plot_agreement_map(r, s[:, :2], ax=_fresh_axes())


def test_latency_energy_sop_and_psychometric_plots(run):
    model, ref, spk, e = run
    lat = spk.decision_latency_ms.copy()
    lat[0] = np.nan
    ax = plot_latency_histogram(lat, ax=_fresh_axes())
    assert "ms" in ax.get_xlabel() and "1 undecided" in ax.get_title()
    ax = plot_sop_bars(e, ax=_fresh_axes())
    assert len(ax.patches) == 5 * len(e["layers"])  # dense, effective, analytic, simulated, circuit
    assert "per image" in ax.get_ylabel()
    ax = plot_energy_bars(e, profiles=["loihi", "cmos45_fp32"], ax=_fresh_axes())
    assert len(ax.patches) == 3 * len(e["layers"])  # loihi, fp32 dense, fp32 effective
    assert "pJ" in ax.get_ylabel()
    with pytest.raises(KeyError):
        plot_energy_bars(e, profiles=["nope"], ax=_fresh_axes())
    ax = plot_psychometric([0.001, 0.01, 0.1], [0.5, 0.9, 1.0], n=[10, 20, 30], ax=_fresh_axes())
    assert "margin" in ax.get_xlabel()


def test_plots_make_their_own_figure_without_ax(run):
    import matplotlib.pyplot as plt

    model, ref, spk, e = run
    ax = plot_energy_bars(e)
    assert ax.figure is not None
    plt.close("all")


def test_psychometric_layers_from_validation(run):
    from hcs_neuro.measure.validate import validate

    model, ref, spk, _ = run
    images, _, _ = _data(model, n=8)  # the images of the fixture (same seed)
    v = validate(model, images, ref.pred, spk, reference=ref)
    ax = plot_psychometric_layers(v["layers"], ax=_fresh_axes())
    assert len(ax.lines) == len([l for l in v["layers"] if sum(l["psychometric_count"]) > 0])
    for line in ax.lines:  # the synthetic network reproduces the reference: agreement 1 in every bin
        np.testing.assert_array_equal(line.get_ydata(), 1.0)
    assert "drive units" in ax.get_xlabel()

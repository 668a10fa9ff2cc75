"""Plot helpers under Agg: they draw on the given Axes, label them with units and return them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hcs_neuro.plotting import circuit as pc  # noqa: E402


def _check(ax, given):
    assert ax is given
    assert "(ms)" in ax.get_xlabel() or "drive units" in ax.get_xlabel()
    assert ax.get_ylabel()
    plt.close(ax.figure)


def test_plot_functions_return_given_axes():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1, 8)
    win = np.zeros(8, bool)
    win[np.argsort(-d)[:2]] = True
    for fn, args in [
        (pc.plot_raster, (d, np.flatnonzero(win), [2.5, 2.6], win, [2.6, 3.6])),
        (pc.plot_membrane, (np.arange(10) * 0.1, rng.normal(-60, 2, (8, 10)), -50.0, win)),
        (pc.plot_interneuron, (np.arange(10) * 0.1, np.minimum(np.arange(10), 2), [0.5], 2)),
        (pc.plot_latency_vs_margin, (rng.uniform(1e-4, 0.1, 50), rng.uniform(2, 5, 50))),
        (pc.plot_psychometric, ([1e-4, 1e-3, 1e-2], [0.1, 0.5, 1.0], [10, 10, 10])),
    ]:
        _, ax = plt.subplots()
        _check(fn(*args, ax=ax), ax)
    ax = pc.plot_raster(d, [], [], win)  # ax=None makes a figure
    assert ax.figure is not None
    plt.close("all")


def test_plot_front():
    rows = [{"latency_ms_median": 3.0, "strict_agreement": 0.9, "wall_time_per_trial_s": 1e-3, "label": "a"},
            {"latency_ms_median": 3.2, "strict_agreement": 1.0, "wall_time_per_trial_s": 2e-3, "label": "b"}]
    _, ax = plt.subplots()
    assert pc.plot_front(rows, ax=ax) is ax
    plt.close("all")

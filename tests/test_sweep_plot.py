"""Sweep statistics and plots (Agg backend), and the ``plot sweep`` command, on a sweep folder
assembled without Dask."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from hcs_neuro.cli import main
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.plotting.sweep import (
    column_label,
    plot_sweep_heatmap,
    plot_sweep_line,
    summarize_sweep,
)
from hcs_neuro.sweep.runner import write_metadata, write_point
from hcs_neuro.sweep import (
    assemble_results,
    expand_grid,
    load_metadata,
    parse_sweep_spec,
    run_point,
    write_results,
)


def quadratic(params, seed):
    """Test-only target: latency grows with tau and k; seed adds noise; tau=20 ms, k=2 raises."""
    if params["neuron.tau_m"] == 20.0 and params["k"] == 2:
        raise RuntimeError("unstable")
    rng = np.random.default_rng(seed)
    return {"latency_ms": params["neuron.tau_m"] * params["k"] + rng.normal(),
            "agreement": 1.0 - 0.01 * params["k"]}


@pytest.fixture
def sweep_dir(tmp_path):
    raw = {"sweep": {"name": "plot", "seeds": [0, 1, 2, 3], "metrics": ["latency_ms", "agreement"]},
           "target": {"kind": "python", "function": "test_sweep_plot:quadratic",
                      "parameters": {"neuron.tau_m": "ms", "k": "int", "coding": "str"}},
           "parameters": {"neuron.tau_m": ["5 ms", "10 ms", "20 ms"], "k": [1, 2],
                          "coding": ["rate", "ttfs"]}}
    spec = parse_sweep_spec(raw, out=tmp_path / "sw")
    points = expand_grid(spec)
    for p in points:  # what the Dask workers would do, in-process
        write_point(spec.out, p, run_point(spec.target.evaluate, spec.target_cfg, p.params,
                                           p.eval_seed))
    write_metadata(spec, spec.out, points, status="complete", started="now")
    write_results(spec, spec.out, assemble_results(spec))
    return spec.out


def test_summary_mean_and_t_interval(sweep_dir):
    from hcs_neuro.sweep import load_results

    table = load_results(sweep_dir)
    rate = table[table["coding"] == "rate"]
    s = summarize_sweep(rate, "neuron.tau_m_ms", "latency_ms", by=["k"])
    row = s[(s["k"] == 1) & (s["neuron.tau_m_ms"] == 10.0)].iloc[0]
    y = np.array([10.0 + np.random.default_rng(seed).normal() for seed in range(4)])
    half = stats.t.ppf(0.975, 3) * y.std(ddof=1) / 2.0
    assert row["n"] == 4 and row["mean"] == pytest.approx(y.mean(), rel=1e-12)
    assert row["hi"] - row["mean"] == pytest.approx(half, rel=1e-12)
    sd = summarize_sweep(rate, "neuron.tau_m_ms", "latency_ms", by=["k"], band="sd")
    assert sd.iloc[0]["hi"] - sd.iloc[0]["mean"] == pytest.approx(sd.iloc[0]["sd"])
    # the errored point (tau 20 ms, k 2) is absent, not averaged as zeros
    assert not ((s["k"] == 2) & (s["neuron.tau_m_ms"] == 20.0)).any()
    with pytest.raises(ConfigError, match="--band"):
        summarize_sweep(rate, "neuron.tau_m_ms", "latency_ms", band="iqr")


def test_plot_functions_return_axes_with_unit_labels(sweep_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hcs_neuro.sweep import load_results

    table = load_results(sweep_dir)
    meta = load_metadata(sweep_dir)
    rate = table[table["coding"] == "rate"]
    fig, ax = plt.subplots()
    out = plot_sweep_line(rate, "neuron.tau_m_ms", "latency_ms", "k", ax=ax, meta=meta)
    assert out is ax
    assert ax.get_xlabel() == "neuron.tau_m (ms)" and ax.get_ylabel() == "latency (ms)"
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # two lines, two bands
    np.testing.assert_allclose(ax.lines[0].get_ydata()[0], rate[(rate["k"] == 1) & (
        rate["neuron.tau_m_ms"] == 5.0)]["latency_ms"].mean())
    ax2 = plot_sweep_heatmap(rate, "neuron.tau_m_ms", "k", "latency_ms", meta=meta)
    grid = ax2.images[0].get_array()
    assert grid.shape == (2, 3) and bool(grid.mask[1, 2])  # blank cell where every seed raised
    plt.close("all")
    assert column_label("rate_hz") == "rate (Hz)" and column_label("n_crossed") == "n_crossed"
    assert column_label("strict_agreement") == "strict_agreement (fraction of trials)"


def test_plot_sweep_cli(sweep_dir, tmp_path):
    png = tmp_path / "fig.png"
    assert main(["plot", "sweep", str(sweep_dir), "--x", "neuron.tau_m", "--y", "latency_ms",
                 "--hue", "k", "--facet", "coding", "--out", str(png),
                 "--json", str(tmp_path / "p.json")]) == 0
    assert png.stat().st_size > 1000
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["x"] == "neuron.tau_m_ms" and data["band"] == "ci95"
    assert len(data["rows"]) == 2 * 3 * 2 - 2  # coding x tau x k, minus the raising cell
    heat = tmp_path / "heat.pdf"
    assert main(["plot", "sweep", str(sweep_dir / "results.csv"), "--x", "neuron.tau_m_ms",
                 "--y", "agreement", "--hue", "k", "--where", "coding=ttfs", "--kind", "heatmap",
                 "--out", str(heat)]) == 0
    assert heat.read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("argv, message", [
    (["--x", "neuron.tau_m", "--y", "latency_ms"], "parameter k varies"),
    (["--x", "tau", "--y", "latency_ms"], "--x 'tau': no such column"),
    (["--x", "k", "--y", "k", "--where", "coding=rate", "--where", "neuron.tau_m=5"],
     "not a metric"),
    (["--x", "k", "--y", "agreement", "--where", "coding=burst"], "no such value"),
    (["--x", "k", "--y", "agreement", "--kind", "heatmap"], "needs --hue"),
])
def test_plot_sweep_cli_errors(sweep_dir, capsys, argv, message):
    assert main(["plot", "sweep", str(sweep_dir)] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1

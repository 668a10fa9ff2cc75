"""Theory vs measurement: the plain race's psychometric curve and agreement (hcs_neuro.brian.theory)."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.core.circuit_file import load_circuit
from hcs_neuro.brian.theory import (first_spike_time_ms, p_strict_given_margin, predict_agreement,
                              predict_latency_ms, race_params)


def test_first_spike_time_monotone_and_linear_regime():
    p = race_params(load_circuit("lif_kwta"))
    x = np.linspace(0.2, 1.0, 50)
    T = first_spike_time_ms(x, p)
    assert np.all(np.diff(T) < 0)
    # for T >> tau_m the slope is -G/rho = -25 ms per unit drive (docstring derivation)
    slope = np.gradient(T, x)[:10].mean()
    assert slope == pytest.approx(-p[1] / p[2], rel=0.05)


def test_refinement_divides_the_error_margin():
    p = race_params(load_circuit("lif_kwta"))
    m = np.array([1e-4])
    p0 = p_strict_given_margin([0.9], m, p, 0.1)
    p1 = p_strict_given_margin([0.9], m, p, 0.1, max_levels=1, factor=10)
    assert p1[0] == pytest.approx(min(1.0, 10 * p0[0]), rel=1e-6)


def test_measured_plain_race_matches_theory():
    """Plain race (max_levels = 0), dt = 0.1 ms, N = 32, k = 1, 4000 trials.

    Compared: overall strict agreement (tolerance 3 binomial SE + 0.01 model error) and, per
    margin bin with >= 60 trials, agreement within 4 SE + 0.05; median decision latency within
    one step (0.1 ms) + 0.25 ms (Euler integration reaches threshold slightly earlier than the
    closed-form solution).
    """
    from hcs_neuro.brian.bench import random_drives, run_bench
    from hcs_neuro.core.agreement import CIRCUIT_MARGIN_EDGES as MARGIN_EDGES, psychometric

    spec = load_circuit("lif_kwta").with_overrides({"refinement.max_levels": 0})
    k, n, trials, seed, dt = 1, 32, 4000, 11, 0.1
    r = run_bench(spec, k=k, n_channels=n, trials=trials, seed=seed, return_raw=True)
    d = random_drives(trials, n, seed)
    assert np.array_equal(d, r["raw"]["drives"])
    p = race_params(spec)
    pred = predict_agreement(d, k, p, dt)
    se = np.sqrt(pred * (1 - pred) / trials)
    assert abs(r["strict_agreement"] - pred) < 3 * se + 0.01, (r["strict_agreement"], pred)
    assert 0.8 < pred < 0.95  # the test is informative: the plain race errs measurably

    srt = -np.sort(-d, axis=1)
    p_trial = p_strict_given_margin(srt[:, 0], srt[:, 0] - srt[:, 1], p, dt)
    meas = psychometric(r["raw"]["margin"], r["raw"]["strict"], MARGIN_EDGES)
    theo = psychometric(r["raw"]["margin"], p_trial, MARGIN_EDGES)
    checked = 0
    for a, b, nn in zip(meas["agreement"], theo["agreement"], meas["n_trials"]):
        if nn >= 60:
            assert abs(a - b) < 4 * np.sqrt(max(b * (1 - b), 0.01) / nn) + 0.05, (a, b, nn)
            checked += 1
    assert checked >= 3
    lat_pred = np.median(predict_latency_ms(d, k, p, dt))
    assert abs(r["latency_ms_median"] - lat_pred) <= 0.35

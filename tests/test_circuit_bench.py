"""Scoring of winner sets and the benchmark driver."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcs_neuro.core.agreement import psychometric, score_trials, topk_mask as reference_topk


def test_reference_topk_ties_lower_index():
    d = np.array([[0.5, 0.9, 0.9, 0.1]])
    assert reference_topk(d, 1).tolist() == [[False, True, False, False]]
    assert reference_topk(d, 2).tolist() == [[False, True, True, False]]


def test_score_trials_cases():
    d = np.array([[0.0, 1.0, 0.5, 0.505, 0.2]] * 4)  # k = 2: k-th = 0.505, tie_tol = 0.01
    w = np.array([
        [0, 1, 0, 1, 0],  # exact
        [0, 1, 1, 1, 0],  # extra winner within tie_tol of the k-th: tie-tolerant ok, over-selection
        [0, 1, 1, 0, 0],  # swapped near-tie: tie-tolerant ok, strict wrong
        [0, 0, 1, 1, 0],  # clear winner missing: both wrong
    ], dtype=bool)
    s = score_trials(d, w, 2)
    assert s["strict"].tolist() == [True, False, False, False]
    assert s["tie_tolerant"].tolist() == [True, True, True, False]
    assert s["n_winners"].tolist() == [2, 3, 2, 2]
    assert s["margin"] == pytest.approx([0.005] * 4)


def test_psychometric_bins():
    m = np.array([1e-6, 2e-6, 0.5, 0.6])
    ok = np.array([0, 1, 1, 1])
    p = psychometric(m, ok)
    assert sum(p["n_trials"]) == 4
    assert p["agreement"][-1] == 1.0


def test_run_bench_small_exact_and_json_able():
    from hcs_neuro.brian.bench import run_bench
    from hcs_neuro.core.circuit_file import load_circuit

    r = run_bench(load_circuit("lif_kwta"), k=2, n_channels=16, trials=200, seed=7)
    json.dumps(r)
    for key in ("strict_agreement", "tie_tolerant_agreement", "over_selection", "under_selection",
                "latency_ms_median", "latency_ms_p95", "wall_time_per_trial_s", "psychometric_strict"):
        assert key in r
    # refinement makes the noise-free circuit exact on these 200 trials
    assert r["strict_agreement"] == 1.0 and r["over_selection"] == 0 and r["undecided"] == 0
    assert 1.0 < r["latency_ms_median"] < 5.0
    r2 = run_bench(load_circuit("lif_kwta"), k=2, n_channels=16, trials=200, seed=7)
    assert r2["strict_agreement"] == r["strict_agreement"] and r2["latency_ms_median"] == r["latency_ms_median"]


def test_run_bench_noise_lowers_agreement():
    from hcs_neuro.brian.bench import run_bench
    from hcs_neuro.core.circuit_file import load_circuit

    r = run_bench(load_circuit("lif_kwta"), k=1, n_channels=32, trials=300, seed=1, noise=2.0)
    assert r["noise_mv"] == 2.0
    assert r["strict_agreement"] < 0.9  # 2 mV of membrane noise vs ~0.6 mV typical drive gap

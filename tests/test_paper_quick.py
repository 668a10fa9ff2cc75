"""Smoke test of analysis/paper/make_paper.py --quick, plus the pruning counts it reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "analysis" / "paper"


@pytest.fixture(scope="module")
def paper_mod():
    sys.path.insert(0, str(PAPER))
    try:
        import runs

        yield runs
    finally:
        sys.path.remove(str(PAPER))


def test_stratified_subset_is_seeded_and_stratified(paper_mod):
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    a = paper_mod.stratified_subset(labels, 95, seed=3)
    b = paper_mod.stratified_subset(labels, 95, seed=3)
    c = paper_mod.stratified_subset(labels, 95, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a.tolist())) == len(a)
    counts = np.bincount(labels[a], minlength=10)
    assert np.all(counts >= 1)
    expected = np.round(95 * np.bincount(labels) / len(labels))
    assert np.all(np.abs(counts - expected) <= 1)


def test_pruning_counts_match_brute_force(paper_mod):
    """Never-used synapse counts of test_pass against an explicit per-synapse enumeration."""
    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.core.model import random_model
    from hcs_neuro.core.reference import forward, quantize_input

    arch = load_architecture({"input": {"shape": [1, 6, 6], "bits": 2}, "precision": {"weight_bits": 2, "act_bits": 1},
                              "hcs": {"enabled": True, "k": 1},
                              "layers": [{"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
                                         {"type": "pool2d", "kernel": 2},
                                         {"type": "linear", "channels": 3}]})
    model = random_model(arch, seed=5)
    rng = np.random.default_rng(0)
    images = rng.random((7, 1, 6, 6)).astype(np.float32)
    images[:, :, :2, :] = 0  # two pixel rows never active
    labels = rng.integers(0, 3, 7)
    got = paper_mod.test_pass(model, images, labels)
    ref = forward(model, images)
    assert got["accuracy"] == pytest.approx(float((ref.pred == labels).mean()))
    # brute force: enumerate every (input unit, output unit) pair of the conv with padding 1
    x = quantize_input(model, images)
    w = np.asarray(model.layers[0].weight_levels)
    used = nonzero = dense = 0
    ever = (x != 0).any(axis=0)[0]
    for co in range(4):
        for oy in range(6):
            for ox in range(6):
                for dy in range(3):
                    for dx in range(3):
                        iy, ix = oy + dy - 1, ox + dx - 1
                        if 0 <= iy < 6 and 0 <= ix < 6:
                            dense += 1
                            if w[co, 0, dy, dx] != 0:
                                nonzero += 1
                                used += int(ever[iy, ix])
    pool_out = ref.layers[1].output.reshape(7, -1)
    wl = np.asarray(model.layers[2].weight_levels)
    ever_l = (pool_out != 0).any(axis=0)
    dense += wl.size
    nonzero += int((wl != 0).sum())
    used += int((wl[:, ever_l] != 0).sum())
    pr = got["pruning"]
    assert (pr["dense_synapses"], pr["nonzero_synapses"], pr["used_synapses"]) == (dense, nonzero, used)
    assert pr["never_used_synapse_fraction"] == pytest.approx(1 - used / nonzero)
    assert used < nonzero  # the blanked rows must remove synapses (the test can fail)


def _run(args, cwd):
    return subprocess.run([sys.executable, str(PAPER / "make_paper.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_make_paper_quick_end_to_end(tmp_path):
    out = tmp_path / "paper"
    r = _run(["--quick", "--jobs", "1", "--out", str(out)], REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    report = (out / "REPORT.md").read_text()
    for heading in ("Claim 1: precision x HCS", "Claim 2: data efficiency", "Claim 3", "Claim 4: theory",
                    "Claims at a glance", "Energy per image"):
        assert heading in report
    for fig in ("precision", "learning", "k", "pruning", "data", "theory"):
        png = out / "figures" / f"{fig}_digits.png"
        assert png.stat().st_size > 10_000 and png.with_suffix(".pdf").exists()
        assert f"figures/{fig}_digits.png" in report
    summary = json.loads((out / "results" / "paper_summary.json").read_text())
    assert summary["n_runs"] == summary["n_fresh"] > 0
    cells = summary["datasets"]["digits"]["precision"]
    assert all(0.0 <= c["hcs_mean"] <= 1.0 for c in cells)
    # simulated spiking run (one small model, a few images): counts equal the analytic ones
    assert "Energy per image from simulated spiking runs" in report and "figures/energy_sim_digits.png" in report
    assert (out / "figures" / "energy_sim_digits.png").stat().st_size > 10_000
    sim = summary["datasets"]["digits"]["sim_energy"]
    assert [(r["hcs"], r["weight_bits"], r["act_bits"]) for r in sim] == [(True, 2, 1)]
    assert all(r["counts_equal"] and r["class_agreement"] == 1.0 and r["sop_mismatches"] == 0 for r in sim)
    assert all(r["loihi_sim_pj"] > r["loihi_analytic_pj"] > 0 for r in sim)
    # the readout prediction of the theory section is exact, measured on every probe
    assert all(t["readout_prediction_max_abs_error"] == 0 for t in summary["datasets"]["digits"]["theory"])
    # resume: a report-only pass reads every run from the cache and computes nothing
    r2 = _run(["--quick", "--report-only", "--out", str(out), "--json", str(tmp_path / "s.json")], REPO)
    assert r2.returncode == 0, r2.stderr[-2000:]
    s2 = json.loads((tmp_path / "s.json").read_text())
    assert s2["n_fresh"] == 0 and s2["n_cached"] == summary["n_runs"]
    assert s2["datasets"]["digits"]["precision"] == cells
    assert s2["datasets"]["digits"]["sim_energy"] == sim


def test_make_paper_bad_arguments_are_one_line_errors(tmp_path):
    r = _run(["--quick", "--jobs", "0", "--out", str(tmp_path)], REPO)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--jobs" in r.stderr
    r = _run(["--quick", "--only", "cifar", "--out", str(tmp_path)], REPO)
    assert r.returncode == 2 and "cifar" in r.stderr and "Traceback" not in r.stderr

"""Every maintained benchmark (analysis/bench/) runs end to end in its --quick smoke-test mode and
writes its JSON with the numbers it exists to measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "analysis" / "bench"


def _run(script: str, out_flag: str, out: Path, *extra) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick", out_flag, str(out), *extra], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_benchmarks_are_all_here():
    assert sorted(p.name for p in BENCH.glob("bench_*.py")) == [
        "bench_circuit_speed.py", "bench_kwta.py", "bench_network.py", "bench_sweep.py", "bench_training.py"]


@pytest.mark.standalone
def test_bench_circuit_speed_quick(tmp_path):
    r = _run("bench_circuit_speed.py", "--out", tmp_path / "c.json")
    text = json.dumps(r)
    assert r["hypercolumns"] == 50 and "speedup" in text


def test_bench_kwta_quick(tmp_path):
    r = _run("bench_kwta.py", "--json", tmp_path / "k.json")
    assert r and "pytorch" in json.dumps(r)


@pytest.mark.standalone
def test_bench_network_quick(tmp_path):
    r = _run("bench_network.py", "--json", tmp_path / "n.json")
    assert r["n_images"] == 8 and r["validation"]["class_agreement"] == 1.0
    assert r["speedup_vs_naive_excluding_compile"] > 0


@pytest.mark.dask
def test_bench_sweep_quick(tmp_path):
    r = _run("bench_sweep.py", "--json", tmp_path / "s.json")
    assert "speedup" in json.dumps(r)


def test_bench_training_quick(tmp_path):
    r = _run("bench_training.py", "--json", tmp_path / "t.json")
    assert "images_per_s" in json.dumps(r)

"""Sweeps on a real multi-process Dask LocalCluster: results, errors, lost workers, resume,
Ctrl-C, and the Brian2-import-in-a-task trap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hcs_neuro.sweep import (
    ParamInfo,
    Target,
    expand_grid,
    load_metadata,
    load_results,
    parse_sweep_spec,
    register_target,
    run_sweep,
)

pytestmark = pytest.mark.dask
TESTS_DIR = Path(__file__).resolve().parent


def toy_evaluate(cfg, params, seed):
    """Test-only target (the generic interface): metrics are a deterministic function of the
    parameters and the seed; k = 3 with coding 'ttfs' raises."""
    if params["coding"] == "ttfs" and params["k"] == 3:
        raise RuntimeError("ttfs with k=3 is not supported by this toy")
    rng = np.random.default_rng(seed)
    tau = params["neuron.tau_m"]
    time.sleep(cfg["sleep_s"])
    return {"agreement": 1.0 / (1.0 + tau / 10.0) + 0.01 * rng.normal(),
            "latency_ms": tau * params["k"] + rng.uniform()}


register_target(Target(
    kind="toy_dask_test",
    evaluate=toy_evaluate,
    prepare=lambda table, spec_dir: {"sleep_s": float(table.get("sleep_s", 0.0))},
    parameters=lambda cfg: {"neuron.tau_m": ParamInfo(unit="ms"), "k": ParamInfo(kind="int"),
                            "coding": ParamInfo(kind="str", choices=("rate", "ttfs"))},
    metrics=lambda cfg: ("agreement", "latency_ms"),
), replace=True)


def kill_worker_once(params, seed, marker_dir):
    """Kills its worker process on the first attempt of the one point (x=2, seed 0); succeeds on
    the retry.  Exactly one kill per sweep: a second kill could take the retried point's result
    down with another worker and make its attempt count depend on scheduling."""
    name = f"attempt-{int(params['x'])}-{seed}"
    attempts = len(list(Path(marker_dir).glob(f"{name}.*")))
    marker = Path(marker_dir) / name
    Path(f"{marker}.{attempts}").write_text(str(os.getpid()))
    if attempts == 0 and params["x"] == 2 and seed == 0:
        os._exit(1)  # the worker dies mid-task, like an OOM kill or a node failure
    return {"y": params["x"] * 10.0 + seed}


def import_brian2_in_task(params, seed):
    """Imports Brian2 inside the task thread (fails unless the worker preloaded it)."""
    import threading

    import brian2

    assert threading.current_thread() is not threading.main_thread()
    return {"ok": 1.0, "x": float(params["x"]), "major": float(brian2.__version__.split(".")[0])}


def sleepy(params, seed, sleep_s=0.0):
    time.sleep(sleep_s)
    return {"y": params["x"] ** 2 + np.random.default_rng(seed).normal()}


@pytest.fixture(scope="module")
def client():
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as cl:
        yield cl


def _toy_spec(out, seeds=(0, 1), sleep_s=0.0):
    raw = {"sweep": {"name": "toy", "seeds": list(seeds)},
           "target": {"kind": "toy_dask_test", "sleep_s": sleep_s},
           "parameters": {"neuron.tau_m": {"start": "5 ms", "stop": "20 ms", "num": 3},
                          "k": [1, 3], "coding": ["rate", "ttfs"]}}
    return parse_sweep_spec(raw, source="toy.toml", out=out)


def _comparable(table):
    """Everything but the measured run times, which differ between runs by nature."""
    return table.drop(columns=["run_time_s", "cpu_time_s"])


def test_small_sweep_on_local_cluster_records_errors(client, tmp_path):
    spec = _toy_spec(tmp_path / "a")
    result = run_sweep(spec, client=client, progress=False)
    table = result.table
    assert result.n_rows == len(table) == 3 * 2 * 2 * 2 and result.n_computed == 24
    assert list(table.columns) == ["point_id", "neuron.tau_m_ms", "k", "coding", "seed",
                                   "agreement", "latency_ms", "run_time_s", "cpu_time_s", "error"]
    failing = (table["coding"] == "ttfs") & (table["k"] == 3)
    assert result.n_errors == int(failing.sum()) == 6
    assert table.loc[failing, "error"].str.startswith("RuntimeError: ttfs with k=3").all()
    assert table.loc[failing, "agreement"].isna().all()
    ok = table[~failing]
    assert (ok["error"] == "").all()
    # each metric recomputed locally for every row: workers ran the right point with the right seed
    for row in ok.itertuples(index=False):
        rng = np.random.default_rng(row.seed)
        assert row.agreement == 1.0 / (1.0 + row[1] / 10.0) + 0.01 * rng.normal()
    # all files, metadata with versions and seeds, NetCDF with one dimension per parameter
    for key in ("parquet", "csv", "netcdf"):
        assert result.files[key].exists()
    pd.testing.assert_frame_equal(load_results(tmp_path / "a"), table)
    pd.testing.assert_frame_equal(load_results(tmp_path / "a" / "results.csv"), table,
                                  check_dtype=False)
    meta = load_metadata(tmp_path / "a")
    assert meta["status"] == "complete" and meta["seeds"] == [0, 1]
    assert meta["versions"]["dask"] and meta["parameters"][0]["column"] == "neuron.tau_m_ms"
    import xarray as xr

    with xr.open_dataset(result.files["netcdf"]) as ds:
        assert dict(ds.sizes) == {"neuron.tau_m_ms": 3, "k": 2, "coding": 2, "seed": 2}
        val = float(ds["latency_ms"].sel({"neuron.tau_m_ms": 5.0, "k": 1, "coding": "rate",
                                          "seed": 1}))
        row = table[(table["neuron.tau_m_ms"] == 5.0) & (table["k"] == 1)
                    & (table["coding"] == "rate") & (table["seed"] == 1)]
        assert val == row["latency_ms"].item()


def test_resume_computes_only_missing_points_and_gives_identical_table(client, tmp_path):
    reference = run_sweep(_toy_spec(tmp_path / "ref"), client=client, progress=False).table
    spec = _toy_spec(tmp_path / "b")
    run_sweep(spec, client=client, progress=False)
    # simulate an interruption: half the points never finished, one write was torn mid-way
    points = expand_grid(spec)
    for p in points[::2]:
        (tmp_path / "b" / "points" / f"{p.point_id}.json").unlink()
    (tmp_path / "b" / "points" / f".{points[0].point_id}.abc.tmp.json").write_text('{"metr')
    (tmp_path / "b" / "results.parquet").unlink()
    resumed = run_sweep(spec, client=client, progress=False)
    assert resumed.n_computed == len(points[::2]) == 12
    pd.testing.assert_frame_equal(_comparable(resumed.table), _comparable(reference))
    again = run_sweep(spec, client=client, progress=False)  # nothing left to do
    assert again.n_computed == 0
    pd.testing.assert_frame_equal(again.table, resumed.table)


def test_lost_worker_points_are_retried(client, tmp_path):
    raw = {"sweep": {"metrics": ["y"], "seeds": [0, 1]},
           "target": {"kind": "python", "function": "test_sweep_dask:kill_worker_once",
                      "options": {"marker_dir": str(tmp_path)}},
           "parameters": {"x": [1, 2, 3]}}
    result = run_sweep(parse_sweep_spec(raw, out=tmp_path / "out"), client=client, progress=False)
    assert (result.table["error"] == "").all()
    assert result.table["y"].tolist() == [10.0, 11.0, 20.0, 21.0, 30.0, 31.0]
    # the killed point ran exactly twice (its first attempt killed the worker, the retry succeeded);
    # the others at least once (a result still held by the killed worker is lost with it and
    # recomputed by Dask)
    assert len(list(tmp_path.glob("attempt-2-0.*"))) == 2
    assert all(len(list(tmp_path.glob(f"attempt-{x}-{s}.*"))) >= 1
               for x in (1, 2, 3) for s in (0, 1))
    client.wait_for_workers(2, timeout=30)


def test_brian2_import_inside_task_needs_the_worker_preload(client, tmp_path):
    raw = {"sweep": {"metrics": ["ok"], "seeds": [0]},
           "target": {"kind": "python", "function": "test_sweep_dask:import_brian2_in_task"},
           "parameters": {"x": [1, 2]}}
    # without the preload: the known trap, recorded as an error (not fatal)
    plain = run_sweep(parse_sweep_spec(raw, out=tmp_path / "plain"), client=client,
                      progress=False)
    assert plain.table["error"].str.contains("signal only works in main thread").all()
    # with it (the plugin imports Brian2 in each worker's main thread at start)
    raw["target"]["brian2"] = True
    fixed = run_sweep(parse_sweep_spec(raw, out=tmp_path / "fixed"), client=client,
                      progress=False)
    assert (fixed.table["error"] == "").all() and (fixed.table["ok"] == 1.0).all()
    threads = client.run(lambda dask_worker: dask_worker.plugins["hcs-neuro-brian2-preload"].thread)
    assert set(threads.values()) == {"MainThread"}


def test_cli_ctrl_c_then_rerun_resumes(tmp_path):
    spec_file = tmp_path / "sleepy.toml"
    spec_file.write_text(
        '[sweep]\nname = "sleepy"\nseeds = [0, 1]\nmetrics = ["y"]\n'
        '[target]\nkind = "python"\nfunction = "test_sweep_dask:sleepy"\n'
        'options = {sleep_s = 0.2}\n'
        '[parameters]\nx = {start = 1, stop = 8, step = 1}\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "hcs_neuro", "sweep", str(spec_file), "--out", str(out),
           "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(list((out / "points").glob("[!.]*.json"))) >= 4:  # not the writer's .tmp files
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    n_saved = len(list((out / "points").glob("[!.]*.json")))
    assert 4 <= n_saved < 16
    rerun = subprocess.run(cmd + ["--json", str(tmp_path / "run.json")], env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    import json

    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["n_computed"] == 16 - n_saved and summary["n_rows"] == 16
    table = load_results(out)
    assert table[["x", "seed"]].values.tolist() == [[x, s] for x in range(1, 9) for s in (0, 1)]
    expected = [x ** 2 + np.random.default_rng(s).normal() for x in range(1, 9) for s in (0, 1)]
    assert table["y"].tolist() == expected


def test_circuit_sweep_matches_direct_run_bench(client, tmp_path):
    """The circuit target on workers (runtime device, numpy codegen: nothing compiled) gives
    exactly what circuit_bench.run_bench gives in this process for the same point and seed."""
    raw = {"sweep": {"seeds": [0, 1], "metrics": ["strict_agreement", "latency_ms_median",
                                                  "over_selection"]},
           "target": {"kind": "circuit", "circuit": "lif_kwta", "n_channels": 6, "trials": 30},
           "parameters": {"inhibition.w_ie": [0.03, 3.0], "k": [2]}}
    result = run_sweep(parse_sweep_spec(raw, out=tmp_path / "c"), client=client, progress=False)
    table = result.table
    assert (table["error"] == "").all(), table["error"].tolist()
    from hcs_neuro.brian.bench import run_bench
    from hcs_neuro.core.circuit_file import load_circuit

    for w_ie, seed in [(0.03, 1), (3.0, 0)]:
        spec = load_circuit("lif_kwta").with_overrides({"inhibition.w_ie": w_ie})
        direct = run_bench(spec, k=2, n_channels=6, trials=30, seed=seed)
        row = table[(table["inhibition.w_ie"] == w_ie) & (table["seed"] == seed)].iloc[0]
        for m in ("strict_agreement", "latency_ms_median", "over_selection"):
            assert row[m] == direct[m], (w_ie, seed, m)
    # the swept value reached the circuit: weak inhibition lets extra cells win
    weak = table[table["inhibition.w_ie"] == 0.03]
    strong = table[table["inhibition.w_ie"] == 3.0]
    assert weak["over_selection"].sum() > strong["over_selection"].sum()


@pytest.mark.slow
@pytest.mark.standalone
def test_standalone_points_reuse_one_compiled_network(tmp_path):
    """cpp_standalone: points differing only in k and seed (run-time settable for a noise-free
    circuit) reuse one compiled binary in a worker; results equal the runtime device's."""
    raw = {"sweep": {"seeds": [0, 1], "metrics": ["strict_agreement", "latency_ms_median",
                                                  "latency_ms_p95", "compile_time_s"]},
           "target": {"kind": "circuit", "circuit": "lif_kwta", "n_channels": 6, "trials": 20,
                      "device": "cpp_standalone"},
           "parameters": {"k": [1, 2, 3]}}
    result = run_sweep(parse_sweep_spec(raw, out=tmp_path / "sa"), n_workers=1, progress=False)
    table = result.table
    assert (table["error"] == "").all(), table["error"].tolist()
    assert (table["compile_time_s"] > 0).sum() == 1  # one compilation for 6 points
    # the worker's private standalone folder was removed when the cluster closed
    import json
    import tempfile

    pids = {json.loads(f.read_text())["worker"].split(":")[-1]
            for f in (tmp_path / "sa" / "points").glob("*.json")}
    assert len(pids) == 1
    assert not any(Path(tempfile.gettempdir(), f"hcs-neuro-standalone-{pid}").exists()
                   for pid in pids)
    from hcs_neuro.brian.bench import run_bench
    from hcs_neuro.core.circuit_file import load_circuit

    for row in table.itertuples(index=False):
        direct = run_bench(load_circuit("lif_kwta"), k=int(row.k), n_channels=6, trials=20,
                           seed=int(row.seed))
        assert (row.strict_agreement, row.latency_ms_median, row.latency_ms_p95) == (
            direct["strict_agreement"], direct["latency_ms_median"], direct["latency_ms_p95"])


def test_existing_scheduler_by_address(client, tmp_path):
    """--scheduler ADDRESS: connect to a running cluster instead of starting one."""
    address = client.scheduler.address
    spec = _toy_spec(tmp_path / "remote", seeds=(3,))
    result = run_sweep(spec, scheduler=address, progress=False)
    assert result.n_workers == 2 and result.n_rows == 12 and result.n_errors == 3
    local = run_sweep(_toy_spec(tmp_path / "local", seeds=(3,)), client=client, progress=False)
    pd.testing.assert_frame_equal(_comparable(result.table), _comparable(local.table))
    from hcs_neuro.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--workers applies to the local cluster only"):
        run_sweep(spec, scheduler=address, n_workers=2)


@pytest.mark.slow
@pytest.mark.standalone
def test_network_sweep_compiles_once_and_matches_direct_validation(tmp_path):
    """The network target: one compiled network per model in a worker, reused across seeds
    (image samples); each row equals simulate + validate run in this process."""
    raw = {"sweep": {"seeds": [0, 1], "metrics": ["class_agreement", "spiking_accuracy",
                                                  "reference_accuracy", "compile_time_s",
                                                  "sops_per_image", "energy_loihi_pj_per_image"]},
           "target": {"kind": "network", "model": "digits_hcs", "dataset": "digits"},
           "parameters": {"n_images": [12]}}
    result = run_sweep(parse_sweep_spec(raw, out=tmp_path / "net"), n_workers=1, progress=False)
    table = result.table
    assert (table["error"] == "").all(), table["error"].tolist()
    assert (table["compile_time_s"] > 0).sum() == 1
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.brian.session import simulate
    from hcs_neuro.core.catalog import load_model_reference
    from hcs_neuro.measure.validate import validate

    model = load_model_reference("shipped:digits_hcs")
    images, labels = load_dataset("digits", "test")
    pick = np.sort(np.random.default_rng(1).choice(len(images), 12, replace=False))
    x, y = np.ascontiguousarray(images[pick]), labels[pick]
    spiking = simulate(model, x, n_jobs=1, progress=False)
    direct = validate(model, x, y, spiking)
    row = table[table["seed"] == 1].iloc[0]
    for m in ("class_agreement", "spiking_accuracy", "reference_accuracy"):
        assert row[m] == direct[m], m
    from hcs_neuro.core import reference as ref_mod
    from hcs_neuro.measure.energy import network_energy

    e = network_energy(model, ref_mod.forward(model, x), spiking, ["loihi"],
                       input_levels=ref_mod.quantize_input(model, x))
    assert row["sops_per_image"] == e["totals"]["sops_per_image"] > 0
    assert row["energy_loihi_pj_per_image"] == e["energy"]["loihi"]["per_image_pj"]["total_pj"]

"""Sweep benchmark: throughput with 2 local Dask workers vs 1 on the same sweep (measured side by
side in one run), per-point overhead, and the kill-at-half-and-resume check.

Usage::

    nice -n 10 .venv/bin/python analysis/bench/bench_sweep.py --json results/bench_sweep.json
    nice -n 10 .venv/bin/python analysis/bench/bench_sweep.py --spec analysis/sweeps/tau_x_noise.toml
    nice -n 10 .venv/bin/python analysis/bench/bench_sweep.py --standalone --no-kill --repeats 0

Without ``--spec`` the sweep is a synthetic CPU-bound target (``busy`` below: a NumPy race of
N leaky integrators, ``work`` steps per point) so that the numbers isolate the sweep machinery.

What is measured (wall-clock seconds on this machine, ``time.perf_counter``):

* ``compute_wall_s``: from the first task submission to the last point written (cluster start-up
  excluded; reported separately as ``cluster_start_s``). ``throughput_points_per_s`` =
  points / compute_wall_s. ``speedup`` = throughput(2 workers) / throughput(1 worker); the issue's
  target is >= 1.6. Runs alternate 1, 2, 1, 2, ... (``--repeats``) so that load from other users
  of the machine hits both; the median ratio over repeats is reported, and every repeat.
* ``cores_obtained``: CPU seconds the workers spent on points / compute_wall_s, i.e. how many
  cores the sweep actually got (on a machine shared with other jobs, less than the workers).
* ``overhead_per_point_ms``: (compute_wall_s x workers - sum of per-point run times) / points:
  scheduling, transfer, result writing and idle time per point.
* ``--standalone``: a circuit sweep over k x seeds (16 points) on the cpp_standalone device with
  one worker: number of compilations, compile time, and the per-point time of the points that
  reused the compiled network, beside the same sweep on the runtime device (numpy codegen).
* kill-at-half: ``hcs-neuro sweep`` is started as a subprocess in its own process group, which is
  SIGKILLed (client and workers, no clean-up) once half of the point files exist; the same
  command is run again; the final table must equal the uninterrupted run's table in every column
  but ``run_time_s`` and ``cpu_time_s``, with no duplicate or missing rows, and the second run
  must compute only the missing points.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def busy(params, seed, work=2000, n=256):
    """Synthetic CPU-bound target: a race of ``n`` noisy leaky integrators for ``work`` Euler
    steps (dt = 0.1 ms, tau = 10 ms); returns the first-crossing time of the k-th fastest (ms)."""
    rng = np.random.default_rng(seed)
    drive = rng.uniform(0.5, 1.5, n) * params["x"]
    v = np.zeros(n)
    first = np.full(n, np.inf)
    dt, tau = 0.1, 10.0
    for step in range(int(work)):
        v += dt / tau * (-v + drive) + 0.05 * np.sqrt(dt) * rng.standard_normal(n)
        crossed = (v > 0.8) & ~np.isfinite(first)
        first[crossed] = step * dt
    k = int(params.get("k", 4))
    return {"latency_ms": float(np.sort(first)[k - 1]), "n_crossed": float(np.isfinite(first).sum())}


def _default_spec(path: Path, n_points: int, work: int) -> None:
    n_x = max(1, n_points // 4)
    path.write_text(
        '[sweep]\nname = "bench"\nseeds = [0, 1]\nmetrics = ["latency_ms", "n_crossed"]\n'
        '[target]\nkind = "python"\nfunction = "bench_sweep:busy"\n'
        f'options = {{work = {work}}}\n'
        f'[parameters]\nx = {{start = 0.9, stop = 1.5, num = {n_x}}}\nk = [2, 8]\n')


def _run(spec_path: Path, out: Path, workers: int):
    """One timed sweep in a fresh folder; returns (numbers, table)."""
    from hcs_neuro.sweep import load_sweep_spec, run_sweep

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = run_sweep(load_sweep_spec(spec_path, out=out), n_workers=workers, progress=False)
    total = time.perf_counter() - t0
    sum_run = float(res.table["run_time_s"].sum())
    sum_cpu = float(res.table["cpu_time_s"].sum())
    return {"workers": workers, "n_points": res.n_computed, "n_errors": res.n_errors,
            "cluster_start_s": res.cluster_start_s, "compute_wall_s": res.compute_wall_s,
            "total_wall_s": total, "throughput_points_per_s": res.throughput_points_per_s,
            "mean_point_run_time_s": sum_run / max(res.n_computed, 1),
            "mean_point_cpu_time_s": sum_cpu / max(res.n_computed, 1),
            # CPU the workers actually got while computing, in cores (2 free cores: ~2.0)
            "cores_obtained": sum_cpu / res.compute_wall_s if res.compute_wall_s else None,
            "overhead_per_point_ms": 1e3 * (res.compute_wall_s * workers - sum_run)
            / max(res.n_computed, 1)}, res.table


def _kill_at_half(spec_path: Path, out: Path, reference, env: dict) -> dict:
    import pandas as pd

    from hcs_neuro.sweep import load_results

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "hcs_neuro", "sweep", str(spec_path), "--out", str(out),
           "--workers", "2", "--no-progress"]
    n_total = len(reference)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "points").glob("*.json"))) >= n_total // 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its worker processes, no clean-up
    proc.wait()
    time.sleep(0.5)
    saved = len(list((out / "points").glob("*.json")))
    summary_path = out.parent / f"{out.name}_resume.json"
    rerun = subprocess.run(cmd + ["--json", str(summary_path)], env=env, capture_output=True,
                           text=True)
    if rerun.returncode != 0:
        return {"passed": False, "error": rerun.stderr.strip()[-2000:]}
    summary = json.loads(summary_path.read_text())
    table = load_results(out)
    same = True
    try:
        timing = ["run_time_s", "cpu_time_s"]
        pd.testing.assert_frame_equal(table.drop(columns=timing), reference.drop(columns=timing))
    except AssertionError:
        same = False
    dupes = int(table.duplicated(subset=["point_id"]).sum())
    passed = (same and summary["n_computed"] == n_total - saved and summary["n_rows"] == n_total
              and dupes == 0 and 0 < saved < n_total)
    return {"passed": bool(passed), "n_points": n_total, "saved_before_kill": saved,
            "computed_on_resume": summary["n_computed"], "table_equal_except_run_times": same,
            "duplicate_rows": dupes, "killed_with": "SIGKILL to the client's process group"}


def _standalone_reuse(tmp: Path, trials: int) -> dict:
    """Circuit sweep over k x seeds on the cpp_standalone device with one worker (one compiled
    network reused by every point), and the same sweep on the runtime device (numpy codegen)."""
    out = {}
    for device in ("cpp_standalone", "runtime"):
        spec = tmp / f"reuse_{device}.toml"
        spec.write_text(
            '[sweep]\nname = "reuse"\nseeds = [0, 1, 2, 3]\n'
            'metrics = ["strict_agreement", "latency_ms_median", "compile_time_s"]\n'
            '[target]\nkind = "circuit"\ncircuit = "lif_kwta"\nn_channels = 8\n'
            f'trials = {trials}\ndevice = "{device}"\n'
            '[parameters]\nk = [1, 2, 3, 4]\n')
        res, table = _run(spec, tmp / f"reuse_{device}", 1)
        compiled = table["compile_time_s"] > 0
        reused = table.loc[~compiled, "run_time_s"]
        out[device] = {**res, "n_compiles": int(compiled.sum()),
                       "compile_time_s_total": float(table["compile_time_s"].sum()),
                       "first_point_run_time_s": float(table.loc[compiled, "run_time_s"].sum())
                       if compiled.any() else None,
                       "per_point_run_time_s_mean": float(reused.mean()),
                       "table": table[["k", "seed", "strict_agreement", "latency_ms_median"]]}
    a, b = (out[d].pop("table") for d in ("cpp_standalone", "runtime"))
    out["same_metrics_both_devices"] = bool(a.equals(b))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, help="sweep spec to time (default: synthetic busy target)")
    ap.add_argument("--points", type=int, default=64, help="synthetic sweep size (default 64)")
    ap.add_argument("--work", type=int, default=10000, help="synthetic steps per point")
    ap.add_argument("--repeats", type=int, default=2, help="1-vs-2-worker pairs (default 2)")
    ap.add_argument("--no-kill", action="store_true", help="skip the kill-at-half check")
    ap.add_argument("--standalone", action="store_true",
                    help="also time compile-once reuse (cpp_standalone circuit sweep, 16 points)")
    ap.add_argument("--trials", type=int, default=200, help="trials per point for --standalone")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--quick", action="store_true", help="smoke test (CI): the smallest run that exercises every part")
    args = ap.parse_args(argv)
    if args.quick:
        args.points, args.work, args.repeats, args.no_kill = 4, 1000, 1, True

    from hcs_neuro.core.io import write_json_atomic
    from hcs_neuro.sweep import package_versions

    tmp = Path(tempfile.mkdtemp(prefix="hcs-bench-sweep-"))
    try:
        if args.spec is None:
            spec_path = tmp / "bench.toml"
            _default_spec(spec_path, args.points, args.work)
            workload = f"synthetic busy target, {args.points} points, work={args.work} steps"
        else:
            spec_path = args.spec.resolve()
            workload = str(args.spec)
        sys.path.insert(0, str(HERE))  # bench_sweep:busy importable here and (spawn) on workers
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        os.environ["PYTHONPATH"] = env["PYTHONPATH"]

        runs, ratios, reference = [], [], None
        for rep in range(args.repeats):
            pair = {}
            for workers in (1, 2):
                res, table = _run(spec_path, tmp / f"run{rep}_{workers}w", workers)
                res["repeat"] = rep
                runs.append(res)
                pair[workers] = res
                print(f"repeat {rep}: {workers} worker(s): {res['n_points']} points in "
                      f"{res['compute_wall_s']:.2f} s -> {res['throughput_points_per_s']:.2f} "
                      f"points/s (cluster start {res['cluster_start_s']:.1f} s, overhead "
                      f"{res['overhead_per_point_ms']:.1f} ms/point, CPU obtained "
                      f"{res['cores_obtained']:.2f} cores)", flush=True)
                if workers == 2:
                    reference = table
            ratios.append(pair[2]["throughput_points_per_s"] / pair[1]["throughput_points_per_s"])
        speedup = statistics.median(ratios) if ratios else None
        if ratios:
            print(f"speedup 2 vs 1 worker: median {speedup:.2f}x over {len(ratios)} pair(s): "
                  f"{', '.join(f'{r:.2f}' for r in ratios)} (target >= 1.6)")
        kill = None
        if not args.no_kill and reference is not None:
            kill = _kill_at_half(spec_path, tmp / "killed", reference, env)
            print(f"kill-at-half and resume: {'PASS' if kill['passed'] else 'FAIL'} {kill}")
        reuse = None
        if args.standalone:
            reuse = _standalone_reuse(tmp, args.trials)
            sa, rt = reuse["cpp_standalone"], reuse["runtime"]
            print(f"compile-once reuse: {sa['n_compiles']} compile(s) of "
                  f"{sa['compile_time_s_total']:.1f} s for {sa['n_points']} points, then "
                  f"{1e3 * sa['per_point_run_time_s_mean']:.0f} ms per point; runtime device: "
                  f"{1e3 * rt['per_point_run_time_s_mean']:.0f} ms per point; identical "
                  f"metrics: {reuse['same_metrics_both_devices']}")
        result = {"workload": workload, "standalone_reuse": reuse, "cpu_count": os.cpu_count(),
                  "load_avg_1min_at_end": os.getloadavg()[0], "runs": runs,
                  "speedup_ratios": ratios, "speedup_median": speedup,
                  "speedup_target": 1.6,
                  "speedup_target_met": None if speedup is None else speedup >= 1.6,
                  "kill_at_half_resume": kill, "versions": package_versions(),
                  "command": " ".join([Path(sys.executable).name, *sys.argv])}
        if args.json:
            write_json_atomic(args.json, result)
            print(f"wrote {args.json}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

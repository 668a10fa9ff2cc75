"""Speed benchmark: simulated hypercolumn-milliseconds per wall second, measured side by side.

Three ways to simulate H hypercolumns x N = 32 channels of ``lif_kwta`` (k = 2, dt = 0.1 ms,
30 ms per trial, drives uniform in [0, 1]):

1. ``naive``: what users do first: build a runtime-mode Brian2 network for one hypercolumn per
   trial and run it (measured on ``--naive-trials`` trials; per-trial cost is constant).
2. ``runtime_vectorised``: one runtime network holding all H hypercolumns (numpy codegen).
3. ``standalone_rerun``: cpp_standalone compiled once for H hypercolumns, then rerun with new
   drives through ``device.run(run_args=...)`` (``--reruns`` times; compile time reported
   separately and amortised over the reruns in ``..._incl_compile``).

All three run in this one process, one after the other, on the same machine. The JSON (``--out``)
has per-trial wall times, hypercolumn-ms per wall second and the speed-up ratios.

Usage::

    python analysis/bench/bench_circuit_speed.py --hypercolumns 10000 --out analysis/results/circuit_speed.json
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--circuit", default="lif_kwta")
    ap.add_argument("--hypercolumns", type=int, default=10000)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--duration-ms", type=float, default=30.0)
    ap.add_argument("--naive-trials", type=int, default=20)
    ap.add_argument("--naive-target", default="numpy", choices=("numpy", "cython"),
                    help="codegen target of the naive runs (cython: compiled once, cache warmed first)")
    ap.add_argument("--reruns", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float32", action="store_true",
                    help="also time cpp_standalone with prefs.core.default_float_dtype = float32")
    ap.add_argument("--out", default=None, help="JSON output path")
    ap.add_argument("--quick", action="store_true", help="smoke test (CI): the smallest run that exercises every part")
    args = ap.parse_args(argv)
    if args.quick:
        args.hypercolumns, args.naive_trials, args.reruns, args.duration_ms = 50, 1, 2, 10.0

    from hcs_neuro.brian import b2

    from hcs_neuro.brian.hypercolumn import build_hypercolumns
    from hcs_neuro.brian.bench import random_drives
    from hcs_neuro.core.agreement import topk_mask as reference_topk
    from hcs_neuro.core.circuit_file import load_circuit
    from hcs_neuro.brian.device import StandaloneCircuit

    spec = load_circuit(args.circuit)
    H, N, k, T = args.hypercolumns, args.n, args.k, args.duration_ms
    drives = random_drives(H, N, args.seed)
    res: dict = {"circuit": spec.name, "hypercolumns": H, "n_channels": N, "k": k, "duration_ms": T, "dt_ms": 0.1,
                 "machine": platform.platform(), "python": platform.python_version(), "brian2": b2.__version__}

    # 1. naive: one runtime network per trial
    b2.prefs.codegen.target = args.naive_target
    if args.naive_target == "cython":  # warm the cache so that compilation is not counted
        c = build_hypercolumns(spec, 1, N, k, drives[:1], monitors=("spikes",), name="warm")
        c.run(T)
    t0 = time.perf_counter()
    ok = 0
    for t in range(args.naive_trials):
        c = build_hypercolumns(spec, 1, N, k, drives[t : t + 1], monitors=("spikes",), name=f"naive{t}")
        c.run(T)
        ok += int((c.winners() == reference_topk(drives[t : t + 1], k)).all())
    naive = (time.perf_counter() - t0) / args.naive_trials
    res["naive_codegen_target"] = args.naive_target
    res["naive_trials"] = args.naive_trials
    res["naive_wall_time_per_trial_s"] = naive
    res["naive_strict_agreement"] = ok / args.naive_trials
    print(f"naive runtime network per trial ({args.naive_target}): {naive * 1e3:.1f} ms/trial")

    # 2. one vectorised runtime network
    b2.prefs.codegen.target = "numpy"
    t0 = time.perf_counter()
    c = build_hypercolumns(spec, H, N, k, drives, monitors=(), name="vec")
    c.run(T)
    vec = (time.perf_counter() - t0) / H
    res["runtime_vectorised_wall_time_per_trial_s"] = vec
    res["runtime_vectorised_strict_agreement"] = float((c.winners() == reference_topk(drives, k)).all(1).mean())
    print(f"runtime, one network of {H} hypercolumns (numpy): {vec * 1e6:.1f} us/trial")

    # 3. standalone compiled once, rerun with new drives
    with StandaloneCircuit(spec, H, N, k, duration_ms=T, seed=args.seed) as sa:
        runs = []
        agree = []
        for rep in range(args.reruns):
            d = random_drives(H, N, args.seed + 1 + rep)
            r = sa.run(d)
            runs.append(r["run_time_s"])
            agree.append(float((r["winners"] == reference_topk(d, k)).all(1).mean()))
        compile_s = sa.compile_time_s
    sa_trial = float(np.median(runs)) / H
    sa_incl = (compile_s + sum(runs)) / (H * args.reruns)
    res.update({
        "standalone_compile_time_s": compile_s,
        "standalone_reruns": args.reruns,
        "standalone_run_time_s": runs,
        "standalone_wall_time_per_trial_s": sa_trial,
        "standalone_wall_time_per_trial_incl_compile_s": sa_incl,
        "standalone_strict_agreement": agree,
    })
    print(f"cpp_standalone, {H} hypercolumns, rerun via run_args: {sa_trial * 1e6:.2f} us/trial "
          f"(compile {compile_s:.1f} s once; {sa_incl * 1e6:.2f} us/trial including it over {args.reruns} reruns)")
    variants = [("naive", naive), ("runtime_vectorised", vec), ("standalone", sa_trial),
                ("standalone_incl_compile", sa_incl)]
    if args.float32:
        with StandaloneCircuit(spec, H, N, k, duration_ms=T, seed=args.seed, float32=True) as sa32:
            runs32, agree32 = [], []
            for rep in range(args.reruns):
                d = random_drives(H, N, args.seed + 1 + rep)
                r = sa32.run(d)
                runs32.append(r["run_time_s"])
                agree32.append(float((r["winners"] == reference_topk(d, k)).all(1).mean()))
            res["standalone_float32_compile_time_s"] = sa32.compile_time_s
        sa32_trial = float(np.median(runs32)) / H
        res["standalone_float32_run_time_s"] = runs32
        res["standalone_float32_wall_time_per_trial_s"] = sa32_trial
        res["standalone_float32_strict_agreement"] = agree32
        res["speedup_float32_vs_float64_standalone"] = sa_trial / sa32_trial
        variants.append(("standalone_float32", sa32_trial))
        print(f"cpp_standalone float32: {sa32_trial * 1e6:.2f} us/trial, strict agreement {agree32} "
              f"(float64: {agree})")
    for key, per in variants:
        res[f"{key}_hypercolumn_ms_per_wall_s"] = T / per
    res["speedup_standalone_vs_naive"] = naive / sa_trial
    res["speedup_standalone_incl_compile_vs_naive"] = naive / sa_incl
    res["speedup_runtime_vectorised_vs_naive"] = naive / vec
    print(f"speed-up per trial vs naive: standalone {res['speedup_standalone_vs_naive']:.0f}x "
          f"(incl. compile {res['speedup_standalone_incl_compile_vs_naive']:.0f}x), "
          f"vectorised runtime {res['speedup_runtime_vectorised_vs_naive']:.0f}x")
    if args.out:
        from hcs_neuro.core.io import write_json_atomic

        write_json_atomic(args.out, res)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

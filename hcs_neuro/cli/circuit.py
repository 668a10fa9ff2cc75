"""``hcs-neuro circuit run|plot|bench``: one hypercolumn circuit on its own.

Heavy imports (Brian2, matplotlib) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from hcs_neuro.cli.args import (
    add_json,
    add_overwrite,
    csv_floats,
    csv_ints,
    float_in,
    int_in,
    output_dir,
    seed,
)
from hcs_neuro.core.agreement import score_trials, topk_mask
from hcs_neuro.core.circuit_file import MAX_CHANNELS, check_k, load_circuit
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import atomic_dir, check_output_dir, write_json_atomic
from hcs_neuro.core.limits import check_memory, check_work
from hcs_neuro.core.progress import progress
from hcs_neuro.core.units import TIME, parse_quantity

__all__ = ["register", "MAX_CHANNELS"]

#: Kind recorded in the marker of a ``circuit plot`` folder (``--overwrite`` replaces only such folders).
PLOT_KIND = "circuit plots"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="circuit TOML file or built-in name (lif_kwta, lif_pool, cond_kwta)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="DOTTED=VALUE",
                   help='override a circuit field, e.g. --set neuron.tau_m="2 ms" --set refinement.max_levels=0')
    p.add_argument("--n", type=int_in(2, MAX_CHANNELS), default=None,
                   help=f"channels per hypercolumn N, 2..{MAX_CHANNELS} (default: circuit.n_channels, else 32)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random drives and of the noise (default 0)")
    p.add_argument("--dt", type=float_in(0, 10, lo_open=True), default=None, metavar="MS",
                   help="time step in ms, > 0 and <= 10 (default 0.1)")
    p.add_argument("--duration", default=None, metavar="T",
                   help='simulated time per stimulus, e.g. "30 ms" or 30 (ms); default: the circuit\'s duration')


def register(subparsers) -> None:
    p = subparsers.add_parser("circuit", help="run, plot or benchmark one hypercolumn k-WTA circuit (Brian2)",
                              description="Brian2 hypercolumn circuits: dynamic k-WTA through shared "
                              "inhibitory interneurons.")
    sub = p.add_subparsers(dest="circuit_command", metavar="ACTION")
    sub.required = True

    r = sub.add_parser("run", help="simulate hypercolumns with given or random drives, print the winners")
    _common(r)
    r.add_argument("--k", type=int_in(1), default=None, help="winners per hypercolumn (default: circuit.k, else 2)")
    r.add_argument("--drive", default="random", metavar="v1,v2,...|random",
                   help="drives of one hypercolumn (dimensionless, nominally in [0, 1]) or 'random'")
    r.add_argument("--hypercolumns", type=int_in(1, 10_000_000), default=1, metavar="H",
                   help="hypercolumns (default 1)")
    r.add_argument("--device", choices=("runtime", "cpp_standalone"), default="runtime")
    add_json(r, "also write the results as JSON")
    r.set_defaults(func=_run)

    b = sub.add_parser("bench", help="winner agreement / latency / wall time on random drives")
    _common(b)
    b.add_argument("--k", type=csv_ints(1), default=[1, 2, 4], metavar="K1,K2,..", help="default 1,2,4")
    b.add_argument("--trials", type=int_in(1, 100_000_000), default=2000,
                   help="hypercolumns (trials) per k; use >= 10000 for figures at the 99.9%% level")
    b.add_argument("--noise", type=csv_floats(0), default=None, metavar="MV1,MV2,..",
                   help="membrane-noise standard deviations in mV, >= 0 (one benchmark each)")
    b.add_argument("--tie-tol", type=float_in(0, 1, hi_open=True), default=0.01,
                   help="tie tolerance, fraction of the drive range, 0 <= tie_tol < 1 (default 0.01)")
    b.add_argument("--device", choices=("runtime", "cpp_standalone"), default="runtime")
    b.add_argument("--batch", type=int_in(1, 10_000_000), default=10000,
                   help="hypercolumns simulated together (default 10000)")
    add_json(b, "write all results as JSON")
    b.set_defaults(func=_bench)

    q = sub.add_parser("plot", help="raster, membrane traces, interneuron activity, latency vs margin, "
                       "psychometric curve (PNG and PDF)")
    _common(q)
    q.add_argument("--k", type=int_in(1), default=None, help="winners per hypercolumn (default: circuit.k, else 2)")
    q.add_argument("--trials", type=int_in(1, 10_000_000), default=2000,
                   help="trials for latency vs margin and psychometric")
    q.add_argument("--out", required=True, metavar="DIR", type=output_dir,
                   help="output folder (new or empty; written atomically)")
    add_overwrite(q)
    q.set_defaults(func=_plot)


def _spec(args):
    spec = load_circuit(args.file)
    over = {}
    for item in args.overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected DOTTED.NAME=VALUE, e.g. neuron.tau_m=\"2 ms\"")
        key, val = item.split("=", 1)
        over[key.strip()] = val.strip().strip('"').strip("'")
    return spec.with_overrides(over) if over else spec


def _duration_ms(text, spec) -> float:
    """``--duration`` in ms: a positive, finite time ("30 ms" or a bare number of ms)."""

    if text is None:
        return spec.duration_ms
    try:
        value = float(text)
    except ValueError:
        si, dim = parse_quantity(text, "--duration")
        if dim != TIME:
            raise ConfigError(f"--duration {text!r}: allowed a positive time such as \"30 ms\"") from None
        value = si * 1e3
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"--duration {text!r}: allowed a positive, finite time such as \"30 ms\"")
    return value


def _prepare(args, n_channels: int, hypercolumns: int):
    """The circuit (checked by Brian2), the duration and time step in ms, with the work estimated.

    Refuses, before anything is built: a time step not shorter than the run, and work (cells x
    steps) or memory beyond the limits of :mod:`hcs_neuro.core.limits`.
    """
    from hcs_neuro.brian.hypercolumn import check_with_brian

    spec = _spec(args)
    duration = _duration_ms(args.duration, spec)
    dt = 0.1 if args.dt is None else args.dt
    if dt >= duration:
        raise ConfigError(f"--dt {dt:g} ms: the time step must be shorter than the run ({duration:g} ms)")
    cells = hypercolumns * (n_channels + spec.n_interneurons)
    check_memory(cells * 400, f"{hypercolumns:,} hypercolumns of {n_channels} channels")  # ~50 state variables
    check_work(cells * duration / dt, f"simulating {hypercolumns:,} hypercolumns x {n_channels} channels for "
                                      f"{duration:g} ms at dt {dt:g} ms")
    check_with_brian(spec)
    return spec, duration


def _run(args) -> int:
    from hcs_neuro.brian.bench import random_drives

    if args.drive != "random":
        try:
            d = np.array([float(x) for x in args.drive.split(",") if x.strip()], dtype=float)
        except ValueError:
            raise ConfigError(f"--drive {args.drive!r}: allowed comma-separated numbers or 'random'") from None
        if d.size < 2 or not np.isfinite(d).all():
            raise ConfigError(f"--drive {args.drive!r}: allowed two or more finite, comma-separated numbers")
        if args.n is not None and args.n != d.size:
            raise ConfigError(f"--drive has {d.size} values but --n is {args.n}")
        n_channels = d.size
    else:
        n_channels = args.n or _spec(args).n_channels
    spec, duration = _prepare(args, n_channels, args.hypercolumns)
    args.k = spec.k if args.k is None else args.k
    check_k(args.k, n_channels)
    if args.drive != "random":
        drives = np.tile(d, (args.hypercolumns, 1))
    else:
        drives = random_drives(args.hypercolumns, n_channels, args.seed)
    H, N = drives.shape
    if args.device == "runtime":
        from hcs_neuro.brian import b2
        from hcs_neuro.brian.hypercolumn import build_hypercolumns

        b2.prefs.codegen.target = "numpy"
        b2.seed(args.seed)
        c = build_hypercolumns(spec, H, N, args.k, drives, dt_ms=args.dt, monitors=("spikes",))
        c.run(duration)
        winners, win_t = c.winners(), c.win_time_ms()
        lat, levels = c.kwta.decision_time_ms(), c.kwta.levels()
        n_exc_spikes, n_inh_spikes = int(c.spikes_exc.num_spikes), int(c.spikes_inh.num_spikes)
    else:
        from hcs_neuro.brian.device import StandaloneCircuit

        with StandaloneCircuit(spec, H, N, args.k, duration_ms=duration, dt_ms=args.dt, seed=args.seed) as sa:
            res = sa.run(drives)
        winners, win_t, lat, levels = res["winners"], res["win_time_ms"], res["decision_time_ms"], res["levels"]
        n_exc_spikes = n_inh_spikes = None
    sc = score_trials(drives, winners, args.k)
    ref = topk_mask(drives, args.k)
    out = {
        "circuit": spec.name,
        "k": args.k,
        "n_channels": N,
        "hypercolumns": H,
        "seed": args.seed,
        "dt_ms": args.dt if args.dt is not None else 0.1,
        "duration_ms": duration,
        "device": args.device,
        "drives": drives.tolist(),
        "winners": [np.flatnonzero(w).tolist() for w in winners],
        "reference_topk": [np.flatnonzero(w).tolist() for w in ref],
        "win_time_ms": [[round(float(win_t[h, c]), 9) for c in np.flatnonzero(winners[h])] for h in range(H)],
        "decision_latency_ms": [None if not np.isfinite(x) else round(float(x), 9) for x in lat],
        "refinement_levels": levels.tolist(),
        "strict_agreement": float(sc["strict"].mean()),
        "tie_tolerant_agreement": float(sc["tie_tolerant"].mean()),
        "n_exc_spikes": n_exc_spikes,
        "n_inh_spikes": n_inh_spikes,
    }
    for h in range(min(H, 20)):
        lt = out["decision_latency_ms"][h]
        print(f"hypercolumn {h}: winners {out['winners'][h]} (top-k {out['reference_topk'][h]}), "
              f"decision {'none' if lt is None else f'{lt:.2f} ms'}, refinement levels {levels[h]}")
    if H > 20:
        print(f"... {H - 20} more hypercolumns")
    print(f"strict agreement {out['strict_agreement']:.4f}, tie-tolerant {out['tie_tolerant_agreement']:.4f} "
          f"({H} hypercolumns, N = {N}, k = {args.k}, dt = {out['dt_ms']} ms)")
    if args.json:
        write_json_atomic(args.json, out)
    return 0


def _bench(args) -> int:
    from hcs_neuro.brian.bench import run_bench

    n = args.n or _spec(args).n_channels
    for k in args.k:
        check_k(k, n)
    noises = args.noise if args.noise is not None else [None]
    jobs = [(k, nz) for nz in noises for k in args.k]
    spec, duration = _prepare(args, n, min(args.batch, args.trials))
    dt = 0.1 if args.dt is None else args.dt
    check_work(len(jobs) * args.trials * (n + spec.n_interneurons) * duration / dt,
               f"the benchmark ({len(jobs)} rows x {args.trials:,} trials x {n} channels, {duration:g} ms at dt {dt:g} ms)")
    rows = []
    print(f"{'k':>2} {'noise_mV':>8} {'strict':>8} {'tie_tol':>8} {'over':>5} {'under':>5} {'lat_med_ms':>10} "
          f"{'lat_p95_ms':>10} {'wall/trial_ms':>13}")
    for k, nz in progress(jobs, desc="circuit bench", unit="row"):
        r = run_bench(spec, k=k, n_channels=n, trials=args.trials, seed=args.seed, noise=nz, dt_ms=args.dt,
                      device=args.device, duration_ms=duration, tie_tol=args.tie_tol, batch_size=args.batch)
        rows.append(r)
        lat = r["latency_ms_median"]
        p95 = r["latency_ms_p95"]
        print(f"{k:>2} {'-' if nz is None else f'{nz:g}':>8} {r['strict_agreement']:>8.4f} "
              f"{r['tie_tolerant_agreement']:>8.4f} {r['over_selection']:>5} {r['under_selection']:>5} "
              f"{'nan' if lat is None else f'{lat:.2f}':>10} {'nan' if p95 is None else f'{p95:.2f}':>10} "
              f"{r['wall_time_per_trial_s'] * 1e3:>13.3f}")
    print(f"circuit {spec.name}, N = {n}, {args.trials} trials per row, dt = {rows[0]['dt_ms']} ms, "
          f"device {args.device}, tie_tol = {args.tie_tol:g} of the drive range")
    if args.json:
        write_json_atomic(args.json, {"circuit": spec.name, "spec": spec.to_dict(), "results": rows})
    return 0


def _plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hcs_neuro.brian import b2
    from hcs_neuro.brian.bench import DEFAULT_BATCH, random_drives, run_bench
    from hcs_neuro.brian.hypercolumn import build_hypercolumns
    from hcs_neuro.plotting import circuit as pc

    check_output_dir(args.out, overwrite=args.overwrite, kind=PLOT_KIND)
    n = args.n or _spec(args).n_channels
    spec, duration = _prepare(args, n, min(args.trials, DEFAULT_BATCH))
    dt = 0.1 if args.dt is None else args.dt
    check_work(2 * args.trials * (n + spec.n_interneurons) * duration / dt,
               f"the plot's {args.trials:,} trials (twice: with and without refinement) x {n} channels")
    args.k = spec.k if args.k is None else args.k
    check_k(args.k, n)
    figures = []  # written together at the end: an interrupted or failed plot leaves no folder

    def save(fig, stem):
        figures.append((fig, stem))

    # one hypercolumn, fully recorded
    print(f"circuit plot {spec.name}: simulating one hypercolumn (N = {n}, k = {args.k}), then {args.trials} trials "
          f"for latency and psychometric curves", flush=True)
    b2.prefs.codegen.target = "numpy"
    b2.seed(args.seed)
    drives = random_drives(1, n, args.seed)
    c = build_hypercolumns(spec, 1, n, args.k, drives, dt_ms=args.dt, monitors=("spikes", "state"),
                           record_v=np.arange(n))
    c.run(duration)
    win = c.winners()[0]
    dec = c.kwta.decision_time_ms()[0]
    t_show = min(duration, (dec if np.isfinite(dec) else duration) * 2.5 + 1)
    ei = np.asarray(c.spikes_exc.i[:])
    et = np.asarray(c.spikes_exc.t[:] / b2.ms)
    it = np.asarray(c.spikes_inh.t[:] / b2.ms)
    it_first = it[np.asarray(c.spikes_inh.i[:]) == 0]

    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    pc.plot_raster(drives[0], ei, et, win, it_first, k=args.k, ax=ax)
    ax.set_xlim(0, t_show)
    save(fig, "raster")

    tm = np.asarray(c.state.t / b2.ms)
    v = np.asarray(c.state.v / b2.mV)
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    pc.plot_membrane(tm, v, float(spec.value("v_threshold", "mV")), win, drives[0], ax=ax)
    ax.set_xlim(0, t_show)
    save(fig, "membrane")

    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    pc.plot_interneuron(np.asarray(c.state_inh.t / b2.ms), np.asarray(c.state_inh.count[0]), it_first, args.k, ax=ax)
    ax.set_xlim(0, t_show)
    save(fig, "interneuron")

    # many trials: latency vs margin, psychometric (this circuit and its plain race)
    r = run_bench(spec, k=args.k, n_channels=n, trials=args.trials, seed=args.seed, dt_ms=args.dt,
                  duration_ms=duration, return_raw=True)
    raw = r["raw"]
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    pc.plot_latency_vs_margin(raw["margin"], raw["latency_ms"], levels=raw["levels"], ax=ax)
    save(fig, "latency_margin")

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    pc.plot_psychometric(r["psychometric_margin_center"], r["psychometric_strict"], r["psychometric_n_trials"],
                         label=f"{spec.name}, max_levels = {spec.max_levels} (strict)", ax=ax)
    curves = [(spec, r)]
    if spec.max_levels > 0:
        plain = spec.with_overrides({"refinement.max_levels": 0})
        r0 = run_bench(plain, k=args.k, n_channels=n, trials=args.trials, seed=args.seed, dt_ms=args.dt,
                       duration_ms=duration)
        pc.plot_psychometric(r0["psychometric_margin_center"], r0["psychometric_strict"],
                             r0["psychometric_n_trials"], label="plain race, max_levels = 0 (strict)", ax=ax)
        curves.append((plain, r0))
    try:
        from hcs_neuro.brian.theory import p_strict_given_margin, race_params

        p = race_params(spec)
        xk = float(np.median(-np.sort(-raw["drives"], axis=1)[:, args.k - 1]))
        mm = np.logspace(-7, 0, 200)
        dt = r["dt_ms"]
        for sp, _ in curves:
            th = p_strict_given_margin(np.full(mm.size, xk), mm, p, dt, max_levels=sp.max_levels,
                                       factor=sp.refine_factor)
            ax.plot(mm, th, "k--", lw=1)
        ax.plot([], [], "k--", lw=1, label="theory (hcs_neuro.brian.theory)")
        ax.legend(loc="lower right", fontsize=8)
    except ConfigError:
        pass  # not a lif-type circuit: no closed-form theory
    ax.set_title(f"psychometric curve, N = {n}, k = {args.k}, dt = {r['dt_ms']} ms, {args.trials} trials",
                 fontsize=10)
    save(fig, "psychometric")
    with atomic_dir(args.out, overwrite=args.overwrite, kind=PLOT_KIND) as tmp:
        for fig, stem in figures:
            for ext in ("png", "pdf"):
                fig.savefig(tmp / f"{stem}.{ext}", dpi=150)
            plt.close(fig)
    print(f"wrote {args.out}/: " + ", ".join(f"{stem}.png/.pdf" for _, stem in figures))
    return 0

"""``hcs-neuro plot WHAT ...``: figures from saved results (``plot sweep`` for sweeps)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from hcs_neuro.cli.args import add_json, existing_dir, int_in, output_file, seed
from hcs_neuro.core.curve import read_curve
from hcs_neuro.core.errors import ConfigError, DataError, OutputError
from hcs_neuro.core.io import (
    FIGURE_SUFFIXES,
    atomic_path,
    check_output_file,
    read_json,
    write_json_atomic,
)
from hcs_neuro.measure.energy import break_even_summary
from hcs_neuro.pipeline import load_images, resolve_model

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="draw figures from saved results",
                              description="Draw figures from saved results.")
    what = p.add_subparsers(dest="what", metavar="WHAT")
    what.required = True
    s = what.add_parser(
        "sweep",
        help="a sweep metric against a parameter (lines with bands over seeds) or a heatmap",
        description="Line plot of METRIC against parameter --x, mean over seeds with a band "
        "(95 % Student-t confidence interval of the mean, or +-1 sd), one line per value of "
        "--hue, one panel per value of --facet; or with --kind heatmap the seed-mean of METRIC "
        "over --x (columns) and --hue (rows). Names may be dotted parameter names "
        "(neuron.tau_m) or column names (neuron.tau_m_ms). Points that raised are left out.",
    )
    s.add_argument("results", metavar="RESULTS",
                   help="sweep output folder, or its results.parquet / results.csv")
    s.add_argument("--x", required=True, metavar="NAME", help="parameter on the x axis")
    s.add_argument("--y", required=True, metavar="METRIC", help="metric to plot")
    s.add_argument("--hue", metavar="NAME", help="parameter: one line per value (heatmap: rows)")
    s.add_argument("--facet", metavar="NAME", help="parameter: one panel per value")
    s.add_argument("--kind", choices=("line", "heatmap"), default="line")
    s.add_argument("--band", choices=("ci95", "sd"), default="ci95",
                   help="band over seeds (default: ci95)")
    s.add_argument("--where", action="append", default=[], metavar="NAME=VALUE",
                   help="fix another varying parameter (repeatable)")
    s.add_argument("--logx", action="store_true", default=None, help="logarithmic x axis")
    s.add_argument("--out", metavar="FILE", type=output_file(FIGURE_SUFFIXES),
                   help="figure file (.png/.pdf/.svg; default: RESULTS folder/sweep_Y_vs_X.png)")
    add_json(s, "write the plotted means and bands as JSON")
    s.set_defaults(func=_handle_sweep)

    c = what.add_parser(
        "curve",
        help="learning curves: test accuracy per epoch from `hcs-neuro train --curve` files",
        description="Test accuracy (%) against epoch, one line per curve file written by "
        "`hcs-neuro train --curve PATH`.")
    c.add_argument("curves", nargs="+", metavar="CURVE", help="curve JSON files (train --curve)")
    c.add_argument("--label", action="append", default=[], metavar="TEXT",
                   help="legend label of each curve, in order (default: the file name)")
    c.add_argument("--color", action="append", default=[], metavar="COLOR",
                   help="line colour per curve file, in order (a matplotlib colour: C0, tab:blue, #1f77b4; "
                   "give one per file or none), e.g. one colour per rule when several seeds are drawn")
    c.add_argument("--offset", action="append", default=[], type=int_in(0, 100_000), metavar="EPOCHS",
                   help="shift each curve file, in order, this many epochs to the right (give one per file or "
                   "none), e.g. 12 for the second stage of a run warm-started (train --init) from a 12-epoch model")
    c.add_argument("--title", help="figure title (default: dataset and test-set size)")
    c.add_argument("--out", required=True, metavar="FILE", type=output_file(FIGURE_SUFFIXES),
                   help="figure file (.png/.pdf/.svg)")
    c.set_defaults(func=_handle_curve)

    b = what.add_parser(
        "break-even",
        help="break-even activity against k of models whose energy was counted (`hcs-neuro energy --json`)",
        description="For each energy JSON (written by `hcs-neuro energy MODEL --json PATH`), the activity "
        "(spikes per neuron per image) at which the spiking network would cost what the reference "
        "accelerator costs under the same energy model: a* = a0 (E_ref - E_fixed) / E_var(a0), with and "
        "without data movement, against the dense reference and the sparse reference bound. Left panel: "
        "neuron updates as counted; right panel: without per-step neuron updates (an asynchronous chip). "
        "Writes the figure and, with --json, the numbers.")
    b.add_argument("energy", nargs="+", metavar="ENERGY_JSON",
                   help="energy JSON files (hcs-neuro energy --json); each is labelled by its file name "
                        "(energy_NAME.json: NAME)")
    b.add_argument("--profile", metavar="NAME",
                   help="spiking profile to compare (default: each model's own-precision 45 nm profile, "
                        "cmos45_snn for ternary weights)")
    b.add_argument("--out", required=True, metavar="FILE", type=output_file(FIGURE_SUFFIXES),
                   help="figure file (.png/.pdf/.svg)")
    add_json(b, "write the break-even numbers of every model as JSON")
    b.set_defaults(func=_handle_break_even)

    d = what.add_parser(
        "dynamics",
        help="competition dynamics of one hypercolumn of a whole biophysical network, for one image",
        description="Simulate MODEL as a whole biophysical network (--circuit lif_net, lif_pool_net or cond_net; "
        "Brian2 runtime device, no compiler) on ONE image and draw one hypercolumn (a layer and a location): "
        "(1) the membrane potentials of its excitatory cells with the collapsing threshold bound, winners in red; "
        "(2) its interneuron(s) and the inhibitory conductance the excitatory cells receive; (3) its spike "
        "raster with the spiking winners (S, filled) beside the reference's k winners (R, outlined). Writes "
        "FIG.png and FIG.pdf beside it and prints the spiking and reference winners.")
    d.add_argument("model", metavar="MODEL", help="model .npz file, or the name of a shipped model (e.g. digits_hcs)")
    d.add_argument("--dataset", required=True, help="digits, fashion-mnist, mnist or idx")
    d.add_argument("--data-dir", metavar="DIR", type=existing_dir,
                   help="folder with the IDX files (fashion-mnist/mnist/idx)")
    d.add_argument("--split", choices=("train", "test"), default="test", help="dataset split (default: test)")
    d.add_argument("--image", type=int_in(0), default=0, metavar="I", help="image index in the split (default: 0)")
    d.add_argument("--layer", type=int_in(0), default=0, metavar="L", help="layer index (default: 0)")
    d.add_argument("--y", type=int_in(0), metavar="Y", help="row of the hypercolumn (default: the centre)")
    d.add_argument("--x", type=int_in(0), metavar="X", help="column of the hypercolumn (default: the centre)")
    d.add_argument("--circuit", default="lif_net", metavar="NAME|FILE",
                   help="biophysical network circuit: lif_net (default), lif_pool_net, cond_net or a .toml file "
                        "(the exact race network_race has no membrane to draw)")
    d.add_argument("--seed", type=seed, default=0, help="Brian2 seed (default: 0)")
    d.add_argument("--t-max", type=int_in(1), metavar="MS",
                   help="end of the time axis in ms (default: the hypercolumn's last event + 30 %%)")
    d.add_argument("--out", required=True, metavar="FIG.png", type=output_file((".png",)),
                   help="figure file (.png); the PDF is written beside it (FIG.pdf)")
    d.set_defaults(func=_handle_dynamics)


def _handle_dynamics(args) -> int:
    from hcs_neuro.brian.dynamics import hypercolumn_location, record_hypercolumn

    out = Path(args.out)
    pdf = out.with_suffix(".pdf")
    check_output_file(pdf, option="--out (its PDF)")
    if pdf.exists() and not args.overwrite:
        raise OutputError(f"--out {args.out}: the PDF beside it, {pdf}, exists; pass --overwrite to replace it, or "
                          f"name a new file")
    model = resolve_model(args.model)
    hypercolumn_location(model, args.layer, args.y, args.x)  # a bad layer or location: refused before any work
    images, _ = load_images(model, args.dataset, args.split, args.data_dir, args.image + 1)
    if args.image >= len(images):
        raise DataError(f"--image {args.image}: the {args.split} split of {args.dataset} has {len(images)} images; "
                        f"allowed 0..{len(images) - 1}")
    rec = record_hypercolumn(model, args.circuit, images[args.image], args.layer, args.y, args.x, seed=args.seed,
                             image_index=args.image)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hcs_neuro.plotting.dynamics import plot_hypercolumn_dynamics

    axes = plot_hypercolumn_dynamics(rec, t_max_ms=args.t_max)
    fig = axes[0].figure
    with atomic_path(out) as tmp_png, atomic_path(pdf) as tmp_pdf:
        fig.savefig(tmp_png, dpi=150)
        fig.savefig(tmp_pdf)
    plt.close(fig)
    loc = f"(y, x) = {tuple(rec.location)}" if len(rec.location) == 2 else (
        f"x = {rec.location[0]}" if rec.location else "the readout")
    win = [int(c) for c in np.flatnonzero(rec.spiking_winners)]
    ref = [int(c) for c in np.flatnonzero(rec.reference_winners)]
    print(f"wrote {out} and {pdf}: {rec.model}, circuit {rec.circuit}, image {args.image}, layer {rec.layer} "
          f"({rec.layer_type}), hypercolumn {loc}, k = {rec.k}: spiking winners {win}, reference winners {ref} "
          f"({'equal' if win == ref else 'differ'})")
    return 0


def _handle_curve(args) -> int:
    if args.label and len(args.label) != len(args.curves):
        raise ConfigError(f"--label given {len(args.label)} times for {len(args.curves)} curve files: "
                          "give one per file or none")
    if args.color and len(args.color) != len(args.curves):
        raise ConfigError(f"--color given {len(args.color)} times for {len(args.curves)} curve files: "
                          "give one per file or none")
    if args.offset and len(args.offset) != len(args.curves):
        raise ConfigError(f"--offset given {len(args.offset)} times for {len(args.curves)} curve files: "
                          "give one per file or none")
    if any(o < 0 for o in args.offset):
        raise ConfigError(f"--offset {min(args.offset)}: allowed whole numbers of epochs >= 0")
    curves = [read_curve(p) for p in args.curves]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import is_color_like
    from matplotlib.ticker import MaxNLocator

    for color in args.color:
        if not is_color_like(color):
            raise ConfigError(f"--color {color!r}: not a matplotlib colour (allowed e.g. C0, tab:blue, #1f77b4)")

    # many curves: the legend (right of the axes) takes more columns and a taller figure, and
    # without --color the line style changes with every 10 curves (the colour cycle repeats after 10)
    ncol = 1 + (len(curves) - 1) // 18
    legend_rows = -(-len(curves) // ncol)
    labels = args.label or [Path(p).stem for p in args.curves]
    # each legend column about 0.065 inch per character of its longest label ("small" font), so that
    # tight_layout can fit the axes beside it
    legend_w = ncol * (0.6 + 0.065 * max(len(t) for t in labels))
    fig, ax = plt.subplots(figsize=(max(8.5, 5.0 + legend_w), max(3.8, 0.21 * legend_rows + 1.2)))
    for i, (path, (raw, rows)) in enumerate(zip(args.curves, curves)):
        label = labels[i]
        shift = args.offset[i] if args.offset else 0
        ax.plot([shift + r["epoch"] for r in rows], [100 * r["test_accuracy"] for r in rows], marker="o", label=label,
                linestyle="-" if args.color else ("-", "--", ":", "-.")[(i // 10) % 4],
                color=args.color[i] if args.color else None)
    raw0 = curves[0][0]
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("test accuracy (%)")
    title = args.title or f"{raw0.get('dataset', '')}, {raw0.get('n_test', '?')} test images"
    ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, ncol=ncol)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


def _handle_break_even(args) -> int:
    summaries = []
    for path in args.energy:
        e = read_json(path, what="energy JSON file")
        if not all(k in e for k in ("energy", "layers", "snn_profile_own_precision", "memory")):
            raise ConfigError(f"{path}: not an energy result of this version (write it with "
                              "`hcs-neuro energy MODEL --json PATH`)")
        s = break_even_summary(e, args.profile)
        stem = Path(path).stem
        s.update(source=str(path), architecture=s["model"],
                 model=stem[len("energy_"):] if stem.startswith("energy_") and len(stem) > 7 else stem)
        summaries.append(s)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hcs_neuro.plotting.energy import plot_break_even

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    plot_break_even(summaries, ax=axes[0], step_updates=True)
    plot_break_even(summaries, ax=axes[1], step_updates=False)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)
    print(f"wrote {args.out}")
    for s in summaries:
        parts = []
        for key, c in s["comparisons"].items():
            a = c["a_star"]
            parts.append(f"{key} {'none' if a is None else f'{a:.3g}'}")
        print(f"{s['model']}: measured activity {s['measured_activity']:.4g} ({s['counts']}), a* " + ", ".join(parts))
    if args.json:
        write_json_atomic(args.json, {"figure": str(args.out), "formula": summaries[0]["formula"] if summaries else None,
                                      "models": summaries})
        print(f"wrote {args.json}")
    return 0


def _handle_sweep(args) -> int:
    from hcs_neuro.plotting.sweep import (
        check_free_parameters,
        filter_table,
        plot_sweep_heatmap,
        plot_sweep_line,
        resolve_column,
        summarize_sweep,
    )
    from hcs_neuro.sweep import load_metadata, load_results

    names = [("--x", args.x), ("--hue", args.hue), ("--facet", args.facet)]
    given = [(opt, n) for opt, n in names if n]
    for i, (opt, n) in enumerate(given):
        for opt2, n2 in given[i + 1:]:
            if n == n2:
                raise ConfigError(f"{opt} and {opt2} name the same parameter {n!r}; give each role its own parameter")
    folder = Path(args.results) if Path(args.results).is_dir() else Path(args.results).parent
    if not args.out:  # the default figure goes into the results folder: check it before any work

        check_output_file(folder / f"sweep_{args.y}_vs_{args.x}.png", option="default --out")
    table = load_results(args.results)
    try:
        meta = load_metadata(args.results)
    except ConfigError:
        meta = None  # a bare table: no units from metadata, no free-parameter check
    where = {}
    for item in args.where:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--where {item!r}: expected NAME=VALUE")
        where[name.strip()] = value.strip()
    table = filter_table(table, where, meta)
    x = resolve_column(table, args.x, meta, "x")
    y = resolve_column(table, args.y, meta, "y")
    hue = resolve_column(table, args.hue, meta, "hue") if args.hue else None
    facet = resolve_column(table, args.facet, meta, "facet") if args.facet else None
    timing = ["run_time_s", "cpu_time_s"]
    if meta and y not in meta.get("metrics", []) + timing:
        raise ConfigError(f"--y {args.y!r} is not a metric of this sweep; allowed: "
                          f"{', '.join(meta['metrics'] + timing)}")
    if args.kind == "heatmap" and not hue:
        raise ConfigError("--kind heatmap needs --hue NAME (the parameter on the rows)")
    check_free_parameters(table, [c for c in (x, hue, facet) if c], meta)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    facets = [(None, table)] if facet is None else list(table.groupby(facet, sort=True))
    fig, axes = plt.subplots(1, len(facets), figsize=(5 * len(facets), 3.8), squeeze=False,
                             sharey=args.kind == "line")
    records = []
    for ax, (value, part) in zip(axes[0], facets):
        if args.kind == "line":
            plot_sweep_line(part, x, y, hue, ax=ax, band=args.band, meta=meta, log_x=args.logx)
            summary = summarize_sweep(part, x, y, by=[hue] if hue else [], band=args.band)
        else:
            plot_sweep_heatmap(part, x, hue, y, ax=ax, meta=meta)
            summary = summarize_sweep(part, x, y, by=[hue], band=args.band)
        if facet is not None:
            ax.set_title(f"{facet} = {value}", fontsize="small")
            summary.insert(0, facet, value)
        records.extend(summary.to_dict(orient="records"))
    fig.tight_layout()
    out = Path(args.out) if args.out else folder / f"sweep_{y}_vs_{x}.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)
    print(f"wrote {out}")
    if args.json:
        write_json_atomic(args.json, {"x": x, "y": y, "hue": hue, "facet": facet,
                                      "kind": args.kind, "band": args.band, "figure": str(out),
                                      "rows": records})
    return 0

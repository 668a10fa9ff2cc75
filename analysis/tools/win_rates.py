"""How evenly the channels of each k-WTA layer share the wins.

Usage::

    python analysis/tools/win_rates.py MODEL.npz [MODEL2.npz ...] [--dataset fashion-mnist] [--data-dir DIR]
        [--images 1000] [--json OUT] [--plot FIG.png] [--labels NAME ...]

MODEL is a file or the name of a shipped model. For every k-WTA layer of each model, over the
first ``--images`` test images (reference forward pass, integer arithmetic), a channel's *win
rate* is the fraction of the layer's locations (hypercolumns x images) where it is a winner.
Printed per layer: the mean rate (at most k / channels), the channels that are *silent* (rate
below 1 %) and *always on* (rate above 99 %): neither carries information about the image, and
an always-on channel takes one of the k slots of every hypercolumn. Then the 10th, 50th and
90th percentiles and the largest rate. ``--plot`` draws each layer's win rates sorted from the
most to the least winning channel, one line per model. Used in docs/studies/training.md ("Homeostatic thresholds") to
show what ``[training] homeostasis`` changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hcs_neuro.core import reference
from hcs_neuro.core.io import atomic_path, write_json_atomic
from hcs_neuro.core.io import FIGURE_SUFFIXES
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.core.errors import HCSError
from hcs_neuro.core.model import load_model

SILENT, ALWAYS = 0.01, 0.99


def win_rates(model, res) -> list:
    """Per k-WTA layer of ``model``: the win-rate summary of the forward result ``res``."""
    rows = []
    for i, (spec, layer) in enumerate(zip(model.architecture.layers, res.layers)):
        if spec.is_readout or spec.k is None or layer.winners is None:
            continue
        w = layer.winners
        rate = w.mean(axis=tuple(a for a in range(w.ndim) if a != 1))
        p10, p50, p90 = np.percentile(rate, [10, 50, 90])
        rows.append({"layer": i, "type": spec.type, "channels": int(rate.size), "k": int(spec.k),
                     "mean": float(rate.mean()), "silent": int((rate < SILENT).sum()),
                     "always_on": int((rate > ALWAYS).sum()), "p10": float(p10), "p50": float(p50),
                     "p90": float(p90), "max": float(rate.max()),
                     "rates": [float(v) for v in np.sort(rate)[::-1]]})
    return rows


def plot_rates(models: list, labels: list, out) -> None:
    """One panel per k-WTA layer: the channels' win rates sorted in descending order against
    the channel's rank (as a fraction of the layer's channels), one line per model; the dotted
    line is k / channels, every channel's rate if all shared the wins equally and every
    hypercolumn had k winners (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = models[0]["layers"]  # the first model's k-WTA layers, one panel each
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), sharey=True, squeeze=False)
    for ax, ref in zip(axes[0], panels):
        layer = ref["layer"]
        for m, label in zip(models, labels):
            row = next((r for r in m["layers"] if r["layer"] == layer), None)
            if row is not None:
                ax.plot(np.linspace(0, 1, len(row["rates"])), row["rates"], label=label, lw=1.2)
        ax.axhline(ref["k"] / ref["channels"], color="k", ls=":", lw=0.8)
        ax.set_title(f"L{layer} {ref['type']} (C {ref['channels']}, k {ref['k']})", fontsize=8)
        ax.set_xlabel("channel rank / channels", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"win rate ({models[0]['images']} test images)", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    from hcs_neuro.core.catalog import model_path as resolve_model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model files (.npz) or shipped model names")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir")
    ap.add_argument("--images", type=int, default=1000, help="first N test images (default 1000)")
    ap.add_argument("--json", help="also write the numbers here (atomically)")
    ap.add_argument("--plot", help="draw the sorted win rates per layer here (.png, .pdf, .svg)")
    ap.add_argument("--labels", nargs="+", help="one legend label per model (default: the names given)")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error(f"--images {args.images}: must be >= 1")
    if args.plot and Path(args.plot).suffix.lower() not in FIGURE_SUFFIXES:
        ap.error(f"--plot {args.plot}: the file name must end in .png, .pdf or .svg")
    if args.labels and len(args.labels) != len(args.models):
        ap.error(f"--labels: {len(args.labels)} labels for {len(args.models)} models")
    try:
        models = [(name, load_model(resolve_model_path(name))) for name in args.models]
        x, y = load_dataset(args.dataset, "test", args.data_dir)
    except HCSError as exc:
        print(f"win_rates: error: {exc}", file=sys.stderr)
        return 2
    x, y = x[:args.images], y[:args.images]
    out = []
    for name, model in models:
        try:
            res = reference.forward(model, x)
        except HCSError as exc:
            print(f"win_rates: error: {name}: {exc}", file=sys.stderr)
            return 2
        acc = float(np.mean(res.pred == y))
        rows = win_rates(model, res)
        out.append({"model": name, "images": len(y), "accuracy": acc, "layers": rows})
        print(f"{name} ({len(y)} test images, accuracy {100 * acc:.2f} %)")
        for r in rows:
            print(f"  layer {r['layer']} {r['type']:<7} {r['channels']:4d} channels, k {r['k']:3d}: mean win rate "
                  f"{r['mean']:.3f}; silent {r['silent']:3d}, always on {r['always_on']:3d}; "
                  f"p10/p50/p90 {r['p10']:.3f} / {r['p50']:.3f} / {r['p90']:.3f}, max {r['max']:.3f}")
    if args.json:
        write_json_atomic(args.json, {"models": out})
    if args.plot:
        if not out[0]["layers"]:
            print(f"win_rates: error: {out[0]['model']} has no k-WTA layer to plot", file=sys.stderr)
            return 2
        plot_rates(out, args.labels or args.models, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

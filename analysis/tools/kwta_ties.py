"""How often the k-WTA tie rule, not the drives, picks a hypercolumn's winners, and what the
trained network's accuracy owes to that rule.

Usage::

    python analysis/tools/kwta_ties.py MODEL.npz [MODEL2.npz ...] [--dataset fashion-mnist] [--data-dir DIR]
        [--images 2000] [--seed 0] [--json OUT] [--plot FIG.png] [--labels NAME ...]
    python analysis/tools/kwta_ties.py --from-json OUT --plot FIG.png [--labels NAME ...]   (redraw)

With integer drives (low-precision weights, binary or multi-bit activities) several channels of a
hypercolumn often share the k-th largest drive; the specification breaks such ties by channel
index (the lower index wins, ``hcs_neuro.core.kwta``). For every k-WTA layer of each model this
prints, over the first ``--images`` test images (reference forward pass, integer arithmetic):

* ``tied``: the fraction of hypercolumns whose k-th and (k+1)-th largest drives are equal and
  positive (the tie rule decides at least one winner there);
* ``by_index``: winners per hypercolumn that the tie rule picked (mean over all hypercolumns);
* ``low_half`` / ``high_half``: how often a channel of the lower / upper half of the channel
  index range wins (equal halves would win equally often if the channels were exchangeable);

and the test accuracy with three tie rules applied in every layer at once: ``index`` (the
specification), ``reverse`` (the higher index wins), ``random`` (each tie broken by a seeded
random order, a new one per hypercolumn and image) and ``all`` (every channel tied at the k-th
drive wins, so a hypercolumn may have more than k winners: not a k-WTA, a probe of what the
tied channels would add). A network that has adapted to the index rule loses accuracy under the
next two; one whose ties carry no information does not.

``--plot`` draws the share of tied hypercolumns per k-WTA layer, one bar per model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from hcs_neuro.core import reference
from hcs_neuro.core.io import write_json_atomic
from hcs_neuro.core.io import FIGURE_SUFFIXES
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.core.errors import HCSError
from hcs_neuro.core.kwta import kwta_mask
from hcs_neuro.core.model import load_model

RULES = ("index", "reverse", "random", "all")


@contextlib.contextmanager
def tie_rule(rule: str, rng: np.random.Generator):
    """Make the reference forward pass break k-WTA ties by ``rule`` inside the ``with`` block:
    the channels are reordered (reversed, or randomly permuted per hypercolumn), the
    specification's lower-index-wins selection runs on the reordered drives, and its winners are
    put back, so only the order among equal drives changes."""
    if rule == "index":
        yield
        return

    def mask(drive, k, axis=1):
        d = np.asarray(drive)
        if rule == "all":
            kth = np.take(-np.sort(-d, axis=axis), [k - 1], axis=axis)
            return d >= kth
        if rule == "reverse":
            return np.flip(kwta_mask(np.flip(d, axis), k, axis=axis), axis)
        perm = np.argsort(rng.random(d.shape), axis=axis)
        chosen = kwta_mask(np.take_along_axis(d, perm, axis), k, axis=axis)
        out = np.empty_like(chosen)
        np.put_along_axis(out, perm, chosen, axis)
        return out

    saved = reference.kwta_mask
    reference.kwta_mask = mask
    try:
        yield
    finally:
        reference.kwta_mask = saved


def tie_stats(model, res) -> list:
    """Per k-WTA layer: the tie statistics of the docstring (index rule), from ``res``, the
    reference forward pass of ``model`` with its layers kept."""
    out = []
    for i, (spec, layer) in enumerate(zip(model.architecture.layers, res.layers)):
        if layer.winners is None or not spec.k:
            continue
        d = np.moveaxis(np.asarray(layer.drive, dtype=np.float64), 1, -1).reshape(-1, spec.out_shape[0])
        w = np.moveaxis(np.asarray(layer.winners, dtype=bool), 1, -1).reshape(d.shape)
        k, c = spec.k, d.shape[1]
        srt = -np.sort(-d, axis=1)
        kth = srt[:, k - 1]
        nxt = srt[:, k] if k < c else np.full_like(kth, -np.inf)
        tied = (kth == nxt) & (kth > 0)
        # winners the index rule picked: those at the k-th value when more channels share it than fit
        at = d == kth[:, None]
        above = (d > kth[:, None]).sum(1)
        by_index = np.where(tied, k - above, 0)
        out.append({"layer": i, "type": spec.type, "channels": c, "k": k,
                    "integer_drive": bool(np.all(d == np.rint(d))),
                    "tied": float(tied.mean()), "by_index": float(by_index.mean()),
                    "sharing_kth_when_tied": float(at[tied].sum(1).mean()) if tied.any() else 0.0,
                    "low_half": float(w[:, :c // 2].mean()), "high_half": float(w[:, c // 2:].mean())})
    return out


def accuracy_by_rule(model, images, labels, seed: int, index_pred=None) -> dict:
    """Accuracy under each tie rule; ``index_pred``: the predictions of the specification's rule
    when already computed (they are not computed again)."""
    out = {}
    for rule in RULES:
        if rule == "index" and index_pred is not None:
            out[rule] = float(np.mean(index_pred == labels))
            continue
        with tie_rule(rule, np.random.default_rng(seed)):
            pred = reference.forward(model, images, keep_layers=False).pred
        out[rule] = float(np.mean(pred == labels))
    return out


def plot_ties(rows: list, labels: list, out) -> None:
    """Grouped bars: the share of hypercolumns tied at the k-th drive, per k-WTA layer and model
    (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hcs_neuro.core.io import atomic_path

    def name(s):
        return f"L{s['layer']} {s['type']}\n(C {s['channels']}, k {s['k']})"

    layer_names = list(dict.fromkeys(name(s) for row in rows for s in row["layers"]))
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(layer_names)), 4.0))
    for j, (row, label) in enumerate(zip(rows, labels)):
        share = {name(s): 100 * s["tied"] for s in row["layers"]}
        x = [i + (j - (len(rows) - 1) / 2) * width for i in range(len(layer_names))]
        ax.bar(x, [share.get(n, 0.0) for n in layer_names], width, label=label)
    ax.set_xticks(range(len(layer_names)))
    ax.set_xticklabels(layer_names, fontsize=8)
    ax.set_ylabel("hypercolumns tied at the k-th drive (%)")
    ax.set_title(f"k-WTA decisions left to the tie rule ({rows[0]['images']} test images)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="model files (.npz)")
    ap.add_argument("--from-json", help="draw --plot from an earlier --json output instead of running models")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir")
    ap.add_argument("--images", type=int, default=2000, help="first N test images (default 2000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random tie rule")
    ap.add_argument("--json", help="write the numbers here (atomically)")
    ap.add_argument("--plot", help="draw the tied shares per layer and model here (.png, .pdf, .svg)")
    ap.add_argument("--labels", nargs="+", help="one legend label per model (default: the file names)")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error(f"--images {args.images}: must be >= 1")
    if bool(args.models) == bool(args.from_json):
        ap.error("give model files or --from-json, not both or neither")
    if args.plot and Path(args.plot).suffix.lower() not in FIGURE_SUFFIXES:
        ap.error(f"--plot {args.plot}: the file name must end in .png, .pdf or .svg")
    if args.from_json:
        if not args.plot:
            ap.error("--from-json needs --plot")
        try:
            rows = json.loads(open(args.from_json).read())["models"]
            if not all({"images", "layers"} <= set(r) and all({"layer", "type", "channels", "k", "tied"} <= set(s)
                                                             for s in r["layers"]) for r in rows):
                raise ValueError("a model or layer entry lacks a field the figure needs")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"kwta_ties: error: {args.from_json}: not an output of kwta_ties.py --json ({exc})", file=sys.stderr)
            return 2
        if args.labels and len(args.labels) != len(rows):
            ap.error(f"--labels: {len(args.labels)} labels for {len(rows)} models")
        plot_ties(rows, args.labels or [r["model"] for r in rows], args.plot)
        return 0
    if args.labels and len(args.labels) != len(args.models):
        ap.error(f"--labels: {len(args.labels)} labels for {len(args.models)} models")
    try:
        models = [(path, load_model(path)) for path in args.models]
        x, y = load_dataset(args.dataset, "test", args.data_dir)
    except HCSError as exc:
        print(f"kwta_ties: error: {exc}", file=sys.stderr)
        return 2
    x, y = x[:args.images], y[:args.images]
    rows = []
    for path, model in models:
        try:
            res = reference.forward(model, x)
        except HCSError as exc:
            print(f"kwta_ties: error: {path}: {exc}", file=sys.stderr)
            return 2
        stats = tie_stats(model, res)
        acc = accuracy_by_rule(model, x, y, args.seed, index_pred=res.pred)
        rows.append({"model": str(path), "images": len(x), "layers": stats, "accuracy": acc})
        print(f"{path}  ({len(x)} test images of {args.dataset})")
        print("  accuracy by tie rule: " + ", ".join(f"{r} {100 * a:.2f} %" for r, a in acc.items()))
        print(f"  {'layer':<12} {'C':>4} {'k':>4} {'tied':>6} {'by index':>9} {'sharing':>8} {'low/high half win rate':>23}")
        for s in stats:
            name = f"{s['layer']} {s['type']}"
            print(f"  {name:<12} {s['channels']:>4} {s['k']:>4} {s['tied']:>6.3f} {s['by_index']:>9.2f} "
                  f"{s['sharing_kth_when_tied']:>8.1f} {s['low_half']:>11.3f} / {s['high_half']:.3f}")
    if args.json:
        write_json_atomic(args.json, {"dataset": args.dataset, "seed": args.seed, "models": rows})
    if args.plot:
        plot_ties(rows, args.labels or [str(p) for p in args.models], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The accuracy gap between two training recipes over seeds, from their learning-curve files.

Usage::

    python analysis/tools/seed_gap.py --a docs/data/fashion_curves/prob.json docs/data/fashion_curves/prob_seed{1,2,3}.json \
        --b docs/data/fashion_curves/shadow.json docs/data/fashion_curves/shadow_seed{1,2,3}.json \
        [--names probabilistic shadow] [--json OUT]
    python analysis/tools/seed_gap.py --from-json G1.json G2.json ... --labels "2-bit" "3-bit" ... \
        --plot FIG.png [--target 1]                                                (draw several gaps)
    python analysis/tools/seed_gap.py --compare G1.json G2.json           (is gap 1 larger than gap 2?)

Each file is a ``hcs-neuro train --curve`` record (test accuracy after every epoch); the final
epoch's accuracy is the run's result. Prints each recipe's runs, mean and sample sd, and the
difference of the means (a - b) with its standard error (Welch: sqrt(sd_a**2/n_a + sd_b**2/n_b))
and a 95 % interval from Student's t with Welch-Satterthwaite degrees of freedom. The spread is
between training runs (seeds); the test-set sampling error of each run (about 0.4 points at 85 %
on 10,000 images) is inside it.

``--from-json`` draws several earlier ``--json`` results side by side (e.g. one per weight
precision): each recipe's runs and means on the left, the differences with their 95 % intervals on
the right, with the band ``[-target, +target]`` shaded when ``--target`` is given.
``--compare`` prints the difference of two such gaps (gap 1 - gap 2) with its standard error
(the four groups' variances of the mean summed) and a 95 % interval from Student's t with the
Welch-Satterthwaite degrees of freedom of the four groups.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hcs_neuro.core.io import write_json_atomic
from hcs_neuro.core.curve import read_curve
from hcs_neuro.measure.stats import gap, welch
from hcs_neuro.core.io import FIGURE_SUFFIXES
from hcs_neuro.core.errors import HCSError


def final_accuracy(path: Path) -> float:
    """The last epoch's test accuracy of a ``--curve`` file, in per cent."""
    try:
        _, rows = read_curve(path)
    except HCSError as exc:
        raise SystemExit(f"seed_gap: {exc}") from None
    return 100.0 * float(rows[-1]["test_accuracy"])


_GAP_FIELDS = ("names", "a", "b", "mean_a", "mean_b", "difference", "ci95")


def read_gap(path: Path) -> dict:
    """An earlier ``--json`` result, checked for the fields the figure needs."""
    try:
        r = json.loads(Path(path).read_text())
        missing = [f for f in _GAP_FIELDS if f not in r]
        if missing:
            raise ValueError(f"no field {', '.join(missing)}")
        if len(r["names"]) != 2 or len(r["ci95"]) != 2 or not r["a"] or not r["b"]:
            raise ValueError("'names' and 'ci95' must hold two entries, 'a' and 'b' at least one run")
        for key in ("a", "b"):
            r[key] = {str(k): float(v) for k, v in dict(r[key]).items()}
        r["ci95"] = [float(x) for x in r["ci95"]]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise SystemExit(f"seed_gap: error: {path}: not an output of seed_gap.py --json ({exc})") from None
    return r


def compare_gaps(g1: dict, g2: dict) -> dict:
    """The difference of two gaps (g1 - g2) with its standard error and 95 % interval (Welch-
    Satterthwaite over the four groups: two recipes in each gap)."""
    groups = [list(g[key].values()) for g in (g1, g2) for key in ("a", "b")]
    if any(len(runs) < 2 for runs in groups):
        raise ValueError("each recipe needs at least two runs")
    d = g1["difference"] - g2["difference"]
    se, dof, half = welch(groups)
    return {"difference": d, "se": se, "dof": dof, "ci95": [d - half, d + half]}


def plot_gaps(gaps: list, labels: list, out, target: float | None = None, title: str = "") -> None:
    """Each gap's runs and means (left) and its difference with the 95 % interval (right),
    written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hcs_neuro.core.io import atomic_path

    names = gaps[0]["names"]
    x = list(range(len(gaps)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(8.0, 1.5 * len(gaps) + 4.0), 4.2))
    for j, (key, colour) in enumerate((("a", "C0"), ("b", "C1"))):
        dx = (j - 0.5) * 0.25
        for i, g in enumerate(gaps):
            runs = list(g[key].values())
            left.plot([i + dx] * len(runs), runs, "o", color=colour, alpha=0.5, ms=4)
            left.plot([i + dx - 0.08, i + dx + 0.08], [g["mean_" + key]] * 2, color=colour, lw=2.5,
                      label=f"{names[j]} (runs, mean)" if i == 0 else None)
    left.set_ylabel("test accuracy (%)")
    left.legend(fontsize=8)
    diffs = [g["difference"] for g in gaps]
    lo = [g["difference"] - g["ci95"][0] for g in gaps]
    hi = [g["ci95"][1] - g["difference"] for g in gaps]
    if target:
        right.axhspan(-target, target, color="0.9", label=f"within {target:g} point{'s' if target != 1 else ''}")
    right.axhline(0, color="0.5", lw=0.8)
    right.errorbar(x, diffs, yerr=[lo, hi], fmt="o", color="k", capsize=4, label="difference, 95 % interval (Welch)")
    right.set_ylabel(f"{names[0]} - {names[1]} (points)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_xlim(-0.6, len(gaps) - 0.4)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", type=Path, help="curve files of recipe a (one per seed)")
    ap.add_argument("--b", nargs="+", type=Path, help="curve files of recipe b (one per seed)")
    ap.add_argument("--names", nargs=2, default=["a", "b"])
    ap.add_argument("--json", type=Path, help="also write the result as JSON")
    ap.add_argument("--from-json", nargs="+", type=Path, metavar="GAP.json",
                    help="draw --plot from earlier --json results instead of computing one")
    ap.add_argument("--labels", nargs="+", help="with --from-json: one x-axis label per file (default: the file names)")
    ap.add_argument("--plot", help="with --from-json: the figure to write (.png, .pdf, .svg)")
    ap.add_argument("--target", type=float, help="with --from-json: shade the band [-T, +T] of the differences")
    ap.add_argument("--title", default="", help="with --from-json: the figure's title")
    ap.add_argument("--compare", nargs=2, type=Path, metavar="GAP.json",
                    help="the difference of two earlier --json gaps (first - second), with its 95 %% interval")
    args = ap.parse_args(argv)
    if args.compare:
        if args.a or args.b or args.from_json:
            ap.error("--compare takes two --json results, without --a/--b or --from-json")
        g1, g2 = (read_gap(p) for p in args.compare)
        try:
            r = compare_gaps(g1, g2)
        except ValueError as exc:
            ap.error(f"--compare: {exc}")
        n1, n2 = (" - ".join(g["names"]) for g in (g1, g2))
        print(f"{args.compare[0]} ({n1}): {g1['difference']:+.2f}; {args.compare[1]} ({n2}): {g2['difference']:+.2f}")
        print(f"first - second: {r['difference']:+.2f} points, standard error {r['se']:.2f}, 95 % interval "
              f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] (Welch-Satterthwaite, {r['dof']:.1f} degrees of freedom)")
        return 0
    if args.from_json:
        if args.a or args.b:
            ap.error("give --a/--b or --from-json, not both")
        if not args.plot:
            ap.error("--from-json needs --plot")
        if Path(args.plot).suffix.lower() not in FIGURE_SUFFIXES:
            ap.error(f"--plot {args.plot}: the file name must end in .png, .pdf or .svg")
        if args.labels and len(args.labels) != len(args.from_json):
            ap.error(f"--labels: {len(args.labels)} labels for {len(args.from_json)} files")
        if args.target is not None and not args.target > 0:
            ap.error(f"--target {args.target}: must be > 0")
        gaps = [read_gap(p) for p in args.from_json]
        if any(g["names"] != gaps[0]["names"] for g in gaps):
            ap.error("the files compare differently named recipes: " + "; ".join(
                f"{p}: {' - '.join(g['names'])}" for p, g in zip(args.from_json, gaps)))
        plot_gaps(gaps, args.labels or [p.stem for p in args.from_json], args.plot, args.target, args.title)
        return 0
    if args.plot or args.labels or args.target is not None:
        ap.error("--plot, --labels and --target go with --from-json")
    if not args.a or not args.b:
        ap.error("give --a and --b (curve files), or --from-json")
    if len(args.a) < 2 or len(args.b) < 2:
        ap.error("need at least two runs (seeds) per recipe for a spread")
    a = [final_accuracy(p) for p in args.a]
    b = [final_accuracy(p) for p in args.b]
    r = gap(a, b)
    for name, accs, key in ((args.names[0], a, "a"), (args.names[1], b, "b")):
        print(f"{name}: " + ", ".join(f"{x:.2f}" for x in accs)
              + f" % -> {r['mean_' + key]:.2f} +- {r['sd_' + key]:.2f} % (mean +- sd, {len(accs)} runs)")
    print(f"{args.names[0]} - {args.names[1]}: {r['difference']:+.2f} points, standard error {r['se']:.2f}, "
          f"95 % interval [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] (Welch, {r['dof']:.1f} degrees of freedom)")
    if args.json:
        write_json_atomic(args.json, {"names": args.names, "a": {str(p): x for p, x in zip(args.a, a)},
                                      "b": {str(p): x for p, x in zip(args.b, b)}, **r})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The accuracy gap between two training recipes over seeds, from their learning-curve files.

Usage::

    python analysis/seed_gap.py --a docs/data/fashion_curves/prob.json docs/data/fashion_curves/prob_seed{1,2,3}.json \
        --b docs/data/fashion_curves/shadow.json docs/data/fashion_curves/shadow_seed{1,2,3}.json \
        [--names probabilistic shadow] [--json OUT]

Each file is a ``hcs-neuro train --curve`` record (test accuracy after every epoch); the final
epoch's accuracy is the run's result. Prints each recipe's runs, mean and sample sd, and the
difference of the means (a - b) with its standard error (Welch: sqrt(sd_a**2/n_a + sd_b**2/n_b))
and a 95 % interval from Student's t with Welch-Satterthwaite degrees of freedom. The spread is
between training runs (seeds); the test-set sampling error of each run (about 0.4 points at 85 %
on 10,000 images) is inside it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

from hcs_neuro.atomic import write_json_atomic
from hcs_neuro.cli.plot import read_curve
from hcs_neuro.errors import HCSError


def final_accuracy(path: Path) -> float:
    """The last epoch's test accuracy of a ``--curve`` file, in per cent."""
    try:
        _, rows = read_curve(path)
    except HCSError as exc:
        raise SystemExit(f"seed_gap: {exc}") from None
    return 100.0 * float(rows[-1]["test_accuracy"])


def gap(a: list, b: list) -> dict:
    """Means, sds, the difference of the means (a - b), its Welch standard error and 95 % interval."""
    from scipy import stats

    ma, mb = statistics.mean(a), statistics.mean(b)
    sa, sb = statistics.stdev(a), statistics.stdev(b)
    va, vb = sa ** 2 / len(a), sb ** 2 / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else float("inf")
    half = float(stats.t.ppf(0.975, dof)) * se if se > 0 else 0.0
    return {"mean_a": ma, "sd_a": sa, "n_a": len(a), "mean_b": mb, "sd_b": sb, "n_b": len(b),
            "difference": ma - mb, "se": se, "dof": dof, "ci95": [ma - mb - half, ma - mb + half]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", required=True, type=Path, help="curve files of recipe a (one per seed)")
    ap.add_argument("--b", nargs="+", required=True, type=Path, help="curve files of recipe b (one per seed)")
    ap.add_argument("--names", nargs=2, default=["a", "b"])
    ap.add_argument("--json", type=Path, help="also write the result as JSON")
    args = ap.parse_args(argv)
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

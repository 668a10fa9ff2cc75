"""Compare training recipes on a validation split held out of the training images (the test split is
not touched), so that a recipe can be chosen without looking at test accuracy.

Usage::

    python analysis/tools/validate_recipe.py --config models/configs/digits.toml --name base \
        [--seeds 0 1 2] [--set beta1=0.99 --set lr=0.1] [--val 288] [--threads 1] [--out FILE.jsonl]

Each (config, overrides, seed) run appends one JSON line to ``--out``: the validation accuracy
(NumPy reference forward pass of the trained model on the held-out images) and the wall time. The
validation split is a fixed permutation (seed 1234) of the training split; ``--val`` images are
held out and the rest are trained on. Prints mean and sd over the seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.train import load_train_config, parse_train_overrides, train

VAL_SPLIT_SEED = 1234


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--name", required=True, help="label of the recipe in the output")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a [training] field, e.g. beta1=0.99 (repeatable)")
    ap.add_argument("--val", type=int, default=288, help="images held out of the training split")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir")
    ap.add_argument("--out", default="results/validate_recipe.jsonl")
    args = ap.parse_args(argv)

    try:
        arch = load_architecture(args.config)
        over = parse_train_overrides(args.set)
        base = load_train_config(args.config, **{"threads": args.threads, **over})
    except ConfigError as exc:
        ap.error(str(exc))
    x, y = load_dataset(base.dataset, "train", args.data_dir)
    if not 0 < args.val < len(y):
        ap.error(f"--val {args.val}: must be between 1 and {len(y) - 1}")
    perm = np.random.default_rng(VAL_SPLIT_SEED).permutation(len(y))
    val, tr = perm[:args.val], perm[args.val:]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    accs = []
    for seed in args.seeds:
        cfg = dataclasses.replace(base, seed=seed)
        t0 = time.time()
        _, rep = train(arch, cfg, args.data_dir, progress=False, train_data=(x[tr], y[tr]),
                       test_data=(x[val], y[val]))
        row = {"name": args.name, "config": args.config, "overrides": over, "seed": seed,
               "n_train": int(len(tr)), "n_val": int(len(val)), "val_accuracy": rep["test_accuracy"],
               "wall_s": round(time.time() - t0, 1)}
        with out.open("a") as fh:  # one complete line per run (append: runs accumulate)
            fh.write(json.dumps(row) + "\n")
        accs.append(rep["test_accuracy"])
        print(f"{args.name} seed {seed}: validation accuracy {100 * rep['test_accuracy']:.2f} %", flush=True)
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"{args.name}: {100 * statistics.mean(accs):.2f} +- {100 * sd:.2f} % over seeds {args.seeds} "
          f"({len(val)} validation images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

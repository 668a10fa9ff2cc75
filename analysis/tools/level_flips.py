"""Train with a per-epoch record of how many weight levels changed ("flips") and of the accuracy,
to study the churn of probabilistic level updates.

Usage::

    python analysis/tools/level_flips.py --config models/configs/fashion_short_budget.toml --out flips.jsonl \
        [--epochs 6] [--batch-size 128] [--lr 0.01] [--set beta1=0.99] [--set bias_learning=shadow]
        [--eval-images 2000] [--threads 1]

After every epoch one JSON line: ``acc_eval`` (PyTorch integer forward pass, equal to the reference,
on the first ``--eval-images`` test images), ``flips`` (per weighted layer: the fraction of weight
levels that differ from the previous epoch's) and ``zero`` (fraction of zero levels per layer);
finally the run's ``test_accuracy`` on the whole test split. Lines are appended as they come, so
the file can be watched during a long run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.train import load_train_config, parse_train_overrides, torch_forward, train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a [training] field, e.g. beta1=0.99 or bias_learning=shadow (repeatable)")
    ap.add_argument("--eval-images", type=int, default=2000)
    ap.add_argument("--data-dir")
    args = ap.parse_args(argv)
    try:
        arch = load_architecture(args.config)
        over = parse_train_overrides(args.set)
        cfg = load_train_config(args.config, **{"threads": args.threads, "epochs": args.epochs,
                                                "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                                                **over})
    except ConfigError as exc:
        ap.error(str(exc))
    xt, yt = load_dataset(cfg.dataset, "test", args.data_dir)
    xe, ye = xt[:args.eval_images], yt[:args.eval_images]
    prev = {}
    t0 = time.time()

    def write(row):
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    def on_epoch(epoch, model):
        levels = [np.asarray(p.weight_levels) for p in model.layers if p.weight_levels is not None]
        flips = [float((a != b).mean()) for a, b in zip(levels, prev["levels"])] if prev else None
        prev["levels"] = levels
        logits, _ = torch_forward(model, xe, keep_layers=False)
        write({"epoch": epoch, "acc_eval": float((logits.argmax(1) == ye).mean()), "n_eval": int(len(ye)),
               "flips": flips, "zero": [float((a == 0).mean()) for a in levels], "wall_s": round(time.time() - t0)})

    _, rep = train(arch, cfg, args.data_dir, progress=False, on_epoch=on_epoch)
    write({"test_accuracy": rep["test_accuracy"], "n_test": rep["n_test"], "overrides": over,
           "training": rep["training"]})
    print(f"test accuracy {100 * rep['test_accuracy']:.2f} % ({rep['n_test']} images); per-epoch record in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

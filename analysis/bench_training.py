"""Training throughput: low-precision HCS (probabilistic / shadow) vs full-precision PyTorch training
of the same architecture, measured side by side in one run (interleaved rounds, same threads).

Usage::

    nice -n 10 .venv/bin/python analysis/bench_training.py [--config models/configs/fashion.toml]
        [--dataset fashion-mnist] [--steps 30] [--rounds 3] [--threads 2] [--json analysis/results/bench_training.json]

Prints images/s per variant (median over rounds) and the ratio low-precision / full precision;
the probabilistic HCS model is run with the compiled k-WTA (hcs_neuro/csrc/kwta.cpp) and with the
pure-PyTorch one;
writes them as JSON. The CPU may be shared: rounds are interleaved so that a load change hits
every variant alike; the spread over rounds is reported too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from hcs_neuro import _kwta_ext
from hcs_neuro.architecture import load_architecture, with_overrides
from hcs_neuro.atomic import write_json_atomic
from hcs_neuro.datasets import load_dataset
from hcs_neuro.training import load_train_config, measure_throughput


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="models/configs/fashion.toml")
    ap.add_argument("--dataset", help="default: the config's [training] dataset")
    ap.add_argument("--data-dir")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, help="default: the config's")
    ap.add_argument("--json", default="analysis/results/bench_training.json")
    args = ap.parse_args(argv)

    arch = load_architecture(args.config)
    cfg = load_train_config(args.config, dataset=args.dataset, threads=args.threads, batch_size=args.batch_size)
    x, y = load_dataset(cfg.dataset, "train", args.data_dir)
    shadow = load_train_config(args.config, dataset=args.dataset, threads=args.threads,
                               batch_size=args.batch_size, learning="shadow")
    # (architecture, training config, compiled k-WTA?)
    variants = {
        "full_precision": (with_overrides(arch, weight_bits=32, act_bits=32, input_bits=32, hcs=False), cfg, True),
        "full_precision_hcs": (with_overrides(arch, weight_bits=32, act_bits=32, input_bits=32), cfg, True),
        "low_precision_hcs_probabilistic": (arch, cfg, True),
        "low_precision_hcs_shadow": (arch, shadow, True),
        "low_precision_hcs_probabilistic_pytorch_kwta": (arch, cfg, False),
    }
    if _kwta_ext.load() is None:
        print("the compiled k-WTA is unavailable: every variant runs the PyTorch k-WTA", file=sys.stderr)
    rates = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (a, c, fused) in variants.items():
            rate = measure_throughput(a, c, x, y, args.steps, fused_kwta=fused)
            rates[name].append(rate)
            print(f"round {r + 1}/{args.rounds} {name:<34} {rate:8.0f} images/s", file=sys.stderr, flush=True)
    med = {name: statistics.median(v) for name, v in rates.items()}
    ratios = {
        "ratio_probabilistic_vs_full_precision": med["low_precision_hcs_probabilistic"] / med["full_precision"],
        "ratio_shadow_vs_full_precision": med["low_precision_hcs_shadow"] / med["full_precision"],
        "ratio_probabilistic_vs_full_precision_hcs": med["low_precision_hcs_probabilistic"] / med["full_precision_hcs"],
        "ratio_probabilistic_pytorch_kwta_vs_full_precision":
            med["low_precision_hcs_probabilistic_pytorch_kwta"] / med["full_precision"],
    }
    out = {
        "config": args.config, "dataset": cfg.dataset, "batch_size": cfg.batch_size, "threads": args.threads,
        "steps_per_round": args.steps, "rounds": args.rounds,
        "compiled_kwta": _kwta_ext.load() is not None,
        "images_per_s_median": med, "images_per_s_rounds": rates, **ratios,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
    }
    for name, v in med.items():
        print(f"{name:<34} {v:8.0f} images/s (rounds: {', '.join(f'{r:.0f}' for r in rates[name])})")
    for name, v in ratios.items():
        print(f"{name:<44} {v:.2f}")
    write_json_atomic(args.json, out)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput: low-precision HCS (probabilistic / shadow) vs full-precision PyTorch training
of the same architecture, measured side by side in one run (interleaved rounds, same threads).

Usage::

    nice -n 10 .venv/bin/python analysis/bench/bench_training.py [--config models/configs/fashion_short_budget.toml]
        [--dataset fashion-mnist] [--steps 30] [--rounds 3] [--threads 2] [--json analysis/results/bench_training.json]

Prints images/s per variant (median over rounds) and the ratio low-precision / full precision;
writes them as JSON. The reference for the ratios is ``plain_pytorch``: the same architecture
written as a user of PyTorch would (``nn.Sequential`` of ``Conv2d``/``ReLU``/sum pooling/``Linear``,
float32 input, ``torch.optim.Adam``), with none of hcs-neuro's machinery. The full-precision run
through hcs-neuro's own network class (``full_precision``) and its k-WTA variant are reported
beside it. The probabilistic HCS model is run with the compiled kernels
(hcs_neuro/train/csrc/kwta.cpp) and with the pure-PyTorch path. The CPU may be shared: rounds are
interleaved so that a load change hits every variant alike; the spread over rounds is reported
too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from hcs_neuro.train import ext as _kwta_ext
from hcs_neuro.core.architecture import load_architecture, with_overrides
from hcs_neuro.core.io import write_json_atomic
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.train import load_train_config, measure_throughput


def plain_pytorch_net(arch):
    """The architecture as plain PyTorch layers: float weights, ReLU, no k-WTA, sum pooling."""
    import torch.nn as nn
    import torch.nn.functional as F

    class SumPool(nn.Module):
        def __init__(self, spec):
            super().__init__()
            self.spec = spec

        def forward(self, x):
            s = self.spec
            if s.type == "pool2d":
                return F.avg_pool2d(x, s.kernel, s.stride, s.padding, divisor_override=1)
            return F.avg_pool1d(x, s.kernel, s.stride, s.padding) * s.kernel

    layers, in_ch = [], arch.input_shape[0]
    for spec in arch.layers:
        if spec.type in ("conv2d", "conv1d"):
            conv = nn.Conv2d if spec.type == "conv2d" else nn.Conv1d
            layers += [conv(in_ch, spec.out_shape[0], spec.kernel, spec.stride, spec.padding), nn.ReLU()]
            in_ch = spec.out_shape[0]
        elif spec.type in ("pool2d", "pool1d"):
            layers.append(SumPool(spec))
        else:
            layers += [nn.Flatten(), nn.Linear(spec.fan_in, spec.out_shape[0])]
    return nn.Sequential(*layers)


def plain_pytorch_throughput(arch, cfg, x, y, steps: int) -> float:
    """Training images/s of :func:`plain_pytorch_net` with ``torch.optim.Adam`` (after one warm-up
    step), timed like :func:`hcs_neuro.train.measure_throughput` (batch drawn, to tensors,
    forward, backward, update)."""
    import torch
    import torch.nn.functional as F

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    net = plain_pytorch_net(arch)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr_float)
    rng = np.random.default_rng(cfg.seed)
    y_t = torch.as_tensor(y)
    t_total, n_img = 0.0, 0
    for s in range(steps + 1):
        idx = rng.integers(0, len(y), cfg.batch_size)
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(torch.as_tensor(x[idx])), y_t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s:
            t_total += time.perf_counter() - t0
            n_img += len(idx)
    return n_img / t_total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="models/configs/fashion_short_budget.toml")
    ap.add_argument("--dataset", help="default: the config's [training] dataset")
    ap.add_argument("--data-dir")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, help="default: the config's")
    ap.add_argument("--json", default="results/bench/training.json")
    ap.add_argument("--quick", action="store_true", help="smoke test (CI): the smallest run that exercises every part")
    args = ap.parse_args(argv)
    if args.quick:
        args.config, args.steps, args.rounds, args.threads = "models/configs/digits.toml", 2, 1, 1

    arch = load_architecture(args.config)
    cfg = load_train_config(args.config, dataset=args.dataset, threads=args.threads, batch_size=args.batch_size)
    x, y = load_dataset(cfg.dataset, "train", args.data_dir)
    shadow = load_train_config(args.config, dataset=args.dataset, threads=args.threads,
                               batch_size=args.batch_size, learning="shadow")
    # (architecture, training config, compiled k-WTA?)
    variants = {
        "plain_pytorch": (arch, cfg, None),
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
            if fused is None:
                rate = plain_pytorch_throughput(a, c, x, y, args.steps)
            else:
                rate = measure_throughput(a, c, x, y, args.steps, fused_kwta=fused)
            rates[name].append(rate)
            print(f"round {r + 1}/{args.rounds} {name:<34} {rate:8.0f} images/s", file=sys.stderr, flush=True)
    med = {name: statistics.median(v) for name, v in rates.items()}
    ratios = {
        "ratio_probabilistic_vs_plain_pytorch": med["low_precision_hcs_probabilistic"] / med["plain_pytorch"],
        "ratio_shadow_vs_plain_pytorch": med["low_precision_hcs_shadow"] / med["plain_pytorch"],
        "ratio_probabilistic_pytorch_kwta_vs_plain_pytorch":
            med["low_precision_hcs_probabilistic_pytorch_kwta"] / med["plain_pytorch"],
        "ratio_probabilistic_vs_full_precision": med["low_precision_hcs_probabilistic"] / med["full_precision"],
        "ratio_probabilistic_vs_full_precision_hcs": med["low_precision_hcs_probabilistic"] / med["full_precision_hcs"],
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

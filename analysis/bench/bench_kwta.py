"""Per-layer time of the k-WTA selection in training: the compiled kernels against the PyTorch path.

Usage::

    .venv/bin/python analysis/bench/bench_kwta.py [--model fashion_hcs_ternary] [--batch-size 128]
        [--threads 2] [--rounds 7] [--json PATH]

Runs the shipped model on the first ``--batch-size`` test images (the reference forward pass
records every layer's integer drives), then times, per hypercolumn layer, on those drives:
``kwta_select`` (winners + window surrogate, hcs_neuro/train/csrc/kwta.cpp), ``kwta_pool`` (the same
fused with the next layer's sum pooling, where one follows), the pure-PyTorch path
(``select_torch``, the specification of the kernels) and a ReLU of the same tensor for scale.
Prints the median milliseconds over ``--rounds`` rounds (interleaved) and, with ``--json``,
writes them. Needs the compiled extension.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _time(fn, reps: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1e3


def main(argv=None) -> int:
    import torch

    from hcs_neuro.train import ext as _kwta_ext
    from hcs_neuro.pipeline import resolve_model
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.train import torch_forward
    from hcs_neuro.train.kwta import pools_compiled, select_torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fashion_hcs_ternary", help="a shipped model's name or a file")
    ap.add_argument("--dataset", help="default: the model's")
    ap.add_argument("--data-dir")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", help="write the medians here")
    ap.add_argument("--quick", action="store_true", help="smoke test (CI): the smallest run that exercises every part")
    args = ap.parse_args(argv)
    if args.quick:
        args.model, args.batch_size, args.rounds, args.threads = "digits_hcs", 16, 1, 1

    ext = _kwta_ext.load()
    if ext is None:
        print("bench_kwta: the compiled k-WTA is unavailable here", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    arch = model.architecture
    dataset = args.dataset or model.metadata.get("dataset", "fashion-mnist")
    x, _ = load_dataset(dataset, "test", args.data_dir)
    _, layers = torch_forward(model, x[:args.batch_size])

    cases = []  # (name, callable)
    for i, (spec, (drive, _, _)) in enumerate(zip(arch.layers, layers)):
        if spec.is_readout or spec.k is None or spec.k >= spec.out_shape[0]:
            continue
        d = torch.as_tensor(drive, dtype=torch.float32)
        label = f"layer {i} {spec.type} {tuple(d.shape[1:])} k={spec.k}"
        cases.append((label, "kwta_select", lambda d=d, k=spec.k: ext.kwta_select(d, k, True, True, 0.01)))
        if spec.act_bits == 1 and pools_compiled(arch, i + 1, d.shape):
            p = arch.layers[i + 1].kernel
            cases.append((label, "kwta_pool", lambda d=d, k=spec.k, p=p: ext.kwta_pool(d, k, True, p, p)))
        cases.append((label, "pytorch", lambda d=d, k=spec.k: select_torch(d, k, True, True, 0.01)))
        cases.append((label, "relu", lambda d=d: torch.relu(d)))
    times = {(label, name): [] for label, name, _ in cases}
    for _ in range(args.rounds):
        for label, name, fn in cases:
            times[(label, name)].append(_time(fn, 5))
    print(f"{args.model}, batch {args.batch_size}, {args.threads} threads, median of {args.rounds} rounds (ms)")
    for label in dict.fromkeys(label for label, _, _ in cases):
        cells = [f"{name} {statistics.median(v):6.2f}" for (lab, name), v in times.items() if lab == label]
        print(f"{label:<42} " + "  ".join(cells))
    if args.json:
        from hcs_neuro.core.io import write_json_atomic

        med = {}
        for (label, name), v in times.items():
            med.setdefault(label, {})[name] = statistics.median(v)
        write_json_atomic(args.json, {"model": args.model, "batch_size": args.batch_size, "threads": args.threads,
                                      "rounds": args.rounds, "median_ms": med, "rounds_ms":
                                      {f"{label} | {name}": v for (label, name), v in times.items()},
                                      "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

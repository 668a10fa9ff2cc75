"""Benchmark: a whole model as a spiking network, against the reference and against the naive way.

Measures, in one run, on the same machine:

1. **naive**: the runtime-mode network (Brian2 runtime device, NumPy code generation) built and
   run per image, on the first ``--naive-images`` images: seconds per image (build + run);
2. **compiled**: :func:`hcs_neuro.pipeline.run_network`: one cpp_standalone compilation,
   chunks of images rerun through ``run_args`` by ``--n-jobs`` forked processes, validated block
   by block against the reference: class agreement, conditional per-layer agreement (strict and
   tie-tolerant), latency, spikes; seconds per image with and without the compilation;
3. the speed-up ``naive s/image / compiled s/image`` on the naive subset's size and on all
   images (compilation included in both);
4. the race cost model: simulated steps per image for refinement factors 2..8 and for a plain
   ramp without refinement (computed from :func:`hcs_neuro.brian.race.race_window`, not simulated).

Usage::

    python analysis/bench/bench_network.py --model digits_hcs --dataset digits --json results/bench_network_digits.json
    python analysis/bench/bench_network.py --model models/fashion_hcs.npz --dataset fashion-mnist \
        --json results/bench_network_fashion.json

Targets (issue 4): digits class agreement >= 99.5 %; Fashion-MNIST class agreement >= 99 %,
accuracy within 0.5 points, conditional agreement >= 99.9 % (tie-tolerant), 10,000 images
<= 15 min on 2 cores, >= 20x the naive throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="digits_hcs")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir")
    p.add_argument("--n-images", type=int, help="images for the compiled run (default: whole test split)")
    p.add_argument("--naive-images", type=int, default=5, help="images for the naive per-image runs (default 5)")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--block", type=int, default=500)
    p.add_argument("--circuit")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--quick", action="store_true", help="smoke test (CI): the smallest run that exercises every part")
    args = p.parse_args(argv)
    if args.quick:
        args.n_images, args.naive_images, args.block = 8, 1, 8


    from hcs_neuro.brian.race import plan_network, race_window
    from hcs_neuro.core.io import write_json_atomic
    from hcs_neuro.pipeline import load_images, resolve_model, run_network, validation_summary
    from hcs_neuro.report import print_validation
    from hcs_neuro.brian.session import simulate
    from hcs_neuro.core.circuit_file import load_race_circuit

    model = resolve_model(args.model)
    images, labels = load_images(model, args.dataset, "test", args.data_dir, args.n_images)
    race = load_race_circuit(args.circuit)
    plan = plan_network(model, race)
    n = len(images)
    print(f"bench_network: {model.architecture.name} on {n} {args.dataset} test images; "
          f"{plan.steps_per_image} steps x {race.dt_ms} ms per image", flush=True)

    # 1. naive: runtime device, one network built and run per image
    n_naive = min(args.naive_images, n)
    t0 = time.perf_counter()
    naive_agree = 0
    from hcs_neuro.core import reference

    ref_naive = reference.forward(model, images[:n_naive])
    for i in range(n_naive):
        sp = simulate(model, images[i:i + 1], circuit=race, device="runtime", chunk=1, progress=False)
        naive_agree += int(sp.pred[0] == ref_naive.pred[i])
    naive_s = (time.perf_counter() - t0) / max(n_naive, 1)
    print(f"naive (runtime device, network built per image): {naive_s:.2f} s/image on {n_naive} images", flush=True)

    # 2. compiled: one standalone compilation, all images in blocks, validated
    t0 = time.perf_counter()
    metrics = validation_summary(run_network(model, images, labels, circuit=race, n_jobs=args.n_jobs,
                                             block=args.block, energy=False, progress=True))
    total_s = time.perf_counter() - t0
    print_validation(metrics)
    compile_s = metrics["compile_time_s"]
    run_s = metrics["wall_time_s"]
    per_img_run = run_s / n
    # same-size subset as the naive run: compile + its share of the run time
    subset_s = (compile_s + per_img_run * n_naive) / max(n_naive, 1)

    # 4. race cost model (computed, not simulated)
    cost = {}
    for f in (2, 3, 4, 8):
        cost[f"refine_factor_{f}"] = sum(race_window(lp.theta0 - lp.floor, f)[2] + 1 for lp in plan.layers) + 1
    cost["plain_ramp_no_refinement"] = sum(race_window(lp.theta0 - lp.floor, 2, 0)[2] + 1 for lp in plan.layers) + 1
    cells = plan.n_inputs + sum(lp.n_cells + lp.n_hypercolumns for lp in plan.layers)

    out = {
        "model": model.architecture.source, "dataset": args.dataset, "n_images": n,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_avg_1min_at_end": os.getloadavg()[0]},
        "circuit": race.name, "dt_ms": race.dt_ms, "refine_factor": race.refine_factor,
        "steps_per_image": plan.steps_per_image, "window_ms": plan.window_ms,
        "neurons": cells, "neuron_steps_per_image": cells * plan.steps_per_image,
        "naive_images": n_naive, "naive_s_per_image": naive_s, "naive_class_agreement": naive_agree / max(n_naive, 1),
        "compile_time_s": compile_s, "run_time_s": run_s, "total_time_s": total_s,
        "s_per_image_excluding_compile": per_img_run,
        "s_per_image_including_compile": (compile_s + run_s) / n,
        "speedup_vs_naive_all_images": naive_s / ((compile_s + run_s) / n),
        "speedup_vs_naive_excluding_compile": naive_s / per_img_run,
        "speedup_vs_naive_same_subset_including_compile": naive_s / subset_s,
        "projected_10000_images_s": compile_s + per_img_run * 10000,
        "steps_per_image_by_race": cost,
        "validation": metrics,
    }
    print(f"compiled: {compile_s:.1f} s compile + {run_s:.1f} s for {n} images ({per_img_run * 1e3:.1f} ms/image, "
          f"{args.n_jobs} processes); naive {naive_s:.2f} s/image")
    print(f"speed-up vs naive: {out['speedup_vs_naive_all_images']:.1f}x (all {n} images, compile included), "
          f"{out['speedup_vs_naive_excluding_compile']:.1f}x (compile excluded)")
    print(f"steps per image by race design (computed): {json.dumps(cost)}")
    if args.json:
        write_json_atomic(args.json, out)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

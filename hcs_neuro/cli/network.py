"""``hcs-neuro simulate`` and ``hcs-neuro validate``: a whole model as a Brian2 spiking network."""

from __future__ import annotations

import numpy as np

from hcs_neuro.cli.args import (
    add_data_arguments,
    add_json,
    add_network_arguments,
    add_overwrite,
    float_in,
    int_in,
    output_dir,
)
from hcs_neuro.core.io import check_output_dir, write_json_atomic
from hcs_neuro.pipeline import (
    load_images,
    resolve_model,
    run_network,
    simulate_images,
    validation_summary,
    write_network_report,
)

__all__ = ["register"]


def _common(p) -> None:
    p.add_argument("model", metavar="MODEL", help="model .npz file, or the name of a shipped model (e.g. digits_hcs)")
    add_data_arguments(p)
    add_network_arguments(p, device=False)
    p.add_argument("--chunk", type=int_in(1, 100_000), metavar="N",
                   help="images per run of the compiled binary (default: automatic)")
    add_json(p)


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "simulate", help="simulate a model as a Brian2 spiking network on dataset images",
        description="Convert MODEL into a spiking network (synapses for its non-zero integer weight levels, "
        "k-WTA interneurons per hypercolumn, a phased integer race per layer) and simulate it with Brian2 "
        "(cpp_standalone, compiled once) on images of a dataset. Prints predictions, latency, spikes.")
    _common(s)
    s.add_argument("--device", choices=("cpp_standalone", "runtime"), default="cpp_standalone",
                   help="cpp_standalone (default; compiled once) or runtime (NumPy code generation, slow)")
    s.set_defaults(func=_simulate)

    v = subparsers.add_parser(
        "validate", help="simulate a model spiking and compare it with the rate-based reference",
        description="Simulate MODEL as a spiking network and report class agreement, spiking accuracy beside "
        "reference accuracy, conditional per-layer winner agreement (strict and near-tie-tolerant), decision "
        "latency (ms), spikes per neuron per image, and the SOP cross-check. Images are processed in blocks "
        "(memory bounded) by one compiled network.")
    _common(v)
    v.add_argument("--tie-tol", type=float_in(0, 1, hi_open=True), default=0.01, metavar="F",
                   help="near-tie tolerance as a fraction of each hypercolumn's drive range, 0 <= F < 1 "
                        "(default 0.01)")
    v.add_argument("--block", type=int_in(1, 1_000_000), default=500, metavar="N",
                   help="images per validation block (bounds memory; default 500)")
    v.add_argument("--out", metavar="DIR", type=output_dir,
                   help="write a report folder (new or empty: report.md, figures, JSON) for the first block")
    add_overwrite(v)
    v.set_defaults(func=_validate)


def _load(args):
    """Model, images, labels and network, all checked before anything is simulated."""
    from hcs_neuro.brian.session import make_network

    model = resolve_model(args.model)
    images, labels = load_images(model, args.dataset, args.split, args.data_dir, args.n_images)
    network = make_network(model, args.circuit)  # a bad circuit, or a model that cannot be converted
    return model, images, labels, network


def _simulate(args) -> int:
    model, images, labels, network = _load(args)
    sp = simulate_images(model, images, circuit=network.race, n_jobs=args.n_jobs, chunk=args.chunk, seed=args.seed,
                         progress=not args.no_progress, device=args.device)
    lat = sp.decision_latency_ms[np.isfinite(sp.decision_latency_ms)]
    cells = sum(l.n_exc for l in sp.layers)
    out = {
        "model": model.architecture.source, "dataset": args.dataset, "n_images": sp.n_images,
        "spiking_accuracy": float((sp.pred == labels).mean()),
        "undecided_fraction": float((sp.pred < 0).mean()),
        "latency_ms_median": float(np.median(lat)) if lat.size else None,
        "latency_ms_max": float(lat.max()) if lat.size else None,
        "spikes_per_image": float(sp.total_spikes().mean()),
        "spikes_per_neuron_per_image": float(sum(l.spike_counts.sum() for l in sp.layers) / (cells * sp.n_images)),
        "sops_per_image": float(sp.total_sops().mean()),
        "dt_ms": sp.dt_ms, "window_ms": sp.window_ms,
        "wall_time_s": sp.wall_time_s, "compile_time_s": sp.metadata.get("compile_time_s"),
        "images_per_s": sp.n_images / max(sp.metadata.get("run_time_s", sp.wall_time_s), 1e-9),
        "pred": sp.pred.tolist(), "metadata": sp.metadata,
    }
    print(f"simulated {out['n_images']} images of {args.dataset} ({model.architecture.name}, circuit "
          f"{network.race.name}, dt {sp.dt_ms:g} ms, window {sp.window_ms:g} ms per image)")
    print(f"spiking accuracy {100 * out['spiking_accuracy']:.2f} %, undecided {100 * out['undecided_fraction']:.2f} %")
    if lat.size:
        print(f"decision latency median {out['latency_ms_median']:.2f} ms, max {out['latency_ms_max']:.2f} ms "
              f"(from stimulus onset)")
    print(f"per image: {out['spikes_per_image']:,.0f} spikes ({out['spikes_per_neuron_per_image']:.3f} per "
          f"excitatory neuron), {out['sops_per_image']:,.0f} SOPs")
    print(f"wall time {out['wall_time_s']:.1f} s (compile {out['compile_time_s']:.1f} s), "
          f"{out['images_per_s']:.1f} images/s after compiling")
    if args.json:
        write_json_atomic(args.json, out)
        print(f"wrote {args.json}")
    return 0


def _validate(args) -> int:
    from hcs_neuro.report import REPORT_KIND, print_validation

    if args.out:
        check_output_dir(args.out, overwrite=args.overwrite, kind=REPORT_KIND)
    model, images, labels, network = _load(args)
    run = run_network(model, images, labels, circuit=network.race, n_jobs=args.n_jobs, chunk=args.chunk,
                      seed=args.seed, tie_tol=args.tie_tol, block=args.block, energy=False,
                      progress=not args.no_progress, keep_first=bool(args.out))
    metrics = validation_summary(run)
    metrics["model"] = model.architecture.source
    metrics["dataset"] = args.dataset
    print_validation(metrics)
    if args.json:
        write_json_atomic(args.json, metrics)
        print(f"wrote {args.json}")
    if args.out:
        report = write_network_report(run, model, args.out, overwrite=args.overwrite,
                                      title=f"hcs-neuro validate: {model.architecture.name} on {args.dataset}")
        print(f"report: {report}")
    return 0

"""``hcs-neuro demo``: the main job on the embedded default.

The shipped digits model (scikit-learn's bundled 8x8 digits, nothing to download) is simulated as
a Brian2 spiking network on the digits test split, validated against the rate-based reference,
its spikes, synaptic operations and energy are counted, and a one-page report folder is written.
The last line printed says where the report is.

This replaces the first version (commit 4cb99ca), which evaluated the shipped model with the
NumPy reference only: the reference accuracy is now printed beside the spiking accuracy, and
``hcs-neuro evaluate`` remains the reference-only command.
"""

from __future__ import annotations

from hcs_neuro.cli.args import (
    add_json,
    add_network_arguments,
    add_overwrite,
    int_in,
    output_dir,
)
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import write_json_atomic
from hcs_neuro.pipeline import DEMO_MODEL, run_demo

__all__ = ["register", "QUICK_N_IMAGES"]

#: Images simulated with ``--quick`` (the smoke test; the full digits test split has 359).
QUICK_N_IMAGES = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the main job: simulate the shipped digits model as a spiking network, validate, "
             "count energy, write a report",
        description="Simulate the shipped digits model as a Brian2 spiking network on the digits test "
        "split (359 images), validate it against the rate-based reference (class agreement, accuracy, "
        "conditional per-layer winner agreement, latency), count spikes, synaptic operations and energy "
        "per image, and write a one-page report folder (report.md with figures and JSON).",
    )
    p.add_argument("--model", default=DEMO_MODEL, metavar="MODEL",
                   help=f"model file or shipped name (default: {DEMO_MODEL})")
    p.add_argument("--n-images", type=int_in(1), metavar="N", help="first N test images (default: all 359)")
    p.add_argument("--quick", action="store_true", help=f"smoke test: first {QUICK_N_IMAGES} images only")
    p.add_argument("--out", default="hcs-neuro-demo", metavar="DIR", type=output_dir,
                   help="report folder, new or empty (default: ./hcs-neuro-demo; written atomically)")
    add_overwrite(p)
    add_network_arguments(p)
    add_json(p, "write the summary numbers as JSON")
    p.set_defaults(func=_handle)


def _handle(args) -> int:
    n = args.n_images
    if args.quick:
        n = QUICK_N_IMAGES if n is None else min(n, QUICK_N_IMAGES)
    if n is not None and n < 1:
        raise ConfigError(f"--n-images {n}: allowed an integer >= 1")

    s = run_demo(model=args.model, n_images=n, out=args.out, circuit=args.circuit, n_jobs=args.n_jobs,
                 seed=args.seed, progress=not args.no_progress, device=args.device, overwrite=args.overwrite)

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"

    print(f"class agreement {pct(s['class_agreement'])}; spiking accuracy {pct(s['spiking_accuracy'])} "
          f"(reference {pct(s['reference_accuracy'])}) on {s['n_images']} images")
    print(f"per image: {s['spikes_per_image']:,.0f} spikes, {s['sops_per_image']:,.0f} SOPs "
          f"(reference: {s['effective_ops_per_image']:,.0f} effective ops); SOPs = analytic where winners agree: "
          f"{'yes' if s['sops_equal_where_winners_agree'] else 'NO'}")
    with_dm = s["energy_per_image_with_data_movement_uj"]
    print("energy per image (chip level, uJ without / with data movement; one value where a profile's figures "
          "include memory): " + ", ".join(f"{k} {v:.3g}" if v == with_dm[k] else f"{k} {v:.3g} / {with_dm[k]:.3g}"
                                          for k, v in s["energy_per_image_uj"].items()))
    r = s["snn_over_reference"]
    print(f"{r['profile']} / {r['reference']} (one model): {r['without_data_movement']:.3g} without data movement, "
          f"{r['with_data_movement']:.3g} with (dense reference), {r['with_data_movement_sparse']:.3g} with "
          f"(sparse reference bound); see report.md for the break-even activity")
    compile_s = s["compile_time_s"]
    print(f"simulation {s['wall_time_s']:.1f} s ({s['device']}"
          f"{'' if compile_s is None else f', of which build/compile {compile_s:.1f} s'}), total {s['total_time_s']:.1f} s")
    if args.json:
        write_json_atomic(args.json, s)
        print(f"wrote {args.json}")
    print(f"report: {s['report']}")
    return 0

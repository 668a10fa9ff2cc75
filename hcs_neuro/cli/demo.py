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

from hcs_neuro.cli.args import add_json, add_overwrite, int_in, output_dir, seed

__all__ = ["register", "run_demo", "DEMO_MODEL", "DEFAULT_MODEL", "QUICK_N_IMAGES"]

#: The shipped model the demo runs (``models/digits_hcs.npz``, found by name).
DEMO_MODEL = "digits_hcs"
#: Former name (the foundation engineer's first version of this command).
DEFAULT_MODEL = DEMO_MODEL
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
    p.add_argument("--circuit", metavar="FILE", help="circuit .toml (default: simulate's)")
    p.add_argument("--device", choices=("cpp_standalone", "runtime"), default="cpp_standalone",
                   help="Brian2 device: cpp_standalone compiles once and runs fast (default); runtime needs "
                        "no compiler (NumPy code generation; about 1 s per image)")
    p.add_argument("--n-jobs", type=int_in(1, 64), default=2, metavar="N", help="simulation processes (default: 2)")
    p.add_argument("--seed", type=seed, default=0, help="simulation seed (default: 0)")
    add_json(p, "write the summary numbers as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_handle)


def run_demo(*, model=DEMO_MODEL, n_images=None, out="hcs-neuro-demo", circuit=None, n_jobs=2, seed=0,
             progress=True, device="cpp_standalone", log=print, overwrite: bool = False) -> dict:
    """Simulate, validate, count energy and write the report; return a JSON-able summary.

    Returns
    -------
    dict
        ``report`` (path of report.md), ``n_images``, ``class_agreement``, ``spiking_accuracy``,
        ``reference_accuracy``, ``sops_per_image``, ``spikes_per_image``,
        ``energy_per_image_uj`` (per profile), ``sops_equal_where_winners_agree``,
        ``wall_time_s`` (simulation) and ``total_time_s`` (everything, this call).
    """
    import time

    from hcs_neuro.core import reference as ref_mod
    from hcs_neuro.cli.energy import load_images, resolve_model
    from hcs_neuro.measure.energy import network_energy
    from hcs_neuro.report import write_report

    t0 = time.perf_counter()
    from hcs_neuro.brian.session import simulate
    from hcs_neuro.core.circuit_file import load_race_circuit
    from hcs_neuro.measure.validate import validate

    from hcs_neuro.core.io import check_output_dir
    from hcs_neuro.report import REPORT_KIND

    check_output_dir(out, overwrite=overwrite, kind=REPORT_KIND)  # before any work
    circuit = load_race_circuit(circuit)  # a bad circuit file: error before any work
    model = resolve_model(model)
    images, labels = load_images(model, "digits", "test", None, n_images)
    log(f"demo: {model.architecture.name} on {len(images)} digits test images "
        f"(8x8, scikit-learn's bundled set); reference forward pass")
    ref = ref_mod.forward(model, images)
    log(f"demo: spiking simulation (Brian2 {device}"
        f"{'; compiles the C++ project once first' if device == 'cpp_standalone' else ''})")
    spiking = simulate(model, images, circuit=circuit, n_jobs=n_jobs, progress=progress, seed=seed, device=device)
    validation = validate(model, images, labels, spiking, reference=ref)
    energy = network_energy(model, ref, spiking, input_levels=ref_mod.quantize_input(model, images))
    report = write_report(out, model=model, reference=ref, spiking=spiking, validation=validation, energy=energy,
                          title=f"hcs-neuro demo: {model.architecture.name} as a spiking network",
                          overwrite=overwrite)
    summary = {
        "report": str(report),
        "n_images": int(len(images)),
        "class_agreement": validation.get("class_agreement"),
        "spiking_accuracy": validation.get("spiking_accuracy"),
        "reference_accuracy": validation.get("reference_accuracy"),
        "spikes_per_image": energy["totals"]["spikes_per_image"],
        "sops_per_image": energy["totals"]["sops_per_image"],
        "effective_ops_per_image": energy["totals"]["effective_ops_per_image"],
        "sops_equal_where_winners_agree": energy["sop_check"]["sops_equal_where_winners_agree"],
        "energy_per_image_uj": {name: p["per_image_uj"] for name, p in energy["energy"].items()},
        "wall_time_s": float(spiking.wall_time_s),
        "compile_time_s": spiking.metadata.get("compile_time_s"),
        "device": device,
        "total_time_s": time.perf_counter() - t0,
    }
    return summary


def _handle(args) -> int:
    from hcs_neuro.core.io import write_json_atomic
    from hcs_neuro.core.errors import ConfigError

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
    print("energy per image (chip level): " + ", ".join(f"{k} {v:.3g} uJ" for k, v in s["energy_per_image_uj"].items()))
    compile_s = s["compile_time_s"]
    print(f"simulation {s['wall_time_s']:.1f} s ({s['device']}"
          f"{'' if compile_s is None else f', of which build/compile {compile_s:.1f} s'}), total {s['total_time_s']:.1f} s")
    if args.json:
        write_json_atomic(args.json, s)
        print(f"wrote {args.json}")
    print(f"report: {s['report']}")
    return 0

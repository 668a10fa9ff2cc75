"""``hcs-neuro simulate`` and ``hcs-neuro validate``: a whole model as a Brian2 spiking network.

Heavy imports (Brian2, the simulator, matplotlib for reports) happen inside the handlers.
"""

from __future__ import annotations

from hcs_neuro.cli.args import add_json, add_overwrite, float_in, int_in, output_dir, seed

__all__ = ["register", "run_validation"]


def _common(p) -> None:
    from hcs_neuro.cli.energy import add_data_arguments

    p.add_argument("model", metavar="MODEL", help="model .npz file, or the name of a shipped model (e.g. digits_hcs)")
    add_data_arguments(p)
    p.add_argument("--circuit", metavar="FILE", help="whole-network race circuit (default: circuits/network_race.toml)")
    p.add_argument("--n-jobs", type=int_in(1, 64), default=2, metavar="N", help="simulation processes (default: 2)")
    p.add_argument("--chunk", type=int_in(1, 100_000), metavar="N",
                   help="images per run of the compiled binary (default: automatic)")
    p.add_argument("--seed", type=seed, default=0, help="Brian2 seed (the race itself draws no random numbers)")
    add_json(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


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


def _check_common(args):
    from hcs_neuro.core.errors import ConfigError

    if args.n_jobs < 1:
        raise ConfigError(f"--n-jobs {args.n_jobs}: allowed an integer >= 1")
    if args.chunk is not None and args.chunk < 1:
        raise ConfigError(f"--chunk {args.chunk}: allowed an integer >= 1")


def _load(args):
    """Model, images, labels and race circuit, all checked before anything is simulated."""
    from hcs_neuro.cli.energy import load_images, resolve_model
    from hcs_neuro.brian.race import plan_network
    from hcs_neuro.core.circuit_file import load_race_circuit

    _check_common(args)
    model = resolve_model(args.model)
    images, labels = load_images(model, args.dataset, args.split, args.data_dir, args.n_images)
    race = load_race_circuit(args.circuit)
    plan_network(model, race)  # raises for models that cannot be converted, before any compilation
    return model, images, labels, race


def _simulate(args) -> int:
    import numpy as np

    from hcs_neuro.core.io import write_json_atomic
    from hcs_neuro.brian.session import simulate

    model, images, labels, race = _load(args)
    sp = simulate(model, images, circuit=race, n_jobs=args.n_jobs, chunk=args.chunk, seed=args.seed,
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
    print(f"simulated {out['n_images']} images of {args.dataset} ({model.architecture.name}, circuit {race.name}, "
          f"dt {sp.dt_ms:g} ms, window {sp.window_ms:g} ms per image)")
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


def run_validation(model, images, labels, *, circuit=None, n_jobs=2, chunk=None, seed=0, tie_tol=0.01, block=500,
                   progress=True, keep_first=True):
    """Simulate and validate block by block with one compiled network.

    Returns
    -------
    metrics : dict
        :func:`hcs_neuro.measure.validate.validate`'s keys over all images, plus ``compile_time_s``.
    first : tuple or None
        ``(images, reference, spiking)`` of the first block (for reports), if ``keep_first``.
    """
    import time

    from hcs_neuro.core import reference as ref_mod
    from hcs_neuro.core.errors import ConfigError
    from hcs_neuro.brian.session import SimulationSession, default_chunk
    from hcs_neuro.measure.validate import Validator

    if block < 1:
        raise ConfigError(f"--block {block}: allowed an integer >= 1")
    if not 0 <= tie_tol < 1:
        raise ConfigError(f"--tie-tol {tie_tol}: allowed 0 <= tie_tol < 1")
    t0 = time.perf_counter()
    n = len(images)
    block = min(block, n)
    chunk = chunk or default_chunk(block, n_jobs)
    n_jobs = min(n_jobs, -(-n // chunk))
    val = Validator(model, tie_tol=tie_tol)
    first = None
    with SimulationSession(model, circuit=circuit, n_jobs=n_jobs, chunk=chunk, seed=seed) as sess:
        # simulation of later chunks overlaps with the validation of a finished block
        for s, sp in sess.iter_blocks(images, block, progress=progress):
            m = sp.n_images
            x, y = images[s:s + m], labels[s:s + m]
            ref = ref_mod.forward(model, x)
            val.update(x, y, sp, ref)
            if keep_first and first is None:
                first = (x, y, ref, sp)
        compile_s = sess.compile_time_s
    metrics = val.result()
    metrics["compile_time_s"] = compile_s
    metrics["total_time_s"] = time.perf_counter() - t0
    # simulation and validation overlap: the honest rate is images over everything after compiling
    metrics["wall_time_s"] = metrics["total_time_s"] - compile_s
    metrics["images_per_s"] = n / max(metrics["wall_time_s"], 1e-9)
    return metrics, first


def _validate(args) -> int:
    import importlib.util

    from hcs_neuro.core.io import write_json_atomic

    if args.out:
        from hcs_neuro.core.io import check_output_dir
        from hcs_neuro.report import REPORT_KIND

        check_output_dir(args.out, overwrite=args.overwrite, kind=REPORT_KIND)
    model, images, labels, race = _load(args)
    metrics, first = run_validation(model, images, labels, circuit=race, n_jobs=args.n_jobs, chunk=args.chunk,
                                    seed=args.seed, tie_tol=args.tie_tol, block=args.block,
                                    progress=not args.no_progress, keep_first=bool(args.out))
    metrics["model"] = model.architecture.source
    metrics["dataset"] = args.dataset
    print_validation(metrics)
    if args.json:
        write_json_atomic(args.json, metrics)
        print(f"wrote {args.json}")
    if args.out:
        if importlib.util.find_spec("hcs_neuro.report") is None:
            print("note: hcs_neuro.report is not available in this installation; no report written")
        else:
            from hcs_neuro.core import reference as ref_mod
            from hcs_neuro.measure.energy import network_energy
            from hcs_neuro.report import write_report

            x, y, ref, sp = first
            energy = network_energy(model, ref, sp, input_levels=ref_mod.quantize_input(model, x))
            report = write_report(args.out, model=model, reference=ref, spiking=sp, validation=metrics, energy=energy,
                                  title=f"hcs-neuro validate: {model.architecture.name} on {args.dataset}",
                                  overwrite=args.overwrite)
            print(f"report: {report}")
    return 0


def print_validation(m: dict, file=None) -> None:
    """Human-readable summary of :func:`run_validation`'s metrics."""
    import sys

    out = file or sys.stdout

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"

    def ms(v):  # 18.4, not the float sum's 18.400000000000002
        return "n/a" if v is None else f"{v:g}"

    print(f"validated {m['n_images']} images (circuit {m.get('circuit')}, dt {ms(m.get('dt_ms'))} ms, "
          f"window {ms(m.get('window_ms'))} ms per image, tie_tol {m['tie_tol']:g} of each drive range)", file=out)
    print(f"class agreement {pct(m['class_agreement'])}; spiking accuracy {pct(m['spiking_accuracy'])} "
          f"(reference {pct(m['reference_accuracy'])}); undecided {pct(m['undecided_fraction'])}", file=out)
    print(f"{'layer':<12}{'k':>5}{'cond. strict':>14}{'cond. tol.':>12}{'spikes/neuron':>15}{'SOP check':>12}",
          file=out)
    for l in m["layers"]:
        sop = f"{l['sop_check_equal']}/{l['sop_check_images']}" if l["type"] != "linear" else "-"
        print(f"{'L%d %s' % (l['index'], l['type']):<12}{l['k']:>5}{pct(l['conditional_agreement_strict']):>14}"
              f"{pct(l['conditional_agreement_tie_tolerant']):>12}{l['spikes_per_neuron_per_image']:>15.3f}{sop:>12}",
              file=out)
    if m.get("latency_ms_median") is not None:
        print(f"decision latency (ms from stimulus onset): median {m['latency_ms_median']:.2f}, "
              f"p95 {m['latency_ms_p95']:.2f}, max {m['latency_ms_max']:.2f}", file=out)
    print(f"spikes per neuron per image {m['spikes_per_neuron_per_image']:.3f}; simulation {m['wall_time_s']:.1f} s "
          f"({m['images_per_s']:.1f} images/s), compile {m.get('compile_time_s', 0):.1f} s", file=out)

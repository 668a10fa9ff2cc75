"""``hcs-neuro energy MODEL --dataset D``: spikes, synaptic operations, neuron updates, MACs and
energy per image, layer by layer, for a model simulated as a spiking network.

The heavy lifting is :func:`hcs_neuro.brian.session.simulate` (the spiking run) and
:func:`hcs_neuro.measure.energy.network_energy` (the accounting); this module only parses, checks the
user's choices before anything runs, prints and writes.
"""

from __future__ import annotations

from hcs_neuro.cli.args import add_json, add_overwrite, existing_dir, int_in, output_dir, seed

__all__ = ["register", "resolve_model", "load_images", "energy_in_blocks", "print_energy", "write_energy_folder",
           "ENERGY_KIND"]

#: Kind recorded in the marker of an ``energy --out`` folder.
ENERGY_KIND = "energy"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "energy",
        help="spikes, SOPs, neuron updates, MACs and energy per image of a spiking run, per layer",
        description="Simulate MODEL as a spiking network on images of a dataset and report per layer: "
        "spikes, synaptic operations (SOPs: spikes x existing fan-out, counted from the simulation) "
        "beside the analytic count from the reference activations, neuron updates, the reference "
        "network's dense MACs and effective operations (zeros skipped), and the energy per image of "
        "named hardware profiles (chip-level pJ per event, each cited in hcs_neuro/data/"
        "energy_profiles.toml).",
    )
    p.add_argument("model", metavar="MODEL", help="model .npz file, or the name of a shipped model (e.g. digits)")
    add_data_arguments(p)
    p.add_argument("--profile", action="append", metavar="NAME",
                   help="hardware profile to price with (repeatable; default: all built-in profiles)")
    p.add_argument("--circuit", metavar="FILE", help="circuit .toml for the spiking network (default: simulate's)")
    p.add_argument("--analytic", action="store_true",
                   help="no simulation: report what a network that reproduces the reference emits "
                        "(one spike per winner), without neuron updates")
    p.add_argument("--device", choices=("cpp_standalone", "runtime"), default="cpp_standalone",
                   help="Brian2 device (default: cpp_standalone, compiled once; runtime: no compiler, slow)")
    p.add_argument("--n-jobs", type=int_in(1, 64), default=2, metavar="N", help="simulation processes (default: 2)")
    p.add_argument("--seed", type=seed, default=0, help="simulation seed (default: 0)")
    p.add_argument("--block", type=int_in(1, 1_000_000), default=500, metavar="N",
                   help="images simulated and counted per block (bounds memory; one compiled network for "
                        "all blocks; default: 500: 1.0 GB peak measured with --analytic for the 28x28 "
                        "Fashion-MNIST architecture, plus the simulation's spike arrays)")
    add_json(p, "write the full energy dict as JSON")
    p.add_argument("--out", metavar="DIR", type=output_dir,
                   help="write a folder (new or empty): energy.json, energy.md, energy.png, sops.png")
    add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_handle)


def add_data_arguments(p, *, default_dataset: str | None = None) -> None:
    """``--dataset``, ``--data-dir``, ``--split``, ``--n-images`` (shared with ``demo``)."""
    p.add_argument("--dataset", required=default_dataset is None, default=default_dataset,
                   help="digits, fashion-mnist, mnist or idx")
    p.add_argument("--data-dir", metavar="DIR", type=existing_dir,
                   help="folder with the IDX files (fashion-mnist/mnist/idx)")
    p.add_argument("--split", choices=("train", "test"), default="test", help="dataset split (default: test)")
    p.add_argument("--n-images", type=int_in(1), metavar="N", help="first N images of the split (default: all)")


def resolve_model(arg: str):
    """Load a model from a path, or a shipped model by name (``hcs_neuro.models/<name>.npz``).

    Raises
    ------
    hcs_neuro.core.errors.ModelError
        Neither a file nor a shipped model name (the message lists the shipped ones).
    """
    from importlib import resources
    from pathlib import Path

    from hcs_neuro.core.errors import ModelError
    from hcs_neuro.core.model import load_model

    path = Path(arg)
    if path.exists() or path.suffix == ".npz" or "/" in arg:
        return load_model(path)
    shipped = resources.files("hcs_neuro.models")
    names = sorted(f.name[:-4] for f in shipped.iterdir() if f.name.endswith(".npz"))
    for cand in (arg, arg.replace("-", "_"), f"{arg}_hcs", f"{arg}-hcs"):
        entry = shipped.joinpath(f"{cand}.npz")
        if entry.is_file():
            with resources.as_file(entry) as real:
                return load_model(real)
    raise ModelError(f"model {arg!r}: no such file, and not a shipped model; shipped models: "
                     f"{', '.join(names) or '(none in this installation)'}")


def load_images(model, dataset: str, split: str = "test", data_dir=None, n_images: int | None = None):
    """Images and labels of a dataset split, checked against the model before anything runs.

    Raises
    ------
    hcs_neuro.core.errors.DataError
        Missing dataset, or images that do not fit the model input (e.g. a 28x28 model on 8x8
        digits), or labels outside the model's classes.
    hcs_neuro.core.errors.ConfigError
        ``n_images`` < 1.
    """
    import numpy as np

    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.errors import ConfigError, DataError

    if n_images is not None and n_images < 1:
        raise ConfigError(f"--n-images {n_images}: allowed an integer >= 1")
    images, labels = load_dataset(dataset, split, data_dir, limit=n_images)
    arch = model.architecture
    if tuple(images.shape[1:]) != tuple(arch.input_shape):
        raise DataError(f"dataset {dataset!r} has images of shape {tuple(images.shape[1:])} but model "
                        f"{arch.source} ({arch.name}) takes {tuple(arch.input_shape)}; use a model trained "
                        f"on {dataset}")
    if labels.size and int(labels.max()) >= arch.n_classes:
        raise DataError(f"dataset {dataset!r} has labels up to {int(labels.max())} but model {arch.source} "
                        f"has {arch.n_classes} classes")
    if n_images is not None:
        images, labels = images[:n_images], labels[:n_images]
    return np.ascontiguousarray(images), labels


def _check_profiles(names):
    from hcs_neuro.measure.energy import get_profile

    return None if not names else [get_profile(n).name for n in names]


def print_energy(e: dict, file=None) -> None:
    """Print the per-layer table, totals, SOP check and energy per profile."""
    import sys

    out = file or sys.stdout

    def f(v, width=11):
        if v is None:
            return "-".rjust(width)
        return (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}").rjust(width)

    sim = e["has_spiking"]
    print(f"energy: {e['model']}, {e['n_images']} images, "
          f"{'simulated' if sim else 'analytic (no simulation)'}; counts are means per image", file=out)
    hdr = (f"{'layer':<12}{'spikes':>11}{'inh spikes':>11}{'SOPs in':>11}{'SOPs an.':>11}{'circ SOPs':>11}"
           f"{'updates':>11}{'dense ops':>11}{'eff. ops':>11}")
    print(hdr, file=out)
    inp = e["input"]
    print(f"{'input':<12}{f(inp['spikes_per_image'] if sim else inp['spikes_analytic_per_image'])}"
          f"{f(None)}{f(None)}{f(None)}{f(None)}{f(None)}{f(None)}{f(None)}", file=out)
    for l in e["layers"]:
        spikes = l["spikes_per_image"] if sim else l["spikes_analytic_per_image"]
        print(f"{'L%d %s' % (l['index'], l['type']):<12}{f(spikes)}{f(l['interneuron_spikes_per_image'])}"
              f"{f(l['sops_in_per_image'])}{f(l['sops_in_analytic_per_image'])}{f(l['sops_circuit_per_image'])}"
              f"{f(l['neuron_updates_per_image'])}{f(l['dense_ops_per_image'])}{f(l['effective_ops_per_image'])}",
              file=out)
    t = e["totals"]
    if sim:
        print(f"total: {t['spikes_per_image']:,.1f} spikes, {t['sops_per_image']:,.1f} SOPs "
              f"({t['sops_feedforward_per_image']:,.1f} feed-forward + {t['sops_circuit_per_image']:,.1f} circuit), "
              f"{t['neuron_updates_per_image']:,.0f} neuron updates per image", file=out)
        sc = e["sop_check"]
        print(f"SOP check: simulated = analytic wherever a layer's winners agree: "
              f"{'yes' if sc['sops_equal_where_winners_agree'] else 'NO'} "
              f"({sc['n_sop_mismatches_where_winners_agree']} mismatches in {sc['n_image_layers_winners_agree']:,} "
              f"agreeing image-layers; {sc['n_recount_mismatches']} recount mismatches)", file=out)
    print(f"reference: {t['dense_ops_per_image']:,.0f} dense ops ({t['dense_macs_per_image']:,.0f} MACs + "
          f"{t['dense_adds_per_image']:,.0f} adds), {t['effective_ops_per_image'] or 0:,.1f} effective ops per image",
          file=out)
    print(f"energy per image ({e['note']}); the reference at its own precision: "
          f"{e['reference_profile_own_precision']}", file=out)
    for name, p in e["energy"].items():
        pj = p["per_image_pj"]
        if p["kind"] == "spiking":
            print(f"  {name:<16} spiking    {pj['total_pj'] * 1e-6:10.4g} uJ  (SOPs {pj['synaptic_ops_pj'] * 1e-6:.4g}, "
                  f"spikes {pj['spikes_pj'] * 1e-6:.4g}, neuron updates {pj['neuron_updates_pj'] * 1e-6:.4g} uJ)",
                  file=out)
        else:
            eff = pj["effective_pj"]
            print(f"  {name:<16} reference  {pj['dense_pj'] * 1e-6:10.4g} uJ dense, "
                  f"{'-' if eff is None else '%.4g' % (eff * 1e-6)} uJ zeros skipped", file=out)


def write_energy_folder(out_dir, e: dict, *, overwrite: bool = False):
    """Write ``energy.json``, ``energy.md`` (the printed table), ``energy.png`` and ``sops.png``
    into ``out_dir`` atomically; return the folder."""
    import io
    from pathlib import Path

    from matplotlib.figure import Figure

    from hcs_neuro.core.io import atomic_dir, write_json_atomic
    from hcs_neuro.plotting.network import figure_profiles, plot_energy_bars, plot_sop_bars

    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite, kind=ENERGY_KIND) as tmp:
        write_json_atomic(tmp / "energy.json", e)
        buf = io.StringIO()
        print_energy(e, file=buf)
        (tmp / "energy.md").write_text(f"# Energy: {e['model']}\n\n```\n{buf.getvalue()}```\n\n"
                                       "![energy per layer](energy.png)\n\n![SOPs per layer](sops.png)\n")
        fig = Figure(figsize=(7.5, 4.0))
        plot_energy_bars(e, profiles=figure_profiles(e), ax=fig.add_subplot())
        fig.tight_layout()
        fig.savefig(tmp / "energy.png", dpi=110)
        fig = Figure(figsize=(7.5, 4.0))
        plot_sop_bars(e, ax=fig.add_subplot())
        fig.tight_layout()
        fig.savefig(tmp / "sops.png", dpi=110)
    return out_dir


def energy_in_blocks(model, images, *, profiles=None, circuit=None, analytic=False, device="cpp_standalone",
                     n_jobs=2, seed=0, block=500, progress=True) -> dict:
    """Simulate (unless ``analytic``) and count energy block by block, with one compiled network.

    Memory is bounded by ``block`` images (the dense spike arrays of one block), not by N.
    Returns the :func:`hcs_neuro.measure.energy.merge_energy` of the blocks' results.
    """
    import contextlib

    from hcs_neuro.core import reference as ref_mod
    from hcs_neuro.measure.energy import merge_energy, network_energy
    from hcs_neuro.core.errors import ConfigError

    if block < 1:
        raise ConfigError(f"--block {block}: allowed an integer >= 1")
    n = len(images)
    block = min(block, n)
    parts = []
    session = contextlib.nullcontext(None)
    if not analytic and device == "cpp_standalone":
        from hcs_neuro.brian.session import SimulationSession, default_chunk

        chunk = default_chunk(block, n_jobs)
        session = SimulationSession(model, circuit=circuit, n_jobs=min(n_jobs, -(-block // chunk)), chunk=chunk,
                                    seed=seed)
    bar = None
    if progress and n > block:
        from hcs_neuro.core.progress import progress as progress_bar

        bar = progress_bar(total=n, desc="energy", unit="img")
    with session as sess:
        for start in range(0, n, block):
            x = images[start:start + block]
            ref = ref_mod.forward(model, x)
            spiking = None
            if sess is not None:
                spiking = sess.run(x, progress=progress and bar is None)
            elif not analytic:
                from hcs_neuro.brian.session import simulate

                spiking = simulate(model, x, circuit=circuit, n_jobs=n_jobs, progress=progress and bar is None,
                                   seed=seed, device=device)
            parts.append(network_energy(model, ref, spiking, profiles, input_levels=ref_mod.quantize_input(model, x)))
            del spiking, ref
            if bar is not None:
                bar.update(len(x))
    if bar is not None:
        bar.close()
    return merge_energy(parts)


def _handle(args) -> int:
    import time

    from hcs_neuro.core.io import write_json_atomic
    from hcs_neuro.core.errors import ConfigError

    from hcs_neuro.core.io import check_output_dir

    if args.out:
        check_output_dir(args.out, overwrite=args.overwrite, kind=ENERGY_KIND)
    profiles = _check_profiles(args.profile)  # unknown profile: error before any work
    if args.block < 1:
        raise ConfigError(f"--block {args.block}: allowed an integer >= 1")
    circuit = None
    if not args.analytic:
        from hcs_neuro.core.circuit_file import load_race_circuit

        circuit = load_race_circuit(args.circuit)  # a bad circuit file: error before any work
    model = resolve_model(args.model)
    images, _labels = load_images(model, args.dataset, args.split, args.data_dir, args.n_images)
    t0 = time.perf_counter()
    e = energy_in_blocks(model, images, profiles=profiles, circuit=circuit, analytic=args.analytic,
                         device=args.device, n_jobs=args.n_jobs, seed=args.seed, block=args.block,
                         progress=not args.no_progress)
    e["wall_time_s"] = time.perf_counter() - t0
    print_energy(e)
    print(f"wall time {e['wall_time_s']:.1f} s")
    if args.json:
        write_json_atomic(args.json, e)
        print(f"wrote {args.json}")
    if args.out:
        folder = write_energy_folder(args.out, e, overwrite=args.overwrite)
        print(f"wrote {folder}/energy.md")
    return 0

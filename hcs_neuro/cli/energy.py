"""``hcs-neuro energy MODEL --dataset D``: spikes, synaptic operations, neuron updates, MACs and
energy per image, layer by layer, for a model simulated as a spiking network.

The work is :func:`hcs_neuro.pipeline.run_network` (simulation and counting in blocks with one
compiled network) and :mod:`hcs_neuro.report` (tables and the folder); this module only parses,
checks the user's choices before anything runs, prints and writes.
"""

from __future__ import annotations

from hcs_neuro.cli.args import (
    add_data_arguments,
    add_json,
    add_network_arguments,
    add_overwrite,
    int_in,
    output_dir,
)
from hcs_neuro.core.io import check_output_dir, write_json_atomic
from hcs_neuro.measure.profiles import resolve_profiles
from hcs_neuro.pipeline import load_images, resolve_model, run_network

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "energy",
        help="spikes, SOPs, neuron updates, MACs and energy per image of a spiking run, per layer",
        description="Simulate MODEL as a spiking network on images of a dataset and report per layer: "
        "spikes, synaptic operations (SOPs: spikes x existing fan-out, counted from the simulation) "
        "beside the analytic count from the reference activations, neuron updates, the reference "
        "network's dense MACs and effective operations (zeros skipped), and the energy per image of "
        "hardware profiles (chip-level pJ per event, each cited in hcs_neuro/data/energy_profiles.toml or a "
        "user profile file) with and without data movement (memory accesses priced from Horowitz's 45 nm "
        "table, added where a profile's figures exclude memory), the spiking network against the reference "
        "accelerator under the same model, and the break-even activity. Every count says whether it was "
        "counted in the simulation or computed.",
    )
    p.add_argument("model", metavar="MODEL", help="model .npz file, or the name of a shipped model (e.g. digits)")
    add_data_arguments(p)
    p.add_argument("--profile", action="append", metavar="NAME|FILE.toml",
                   help="hardware profile to price with: a built-in name, or a TOML file of profiles in the same "
                        "schema (hcs_neuro/data/energy_profiles.toml; a [memory] table there replaces the memory "
                        "table); repeatable; default: all built-in profiles")
    p.add_argument("--analytic", action="store_true",
                   help="no simulation: report what a network that reproduces the reference emits "
                        "(one spike per winner), without neuron updates")
    add_network_arguments(p)
    p.add_argument("--block", type=int_in(1, 1_000_000), default=500, metavar="N",
                   help="images simulated and counted per block (bounds memory; one compiled network for "
                        "all blocks; default: 500: 1.0 GB peak measured with --analytic for the 28x28 "
                        "Fashion-MNIST architecture, plus the simulation's spike arrays)")
    add_json(p, "write the full energy dict as JSON")
    p.add_argument("--out", metavar="DIR", type=output_dir,
                   help="write a folder (new or empty): energy.json, energy.md, energy.png, sops.png")
    add_overwrite(p)
    p.set_defaults(func=_handle)


def _handle(args) -> int:
    from hcs_neuro.brian.session import make_network
    from hcs_neuro.report import ENERGY_KIND, print_energy, write_energy_report

    if args.out:
        check_output_dir(args.out, overwrite=args.overwrite, kind=ENERGY_KIND)
    profiles, memory = resolve_profiles(args.profile) if args.profile else (None, None)  # before any work
    model = resolve_model(args.model)
    circuit = None if args.analytic else make_network(model, args.circuit).race  # a bad circuit: before any work
    images, _labels = load_images(model, args.dataset, args.split, args.data_dir, args.n_images)
    run = run_network(model, images, circuit=circuit, device=args.device, n_jobs=args.n_jobs, seed=args.seed,
                      block=args.block, validate=False, energy=True, profiles=profiles, memory=memory,
                      analytic=args.analytic, progress=not args.no_progress)
    e = run.energy
    e["wall_time_s"] = run.total_time_s
    print_energy(e)
    print(f"wall time {e['wall_time_s']:.1f} s")
    if args.json:
        write_json_atomic(args.json, e)
        print(f"wrote {args.json}")
    if args.out:
        folder = write_energy_report(args.out, e, overwrite=args.overwrite)
        print(f"wrote {folder}/energy.md")
    return 0

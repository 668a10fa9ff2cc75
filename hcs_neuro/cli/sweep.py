"""``hcs-neuro sweep SPEC``: run a parameter sweep on Dask (local cluster or an existing scheduler)."""

from __future__ import annotations

from hcs_neuro.cli.args import add_json, int_in, output_dir
from hcs_neuro.core.io import write_json_atomic

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a parameter sweep (circuit/network/function) on Dask, resumable",
        description="Evaluate a target at every point x seed of the grid in a sweep spec (TOML) on "
        "Dask distributed: a local multi-process cluster by default, an existing scheduler with "
        "--scheduler. Finished points are saved one by one; running the same command again after "
        "an interruption computes only the missing points. Writes results.parquet, results.csv, "
        "results.nc and sweep.json to the output folder.",
    )
    p.add_argument("spec", metavar="SPEC", help="sweep spec TOML file")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of an existing Dask scheduler (e.g. tcp://host:8786)")
    p.add_argument("--workers", type=int_in(1, 1024), metavar="N",
                   help="local workers (one process, one thread each; default: CPU count)")
    p.add_argument("--out", metavar="DIR", type=output_dir,
                   help="output folder: new, empty, or an earlier run of this sweep to resume "
                        "(default: [sweep] out of the spec)")
    p.add_argument("--retry-errors", action="store_true",
                   help="recompute points whose saved result records an error")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json(p, "write the run summary as JSON")
    p.set_defaults(func=_handle)


def _handle(args) -> int:
    from hcs_neuro.sweep import (  # Dask: imported only to run a sweep
        load_sweep_spec,
        run_sweep,
    )

    spec = load_sweep_spec(args.spec, out=args.out)
    result = run_sweep(spec, scheduler=args.scheduler, n_workers=args.workers,
                       progress=not args.no_progress, retry_errors=args.retry_errors)
    summary = result.summary()
    print(f"sweep {spec.name}: {result.n_rows} rows ({result.n_computed} computed now, "
          f"{result.n_rows - result.n_computed} reused), {result.n_errors} with errors, "
          f"{result.n_workers} workers, compute {result.compute_wall_s:.1f} s "
          f"(cluster start {result.cluster_start_s:.1f} s)")
    for kind, path in summary["files"].items():
        print(f"  {kind}: {path}")
    if args.json:
        write_json_atomic(args.json, summary)
    return 0

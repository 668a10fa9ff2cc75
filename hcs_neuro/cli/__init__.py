"""The ``hcs-neuro`` command line: a thin layer over the Python API.

Each stage lives in its own module under ``hcs_neuro.cli`` and exposes ``register(subparsers)``,
which adds its sub-command(s) with ``set_defaults(func=handler)``. Handlers import heavy
libraries (Brian2, PyTorch, matplotlib, Dask) inside the function body, so ``hcs-neuro --help``
stays fast. A handler returns an exit status (or None for 0).

User mistakes raise :class:`hcs_neuro.errors.HCSError`; they are printed as one line,
``hcs-neuro: error: <message>``, with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hcs_neuro import __version__
from hcs_neuro.errors import HCSError

__all__ = ["main", "build_parser"]

# Sub-command modules, in the order they appear in ``--help``.
_STAGE_MODULES = ("train", "circuit", "network", "energy", "sweep", "plot", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hcs-neuro",
        description="Hypercolumn-sparsified low-precision networks: train, build Brian2 k-WTA "
        "circuits, simulate spiking networks, validate against the rate-based twin, sweep, plot.",
    )
    parser.add_argument("--version", action="version", version=f"hcs-neuro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _STAGE_MODULES:
        try:
            module = importlib.import_module(f"hcs_neuro.cli.{name}")
        except ModuleNotFoundError as exc:  # a stage not yet available in this checkout
            if exc.name != f"hcs_neuro.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except HCSError as exc:
        print(f"hcs-neuro: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hcs-neuro: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

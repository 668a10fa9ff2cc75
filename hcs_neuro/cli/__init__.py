"""The ``hcs-neuro`` command line: a thin layer over the Python API.

Each stage lives in its own module under ``hcs_neuro.cli`` and exposes ``register(subparsers)``,
which adds its sub-command(s) with ``set_defaults(func=handler)``. Handlers import heavy
libraries (Brian2, PyTorch, matplotlib, Dask) inside the function body, so ``hcs-neuro --help``
stays fast. A handler returns an exit status (or None for 0).

User mistakes raise :class:`hcs_neuro.core.errors.HCSError`; they are printed as one line,
``hcs-neuro: error: <message>``, with exit status 2 and no traceback. Ctrl-C prints
``hcs-neuro: interrupted`` and exits with status 130; any error raised while an interrupt is
being handled (a compiler or a worker killed by the same Ctrl-C) counts as the interrupt. Results
are written only after the work has finished, so interrupted work writes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hcs_neuro import __version__
from hcs_neuro.cli.args import Parser
from hcs_neuro.core import interrupt
from hcs_neuro.core.errors import HCSError

__all__ = ["main", "build_parser"]

# Sub-command modules, in the order they appear in ``--help``.
_STAGE_MODULES = ("train", "circuit", "network", "energy", "sweep", "plot", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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


def _one_line(message) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    interrupt.install()
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a one-line parse error (Parser.error)
            return int(exc.code or 0) if not isinstance(exc.code, str) else 2
        try:
            try:
                status = args.func(args)
            finally:
                interrupt.acknowledge()  # from here on, a Ctrl-C that came is being handled
            interrupt.check()  # a swallowed Ctrl-C still counts: nothing was committed after it
        except KeyboardInterrupt:
            print("hcs-neuro: interrupted (nothing written)", file=sys.stderr)
            return 130
        except HCSError as exc:
            if interrupt.interrupted():
                print("hcs-neuro: interrupted (nothing written)", file=sys.stderr)
                return 130
            print(f"hcs-neuro: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except Exception:
            if interrupt.interrupted():  # a compiler or worker killed by the same Ctrl-C
                print("hcs-neuro: interrupted (nothing written)", file=sys.stderr)
                return 130
            raise
        return int(status or 0)
    finally:
        interrupt.uninstall()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

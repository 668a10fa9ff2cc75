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
import signal
import sys
import threading

from hcs_neuro import __version__
from hcs_neuro.cli.args import Parser
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


class _Interrupts:
    """SIGINT handler of the command line: remembers that Ctrl-C came, then raises
    KeyboardInterrupt as Python's default handler does. Installed before Brian2 is imported, it
    is the handler Brian2 falls back to (Brian2 then never swallows the interrupt: see
    :mod:`hcs_neuro.brian`)."""

    def __init__(self):
        self.seen = False

    def __call__(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt


_INTERRUPTS = _Interrupts()


def _one_line(message) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    _INTERRUPTS.seen = False
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _INTERRUPTS)
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a one-line parse error (Parser.error)
            return int(exc.code or 0) if not isinstance(exc.code, str) else 2
        try:
            status = args.func(args)
        except KeyboardInterrupt:
            print("hcs-neuro: interrupted (nothing written)", file=sys.stderr)
            return 130
        except HCSError as exc:
            if _INTERRUPTS.seen:
                print("hcs-neuro: interrupted (nothing written)", file=sys.stderr)
                return 130
            print(f"hcs-neuro: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except Exception:
            if _INTERRUPTS.seen:  # a compiler or worker killed by the same Ctrl-C
                print("hcs-neuro: interrupted (nothing written)", file=sys.stderr)
                return 130
            raise
        return int(status or 0)
    finally:
        if previous is not None and signal.getsignal(signal.SIGINT) is _INTERRUPTS:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Argument types and the parser class of the ``hcs-neuro`` command line.

Every number is range-checked where it is parsed, with the allowed range in the message, and
every output path is checked at parse time, before any work starts (``output_file`` /
``output_dir`` types). A parse error is one line, ``hcs-neuro: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from hcs_neuro.core.errors import HCSError
from hcs_neuro.core.io import (
    FIGURE_SUFFIXES,
    JSON_SUFFIXES,
    check_output_dir,
    check_output_file,
)

__all__ = [
    "Parser",
    "SEED_MAX",
    "int_in",
    "float_in",
    "seed",
    "csv_ints",
    "csv_floats",
    "output_file",
    "output_dir",
    "existing_dir",
    "JSON_SUFFIXES",
    "FIGURE_SUFFIXES",
    "add_json",
    "add_overwrite",
    "add_data_arguments",
    "add_network_arguments",
]

#: Largest seed (NumPy and Brian2 seed generators take unsigned 32-bit integers).
SEED_MAX = 2 ** 32 - 1


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line errors: ``hcs-neuro: error: <sub-command>: <message>``, exit 2."""

    def error(self, message):  # noqa: D102 (argparse API)
        where = self.prog.removeprefix("hcs-neuro").strip()
        sys.stderr.write(f"hcs-neuro: error: {where + ': ' if where else ''}{message} "
                         f"(see '{self.prog} --help')\n")
        sys.exit(2)


def _range_text(lo, hi, lo_open=False, hi_open=False) -> str:
    if lo is not None and hi is not None:
        return f"{'>' if lo_open else '>='} {lo:g} and {'<' if hi_open else '<='} {hi:g}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "any finite value"


def int_in(lo: int | None = None, hi: int | None = None):
    """An argparse type: an integer in ``[lo, hi]`` (either bound may be None)."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer (allowed an integer "
                                             f"{_range_text(lo, hi)})") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text}: allowed an integer {_range_text(lo, hi)}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
    """An argparse type: a finite number in the given range (open or closed at each end)."""

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number (allowed "
                                             f"{_range_text(lo, hi, lo_open, hi_open)})") from None
        bad = not math.isfinite(value)
        bad |= lo is not None and (value < lo or (lo_open and value == lo))
        bad |= hi is not None and (value > hi or (hi_open and value == hi))
        if bad:
            raise argparse.ArgumentTypeError(f"{text}: allowed a number {_range_text(lo, hi, lo_open, hi_open)}")
        return value

    parse.__name__ = "number"
    return parse


#: An argparse type for seeds: 0 .. 2**32 - 1.
seed = int_in(0, SEED_MAX)


def csv_ints(lo: int | None = None, hi: int | None = None):
    """An argparse type: one or more comma-separated integers, each in ``[lo, hi]``."""
    one = int_in(lo, hi)

    def parse(text: str) -> list[int]:
        items = [x for x in str(text).split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,2,4")
        return [one(x) for x in items]

    parse.__name__ = "integer list"
    return parse


def csv_floats(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    """An argparse type: one or more comma-separated finite numbers, each in the range."""
    one = float_in(lo, hi, lo_open=lo_open)

    def parse(text: str) -> list[float]:
        items = [x for x in str(text).split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers, e.g. 0,0.5,1")
        return [one(x) for x in items]

    parse.__name__ = "number list"
    return parse


def _as_type_error(check, *a, **kw):
    try:
        return check(*a, **kw)
    except HCSError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_file(suffixes=None):
    """An argparse type for an output file, checked at parse time (:func:`check_output_file`)."""

    def parse(text: str) -> str:
        _as_type_error(check_output_file, text, option=None, suffixes=suffixes)
        return text

    parse.__name__ = "output file"
    return parse


def output_dir(text: str) -> str:
    """An argparse type for an output folder: a file there, the current folder or a parent, or an
    unwritable place is refused at parse time (non-empty folders are checked against
    ``--overwrite`` by the command, see :func:`hcs_neuro.core.io.check_output_dir`)."""

    p = Path(text)
    if p.is_dir() and any(p.iterdir()):
        return text  # the command decides, knowing --overwrite
    _as_type_error(check_output_dir, text, option=None)
    return text


def existing_dir(text: str) -> str:
    """An argparse type: an existing folder (input), not an empty string."""

    if not str(text).strip():
        raise argparse.ArgumentTypeError("an empty path; name a folder")
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not an existing folder")
    return text


def add_json(p, help_text: str = "write the numbers as JSON (stable snake_case keys)") -> None:
    """The ``--json PATH`` option (a ``.json`` file, checked before any work)."""
    p.add_argument("--json", metavar="PATH", type=output_file(JSON_SUFFIXES), help=help_text)


def add_overwrite(p) -> None:
    """The ``--overwrite`` flag for output folders."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that hcs-neuro wrote earlier (recognised by its "
                        ".hcs-neuro-output.json marker; a folder holding anything else is never replaced)")


def add_data_arguments(p, *, default_dataset: str | None = None) -> None:
    """``--dataset``, ``--data-dir``, ``--split``, ``--n-images``."""
    p.add_argument("--dataset", required=default_dataset is None, default=default_dataset,
                   help="digits, fashion-mnist, mnist or idx")
    p.add_argument("--data-dir", metavar="DIR", type=existing_dir,
                   help="folder with the IDX files (fashion-mnist/mnist/idx)")
    p.add_argument("--split", choices=("train", "test"), default="test", help="dataset split (default: test)")
    p.add_argument("--n-images", type=int_in(1), metavar="N", help="first N images of the split (default: all)")


def add_network_arguments(p, *, device: bool = True) -> None:
    """``--circuit``, ``--device``, ``--n-jobs``, ``--seed``, ``--no-progress`` of the commands that
    run a model as a spiking network."""
    p.add_argument("--circuit", metavar="FILE",
                   help="whole-network circuit, a .toml file or a built-in name (default: network_race, the "
                        "exact mode)")
    if device:
        p.add_argument("--device", choices=("cpp_standalone", "runtime"), default="cpp_standalone",
                       help="Brian2 device: cpp_standalone compiles once and runs fast (default); runtime needs "
                            "no compiler (NumPy code generation, slow)")
    p.add_argument("--n-jobs", type=int_in(1, 64), default=2, metavar="N", help="simulation processes (default: 2)")
    p.add_argument("--seed", type=seed, default=0, help="Brian2 seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

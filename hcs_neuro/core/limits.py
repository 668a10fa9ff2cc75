"""Resource estimates checked before work starts: memory and simulated work.

A small file or value can ask for gigabytes or for years of computing (an array header that
declares 10**12 elements, ``num = 10**8`` grid points, a circuit run of ``"1e9 s"``). Every
place that allocates or runs in proportion to user input estimates the cost first and calls
:func:`check_memory` or :func:`check_work`, which refuse with the estimate, the limit and how to
raise the limit (an environment variable), before anything is allocated, compiled or written.

Limits
------
``HCS_NEURO_MAX_MEMORY``
    Largest single allocation estimate, e.g. ``"8G"``, ``"500M"`` (default: 75 % of this
    machine's physical memory).
``HCS_NEURO_MAX_WORK``
    Largest simulated work of one run in neuron updates (cells x time steps; default 2e12, about
    an hour or more of compiled Brian2 on one core at 1e8-1e9 updates per second).
``HCS_NEURO_MAX_POINTS``
    Largest sweep grid (points x seeds; default 100,000).
"""

from __future__ import annotations

import math
import os
import re

from hcs_neuro.core.errors import ConfigError, ResourceError

__all__ = ["memory_limit_bytes", "work_limit", "points_limit", "check_memory", "check_work", "check_points",
           "format_bytes"]

_DEFAULT_WORK = 2e12
_DEFAULT_POINTS = 100_000
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKMGT]?)i?B?\s*$")
_SIZE_UNITS = {"": 1, "k": 2 ** 10, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover (non-POSIX)
        return 8 * 2 ** 30


def _env_number(name: str, parse) -> float | None:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return None
    value = parse(text)
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"environment variable {name}={text!r}: allowed a positive number"
                          + (" with an optional unit K, M, G or T (e.g. 8G)" if name.endswith("MEMORY") else ""))
    return value


def _parse_size(text: str) -> float | None:
    m = _SIZE_RE.match(text)
    return float(m.group(1)) * _SIZE_UNITS[m.group(2)] if m else None


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def memory_limit_bytes() -> int:
    """``$HCS_NEURO_MAX_MEMORY`` in bytes, else 75 % of the physical memory."""
    env = _env_number("HCS_NEURO_MAX_MEMORY", _parse_size)
    return int(env) if env is not None else int(0.75 * _physical_memory())


def work_limit() -> float:
    """``$HCS_NEURO_MAX_WORK`` (neuron updates per run), default 2e12."""
    env = _env_number("HCS_NEURO_MAX_WORK", _parse_float)
    return env if env is not None else _DEFAULT_WORK


def points_limit() -> int:
    """``$HCS_NEURO_MAX_POINTS`` (sweep grid points x seeds), default 100,000."""
    env = _env_number("HCS_NEURO_MAX_POINTS", _parse_float)
    return int(env) if env is not None else _DEFAULT_POINTS


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def check_memory(nbytes: float, what: str) -> None:
    """Refuse ``what`` when its estimated memory ``nbytes`` exceeds :func:`memory_limit_bytes`.

    Raises
    ------
    ResourceError
        With the estimate, the limit and the variable that raises it.
    """
    limit = memory_limit_bytes()
    if not math.isfinite(float(nbytes)) or nbytes > limit:
        raise ResourceError(f"{what} needs about {format_bytes(nbytes)} of memory, more than the limit of "
                            f"{format_bytes(limit)} (set HCS_NEURO_MAX_MEMORY, e.g. 32G, to allow more)")


def check_work(updates: float, what: str) -> None:
    """Refuse ``what`` when its simulated work (neuron updates: cells x steps) exceeds :func:`work_limit`."""
    limit = work_limit()
    if not math.isfinite(float(updates)) or updates > limit:
        raise ResourceError(f"{what} is about {updates:.3g} neuron updates (cells x time steps), more than the "
                            f"limit of {limit:.3g} (hours of computing; set HCS_NEURO_MAX_WORK to allow more)")


def check_points(n_points: float, what: str) -> None:
    """Refuse a sweep grid of more than :func:`points_limit` points x seeds."""
    limit = points_limit()
    if not math.isfinite(float(n_points)) or n_points > limit:
        raise ResourceError(f"{what} has {n_points:.4g} points x seeds, more than the limit of {limit:,} "
                            f"(split the sweep, or set HCS_NEURO_MAX_POINTS to allow more)")

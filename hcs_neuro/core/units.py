"""The one unit parser of hcs-neuro: ``"20 ms"``, ``"0.8 mV/ms"``, ``"25 nS"`` without Brian2.

Circuit files, sweep specs and the command line all write quantities as ``"<number> <unit>"``.
This module parses them into SI values and dimensions (exponents of the SI base units metre,
kilogram, second, ampere), converts between units and names dimensions for messages. Brian2's
own unit system is used only where a network is built (it is heavy to import and unhashable).

Unit expressions are products and quotients of (prefixed) units with optional integer powers:
``mV``, ``mV/ms``, ``nS*mV``, ``um^2``, ``ms**-1``. Powers are limited to ``|p| <= 4`` and values
must be finite, so that no text can overflow the arithmetic.
"""

from __future__ import annotations

import math
import re
from typing import Any

from hcs_neuro.core.errors import ConfigError

__all__ = [
    "Dim",
    "DIMENSIONLESS",
    "TIME",
    "VOLTAGE",
    "CURRENT",
    "CONDUCTANCE",
    "CAPACITANCE",
    "RATE",
    "DIMENSION_NAMES",
    "DISPLAY_UNITS",
    "parse_unit",
    "split_quantity",
    "parse_quantity",
    "convert",
    "format_quantity",
    "dimension_name",
    "unit_column_suffix",
    "canonical_float",
]

#: Dimension: exponents of (m, kg, s, A).
Dim = tuple[int, int, int, int]
DIMENSIONLESS: Dim = (0, 0, 0, 0)
TIME: Dim = (0, 0, 1, 0)
VOLTAGE: Dim = (2, 1, -3, -1)
CURRENT: Dim = (0, 0, 0, 1)
CONDUCTANCE: Dim = (-2, -1, 3, 2)
CAPACITANCE: Dim = (-2, -1, 4, 2)
RATE: Dim = (0, 0, -1, 0)
RESISTANCE: Dim = (2, 1, -3, -2)
VOLTAGE_PER_TIME: Dim = (2, 1, -4, -1)
CURRENT_PER_TIME: Dim = (0, 0, -1, 1)

_PREFIXES = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "m": 1e-3, "c": 1e-2,
             "k": 1e3, "M": 1e6, "G": 1e9}
_BASE: dict[str, tuple[float, Dim]] = {
    "s": (1.0, TIME), "second": (1.0, TIME),
    "Hz": (1.0, RATE), "hertz": (1.0, RATE),
    "V": (1.0, VOLTAGE), "volt": (1.0, VOLTAGE),
    "A": (1.0, CURRENT), "amp": (1.0, CURRENT),
    "S": (1.0, CONDUCTANCE), "siemens": (1.0, CONDUCTANCE),
    "F": (1.0, CAPACITANCE), "farad": (1.0, CAPACITANCE),
    "ohm": (1.0, RESISTANCE), "Ohm": (1.0, RESISTANCE), "Ω": (1.0, RESISTANCE),
    "C": (1.0, (0, 0, 1, 1)), "J": (1.0, (2, 1, -2, 0)), "W": (1.0, (2, 1, -3, 0)),
    "m": (1.0, (1, 0, 0, 0)), "metre": (1.0, (1, 0, 0, 0)), "g": (1e-3, (0, 1, 0, 0)),
}
_MAX_POWER = 4

#: Names of the dimensions met in circuit files and sweeps (for messages).
DIMENSION_NAMES: dict[Dim, str] = {
    DIMENSIONLESS: "dimensionless number", TIME: "time", VOLTAGE: "voltage", CURRENT: "current",
    CONDUCTANCE: "conductance", CAPACITANCE: "capacitance", RATE: "rate", RESISTANCE: "resistance",
    VOLTAGE_PER_TIME: "voltage per time", CURRENT_PER_TIME: "current per time",
}
#: Canonical display unit of each dimension and its scale to SI: circuit parameters are stored
#: as plain floats in these units.
DISPLAY_UNITS: dict[Dim, tuple[str, float]] = {
    DIMENSIONLESS: ("1", 1.0), TIME: ("ms", 1e-3), VOLTAGE: ("mV", 1e-3), CURRENT: ("pA", 1e-12),
    CONDUCTANCE: ("nS", 1e-9), CAPACITANCE: ("pF", 1e-12), RATE: ("Hz", 1.0),
    VOLTAGE_PER_TIME: ("mV/ms", 1.0), RESISTANCE: ("Mohm", 1e6), CURRENT_PER_TIME: ("pA/ms", 1e-9),
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:\*\s*)?(.*?)\s*$")
_FACTOR_RE = re.compile(r"^([A-Za-zµΩ]+)(?:(?:\^|\*\*)([-+]?\d+))?$")


def dimension_name(dim) -> str:
    """``"time"``, ``"voltage"``, ... or the base-unit exponents."""
    dim = tuple(dim)
    return DIMENSION_NAMES.get(dim, "quantity of dimension " + " ".join(
        f"{b}^{e}" for b, e in zip(("m", "kg", "s", "A"), dim) if e))


def parse_unit(unit: str) -> tuple[float, Dim]:
    """Scale to SI and dimension of a unit expression; ``""`` or ``"1"`` is dimensionless.

    Raises
    ------
    ValueError
        Unknown unit, malformed expression, or a power beyond +-4.
    """
    text = str(unit).replace(" ", "").replace("**", "^")
    if text in ("", "1"):
        return 1.0, DIMENSIONLESS
    scale, dims = 1.0, [0, 0, 0, 0]
    for sign, token in re.findall(r"([*/]?)([^*/]+)", text):
        match = _FACTOR_RE.match(token)
        if not match:
            raise ValueError(f"cannot parse unit factor {token!r}")
        name, power = match.group(1), int(match.group(2) or 1)
        if abs(power) > _MAX_POWER:
            raise ValueError(f"power {power} of {name!r}: allowed -{_MAX_POWER}..{_MAX_POWER}")
        if sign == "/":
            power = -power
        if name in _BASE:
            s, d = _BASE[name]
        elif len(name) > 1 and name[0] in _PREFIXES and name[1:] in _BASE:
            s, d = _BASE[name[1:]]
            s *= _PREFIXES[name[0]]
        else:
            raise ValueError(f"unknown unit {name!r}")
        scale *= s ** power
        dims = [a + power * b for a, b in zip(dims, d)]
    return scale, tuple(dims)


def split_quantity(value: Any) -> tuple[float, str]:
    """Split ``"20 ms"`` into ``(20.0, "ms")``; a bare number has unit ``""``.

    Raises
    ------
    ValueError
        Not a finite number followed by a known unit expression.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return float(value), ""
    match = _QUANTITY_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a number with a unit (e.g. '20 ms')")
    number = float(match.group(1))
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    unit = match.group(2)
    parse_unit(unit)  # validates
    return number, ("" if unit == "1" else unit)


def parse_quantity(value: Any, where: str = "value") -> tuple[float, Dim]:
    """``"20 ms"`` (or a bare number) as ``(value in SI units, dimension)``.

    Raises
    ------
    ConfigError
        Not ``<number> <unit>`` with a known unit, or not finite; the message names ``where``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be a number with a unit such as \"20 ms\", got {value!r}")
    try:
        number, unit = split_quantity(value)
        scale, dim = parse_unit(unit)
    except ValueError as exc:
        raise ConfigError(f"{where} = {value!r}: {exc} (write \"<number> <unit>\" with units such as "
                          "ms, mV, nS, pA, pF, Hz, mV/ms)") from None
    si = number * scale
    if not math.isfinite(si):
        raise ConfigError(f"{where} = {value!r}: not a finite quantity")
    return si, dim


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``.

    Raises
    ------
    ValueError
        Incompatible dimensions or unknown units.
    """
    s_from, d_from = parse_unit(from_unit)
    s_to, d_to = parse_unit(to_unit)
    if d_from != d_to:
        raise ValueError(f"unit {from_unit or 'dimensionless'!r} is not compatible with "
                         f"{to_unit or 'dimensionless'!r}")
    return value * s_from / s_to


def format_quantity(si_value: float, dim) -> str:
    """An SI value in the display unit of its dimension (``"20 ms"``)."""
    unit, scale = DISPLAY_UNITS.get(tuple(dim), (None, None))
    if unit is None:
        return f"{si_value!r} ({dimension_name(dim)})"
    v = float(f"{si_value / scale:.12g}")
    return f"{v:g}" if unit == "1" else f"{v:g} {unit}"


def unit_column_suffix(unit: str) -> str:
    """Column-name suffix for a unit: ``"ms"`` -> ``"_ms"``, ``"mV/ms"`` -> ``"_mV_per_ms"``,
    dimensionless -> ``""``. The unit's case is kept (``mS`` and ``MS`` differ)."""
    unit = unit.strip().replace(" ", "")
    if unit in ("", "1"):
        return ""
    text = unit.replace("**", "").replace("^", "").replace("*", "_").replace("/", "_per_")
    text = text.replace("µ", "u").replace("Ω", "ohm")
    return "_" + text


def canonical_float(value: float) -> float:
    """Round to 12 significant digits so that values written differently (``0.1*3`` vs ``0.3``,
    ``geomspace`` round-off) compare and hash equal."""
    return float(f"{float(value):.12g}")

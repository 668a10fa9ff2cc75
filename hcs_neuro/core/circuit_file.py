"""Circuit definitions (``circuits/*.toml``): loading, validation, parameters with units.

A circuit file declares a hypercolumn k-WTA circuit: the excitatory neuron model, the shared
inhibitory interneuron(s), the E->I / I->E synapses, the input coding, an optional local
time-refinement stage, and a citation for every parameter. This module only needs the standard
library: units are parsed by a small SI dimension calculator here, and Brian2 quantities are made
only when :meth:`CircuitSpec.namespace` is called.

File layout (see ``circuits/lif_kwta.toml`` for a complete, commented example)::

    [circuit]        name, description                       (strings)
    [neuron]         equations, method, method_noise, noise_term, threshold_expr (strings)
                     + parameters, e.g. tau_m = "1 ms"
    [interneuron]    equations (string) + parameters
    [inhibition]     n_interneurons (int) + parameters (w_ei, w_ie, ...)
    [refinement]     max_levels (int), factor (int)
    [input]          coding ("current" | "poisson" | "latency"), + parameters
    [citations]      "section.name" = "where the value comes from"  (one per parameter)

Every key that is not one of the reserved keys of its section is a *parameter*: a string
``"<number> <unit>"`` (``"20 ms"``, ``"0.6 mV/ms"``, ``"25 nS"``) or a bare number for a
dimensionless value. A parameter is addressed by its dotted name (``neuron.tau_m``); parameter
names are unique across sections because they share one Brian2 namespace.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Mapping

from hcs_neuro.core.catalog import circuit_text, shipped_circuit_names
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import parse_toml
from hcs_neuro.core.units import (
    CAPACITANCE,
    CONDUCTANCE,
    DIMENSIONLESS,
    DISPLAY_UNITS,
    RATE,
    TIME,
    VOLTAGE,
    dimension_name,
    parse_quantity,
    parse_unit,
)

__all__ = [
    "Param",
    "CircuitSpec",
    "RaceParams",
    "NetworkCircuit",
    "DEFAULT_NETWORK_CIRCUIT",
    "NETWORK_FORMS",
    "load_network_circuit",
    "load_circuit_file",
    "load_circuit",
    "load_race_circuit",
    "list_builtin_circuits",
]

#: Largest hypercolumn (channels) a circuit file may declare.
MAX_CHANNELS = 4096
#: The built-in whole-network circuit: the exact race (``circuits/network_race.toml``).
DEFAULT_NETWORK_CIRCUIT = "network_race"

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


# ----------------------------------------------------------------------------------------------
# Schema: the reserved (non-parameter) keys of each section and their types.
_SECTIONS: dict[str, dict[str, type]] = {
    "circuit": {"name": str, "description": str, "duration": str, "k": int, "n_channels": int},
    "neuron": {
        "equations": str,
        "method": str,
        "method_noise": str,
        "noise_term": str,
        "threshold_expr": str,
    },
    "interneuron": {"equations": str, "method": str},
    "inhibition": {"n_interneurons": int, "on_pre_ei": str, "on_pre_ie": str},
    "refinement": {"max_levels": int, "factor": int},
    "input": {"coding": str},
    "citations": {},
}
_REQUIRED = {
    "circuit": ("name",),
    "neuron": ("equations", "threshold_expr"),
    "interneuron": ("equations",),
    "inhibition": ("on_pre_ei", "on_pre_ie"),
}
_CODINGS = ("current", "poisson", "latency")
# Names that must be *defined* as variables by the model equations (the builder relies on them).
_NEURON_VARS = ("v", "drive", "bias", "I_syn", "s", "u", "done")
_INTER_VARS = ("count",)
# Parameters the builder reads (and their dimension) when present.
_BUILDER_PARAMS = {
    "v_threshold": VOLTAGE,
    "v_reset": VOLTAGE,
    "rate_max": RATE,
    "w_in": VOLTAGE,
    "latency_max": TIME,
    "t_ref_i": TIME,
    "delay_ei": TIME,
    "delay_ie": TIME,
}
_BRIAN_SPECIAL = {
    "t", "dt", "xi", "i", "N", "rand", "randn", "exp", "log", "sqrt", "abs", "int", "clip",
    "sin", "cos", "tanh", "floor", "ceil", "True", "False", "and", "or", "not", "lastspike",
    "not_refractory", "unless", "refractory", "second", "ms", "mV", "volt", "amp", "siemens",
    "farad", "hertz", "Hz", "nS", "pA", "pF", "nA", "nF", "uS", "ohm", "inf", "exprel",
    "constant", "over", "shared", "linked", "summed", "pre", "post", "k_hc",
}


def _override_name(dotted) -> tuple[str, str]:
    """``(section, key)`` of a dotted override name such as ``neuron.tau_m``."""
    if not isinstance(dotted, str) or "." not in dotted:
        raise ConfigError(f"override {dotted!r} must be a dotted name such as neuron.tau_m")
    section, key = dotted.split(".", 1)
    return section, key


def _override_int(dotted: str, value) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"{dotted} must be an integer, got {value!r}") from None


def _override_quantity(raw: dict, params, dotted: str, value, known: str) -> None:
    """Put ``value`` for the parameter ``dotted`` into ``raw``: it must be one of ``params`` and keep
    its dimension (``known`` lists the allowed names in the error)."""
    old = next((p for p in params if p.dotted == dotted), None)
    if old is None:
        raise ConfigError(f"override {dotted!r}: unknown field ({known})")
    _, dim = parse_quantity(value, dotted)
    if dim != old.dim:
        raise ConfigError(f"{dotted} must be a {dimension_name(old.dim)}, got {value}")
    section, key = dotted.split(".", 1)
    raw[section][key] = value if isinstance(value, str) else float(value)


@dataclasses.dataclass(frozen=True)
class Param:
    """One circuit parameter: ``value`` in the display ``unit`` of its dimension."""

    section: str
    name: str
    value: float
    unit: str
    dim: tuple[int, int, int, int]

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def si(self) -> float:
        return self.value * DISPLAY_UNITS[self.dim][1]

    def text(self) -> str:
        return self.value.__format__("g") if self.unit == "1" else f"{self.value:g} {self.unit}"


@dataclasses.dataclass(frozen=True)
class CircuitSpec:
    """A validated circuit definition: plain strings, ints and floats; JSON-able and hashable.

    Attributes
    ----------
    name, description, source : str
        Circuit name, one-line description, and the file it came from.
    neuron_eqs, neuron_method, neuron_method_noise, noise_term, threshold_expr : str
        Excitatory model (Brian2 equation string with a ``{noise}`` placeholder), integration
        methods without/with membrane noise, the noise term and the spike condition.
    inter_eqs, inter_method : str
        Interneuron model (a spike counter ``count`` plus optional variables).
    n_interneurons : int
        Interneurons per hypercolumn (a pool, all counting every excitatory spike of it).
    on_pre_ei, on_pre_ie : str
        Synaptic effect of an excitatory spike on an interneuron, and of an interneuron spike on
        every excitatory cell of its hypercolumn.
    max_levels, refine_factor : int
        Local time refinement (0 = a plain race; see :mod:`hcs_neuro.brian.hypercolumn`).
    coding : str
        Input coding: ``"current"`` (constant drive), ``"poisson"`` (input spikes at rate
        ``drive * rate_max``, each adding ``w_in`` to ``I_syn``) or ``"latency"`` (one input
        event of ``w_in`` at time ``(1 - drive) * latency_max``).
    duration_ms : float
        Default simulated time per stimulus (``circuit.duration``), long enough to decide.
    k, n_channels : int
        Default winners and channels per hypercolumn (``circuit.k``, ``circuit.n_channels``;
        2 and 32 if absent), used when the caller gives none.
    params : tuple of Param
        Every parameter with its unit.
    citations : tuple of (str, str)
        ``(dotted name, citation)`` for every parameter.
    """

    name: str
    description: str
    source: str
    neuron_eqs: str
    neuron_method: str
    neuron_method_noise: str
    noise_term: str
    threshold_expr: str
    inter_eqs: str
    inter_method: str
    n_interneurons: int
    on_pre_ei: str
    on_pre_ie: str
    max_levels: int
    refine_factor: int
    coding: str
    duration_ms: float
    k: int
    n_channels: int
    params: tuple[Param, ...]
    citations: tuple[tuple[str, str], ...]

    # -- access ---------------------------------------------------------------------------------
    def param(self, dotted: str) -> Param:
        """The parameter with dotted name ``dotted`` (ConfigError if there is none)."""
        for p in self.params:
            if p.dotted == dotted:
                return p
        raise ConfigError(
            f"{self.source}: unknown parameter {dotted!r}; known: {', '.join(p.dotted for p in self.params)}"
        )

    def has(self, name: str) -> bool:
        """True if a parameter with the bare ``name`` exists in any section."""
        return any(p.name == name for p in self.params)

    def value(self, name: str, unit: str | None = None) -> float:
        """Value of the parameter with bare name ``name`` in its display unit (or ``unit``)."""
        for p in self.params:
            if p.name == name:
                if unit is None:
                    return p.value
                scale, dim = parse_unit(unit)
                if dim != p.dim:
                    raise ConfigError(f"{p.dotted} is a {dimension_name(p.dim)}, not in {unit}")
                return p.si / scale
        raise ConfigError(f"{self.source}: circuit has no parameter {name!r}")

    def neuron_equations(self, noise: bool = False) -> str:
        """Excitatory-cell equation string; ``noise=True`` inserts the membrane-noise term.

        Variables the builder relies on (all must be defined): ``v`` (volt, membrane),
        ``drive`` (1, the input in [0, 1]; enters as ``drive_gain * drive``), ``bias`` (volt,
        per-cell offset, e.g. a tie-breaking bias), ``I_syn`` (volt or amp, synaptic input from
        a previous layer: ``on_pre='I_syn_post += w'``), ``s`` (1, local time scale of the
        hypercolumn), ``u`` (urgency input) and ``done`` (1 after the cell has won).
        """
        term = f" + {self.noise_term}" if noise else ""
        return self.neuron_eqs.replace("{noise}", term)

    def method(self, noise: bool = False) -> str:
        return self.neuron_method_noise if noise else self.neuron_method

    # -- derived specs ----------------------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any]) -> "CircuitSpec":
        """A new validated spec with some values replaced.

        Parameters
        ----------
        overrides : mapping
            Dotted name -> new value, e.g. ``{"inhibition.w_ie": "2 mV", "neuron.tau_m": "10 ms",
            "refinement.max_levels": 3, "inhibition.n_interneurons": 2}``. A parameter must keep
            its dimension.

        Raises
        ------
        ConfigError
            Unknown name, wrong unit ("neuron.tau_m must be a time, got 5 mV") or bad value.
        """
        raw = self.to_toml_dict()
        for dotted, value in overrides.items():
            section, key = _override_name(dotted)
            if section not in raw or section == "citations":
                raise ConfigError(
                    f"override {dotted!r}: unknown section {section!r} (allowed: "
                    f"{', '.join(s for s in _SECTIONS if s != 'citations')})"
                )
            reserved = _SECTIONS[section]
            if key in reserved:
                raw[section][key] = _override_int(dotted, value) if reserved[key] is int else value
                continue
            known = ", ".join([p.dotted for p in self.params] + [f"{section}.{k}" for k in reserved])
            _override_quantity(raw, self.params, dotted, value, f"known in {section}: {known}")
        return _from_raw(raw, self.source)

    # -- serialisation ------------------------------------------------------------------------------
    def to_toml_dict(self) -> dict:
        """The raw (TOML-shaped) dictionary this spec was built from."""
        raw: dict[str, dict] = {
            "circuit": {"name": self.name, "description": self.description,
                        "duration": f"{self.duration_ms:g} ms", "k": self.k, "n_channels": self.n_channels},
            "neuron": {
                "equations": self.neuron_eqs,
                "method": self.neuron_method,
                "method_noise": self.neuron_method_noise,
                "noise_term": self.noise_term,
                "threshold_expr": self.threshold_expr,
            },
            "interneuron": {"equations": self.inter_eqs, "method": self.inter_method},
            "inhibition": {
                "n_interneurons": self.n_interneurons,
                "on_pre_ei": self.on_pre_ei,
                "on_pre_ie": self.on_pre_ie,
            },
            "refinement": {"max_levels": self.max_levels, "factor": self.refine_factor},
            "input": {"coding": self.coding},
            "citations": dict(self.citations),
        }
        for p in self.params:
            raw[p.section][p.name] = p.text()
        return raw

    def to_dict(self) -> dict:
        """JSON-able dictionary: the TOML content plus ``source`` (stable keys)."""
        d = self.to_toml_dict()
        d["source"] = self.source
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class RaceParams:
    """Parameters of the phased integer race (``circuits/network_race.toml``).

    Attributes
    ----------
    dt_ms : float
        Simulation time step in ms (time is reported in ms; the race itself is exact at any dt
        because it counts steps).
    refine_factor : int
        Factor f by which the ladder's rung spacing g shrinks on a refinement (>= 2).
    rungs : int
        Staggered thresholds M that each interneuron tests per step (1..64; 1 is the one-way
        falling threshold of the first race).
    max_levels : int or None
        Refinement levels L (g0 = f**L); None chooses the L that minimises the window.
    float32 : bool
        Compile the network with float32 state variables (scores and rungs must stay below 2**24).
    name, source : str
        Circuit name and file.
    """

    dt_ms: float = 0.1
    refine_factor: int = 8
    rungs: int = 8
    max_levels: int | None = None
    float32: bool = False
    name: str = "network_race"
    source: str = "<defaults>"

    def __post_init__(self):
        if not (isinstance(self.dt_ms, (int, float)) and 0 < self.dt_ms <= 10):
            raise ConfigError(f"{self.source}: race.dt = {self.dt_ms!r} ms: allowed 0 < dt <= 10 ms")
        if isinstance(self.refine_factor, bool) or not isinstance(self.refine_factor, int) or self.refine_factor < 2:
            raise ConfigError(f"{self.source}: race.refine_factor = {self.refine_factor!r}: allowed an integer >= 2")
        if isinstance(self.rungs, bool) or not isinstance(self.rungs, int) or not 1 <= self.rungs <= 64:
            raise ConfigError(f"{self.source}: race.rungs = {self.rungs!r}: allowed an integer 1..64")
        if self.max_levels is not None and (isinstance(self.max_levels, bool) or not isinstance(self.max_levels, int)
                                            or not 0 <= self.max_levels <= 40):
            raise ConfigError(f"{self.source}: race.max_levels = {self.max_levels!r}: allowed an integer 0..40 "
                              f"or \"auto\"")



# ----------------------------------------------------------------------------------------------
def list_builtin_circuits() -> list[str]:
    """Names of the hypercolumn circuits shipped in ``circuits/`` (installed as ``hcs_neuro.circuits``).

    Only files with a ``[neuron]`` section are hypercolumn circuits; the whole-network race
    (``network_race.toml``, a ``[race]`` section) is listed by
    ``hcs_neuro.core.catalog.shipped_circuit_names("race")``.
    """
    return shipped_circuit_names("hypercolumn")


def load_circuit_file(path_or_name=None) -> "CircuitSpec | RaceParams":
    """The one loader of circuit files: a hypercolumn circuit (``[neuron]`` section) as a
    :class:`CircuitSpec`, the exact whole-network race (``[race]`` section) as :class:`RaceParams`.

    Parameters
    ----------
    path_or_name : str or Path, optional
        A TOML file or a built-in name (default: the exact race, ``network_race``).

    Raises
    ------
    ConfigError
        Missing or unreadable file, TOML syntax, unknown section or field, a value out of range,
        a missing citation (the message names the file and the field).
    """
    text, source = circuit_text(DEFAULT_NETWORK_CIRCUIT if path_or_name is None else path_or_name)
    raw = parse_toml(text, source, what="circuit file")
    if "race" in raw:
        return _race_from_raw(raw, source)
    if "network" in raw:
        return _network_from_raw(raw, source)
    return _from_raw(raw, source)


def load_circuit(path_or_name: str | Path) -> CircuitSpec:
    """Load and validate a hypercolumn circuit file, or a built-in circuit by name (``"lif_kwta"``).

    Raises
    ------
    ConfigError
        Missing file, TOML syntax error, unknown field, missing or wrong unit, negative time
        constant, missing citation, unknown variable in an equation; a race file (no ``[neuron]``).
    """
    spec = load_circuit_file(path_or_name)
    if isinstance(spec, RaceParams):
        raise ConfigError(f"{spec.source} is not a hypercolumn circuit (it has no [neuron] section; it is the "
                          "whole-network race, for simulate/validate/energy --circuit)")
    if isinstance(spec, NetworkCircuit):
        raise ConfigError(f"{spec.source} is a whole-network circuit ([network] section), for "
                          "simulate/validate/energy --circuit, not a single-hypercolumn circuit")
    return spec


def load_race_circuit(path_or_name=None) -> RaceParams:
    """Load a whole-network race circuit file (``circuits/network_race.toml`` by default).

    Raises
    ------
    ConfigError
        As :func:`load_circuit_file`, or a single-hypercolumn circuit file (``[neuron]`` section)
        where a race is needed.
    """
    text, source = circuit_text(DEFAULT_NETWORK_CIRCUIT if path_or_name is None else path_or_name)
    raw = parse_toml(text, source, what="circuit file")
    if "race" not in raw:
        if "neuron" in raw:
            raise ConfigError(f"{source}: a single-hypercolumn circuit ([neuron] section); whole networks need a "
                              f"network race circuit with a [race] section, e.g. {DEFAULT_NETWORK_CIRCUIT}")
        raise ConfigError(f"{source}: missing section [race]")
    return _race_from_raw(raw, source)


_RACE_KEYS = {"dt": str, "refine_factor": int, "rungs": int, "max_levels": (int, str), "float32": bool}


def _race_from_raw(raw: dict, src: str) -> "RaceParams":
    for section in raw:
        if section not in ("circuit", "race", "citations"):
            raise ConfigError(f"{src}: unknown section [{section}] (allowed: circuit, race, citations)")
    race = raw["race"]
    if not isinstance(race, dict):
        raise ConfigError(f"{src}: [race] must be a table")
    for key in race:
        if key not in _RACE_KEYS:
            raise ConfigError(f"{src}: unknown field race.{key} (allowed: {', '.join(_RACE_KEYS)})")
    cites = raw.get("citations", {})
    if not isinstance(cites, dict):
        raise ConfigError(f"{src}: [citations] must be a table of \"section.name\" = \"source\"")
    for key in race:
        if f"race.{key}" not in cites:
            raise ConfigError(f"{src}: race.{key} needs a citation (citations.\"race.{key}\")")
    dt_ms = 0.1
    if "dt" in race:
        si, dim = parse_quantity(race["dt"], f"{src}: race.dt")
        if dim != TIME:
            raise ConfigError(f"{src}: race.dt must be a time such as \"0.1 ms\", got {race['dt']!r}")
        dt_ms = si * 1e3
    levels = race.get("max_levels", "auto")
    if isinstance(levels, str):
        if levels != "auto":
            raise ConfigError(f"{src}: race.max_levels = {levels!r}: allowed an integer 0..40 or \"auto\"")
        levels = None
    f = race.get("refine_factor", RaceParams.refine_factor)
    rungs = race.get("rungs", RaceParams.rungs)
    f32 = race.get("float32", False)
    if not isinstance(f32, bool):
        raise ConfigError(f"{src}: race.float32 must be true or false, got {f32!r}")
    circuit = raw.get("circuit", {})
    name = circuit.get("name", Path(src.split(" ")[0]).stem) if isinstance(circuit, dict) else Path(src).stem
    return RaceParams(dt_ms=float(dt_ms), refine_factor=f, rungs=rungs, max_levels=levels, float32=f32, name=str(name),
                      source=src)


def _from_text(text: str, source: str) -> CircuitSpec:
    return _from_raw(parse_toml(text, source, what="circuit file"), source)


_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def _defined_vars(eqs: str) -> set[str]:
    names = set()
    for line in eqs.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"d([A-Za-z_]\w*)\s*/\s*dt\s*=", line) or re.match(r"([A-Za-z_]\w*)\s*[:=]", line)
        if m:
            names.add(m.group(1))
    return names


def _from_raw(raw: dict, source: str) -> CircuitSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a TOML table")
    for section in raw:
        if section not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}] (allowed: {', '.join(_SECTIONS)})")
    for section, keys in _REQUIRED.items():
        if section not in raw:
            raise ConfigError(f"{source}: missing section [{section}]")
        for key in keys:
            if key not in raw[section]:
                raise ConfigError(f"{source}: missing field {section}.{key}")
    params: list[Param] = []
    fields: dict[str, Any] = {}
    for section, table in raw.items():
        if section == "citations":
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        reserved = _SECTIONS[section]
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if key in reserved:
                typ = reserved[key]
                if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ConfigError(f"{source}: {dotted} must be an integer, got {value!r}")
                if typ is str and not isinstance(value, str):
                    raise ConfigError(f"{source}: {dotted} must be a string, got {value!r}")
                fields[dotted] = value
                continue
            if isinstance(value, dict):
                raise ConfigError(f"{source}: unknown field {dotted} (a table is not allowed here)")
            if isinstance(value, str) and not re.match(rf"\s*{_NUMBER}", value):
                raise ConfigError(
                    f"{source}: unknown field {dotted} = {value!r} (reserved keys of [{section}]: "
                    f"{', '.join(reserved) or 'none'}; parameters are \"<number> <unit>\")"
                )
            si, dim = parse_quantity(value, f"{source}: {dotted}")
            if dim not in DISPLAY_UNITS:
                raise ConfigError(f"{source}: {dotted} has an unsupported unit in {value!r}")
            if key in _BUILDER_PARAMS and dim != _BUILDER_PARAMS[key]:
                raise ConfigError(
                    f"{source}: {dotted} must be a {dimension_name(_BUILDER_PARAMS[key])}, got {value}"
                )
            if dim == TIME:
                if key.startswith("tau") and si <= 0:
                    raise ConfigError(f"{source}: {dotted} is a time constant and must be > 0, got {value}")
                if si < 0:
                    raise ConfigError(f"{source}: {dotted} is a time and must be >= 0, got {value}")
            if key.startswith("tau") and dim != TIME:
                raise ConfigError(f"{source}: {dotted} must be a time, got {value}")
            if key.startswith(("sigma", "rate", "w_")) and si < 0:
                raise ConfigError(f"{source}: {dotted} must be >= 0, got {value} (a synaptic weight is a "
                                  "strength; inhibition comes from the equations' reversal potential or sign)"
                                  if key.startswith("w_") else f"{source}: {dotted} must be >= 0, got {value}")
            if dim in (CONDUCTANCE, CAPACITANCE) and (si < 0 or (dim == CAPACITANCE and si == 0)):
                raise ConfigError(f"{source}: {dotted} is a {dimension_name(dim)} and must be "
                                  f"{'> 0' if dim == CAPACITANCE else '>= 0'}, got {value}")
            disp = DISPLAY_UNITS[dim]
            params.append(Param(section, key, float(f"{si / disp[1]:.15g}"), disp[0], dim))

    # unique parameter names (they share one Brian2 namespace)
    seen: dict[str, str] = {}
    for p in params:
        if p.name in seen:
            raise ConfigError(f"{source}: parameter name {p.name!r} appears in {seen[p.name]} and {p.section}")
        seen[p.name] = p.section

    def get(dotted, default):
        return fields.get(dotted, default)

    n_int = get("inhibition.n_interneurons", 1)
    if n_int < 1:
        raise ConfigError(f"{source}: inhibition.n_interneurons must be >= 1, got {n_int}")
    max_levels = get("refinement.max_levels", 0)
    if not 0 <= max_levels <= 12:
        raise ConfigError(f"{source}: refinement.max_levels must be in 0..12, got {max_levels}")
    factor = get("refinement.factor", 10)
    if factor < 2:
        raise ConfigError(f"{source}: refinement.factor must be an integer >= 2, got {factor}")
    coding = get("input.coding", "current")
    if coding not in _CODINGS:
        raise ConfigError(f"{source}: input.coding must be one of {', '.join(_CODINGS)}, got {coding!r}")
    method = get("neuron.method", "exact")
    method_noise = get("neuron.method_noise", "euler")
    for dotted, m in (("neuron.method", method), ("neuron.method_noise", method_noise),
                      ("interneuron.method", get("interneuron.method", "euler"))):
        if m not in ("exact", "euler", "heun", "rk2", "rk4", "milstein", "linear", "exponential_euler"):
            raise ConfigError(f"{source}: {dotted} must be a Brian2 integration method, got {m!r}")

    neuron_eqs = fields["neuron.equations"]
    inter_eqs = fields["interneuron.equations"]
    noise_term = get("neuron.noise_term", "")
    if "{noise}" not in neuron_eqs:
        raise ConfigError(f"{source}: neuron.equations must contain the placeholder {{noise}} (where membrane noise is added)")
    defined_e = _defined_vars(neuron_eqs)
    for var in _NEURON_VARS:
        if var not in defined_e:
            raise ConfigError(f"{source}: neuron.equations must define the variable {var!r}")
    defined_i = _defined_vars(inter_eqs)
    for var in _INTER_VARS:
        if var not in defined_i:
            raise ConfigError(f"{source}: interneuron.equations must define the variable {var!r}")

    # every identifier in a code string is a variable, a parameter or a Brian2 name; every
    # parameter is used somewhere (catches typos such as tau_mm in either place)
    pnames = {p.name for p in params}
    extra = {"v_prev", "u_prev", "s_prev", "just", "t_win", "level", "count_prev", "w",
             "decided", "t_decision", "k_hc", "tl", "tl_prev", "tl_win", "tl_decision"}
    known = pnames | defined_e | defined_i | _BRIAN_SPECIAL | extra
    used: set[str] = set()
    code_fields = {
        "neuron.equations": neuron_eqs,
        "neuron.noise_term": noise_term,
        "neuron.threshold_expr": fields["neuron.threshold_expr"],
        "interneuron.equations": inter_eqs,
        "inhibition.on_pre_ei": fields["inhibition.on_pre_ei"],
        "inhibition.on_pre_ie": fields["inhibition.on_pre_ie"],
    }
    for dotted, code in code_fields.items():
        for line in code.splitlines():
            body = line.split("#", 1)[0]
            if ":" in body and dotted.endswith("equations"):
                body = body.rsplit(":", 1)[0]  # drop the unit declaration
            body = re.sub(r"\bd([A-Za-z_]\w*)\s*/\s*dt\b", r"\1", body)
            body = body.replace("{noise}", "")
            for ident in _IDENT.findall(re.sub(rf"\b{_NUMBER}\b", " ", body)):
                base = re.sub(r"_(pre|post)$", "", ident)
                used.add(base)
                if base not in known and ident not in known:
                    raise ConfigError(
                        f"{source}: {dotted} uses {ident!r}, which is neither a variable nor a parameter of the circuit"
                    )
    builder_used = {"v_threshold", "v_reset", "t_ref_i", "rate_max", "w_in", "latency_max", "delay_ei",
                    "delay_ie"}
    for p in params:
        if p.name not in used and p.name not in builder_used:
            raise ConfigError(f"{source}: unknown field {p.dotted} (not used by any equation of the circuit)")
    delays = [p for p in params if p.name in ("delay_ei", "delay_ie") and p.value > 0]
    if delays and max_levels > 0:
        raise ConfigError(
            f"{source}: refinement.max_levels = {max_levels} needs delay-free E->I and I->E pathways, "
            f"but {delays[0].dotted} = {delays[0].text()} (set it to 0 ms or max_levels = 0)"
        )
    for name in ("v_threshold", "v_reset", "v_rest"):
        if name not in pnames:
            raise ConfigError(f"{source}: missing parameter neuron.{name} (a voltage)")
    if coding == "poisson":
        for name in ("rate_max", "w_in"):
            if name not in pnames:
                raise ConfigError(f"{source}: input.coding = \"poisson\" needs input.{name}")
    if coding == "latency":
        for name in ("latency_max", "w_in"):
            if name not in pnames:
                raise ConfigError(f"{source}: input.coding = \"latency\" needs input.{name}")
    if coding in ("poisson", "latency") and not re.search(r"^\s*dI_syn\s*/\s*dt", neuron_eqs, flags=re.M):
        raise ConfigError(f"{source}: input.coding = \"{coding}\" needs I_syn to be a differential variable "
                          "(dI_syn/dt = ...) that input events can increment")

    # citations: one per parameter, and none for unknown names
    cites = raw.get("citations", {})
    if not isinstance(cites, dict):
        raise ConfigError(f"{source}: [citations] must be a table of \"section.name\" = \"source\"")
    dotted_names = {p.dotted for p in params}
    for key, val in cites.items():
        if key not in dotted_names:
            raise ConfigError(f"{source}: citations.{key!r} names no parameter of the circuit")
        if not isinstance(val, str) or not val.strip():
            raise ConfigError(f"{source}: citation for {key} must be a non-empty string")
    for p in params:
        if p.dotted not in cites:
            raise ConfigError(f"{source}: parameter {p.dotted} has no entry in [citations]")

    circuit = raw["circuit"]
    dur_si, dur_dim = parse_quantity(circuit.get("duration", "30 ms"), f"{source}: circuit.duration")
    if dur_dim != TIME or dur_si <= 0:
        raise ConfigError(f"{source}: circuit.duration must be a positive time, got {circuit.get('duration')!r}")
    k_default = get("circuit.k", 2)
    n_default = get("circuit.n_channels", 32)
    if not 2 <= n_default <= MAX_CHANNELS:
        raise ConfigError(f"{source}: circuit.n_channels must be 2..{MAX_CHANNELS}, got {n_default}")
    if not 0 < k_default < n_default:
        raise ConfigError(f"{source}: circuit.k must satisfy 0 < k < n_channels = {n_default}, got k = {k_default}")
    return CircuitSpec(
        name=str(circuit["name"]),
        description=str(circuit.get("description", "")),
        source=source,
        neuron_eqs=neuron_eqs,
        neuron_method=method,
        neuron_method_noise=method_noise,
        noise_term=noise_term,
        threshold_expr=fields["neuron.threshold_expr"],
        inter_eqs=inter_eqs,
        inter_method=get("interneuron.method", "euler"),
        n_interneurons=n_int,
        on_pre_ei=fields["inhibition.on_pre_ei"],
        on_pre_ie=fields["inhibition.on_pre_ie"],
        max_levels=max_levels,
        refine_factor=factor,
        coding=coding,
        duration_ms=float(f"{dur_si * 1e3:.12g}"),
        k=int(k_default),
        n_channels=int(n_default),
        params=tuple(params),
        citations=tuple(sorted((k, str(v)) for k, v in cites.items())),
    )


def check_k(k: int, n_channels: int) -> None:
    """Raise ConfigError unless 0 < k < n_channels."""
    if not isinstance(k, (int,)) or isinstance(k, bool):
        raise ConfigError(f"k must be an integer, got {k!r}")
    if n_channels < 2:
        raise ConfigError(f"n_channels must be >= 2, got {n_channels}")
    if not 0 < k < n_channels:
        raise ConfigError(f"k must satisfy 0 < k < n_channels = {n_channels}, got k = {k}")


__all__.append("check_k")


# ----------------------------------------------------------------------------------------------
# Whole networks of biophysical hypercolumns (``circuits/lif_net.toml`` and friends).

#: The network form of each single-hypercolumn circuit: ``--circuit lif_kwta`` runs ``lif_net``.
NETWORK_FORMS = {"lif_kwta": "lif_net", "lif_pool": "lif_pool_net", "cond_kwta": "cond_net"}

# [network] keys: type, and whether the value needs a citation (choices of mechanism do not)
_NETWORK_KEYS: dict[str, tuple[type | tuple, bool]] = {
    "input_coding": (str, False), "feedforward_delay": (str, True), "settle": (str, True),
    "fine_steps_per_tick": (int, True), "tie": (str, False), "tie_span": ((int, float), True),
    "t_image": (str, True), "speed_scale": ((int, float), True), "brake_delay": (str, True),
    "dt": (str, True), "tie_seed": (int, False),
}
_NETWORK_TIMES = ("feedforward_delay", "settle", "t_image", "brake_delay", "dt")
_NETWORK_SECTIONS = {
    "circuit": {"name": str, "description": str},
    "neuron": {"equations": str, "method": str, "noise_term": str},
    "interneuron": {"equations": str},
    "inhibition": {"n_interneurons": int, "on_pre_ei": str, "on_pre_ie": str},
    "network": {},
    "citations": {},
}
#: Parameters the network builder reads, with their dimension (None: any listed below).
_NETWORK_PARAMS = {"tau_syn": TIME, "v_rest": VOLTAGE, "v_threshold": VOLTAGE, "v_reset": VOLTAGE,
                   "t_ref_i": TIME, "delay_ei": TIME, "delay_ie": TIME}
_TIE_RULES = ("gradient", "random", "none")
_NETWORK_CODINGS = ("onset_charge",)


@dataclasses.dataclass(frozen=True)
class NetworkCircuit:
    """A whole-network biophysical circuit file (``[network]`` section), validated.

    Every hypercolumn of a model becomes the file's excitatory cells (one per channel) and its
    interneuron(s); see :mod:`hcs_neuro.brian.bionet` for the mechanisms and what each
    ``[network]`` key means.

    Attributes
    ----------
    name, description, source : str
    neuron_eqs, method, noise_term : str
        Excitatory model (Brian2 equations with a ``{noise}`` placeholder; must define ``v``, the
        persistent plateau ``P`` and the feed-forward synaptic current ``s_ff``), its integration
        method and its membrane-noise term (with ``sigma_v``).
    inter_eqs : str
        Interneuron model (defines ``count``).
    n_interneurons : int
    on_pre_ei, on_pre_ie : str
        E->I and I->E synaptic effects.
    params : tuple of Param
    network : tuple of (key, value)
        The ``[network]`` keys (times as strings with units).
    citations : tuple of (str, str)
    """

    name: str
    description: str
    source: str
    neuron_eqs: str
    method: str
    noise_term: str
    inter_eqs: str
    n_interneurons: int
    on_pre_ei: str
    on_pre_ie: str
    params: tuple[Param, ...]
    network: tuple[tuple[str, Any], ...]
    citations: tuple[tuple[str, str], ...]

    def si(self, name: str) -> float:
        """SI value of the parameter with bare name ``name``."""
        for p in self.params:
            if p.name == name:
                return p.si
        raise ConfigError(f"{self.source}: circuit has no parameter {name!r}")

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    def net(self, key: str, default=None):
        """A ``[network]`` value (raw: times stay strings)."""
        return dict(self.network).get(key, default)

    def net_time_s(self, key: str, default: str) -> float:
        """A ``[network]`` time in seconds."""
        si, _ = parse_quantity(self.net(key, default), f"{self.source}: network.{key}")
        return si

    @property
    def conductance_based(self) -> bool:
        """True if drives are currents (the file declares ``C_m`` and ``g_L``)."""
        return self.has("C_m") and self.has("g_L")

    @property
    def dt_ms(self) -> float:
        return self.net_time_s("dt", "0.1 ms") * 1e3

    def with_overrides(self, overrides: Mapping[str, Any]) -> "NetworkCircuit":
        """A new validated circuit with dotted names replaced (``neuron.tau_m``, ``network.tie``)."""
        raw = self.to_toml_dict()
        for dotted, value in overrides.items():
            section, key = _override_name(dotted)
            if section not in raw or section in ("citations", "circuit"):
                raise ConfigError(f"override {dotted!r}: unknown section {section!r} (allowed: neuron, "
                                  f"interneuron, inhibition, network)")
            if section == "network":
                if key not in _NETWORK_KEYS:
                    raise ConfigError(f"override {dotted!r}: unknown field (allowed: "
                                      f"{', '.join('network.' + k for k in _NETWORK_KEYS)})")
                typ = _NETWORK_KEYS[key][0]
                if typ is int:
                    value = _override_int(dotted, value)
                elif typ == (int, float):
                    try:
                        value = float(value)
                    except (TypeError, ValueError):
                        raise ConfigError(f"{dotted} must be a number, got {value!r}") from None
                else:
                    value = str(value)
                raw[section][key] = value
                if _NETWORK_KEYS[key][1] and f"network.{key}" not in raw["citations"]:
                    raw["citations"][f"network.{key}"] = "override"
                continue
            _override_quantity(raw, self.params, dotted, value,
                               f"known: {', '.join(p.dotted for p in self.params)}")
        return _network_from_raw(raw, self.source)

    def to_toml_dict(self) -> dict:
        raw: dict[str, dict] = {
            "circuit": {"name": self.name, "description": self.description},
            "neuron": {"equations": self.neuron_eqs, "method": self.method, "noise_term": self.noise_term},
            "interneuron": {"equations": self.inter_eqs},
            "inhibition": {"n_interneurons": self.n_interneurons, "on_pre_ei": self.on_pre_ei,
                           "on_pre_ie": self.on_pre_ie},
            "network": dict(self.network),
            "citations": dict(self.citations),
        }
        for p in self.params:
            raw[p.section][p.name] = p.text()
        return raw

    def to_dict(self) -> dict:
        d = self.to_toml_dict()
        d["source"] = self.source
        return d


def load_network_circuit(path_or_name=None) -> "RaceParams | NetworkCircuit":
    """The whole-network circuit of ``--circuit NAME|FILE``: the exact race (default) or a
    biophysical network circuit.

    A built-in single-hypercolumn name maps to its network form (:data:`NETWORK_FORMS`:
    ``lif_kwta`` -> ``lif_net``); a single-hypercolumn *file* is refused in one line naming the
    circuits a network can use.

    Raises
    ------
    ConfigError
        As :func:`load_circuit_file`, or a circuit that cannot serve a network.
    """
    name = path_or_name
    if isinstance(name, str) and name in NETWORK_FORMS:
        name = NETWORK_FORMS[name]
    spec = load_circuit_file(name)
    if isinstance(spec, CircuitSpec):
        allowed = shipped_circuit_names("race") + shipped_circuit_names("network") + sorted(NETWORK_FORMS)
        raise ConfigError(f"{spec.source}: a single-hypercolumn circuit (no [network] section) cannot serve a "
                          f"network; allowed: {', '.join(allowed)} or a network circuit file")
    return spec


def _network_from_raw(raw: dict, src: str) -> NetworkCircuit:
    """Validate a network circuit file; every refusal is one line naming the file and the field."""
    for section in raw:
        if section not in _NETWORK_SECTIONS:
            raise ConfigError(f"{src}: unknown section [{section}] (allowed: {', '.join(_NETWORK_SECTIONS)})")
    for section in ("neuron", "interneuron", "inhibition", "network"):
        if section not in raw:
            raise ConfigError(f"{src}: cannot serve a network: missing section [{section}]")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{src}: [{section}] must be a table")
    for section, key in (("neuron", "equations"), ("interneuron", "equations"), ("inhibition", "on_pre_ei"),
                         ("inhibition", "on_pre_ie")):
        if key not in raw[section]:
            raise ConfigError(f"{src}: cannot serve a network: missing field {section}.{key}")
    params: list[Param] = []
    fields: dict[str, Any] = {}
    for section in ("neuron", "interneuron", "inhibition"):
        reserved = _NETWORK_SECTIONS[section]
        for key, value in raw[section].items():
            dotted = f"{section}.{key}"
            if key in reserved:
                typ = reserved[key]
                if (typ is int and (isinstance(value, bool) or not isinstance(value, int))) or \
                        (typ is str and not isinstance(value, str)):
                    raise ConfigError(f"{src}: {dotted} must be {'an integer' if typ is int else 'a string'}, "
                                      f"got {value!r}")
                fields[dotted] = value
                continue
            if isinstance(value, (dict, list, bool)) or (isinstance(value, str) and not re.match(rf"\s*{_NUMBER}", value)):
                raise ConfigError(f"{src}: unknown field {dotted} = {value!r} (reserved keys of [{section}]: "
                                  f"{', '.join(reserved)}; parameters are \"<number> <unit>\")")
            si, dim = parse_quantity(value, f"{src}: {dotted}")
            if dim not in DISPLAY_UNITS:
                raise ConfigError(f"{src}: {dotted} has an unsupported unit in {value!r}")
            want = _NETWORK_PARAMS.get(key)
            if key.startswith("tau"):
                want = TIME
            if want is not None and dim != want:
                raise ConfigError(f"{src}: {dotted} must be a {dimension_name(want)}, got {value!r}")
            if key.startswith("tau") and si <= 0:
                raise ConfigError(f"{src}: {dotted} is a time constant and must be > 0, got {value}")
            if (dim == TIME or key.startswith(("sigma", "w_"))) and si < 0:
                raise ConfigError(f"{src}: {dotted} must be >= 0, got {value}")
            disp = DISPLAY_UNITS[dim]
            params.append(Param(section, key, float(f"{si / disp[1]:.15g}"), disp[0], dim))
    names = {p.name for p in params}
    if len(names) != len(params):
        raise ConfigError(f"{src}: a parameter name appears in two sections (they share one namespace)")
    for need in ("tau_syn", "v_rest", "v_threshold", "v_reset", "w_ie", "t_ref_i", "delay_ei", "delay_ie"):
        if need not in names:
            what = "the feed-forward synaptic kinetics" if need == "tau_syn" else "needed by the network builder"
            raise ConfigError(f"{src}: cannot serve a network: missing parameter {need} ({what})")
    eqs = fields["neuron.equations"]
    defined = _defined_vars(eqs)
    for var, what in (("v", "the membrane"), ("P", "the persistent plateau"), ("s_ff", "the feed-forward "
                                                                                     "synaptic current")):
        if var not in defined:
            raise ConfigError(f"{src}: cannot serve a network: neuron.equations must define {var} ({what})")
    if "{noise}" not in eqs:
        raise ConfigError(f"{src}: neuron.equations must contain the placeholder {{noise}} (where membrane noise "
                          f"is added)")
    if "count" not in _defined_vars(fields["interneuron.equations"]):
        raise ConfigError(f"{src}: cannot serve a network: interneuron.equations must define count")
    for p in params:
        if p.name == "w_ie" and p.dim not in ((DIMENSIONLESS, CONDUCTANCE)):
            raise ConfigError(f"{src}: inhibition.w_ie must be dimensionless or a conductance, got {p.text()}")
    method = fields.get("neuron.method", "euler")
    if method not in ("euler", "heun", "rk2", "rk4", "milstein", "exponential_euler"):
        raise ConfigError(f"{src}: neuron.method must be a Brian2 integration method, got {method!r}")
    n_int = fields.get("inhibition.n_interneurons", 1)
    if n_int < 1:
        raise ConfigError(f"{src}: inhibition.n_interneurons must be >= 1, got {n_int}")
    # [network]
    net = raw["network"]
    for key, value in net.items():
        if key not in _NETWORK_KEYS:
            raise ConfigError(f"{src}: unknown field network.{key} (allowed: {', '.join(_NETWORK_KEYS)})")
        typ = _NETWORK_KEYS[key][0]
        if isinstance(value, bool) or not isinstance(value, typ):
            raise ConfigError(f"{src}: network.{key} must be {'a string' if typ is str else 'a number'}, got {value!r}")
        if key in _NETWORK_TIMES:
            si, dim = parse_quantity(value, f"{src}: network.{key}")
            if dim != TIME or si < 0 or (key in ("t_image", "dt") and si <= 0):
                raise ConfigError(f"{src}: network.{key} must be a {'positive ' if key in ('t_image', 'dt') else ''}"
                                  f"time such as \"20 ms\", got {value!r}")
    if net.get("tie", "gradient") not in _TIE_RULES:
        raise ConfigError(f"{src}: network.tie = {net['tie']!r}: allowed {', '.join(_TIE_RULES)}")
    if net.get("input_coding", "onset_charge") not in _NETWORK_CODINGS:
        raise ConfigError(f"{src}: network.input_coding = {net['input_coding']!r}: allowed "
                          f"{', '.join(_NETWORK_CODINGS)}")
    span = float(net.get("tie_span", 1.0))
    if not 0 < span <= 1:
        raise ConfigError(f"{src}: network.tie_span = {span}: allowed 0 < tie_span <= 1 (drive units)")
    if int(net.get("fine_steps_per_tick", 1)) < 1:
        raise ConfigError(f"{src}: network.fine_steps_per_tick must be >= 1, got {net['fine_steps_per_tick']}")
    if float(net.get("speed_scale", 1.0)) <= 0:
        raise ConfigError(f"{src}: network.speed_scale must be > 0, got {net['speed_scale']}")
    dt = parse_quantity(net.get("dt", "0.1 ms"), f"{src}: network.dt")[0]
    if not 0 < dt <= 1e-3:
        raise ConfigError(f"{src}: network.dt must be in (0, 1 ms], got {net['dt']!r}")
    # citations: every parameter and every numeric [network] value
    cites = raw.get("citations", {})
    if not isinstance(cites, dict):
        raise ConfigError(f"{src}: [citations] must be a table of \"section.name\" = \"source\"")
    needed = [p.dotted for p in params] + [f"network.{k}" for k in net if _NETWORK_KEYS[k][1]]
    for dotted in needed:
        if not isinstance(cites.get(dotted), str) or not cites[dotted].strip():
            raise ConfigError(f"{src}: {dotted} needs a citation (citations.\"{dotted}\")")
    circuit = raw.get("circuit", {})
    return NetworkCircuit(
        name=str(circuit.get("name", Path(src.split(" ")[0]).stem)), description=str(circuit.get("description", "")),
        source=src, neuron_eqs=eqs, method=method, noise_term=fields.get("neuron.noise_term", ""),
        inter_eqs=fields["interneuron.equations"], n_interneurons=int(n_int),
        on_pre_ei=fields["inhibition.on_pre_ei"], on_pre_ie=fields["inhibition.on_pre_ie"], params=tuple(params),
        network=tuple(net.items()), citations=tuple(sorted((k, str(v)) for k, v in cites.items())))

"""Hardware energy profiles and the memory-access table: loading and validating the TOML files.

Two kinds of file share one schema: the built-in ``hcs_neuro/data/energy_profiles.toml`` and any
user file given with ``hcs-neuro energy ... --profile my_chip.toml``. A file holds ``[profiles.NAME]``
tables and, optionally, one ``[memory]`` table (the per-access energies of the memories that hold
weights, membrane state and activations; the built-in table is Horowitz's 45 nm one). Every
mistake (an unknown field, a value without an energy unit, a negative or missing value, a profile
without a citation or without saying what its figures include) is one
:class:`~hcs_neuro.core.errors.ConfigError` naming the file and the field.

Profile fields::

    kind        = "spiking" | "reference"
    description = "..."                       # what the hardware is
    citation    = "..."                       # where every number comes from (required)
    scope       = "per-operation" | "all-in"  # all-in: leakage, memory and routing are inside
    includes    = ["memory", "leakage", ...]  # what the figures contain: compute, memory, leakage, routing
    notes       = "..."                       # optional: how the figures were read
    # spiking profiles: energy per event, each "<number> <unit>" with an energy unit (pJ, fJ, nJ)
    synaptic_op = "23.6 pJ"    spike = "1.7 pJ"    neuron_update = "52 pJ"
    neuron_update_active = "81 pJ"            # optional
    unpriced    = ["neuron_update"]           # events the source gives no figure for (priced 0, flagged)
    # reference profiles
    mac = "0.1 pJ"    accumulate = "0.1 pJ"

A profile whose ``includes`` lacks ``"memory"`` is a per-operation compute figure: the energy model
(:mod:`hcs_neuro.measure.energy`) adds the data-movement term priced from the memory table. A
profile that includes memory (an all-in figure such as TrueNorth's, or per-operation figures that
already contain the core's SRAM accesses) takes no memory term.

Memory table::

    [memory]
    description = "..."
    citation    = "..."
    word_bits   = 64                  # the access width the energies are quoted for
    [[memory.levels]]
    name = "sram_8kb"
    capacity_bytes = 8192             # omitted on the last level only: unbounded (e.g. DRAM)
    access = "10 pJ"

NumPy-free; imports only the core.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import read_toml
from hcs_neuro.core.units import dimension_name, parse_quantity

__all__ = [
    "EnergyProfile",
    "MemoryLevel",
    "MemoryTable",
    "PROFILE_KINDS",
    "PROFILE_SCOPES",
    "INCLUDES",
    "BUILTIN_PROFILES_FILE",
    "load_profiles",
    "load_profile_file",
    "load_memory_table",
    "get_profile",
    "resolve_profiles",
    "is_profile_file",
]

#: The kinds of profile: a spiking network's events, or a reference network's arithmetic.
PROFILE_KINDS = ("spiking", "reference")
#: ``per-operation``: the figures price one operation each; ``all-in``: chip power / event rate, so
#: leakage, memory and routing are inside.
PROFILE_SCOPES = ("per-operation", "all-in")
#: What a profile's figures may contain.
INCLUDES = ("compute", "memory", "leakage", "routing")
#: The built-in file (package data).
BUILTIN_PROFILES_FILE = "hcs_neuro/data/energy_profiles.toml"

_ENERGY_DIM = (2, 1, -2, 0)  # joule
_SPIKING_FIELDS = ("synaptic_op", "spike", "neuron_update")
_SPIKING_OPTIONAL = ("neuron_update_active",)
_REFERENCE_FIELDS = ("mac", "accumulate")
_TEXT_FIELDS = ("kind", "description", "citation", "scope", "notes")
_LIST_FIELDS = ("includes", "unpriced")
_MEMORY_FIELDS = ("description", "citation", "word_bits", "levels")
_LEVEL_FIELDS = ("name", "capacity_bytes", "access")


@dataclass(frozen=True)
class EnergyProfile:
    """Energy per event of one hardware profile, in picojoules.

    ``kind`` is ``"spiking"`` (uses ``synaptic_op_pj``, ``spike_pj``, ``neuron_update_pj``) or
    ``"reference"`` (uses ``mac_pj`` and ``accumulate_pj``). ``includes`` says what the figures
    contain (:data:`INCLUDES`); ``unpriced`` names events the source gives no figure for (priced
    0 and flagged in every report); ``source`` is the file the profile came from.
    """

    name: str
    kind: str
    description: str
    citation: str
    synaptic_op_pj: float = 0.0
    spike_pj: float = 0.0
    neuron_update_pj: float = 0.0
    neuron_update_active_pj: float = 0.0
    mac_pj: float = 0.0
    accumulate_pj: float = 0.0
    scope: str = "per-operation"
    includes: tuple = ("compute",)
    unpriced: tuple = ()
    notes: str = ""
    source: str = BUILTIN_PROFILES_FILE
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def includes_memory(self) -> bool:
        """True when the figures already contain the memory accesses (no data-movement term)."""
        return "memory" in self.includes

    def summary(self) -> dict:
        """JSON-able description: kind, scope, includes, unpriced, source, citation, figures (pJ)."""
        keys = _SPIKING_FIELDS + _SPIKING_OPTIONAL if self.kind == "spiking" else _REFERENCE_FIELDS
        return {"kind": self.kind, "description": self.description, "citation": self.citation,
                "scope": self.scope, "includes": list(self.includes), "unpriced": list(self.unpriced),
                "notes": self.notes, "source": self.source,
                "figures_pj": {k: getattr(self, f"{k}_pj") for k in keys}}


@dataclass(frozen=True)
class MemoryLevel:
    """One memory of the table: its capacity (``None``: unbounded) and energy per access (pJ)."""

    name: str
    capacity_bytes: float | None
    access_pj: float


@dataclass(frozen=True)
class MemoryTable:
    """Energy per access of the memories that hold a network's arrays.

    An array of ``B`` bytes is priced at the energy of a memory of capacity ``B``: the energy is
    interpolated log-log between the capacities of the table (a memory four times larger costs
    about twice as much per access in Horowitz's figures), the smallest level's energy below its
    capacity, and the unbounded level's (off-chip DRAM) above the largest bounded capacity. One
    access moves one word of up to ``word_bits`` bits.
    """

    description: str
    citation: str
    word_bits: int
    levels: tuple
    source: str = BUILTIN_PROFILES_FILE

    def access_pj(self, n_bytes: float) -> float:
        """Energy of one access (pJ) to an array of ``n_bytes`` bytes."""
        bounded = [lv for lv in self.levels if lv.capacity_bytes is not None]
        unbounded = [lv for lv in self.levels if lv.capacity_bytes is None]
        b = max(float(n_bytes), 1.0)
        if not bounded:
            return unbounded[0].access_pj
        if b <= bounded[0].capacity_bytes:
            return bounded[0].access_pj
        for lo, hi in zip(bounded, bounded[1:]):
            if b <= hi.capacity_bytes:
                t = math.log(b / lo.capacity_bytes) / math.log(hi.capacity_bytes / lo.capacity_bytes)
                return math.exp(math.log(lo.access_pj) + t * (math.log(hi.access_pj) - math.log(lo.access_pj)))
        return unbounded[0].access_pj if unbounded else bounded[-1].access_pj

    def level_name(self, n_bytes: float) -> str:
        """The level an array of ``n_bytes`` falls into (``"sram_8kb..sram_32kb"`` when between)."""
        b = max(float(n_bytes), 1.0)
        bounded = [lv for lv in self.levels if lv.capacity_bytes is not None]
        if bounded and b <= bounded[0].capacity_bytes:
            return bounded[0].name
        for lo, hi in zip(bounded, bounded[1:]):
            if b <= hi.capacity_bytes:
                return f"{lo.name}..{hi.name}"
        unbounded = [lv for lv in self.levels if lv.capacity_bytes is None]
        return unbounded[0].name if unbounded else bounded[-1].name

    def summary(self) -> dict:
        return {"description": self.description, "citation": self.citation, "word_bits": self.word_bits,
                "source": self.source,
                "levels": [{"name": lv.name, "capacity_bytes": lv.capacity_bytes, "access_pj": lv.access_pj}
                           for lv in self.levels],
                "rule": "one access per word read or written; an array of B bytes is priced at the energy of a "
                        "memory of capacity B, interpolated log-log between the table's capacities (the smallest "
                        "level's energy below its capacity, the unbounded level's above the largest)"}


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------

def _pj(value, where: str) -> float:
    """An energy ``"23.6 pJ"`` in pJ; bare numbers, other dimensions and negatives are errors."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be an energy such as \"10 pJ\", got {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{where} = {value!r} has no unit: write an energy such as \"{value} pJ\"")
    si, dim = parse_quantity(value, where)
    if tuple(dim) != _ENERGY_DIM:
        raise ConfigError(f"{where} = {value!r} is a {dimension_name(dim)}, not an energy (use pJ, fJ or nJ)")
    if si < 0:
        raise ConfigError(f"{where} = {value!r}: an energy must be >= 0")
    return si * 1e12


def _text(entry: dict, key: str, where: str, *, required: bool = True) -> str:
    if key not in entry:
        if required:
            raise ConfigError(f"{where}.{key} is missing")
        return ""
    value = entry[key]
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value.strip()


def _words(entry: dict, key: str, where: str, allowed: tuple, *, required: bool) -> tuple:
    if key not in entry:
        if required:
            raise ConfigError(f"{where}.{key} is missing: list what the figures contain ({', '.join(allowed)})")
        return ()
    value = entry[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key} must be a list of strings from {', '.join(allowed)}, got {value!r}")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise ConfigError(f"{where}.{key}: unknown {bad[0]!r} (allowed: {', '.join(allowed)})")
    return tuple(dict.fromkeys(value))


def _parse_profile(name: str, entry, src: str) -> EnergyProfile:
    where = f"{src}: profiles.{name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    kind = _text(entry, "kind", where)
    if kind not in PROFILE_KINDS:
        raise ConfigError(f"{where}.kind = {kind!r}: allowed {', '.join(PROFILE_KINDS)}")
    numeric = _SPIKING_FIELDS + _SPIKING_OPTIONAL if kind == "spiking" else _REFERENCE_FIELDS
    allowed = set(_TEXT_FIELDS) | set(_LIST_FIELDS) | set(numeric)
    for key in entry:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown field {key!r} for a {kind} profile (allowed: "
                              f"{', '.join(sorted(allowed))})")
    description = _text(entry, "description", where)
    citation = _text(entry, "citation", where)
    scope = _text(entry, "scope", where)
    if scope not in PROFILE_SCOPES:
        raise ConfigError(f"{where}.scope = {scope!r}: allowed {', '.join(PROFILE_SCOPES)}")
    includes = _words(entry, "includes", where, INCLUDES, required=True)
    if scope == "all-in":
        missing = [w for w in ("memory", "leakage", "routing") if w not in includes]
        if missing:
            raise ConfigError(f"{where}.includes: an all-in figure contains memory, leakage and routing; "
                              f"{', '.join(missing)} missing")
    required = _SPIKING_FIELDS if kind == "spiking" else _REFERENCE_FIELDS
    unpriced = _words(entry, "unpriced", where, required, required=False) if kind == "spiking" else ()
    if kind == "reference" and "unpriced" in entry:
        raise ConfigError(f"{where}.unpriced: a reference profile prices every operation")
    values = {}
    for key in numeric:
        if key in entry:
            if key in unpriced:
                raise ConfigError(f"{where}.{key} is given and also listed in unpriced")
            values[f"{key}_pj"] = _pj(entry[key], f"{where}.{key}")
        elif key in required and key not in unpriced:
            raise ConfigError(f"{where}.{key} is missing (an energy such as \"1 pJ\", or list it in "
                              f"unpriced if the source gives no figure)")
    return EnergyProfile(name=name, kind=kind, description=description, citation=citation, scope=scope,
                         includes=includes, unpriced=unpriced, notes=_text(entry, "notes", where, required=False),
                         source=src, **values)


def _parse_memory(entry, src: str) -> MemoryTable:
    where = f"{src}: memory"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    for key in entry:
        if key not in _MEMORY_FIELDS:
            raise ConfigError(f"{where}: unknown field {key!r} (allowed: {', '.join(_MEMORY_FIELDS)})")
    description = _text(entry, "description", where)
    citation = _text(entry, "citation", where)
    bits = entry.get("word_bits")
    if bits is None:
        raise ConfigError(f"{where}.word_bits is missing (the access width the energies are quoted for)")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 4096:
        raise ConfigError(f"{where}.word_bits = {bits!r}: allowed an integer 1..4096")
    raw = entry.get("levels")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.levels is missing: give [[memory.levels]] tables with name, capacity_bytes, access")
    levels = []
    for i, lv in enumerate(raw):
        w = f"{where}.levels[{i}]"
        if not isinstance(lv, dict):
            raise ConfigError(f"{w} must be a table")
        for key in lv:
            if key not in _LEVEL_FIELDS:
                raise ConfigError(f"{w}: unknown field {key!r} (allowed: {', '.join(_LEVEL_FIELDS)})")
        name = _text(lv, "name", w)
        if "access" not in lv:
            raise ConfigError(f"{w}.access is missing (an energy per access such as \"10 pJ\")")
        access = _pj(lv["access"], f"{w}.access")
        if access <= 0:
            raise ConfigError(f"{w}.access = {lv['access']!r}: an access costs more than 0 pJ")
        cap = lv.get("capacity_bytes")
        if cap is None:
            if i != len(raw) - 1:
                raise ConfigError(f"{w}.capacity_bytes is missing (only the last level may be unbounded)")
        elif isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap) or cap <= 0:
            raise ConfigError(f"{w}.capacity_bytes = {cap!r}: allowed a number of bytes > 0")
        levels.append(MemoryLevel(name=name, capacity_bytes=None if cap is None else float(cap), access_pj=access))
    caps = [lv.capacity_bytes for lv in levels if lv.capacity_bytes is not None]
    if any(b <= a for a, b in zip(caps, caps[1:])):
        raise ConfigError(f"{where}.levels: capacities must increase from one level to the next")
    return MemoryTable(description=description, citation=citation, word_bits=int(bits), levels=tuple(levels),
                       source=src)


def _parse_file(raw, src: str) -> tuple[dict, MemoryTable | None]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: expected a TOML table")
    for key in raw:
        if key not in ("profiles", "memory"):
            raise ConfigError(f"{src}: unknown section [{key}] (allowed: profiles, memory)")
    profiles = {}
    table = raw.get("profiles", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: [profiles] must hold [profiles.NAME] tables")
    for name, entry in table.items():
        profiles[name] = _parse_profile(name, entry, src)
    memory = _parse_memory(raw["memory"], src) if "memory" in raw else None
    if not profiles and memory is None:
        raise ConfigError(f"{src}: no [profiles.NAME] table and no [memory] table")
    return profiles, memory


_BUILTIN: tuple | None = None


def _builtin() -> tuple[dict, MemoryTable]:
    global _BUILTIN
    if _BUILTIN is None:
        text = resources.files("hcs_neuro.data").joinpath("energy_profiles.toml").read_text()
        profiles, memory = _parse_file(tomllib.loads(text), BUILTIN_PROFILES_FILE)
        if memory is None:
            raise ConfigError(f"{BUILTIN_PROFILES_FILE}: missing [memory] table")
        _BUILTIN = (profiles, memory)
    return _BUILTIN


def load_profiles() -> dict[str, EnergyProfile]:
    """All built-in profiles, by name (from ``hcs_neuro/data/energy_profiles.toml``)."""
    return dict(_builtin()[0])


def load_memory_table(path=None) -> MemoryTable:
    """The memory-access table: the built-in one (Horowitz 45 nm), or the ``[memory]`` of ``path``."""
    if path is None:
        return _builtin()[1]
    _profiles, memory = load_profile_file(path)
    if memory is None:
        raise ConfigError(f"{path}: no [memory] table")
    return memory


def load_profile_file(path) -> tuple[dict, MemoryTable | None]:
    """Profiles (by name) and the optional memory table of a user TOML file, validated.

    Raises
    ------
    ConfigError
        Unreadable or malformed file, or any field that does not follow the schema (the message
        names the file and the field).
    """
    src = str(path)
    return _parse_file(read_toml(path, what="energy profile file"), src)


def is_profile_file(name) -> bool:
    """True when ``name`` names a TOML file rather than a built-in profile."""
    return str(name).endswith(".toml") or any(sep in str(name) for sep in ("/", "\\"))


def get_profile(name: str, kind: str | None = None) -> EnergyProfile:
    """Look up a built-in profile by name; ``kind`` optionally requires ``"spiking"`` or ``"reference"``."""
    profiles = load_profiles()
    allowed = sorted(n for n, p in profiles.items() if kind is None or p.kind == kind)
    if name not in profiles or (kind is not None and profiles[name].kind != kind):
        what = f"{kind} " if kind else ""
        raise ConfigError(f"unknown {what}energy profile {name!r}; choose one of: {', '.join(allowed)}, "
                          f"or give a profile file (my_chip.toml)")
    return profiles[name]


def resolve_profiles(names) -> tuple[list[EnergyProfile], MemoryTable | None]:
    """Profiles from a list of built-in names, :class:`EnergyProfile` objects and TOML file paths
    (each file contributes all its profiles), and the memory table of the last file that has one
    (``None``: the built-in table). Duplicate names are an error."""
    out: list[EnergyProfile] = []
    memory = None
    for item in names:
        if isinstance(item, EnergyProfile):
            out.append(item)
        elif is_profile_file(item):
            if not Path(str(item)).suffix == ".toml":
                raise ConfigError(f"{item}: a profile file must be a .toml file")
            profiles, mem = load_profile_file(item)
            out.extend(profiles.values())
            memory = mem or memory
        else:
            out.append(get_profile(str(item)))
    seen = set()
    for p in out:
        if p.name in seen:
            raise ConfigError(f"energy profile {p.name!r} is given twice ({p.source})")
        seen.add(p.name)
    return out, memory

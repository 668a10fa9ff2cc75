"""Sweep specs: the TOML file (``[sweep]``, ``[target]``, ``[parameters]``), its validation and
the registry of target kinds.

A spec is validated against its target's declared parameters, units and metrics; every mistake
is a :class:`~hcs_neuro.core.errors.ConfigError` naming the file, field and value. A target is a
function ``evaluate(target_cfg, params, seed) -> dict[str, float]`` registered under a kind
(:func:`register_target`); the built-in kinds (``python``, ``circuit``, ``network``) live in
:mod:`hcs_neuro.sweep.targets` and are imported when a spec first names them.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.resources
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import read_toml
from hcs_neuro.core.limits import check_points
from hcs_neuro.core.units import (
    canonical_float,
    convert,
    split_quantity,
    unit_column_suffix,
)

# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamInfo:
    """What a target accepts for one parameter.

    ``unit`` is the unit that values are converted to and that the column name carries (``""``
    for dimensionless); ``kind`` is ``"float"``, ``"int"`` or ``"str"``; ``choices`` restricts str
    values; ``low``/``high`` are inclusive bounds in ``unit`` (None: unbounded).
    """

    unit: str = ""
    kind: str = "float"
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class Target:
    """A sweep target: how to validate its ``[target]`` table and how to evaluate one point.

    Attributes
    ----------
    kind : str
        Name used in the spec's ``[target] kind``.
    evaluate : callable
        ``evaluate(target_cfg, params, seed) -> dict[str, float]``; runs on a Dask worker, so it
        must be importable there (a module-level function of an installed module).
    prepare : callable
        ``prepare(table, spec_dir) -> dict``: validates the ``[target]`` table (without ``kind``)
        and returns the resolved, JSON-able settings passed to ``evaluate``. Files named in it
        are resolved relative to ``spec_dir`` and their content digest is included, so editing a
        file changes the point hashes.
    parameters : callable
        ``parameters(target_cfg) -> dict[str, ParamInfo] | None``; None accepts any name, with the
        unit of the first value written.
    metrics : callable
        ``metrics(target_cfg) -> tuple[str, ...] | None``; None accepts any metric name.
    needs_brian2 : callable
        ``needs_brian2(target_cfg) -> bool``: import Brian2 at worker start.
    check : callable
        ``check(target_cfg, parameters)``: cross-checks of the fixed settings and the swept
        :class:`SweepParameter` list (a required setting neither fixed nor swept, values the
        target would reject); raises ConfigError.
    group_key : callable or None
        ``group_key(target_cfg, params, seed) -> str``: points with equal keys can reuse one
        compiled network; they are submitted next to each other.
    before_run : callable or None
        ``before_run(target_cfg)``: called on the client when the sweep starts, before anything is
        written or submitted (the python target imports its function there: a spec is code, so
        nothing of it runs while the spec is only validated); raises ConfigError.
    """

    kind: str
    evaluate: Callable[[dict, dict, int], Mapping[str, float]]
    prepare: Callable[[dict, Path | None], dict]
    parameters: Callable[[dict], dict[str, ParamInfo] | None] = lambda cfg: None
    metrics: Callable[[dict], tuple[str, ...] | None] = lambda cfg: None
    needs_brian2: Callable[[dict], bool] = lambda cfg: False
    check: Callable[[dict, tuple], None] = lambda cfg, parameters: None
    group_key: Callable[[dict, dict, int], str] | None = None
    before_run: Callable[[dict], None] | None = None


_TARGETS: dict[str, Target] = {}
#: Built-in target kinds and the module that registers each (imported the first time a spec names
#: the kind: the engine needs only the core and Dask).
BUILTIN_TARGETS = {
    "python": "hcs_neuro.sweep.targets.python",
    "circuit": "hcs_neuro.sweep.targets.circuit",
    "network": "hcs_neuro.sweep.targets.network",
}


def register_target(target: Target, *, replace: bool = False) -> Target:
    """Register a target kind; returns it. ``replace=False`` refuses to shadow an existing kind."""
    if target.kind in _TARGETS and not replace:
        raise ValueError(f"sweep target kind {target.kind!r} is already registered")
    _TARGETS[target.kind] = target
    return target


def target_kinds() -> tuple[str, ...]:
    """The target kinds available: the built-in ones and those registered, sorted."""
    return tuple(sorted(set(_TARGETS) | set(BUILTIN_TARGETS)))


def get_target(kind: str, where: str = "[target] kind") -> Target:
    """The target of this kind (a built-in kind's module is imported the first time it is
    named), or a ConfigError listing the kinds available."""
    if kind not in _TARGETS and isinstance(kind, str) and kind in BUILTIN_TARGETS:
        importlib.import_module(BUILTIN_TARGETS[kind])  # registers the kind
    try:
        return _TARGETS[kind]
    except (KeyError, TypeError):
        raise ConfigError(f"{where}: unknown target kind {kind!r}; allowed: "
                          f"{', '.join(target_kinds())}") from None


# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepParameter:
    """One swept parameter: its values (in ``unit``) in grid order."""

    name: str
    unit: str
    kind: str
    values: tuple

    @property
    def column(self) -> str:
        """Column name in the results: the dotted name plus its unit (``neuron.tau_m_ms``)."""
        return self.name + unit_column_suffix(self.unit)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (see :func:`parse_sweep_spec` for the TOML layout)."""

    name: str
    source: str
    target_kind: str
    target_cfg: dict
    parameters: tuple[SweepParameter, ...]
    seeds: tuple[int, ...]
    seed_mode: str
    metrics: tuple[str, ...]
    out: Path
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def target(self) -> Target:
        return get_target(self.target_kind)

    @property
    def n_points(self) -> int:
        """Grid points times seeds: the number of rows of the results table."""
        return int(np.prod([len(p.values) for p in self.parameters], dtype=np.int64)) * len(self.seeds)


_SWEEP_FIELDS = {"name", "seeds", "seed_mode", "metrics", "out"}
_SEED_MODES = ("shared", "per_point")


def load_sweep_spec(path: str | os.PathLike, out: str | os.PathLike | None = None) -> SweepSpec:
    """Read and validate a sweep spec TOML file.

    Parameters
    ----------
    path : path-like
        The spec. Files it names (a circuit) are resolved relative to its folder.
    out : path-like, optional
        Overrides ``[sweep] out``.

    Returns
    -------
    SweepSpec

    Raises
    ------
    ConfigError
        Missing/unreadable file, TOML syntax, or any invalid field (named in the message).
    """
    path = Path(path)
    raw = read_toml(path, what="sweep spec")
    return parse_sweep_spec(raw, source=str(path), spec_dir=path.parent, out=out)


def parse_sweep_spec(raw: dict, *, source: str = "<spec>", spec_dir: str | os.PathLike | None = None,
                     out: str | os.PathLike | None = None) -> SweepSpec:
    """Validate a sweep spec given as a dict (the parsed TOML).

    Layout::

        [sweep]
        name = "inhibition_x_k"           # default: the file's stem
        seeds = [0, 1, 2]                 # or {start = 0, num = 5}
        seed_mode = "shared"              # "shared" (default) | "per_point"
        metrics = ["agreement_strict"]    # default: every metric the target declares
        out = "results/sweeps/x"          # relative to the working directory

        [target]
        kind = "circuit"                  # see target_kinds()
        ...                               # fixed settings of that target

        [parameters]
        "inhibition.w_ie" = ["1 nS", "2 nS"]                           # list
        "neuron.tau_m" = {start = "5 ms", stop = "50 ms", num = 5, scale = "log"}
        k = {start = 1, stop = 4, step = 1}                           # inclusive linear steps

    ``seed_mode = "shared"`` passes each seed unchanged to every point (common random numbers:
    differences between points are not masked by different noise draws); ``"per_point"`` derives
    an independent seed from (seed, point parameters) with NumPy's SeedSequence.

    Raises
    ------
    ConfigError
        Naming the source, the field and the value: unknown section/field/parameter/metric,
        wrong or missing unit, empty range, duplicate value, bad seeds.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep spec {source}: must be a TOML table")
    unknown = sorted(set(raw) - {"sweep", "target", "parameters"})
    if unknown:
        raise ConfigError(f"sweep spec {source}: unknown section(s) {unknown}; allowed: "
                          "[sweep], [target], [parameters]")
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f"sweep spec {source}: [sweep] must be a table")
    bad = sorted(set(sweep) - _SWEEP_FIELDS)
    if bad:
        raise ConfigError(f"sweep spec {source}: unknown field(s) [sweep] {bad}; allowed: "
                          f"{sorted(_SWEEP_FIELDS)}")
    name = sweep.get("name", Path(source).stem if source != "<spec>" else "sweep")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name) or ".." in name:
        raise ConfigError(f"sweep spec {source}: [sweep] name = {name!r}; allowed: up to 100 letters, "
                          "digits, '_', '.', '-', starting with a letter or digit, without '..'")

    seeds = _parse_seeds(sweep.get("seeds", [0]), source)
    seed_mode = sweep.get("seed_mode", "shared")
    if seed_mode not in _SEED_MODES:
        raise ConfigError(f"sweep spec {source}: [sweep] seed_mode = {seed_mode!r}; allowed: "
                          f"{', '.join(_SEED_MODES)}")

    # target
    table = raw.get("target")
    if not isinstance(table, dict) or "kind" not in table:
        raise ConfigError(f"sweep spec {source}: [target] kind is required; allowed: "
                          f"{', '.join(target_kinds())}")
    table = dict(table)
    kind = table.pop("kind")
    target = get_target(kind, where=f"sweep spec {source}: [target] kind")
    try:
        cfg = target.prepare(table, Path(spec_dir) if spec_dir is not None else None)
    except ConfigError as exc:
        raise ConfigError(f"sweep spec {source}: {exc}") from None

    # parameters
    params_raw = raw.get("parameters")
    if not isinstance(params_raw, dict) or not params_raw:
        raise ConfigError(f"sweep spec {source}: [parameters] needs at least one parameter "
                          "(name = list or range)")
    declared = target.parameters(cfg)
    parameters = []
    for pname, pvalue in params_raw.items():
        where = f"sweep spec {source}: [parameters] {pname!r}"
        if declared is not None and pname not in declared:
            near = _close_names(pname, declared)
            raise ConfigError(f"{where}: not a parameter of target {kind!r}"
                              f"{_target_label(cfg)}; allowed: {near}")
        info = declared.get(pname) if declared is not None else None
        parameters.append(parse_parameter(pname, pvalue, info, where))

    n_grid = len(seeds)
    for p in parameters:
        n_grid *= len(p.values)
    check_points(n_grid, f"sweep spec {source}: the grid")
    try:
        target.check(cfg, tuple(parameters))
    except ConfigError as exc:
        raise ConfigError(f"sweep spec {source}: {exc}") from None

    # metrics
    available = target.metrics(cfg)
    metrics = sweep.get("metrics")
    if metrics is None:
        if available is None:
            raise ConfigError(f"sweep spec {source}: [sweep] metrics is required for target "
                              f"{kind!r} (it declares none)")
        metrics = list(available)
    if (not isinstance(metrics, list) or not metrics
            or not all(isinstance(m, str) for m in metrics)):
        raise ConfigError(f"sweep spec {source}: [sweep] metrics = {metrics!r}; must be a "
                          "non-empty list of metric names")
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"sweep spec {source}: [sweep] metrics lists a name twice: {metrics}")
    if available is not None:
        for m in metrics:
            if m not in available:
                raise ConfigError(f"sweep spec {source}: [sweep] metrics: unknown metric {m!r} "
                                  f"for target {kind!r}; allowed: {', '.join(available)}")
    reserved = {"point_id", "seed", "run_time_s", "cpu_time_s", "error"}
    columns = [p.column for p in parameters]
    clash = sorted((set(metrics) | set(columns)) & reserved) or sorted(set(metrics) & set(columns))
    if clash or len(set(columns)) != len(columns):
        raise ConfigError(f"sweep spec {source}: column name clash {clash or columns}; "
                          f"reserved: {sorted(reserved)}")

    if out is None:
        out = sweep.get("out", f"results/sweeps/{name}")
        if not isinstance(out, str):
            raise ConfigError(f"sweep spec {source}: [sweep] out = {out!r}; must be a path string")
    return SweepSpec(name=name, source=source, target_kind=kind, target_cfg=cfg,
                     parameters=tuple(parameters), seeds=seeds, seed_mode=seed_mode,
                     metrics=tuple(metrics), out=Path(out), raw=raw)


def _target_label(cfg: dict) -> str:
    for key in ("circuit", "function", "model"):
        if key in cfg:
            return f" ({cfg[key]})"
    return ""


def _close_names(name: str, declared: Mapping[str, Any]) -> str:
    names = sorted(declared)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    listed = ", ".join(names) if len(names) <= 30 else ", ".join(names[:30]) + ", ..."
    return (f"did you mean {', '.join(close)}? all: " if close else "") + listed


def _parse_seeds(value, source: str) -> tuple[int, ...]:
    where = f"sweep spec {source}: [sweep] seeds"
    if isinstance(value, dict):
        bad = sorted(set(value) - {"start", "num"})
        if bad or "num" not in value:
            raise ConfigError(f"{where} = {value!r}; allowed: a list of integers or "
                              "{start = 0, num = N}")
        start, num = value.get("start", 0), value["num"]
        if not isinstance(start, int) or not isinstance(num, int) or num < 1:
            raise ConfigError(f"{where} = {value!r}: start and num must be integers, num >= 1")
        check_points(num, f"{where}")
        value = list(range(start, start + num))
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} = {value!r}: must be a non-empty list of integers")
    for s in value:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**32:
            raise ConfigError(f"{where}: {s!r} is not an integer in [0, 2**32)")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} = {value!r}: a seed appears twice")
    return tuple(value)


def parse_parameter(name: str, value, info: ParamInfo | None, where: str) -> SweepParameter:
    if isinstance(value, dict):
        raw_values = _expand_range(value, where)
    elif isinstance(value, list):
        raw_values = list(value)
    else:
        raw_values = [value]
    if not raw_values:
        raise ConfigError(f"{where}: empty list of values")
    kind = info.kind if info is not None else None

    # categorical
    if kind == "str" or (kind is None and all(isinstance(v, str) for v in raw_values)
                         and not any(_is_quantity(v) for v in raw_values)):
        if not all(isinstance(v, str) for v in raw_values):
            raise ConfigError(f"{where}: values {raw_values!r} must all be strings")
        if info is not None and info.choices is not None:
            for v in raw_values:
                if v not in info.choices:
                    raise ConfigError(f"{where}: {v!r} is not allowed; allowed: "
                                      f"{', '.join(info.choices)}")
        values = tuple(raw_values)
        _check_unique(values, where)
        return SweepParameter(name=name, unit="", kind="str", values=values)

    parsed = []
    for v in raw_values:
        if isinstance(v, (tuple, list)):  # from _expand_range: (number, unit)
            parsed.append((float(v[0]), v[1]))
            continue
        try:
            parsed.append(split_quantity(v))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    unit = info.unit if info is not None else parsed[0][1]
    values = []
    for (number, u), v in zip(parsed, raw_values):
        if u == "" and unit != "":
            raise ConfigError(f"{where}: value {v!r} has no unit; this parameter is in "
                              f"{unit!r} (write e.g. '{number:g} {unit}')")
        try:
            values.append(canonical_float(convert(number, u, unit)))
        except ValueError as exc:
            raise ConfigError(f"{where}: wrong unit in {v!r}: {exc}") from None
    if kind == "int":
        for v in values:
            if not float(v).is_integer():
                raise ConfigError(f"{where}: {v!r} is not an integer")
        values = [int(v) for v in values]
    for v in values:
        if not math.isfinite(v):
            raise ConfigError(f"{where}: {v!r} is not finite")
        if info is not None and info.low is not None and v < info.low:
            raise ConfigError(f"{where}: {v!r} {unit} is below the allowed minimum {info.low} {unit}")
        if info is not None and info.high is not None and v > info.high:
            raise ConfigError(f"{where}: {v!r} {unit} is above the allowed maximum {info.high} {unit}")
    values = tuple(values)
    _check_unique(values, where)
    return SweepParameter(name=name, unit=unit, kind=kind or "float", values=values)


def _is_quantity(v) -> bool:
    try:
        split_quantity(v)
    except ValueError:
        return False
    return True


def _check_unique(values: tuple, where: str) -> None:
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: a value appears twice in {list(values)!r}")


def _expand_range(spec: dict, where: str) -> list[tuple[float, str]]:
    allowed = {"start", "stop", "num", "step", "scale"}
    bad = sorted(set(spec) - allowed)
    if bad or "start" not in spec or "stop" not in spec or ("num" in spec) == ("step" in spec):
        raise ConfigError(f"{where} = {spec!r}: a range needs start, stop and exactly one of "
                          "num or step (scale = 'linear' | 'log' with num)")
    try:
        start, u_start = split_quantity(spec["start"])
        stop, u_stop = split_quantity(spec["stop"])
        stop = convert(stop, u_stop, u_start)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    scale = spec.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise ConfigError(f"{where}: scale = {scale!r}; allowed: linear, log")
    if "num" in spec:
        num = spec["num"]
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise ConfigError(f"{where}: num = {num!r} gives an empty range; must be an integer >= 1")
        check_points(num, where)
        if scale == "log":
            if start <= 0 or stop <= 0:
                raise ConfigError(f"{where}: a log range needs start and stop > 0, got "
                                  f"{spec['start']!r}, {spec['stop']!r}")
            values = np.geomspace(start, stop, num)
        else:
            values = np.linspace(start, stop, num)
    else:
        if scale != "linear":
            raise ConfigError(f"{where}: step ranges are linear; use num with scale = 'log'")
        try:
            step, u_step = split_quantity(spec["step"])
            step = convert(step, u_step, u_start) if u_step or u_start else step
        except ValueError as exc:
            raise ConfigError(f"{where}: step: {exc}") from None
        if step <= 0 or stop < start:
            raise ConfigError(f"{where}: empty range (start {spec['start']!r}, stop "
                              f"{spec['stop']!r}, step {spec['step']!r}); need step > 0 and "
                              "stop >= start")
        n_float = math.floor((stop - start) / step * (1 + 1e-12) + 1e-9) + 1
        check_points(n_float, where)
        values = start + step * np.arange(int(n_float))
    return [(float(v), u_start) for v in values]



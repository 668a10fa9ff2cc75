"""Parameter sweeps on Dask: spec, grid, resumable runner, tidy results.

A sweep evaluates a *target* (a hypercolumn circuit, later a whole network, or any importable
Python function) at every point of a parameter grid, once per seed, on Dask distributed (a local
multi-process cluster by default, an existing scheduler by address).

The pieces, in the order data flows through them:

* **spec** (TOML, :func:`load_sweep_spec`): ``[sweep]`` (name, seeds, metrics, out),
  ``[target]`` (kind + fixed settings), ``[parameters]`` (dotted name -> list or range, with
  units). Validated against the target's declared parameters, units and metrics; every mistake is a
  :class:`~hcs_neuro.core.errors.ConfigError` naming the file, field and value.
* **grid** (:func:`expand_grid`): the Cartesian product of the parameter values (in spec order)
  times the seeds; every point x seed has a content hash (``point_id``) of the target settings,
  the parameter values and the seed, so results can be found again after an interruption.
* **runner** (:func:`run_sweep`): submits the missing points to Dask, persists each finished
  point atomically as ``OUT/points/<point_id>.json`` as soon as it completes (on the client, so no
  shared file system is needed), and records a raising point with its error instead of stopping.
* **results** (:func:`assemble_results`): the tidy table (one row per point x seed, parameters
  with their unit in the column name, metrics, ``run_time_s``, ``error``) as Parquet and CSV, an
  xarray Dataset (NetCDF, h5netcdf engine) with one dimension per parameter plus ``seed``, and the
  sweep metadata (spec, package versions, seeds) in ``OUT/sweep.json``.

Targets
-------
A target is a function ``evaluate(target_cfg, params, seed) -> dict[str, float]`` registered
under a kind (:func:`register_target`). ``params`` maps each swept name to a float in the unit of
its column (``neuron.tau_m`` -> float in ms when the column is ``neuron.tau_m_ms``), an int for
integer parameters, or a str for categorical ones. Adding a target kind (the network-level sweep)
is one :class:`Target` and one :func:`register_target` call.

Only the Dask import makes this module heavy, and it happens inside :func:`run_sweep`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import json
import math
import os
import re
import socket
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from hcs_neuro.core.io import atomic_path, write_json_atomic
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import check_output_dir, prepare_output_dir, read_json, read_text, read_toml
from hcs_neuro.core.limits import check_points
from hcs_neuro.core.units import canonical_float, convert, parse_unit, split_quantity, unit_column_suffix

__all__ = [
    "ParamInfo",
    "Target",
    "register_target",
    "get_target",
    "target_kinds",
    "CIRCUIT_BENCH_PARAMETERS",
    "CIRCUIT_METRICS",
    "NETWORK_PARAMETERS",
    "NETWORK_METRICS",
    "SweepParameter",
    "SweepSpec",
    "Point",
    "load_sweep_spec",
    "parse_sweep_spec",
    "expand_grid",
    "pending_points",
    "run_point",
    "run_sweep",
    "SweepResult",
    "assemble_results",
    "to_xarray",
    "package_versions",
    "netcdf_engine",
    "write_results",
    "load_results",
    "load_metadata",
]

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
    """

    kind: str
    evaluate: Callable[[dict, dict, int], Mapping[str, float]]
    prepare: Callable[[dict, Path | None], dict]
    parameters: Callable[[dict], dict[str, ParamInfo] | None] = lambda cfg: None
    metrics: Callable[[dict], tuple[str, ...] | None] = lambda cfg: None
    needs_brian2: Callable[[dict], bool] = lambda cfg: False
    check: Callable[[dict, tuple], None] = lambda cfg, parameters: None
    group_key: Callable[[dict, dict, int], str] | None = None


_TARGETS: dict[str, Target] = {}


def register_target(target: Target, *, replace: bool = False) -> Target:
    """Register a target kind; returns it. ``replace=False`` refuses to shadow an existing kind."""
    if target.kind in _TARGETS and not replace:
        raise ValueError(f"sweep target kind {target.kind!r} is already registered")
    _TARGETS[target.kind] = target
    return target


def target_kinds() -> tuple[str, ...]:
    """The registered target kinds, sorted."""
    return tuple(sorted(_TARGETS))


def get_target(kind: str, where: str = "[target] kind") -> Target:
    """The registered target of this kind, or a ConfigError listing the kinds available."""
    try:
        return _TARGETS[kind]
    except KeyError:
        raise ConfigError(f"{where}: unknown target kind {kind!r}; allowed: "
                          f"{', '.join(target_kinds())}") from None


# -- the "python" target: any importable function fn(params, seed, **options) -> dict ----------


def _import_function(ref: str):
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{ref!r} is not of the form 'module:function'")
    fn = importlib.import_module(module_name)
    for part in attr.split("."):
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"{ref!r} is not callable")
    return fn


def _prepare_python(table: dict, spec_dir: Path | None) -> dict:
    allowed = {"function", "options", "parameters", "metrics", "brian2"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"[target] (kind 'python'): unknown field(s) {unknown}; allowed: "
                          f"{sorted(allowed)}")
    ref = table.get("function")
    if not isinstance(ref, str) or not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", ref):
        raise ConfigError("[target] function: required for kind 'python', a string "
                          f"'module:function', got {ref!r}")
    # the module is imported only when the sweep runs (importing runs its code: a spec is code)
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError("[target] options: must be a table of keyword arguments")
    params = table.get("parameters")
    if params is not None:
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise ConfigError("[target] parameters: must be a table name = \"unit\" "
                              "(\"\" for dimensionless, \"int\", \"str\")")
        for name, unit in params.items():
            if unit not in ("int", "str"):
                try:
                    parse_unit(unit)
                except ValueError as exc:
                    raise ConfigError(f"[target] parameters.{name} = {unit!r}: {exc}") from None
    metrics = table.get("metrics")
    if metrics is not None and (not isinstance(metrics, list)
                                or not all(isinstance(m, str) for m in metrics)):
        raise ConfigError("[target] metrics: must be a list of metric names")
    return {"function": ref, "options": options, "parameters": params, "metrics": metrics,
            "brian2": bool(table.get("brian2", False))}


def _python_parameters(cfg: dict) -> dict[str, ParamInfo] | None:
    if cfg.get("parameters") is None:
        return None
    out = {}
    for name, unit in cfg["parameters"].items():
        if unit in ("int", "str"):
            out[name] = ParamInfo(unit="", kind=unit)
        else:
            out[name] = ParamInfo(unit="" if unit == "1" else unit)
    return out


def _evaluate_python(cfg: dict, params: dict, seed: int) -> Mapping[str, float]:
    fn = _import_function(cfg["function"])
    return fn(params, seed, **cfg.get("options", {}))


register_target(Target(
    kind="python",
    evaluate=_evaluate_python,
    prepare=_prepare_python,
    parameters=_python_parameters,
    metrics=lambda cfg: None if cfg.get("metrics") is None else tuple(cfg["metrics"]),
    needs_brian2=lambda cfg: bool(cfg.get("brian2", False)),
))


# -- the "circuit" target: hcs_neuro.brian.bench.run_bench on one circuit file ---------------

#: Sweepable names that are arguments of ``circuit_bench.run_bench``, not circuit-file fields.
CIRCUIT_BENCH_PARAMETERS: dict[str, ParamInfo] = {
    "k": ParamInfo(kind="int", low=1, doc="winners per hypercolumn (run-time settable)"),
    "n_channels": ParamInfo(kind="int", low=2, doc="channels per hypercolumn"),
    "trials": ParamInfo(kind="int", low=1, doc="hypercolumns (random drive vectors) per point"),
    "noise": ParamInfo(unit="mV", low=0.0, doc="membrane-noise sd; overrides the circuit's sigma*"),
    "dt": ParamInfo(unit="ms", low=1e-6, doc="simulation time step"),
    "duration": ParamInfo(unit="ms", low=1e-6, doc="simulated time per stimulus"),
    "tie_tol": ParamInfo(unit="", low=0.0, doc="tie tolerance, fraction of the drive range"),
}
#: Scalar results of ``run_bench`` a circuit sweep can record (its stable key names).
CIRCUIT_METRICS = (
    "strict_agreement", "tie_tolerant_agreement", "over_selection", "under_selection",
    "undecided", "latency_median_ms", "latency_p95_ms", "latency_local_median_ms",
    "refined_fraction", "max_level_used", "wall_time_s", "wall_time_per_trial_s",
    "sim_time_per_trial_s", "compile_time_s",
)
_CIRCUIT_FIELDS = {"circuit", "overrides", "device", "batch_size", "codegen_target",
                   *CIRCUIT_BENCH_PARAMETERS}
_RESERVED_CIRCUIT_FIELDS = {  # non-parameter fields of circuit files that can be overridden
    "inhibition.n_interneurons": ParamInfo(kind="int", low=1),
    "refinement.max_levels": ParamInfo(kind="int", low=0),
    "refinement.factor": ParamInfo(kind="int", low=2),
    "input.coding": ParamInfo(kind="str", choices=("current", "poisson")),
}


def _load_circuit_module():
    try:
        from hcs_neuro.core import circuit_file as circuit_spec
    except ImportError as exc:  # pragma: no cover - only in a partial installation
        raise ConfigError(f"[target] kind 'circuit' needs hcs_neuro.core.circuit_file ({exc})") from None
    return circuit_spec


def _prepare_circuit(table: dict, spec_dir: Path | None) -> dict:
    cs = _load_circuit_module()
    unknown = sorted(set(table) - _CIRCUIT_FIELDS)
    if unknown:
        raise ConfigError(f"[target] (kind 'circuit'): unknown field(s) {unknown}; allowed: "
                          f"{sorted(_CIRCUIT_FIELDS)}")
    name = table.get("circuit")
    if not isinstance(name, str):
        raise ConfigError("[target] circuit: required, a built-in circuit name "
                          f"({', '.join(cs.list_builtin_circuits())}) or a .toml path")
    if name in cs.list_builtin_circuits() and not name.endswith(".toml"):
        text = (importlib.resources.files("hcs_neuro.circuits") / f"{name}.toml").read_text()
        ref = name
    else:
        path = Path(name)
        if not path.is_absolute() and spec_dir is not None:
            path = spec_dir / path
        if not path.is_file():
            raise ConfigError(f"[target] circuit = {name!r}: no such file ({path}) and not a "
                              f"built-in circuit ({', '.join(cs.list_builtin_circuits())})")
        ref, text = str(path.resolve()), path.read_text()
    circuit = cs.load_circuit(ref)
    overrides = table.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError("[target] overrides: must be a table of dotted circuit fields")
    try:
        circuit.with_overrides(overrides)  # validates names and units
    except ConfigError as exc:
        raise ConfigError(f"[target] overrides: {exc}") from None
    bench = {}
    for key, info in CIRCUIT_BENCH_PARAMETERS.items():
        if key in table:
            value = _parse_parameter(key, table[key], info, f"[target] {key}").values[0]
            bench[key] = value
    device = table.get("device", "runtime")
    if device not in ("runtime", "cpp_standalone"):
        raise ConfigError(f"[target] device = {device!r}; allowed: runtime, cpp_standalone")
    codegen = table.get("codegen_target", "numpy")
    if codegen not in ("numpy", "cython"):
        raise ConfigError(f"[target] codegen_target = {codegen!r}; allowed: numpy, cython")
    batch = table.get("batch_size", 10000)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"[target] batch_size = {batch!r}; must be an integer >= 1")
    return {"circuit": ref, "circuit_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "overrides": overrides, "bench": bench, "device": device,
            "codegen_target": codegen, "batch_size": batch}


def _circuit_parameters(cfg: dict) -> dict[str, ParamInfo]:
    circuit = _load_circuit_module().load_circuit(cfg["circuit"])
    out = {p.dotted: ParamInfo(unit="" if p.unit == "1" else p.unit) for p in circuit.params}
    out.update(_RESERVED_CIRCUIT_FIELDS)
    out.update(CIRCUIT_BENCH_PARAMETERS)
    return out


def _check_circuit(cfg: dict, parameters: tuple) -> None:
    circuit = _load_circuit_module().load_circuit(cfg["circuit"]).with_overrides(cfg["overrides"])
    values = {p.name: p.values for p in parameters}
    k_default, n_default = _circuit_defaults(circuit)
    ks = values.get("k", [cfg["bench"].get("k", k_default)])
    n_channels = values.get("n_channels", [cfg["bench"].get("n_channels", n_default)])
    for k in ks:
        if k >= max(n_channels):
            raise ConfigError(f"k = {k} needs n_channels > k, but n_channels is at most "
                              f"{max(n_channels)}; allowed: 0 < k < n_channels")
    for p in parameters:  # every swept circuit value must be accepted by the circuit file
        if p.name in CIRCUIT_BENCH_PARAMETERS:
            continue
        for value in p.values:
            try:
                circuit.with_overrides({p.name: _override_text(value, p.unit)})
            except ConfigError as exc:
                raise ConfigError(f"[parameters] {p.name!r} = {value!r}: {exc}") from None


def _circuit_defaults(circuit) -> tuple[int, int]:
    """k and n_channels when neither fixed nor swept: the circuit file's ``circuit.k`` /
    ``circuit.n_channels``, else 2 and 32 (the defaults of ``hcs-neuro circuit``)."""
    return int(getattr(circuit, "k", None) or 2), int(getattr(circuit, "n_channels", None) or 32)


def _override_text(value, unit: str):
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value if isinstance(value, str) or not unit else f"{value} {unit}"
    return f"{value!r} {unit}" if unit else float(value)


def _circuit_call(cfg: dict, params: dict, seed: int):
    """(circuit spec with overrides, run_bench keyword arguments) for one point."""
    circuit = _load_circuit_module().load_circuit(cfg["circuit"])
    units = {p.dotted: p.unit for p in circuit.params}
    overrides = dict(cfg["overrides"])
    bench = dict(cfg["bench"])
    for name, value in params.items():
        if name in CIRCUIT_BENCH_PARAMETERS:
            bench[name] = value
        else:
            unit = units.get(name, "")
            overrides[name] = _override_text(value, "" if unit == "1" else unit)
    circuit = circuit.with_overrides(overrides) if overrides else circuit
    k_default, n_default = _circuit_defaults(circuit)
    kwargs = {"k": int(bench.get("k", k_default)),
              "n_channels": int(bench.get("n_channels", n_default)), "seed": int(seed),
              "device": cfg["device"], "codegen_target": cfg["codegen_target"],
              "batch_size": int(cfg["batch_size"])}
    for key, arg in (("trials", "trials"), ("noise", "noise"),
                     ("dt", "dt_ms"), ("duration", "duration_ms"), ("tie_tol", "tie_tol")):
        if key in bench:
            kwargs[arg] = bench[key]
    return circuit, kwargs


def _circuit_group_key(cfg: dict, params: dict, seed: int) -> str:
    """Points with equal keys share a compiled cpp_standalone network: they differ only in k
    and, for a noise-free current-coded circuit, in the seed (which then only draws drives)."""
    if cfg["device"] != "cpp_standalone":
        return ""
    circuit, kw = _circuit_call(cfg, params, seed)
    return _standalone_key(circuit, kw)


def _standalone_key(circuit, kw: dict) -> str:
    from hcs_neuro.brian.hypercolumn import noise_enabled

    noise = kw.get("noise")
    random_inside = (noise is not None and noise > 0) or (noise is None and noise_enabled(circuit)) \
        or circuit.coding != "current"
    n_channels = kw["n_channels"]
    size = min(kw.get("trials", 2000), kw["batch_size"])
    return _digest({"circuit": circuit.to_dict(), "noise": noise, "size": size,
                    "n_channels": n_channels, "dt_ms": kw.get("dt_ms"),
                    "duration_ms": kw.get("duration_ms"),
                    "seed": kw["seed"] if random_inside else None})


class _CompiledCache:
    """One compiled cpp_standalone network per worker process (Brian2's standalone device is
    process-global, so one at a time), reused by consecutive points with the same key."""

    key: str | None = None
    circuit = None
    builds = 0
    reuses = 0

    @classmethod
    def evict(cls) -> None:
        if cls.circuit is not None:
            cls.circuit.close()
        cls.key, cls.circuit = None, None


class _ReusedStandalone:
    """The ``standalone_factory`` that sweep workers give ``run_bench``: the compiled network of
    the previous point is reused when only run-time settable values (k, drives) differ;
    ``compile_time_s`` is 0 for a reused network."""

    key: str = ""
    real: type | None = None  # hcs_neuro.brian.device.StandaloneCircuit, set before each use

    def __init__(self, spec, n_hypercolumns, n_channels, k, **kwargs):
        from hcs_neuro.sweep.worker import worker_scratch_dir

        real = type(self).real

        if _CompiledCache.key == self.key and _CompiledCache.circuit is not None:
            _CompiledCache.reuses += 1
            self.compile_time_s = 0.0
        else:
            _CompiledCache.evict()
            kwargs["directory"] = Path(worker_scratch_dir("standalone")) / self.key[:16]
            _CompiledCache.circuit = real(spec, n_hypercolumns, n_channels, k, **kwargs)
            _CompiledCache.key = self.key
            _CompiledCache.builds += 1
            self.compile_time_s = _CompiledCache.circuit.compile_time_s
        self._circuit, self._k = _CompiledCache.circuit, int(k)

    def run(self, drives, **kwargs):
        kwargs.setdefault("k", self._k)  # k is a state variable: set it for every run
        return self._circuit.run(drives, **kwargs)

    def close(self) -> None:  # kept for the next point; evicted when the key changes
        pass


def _evaluate_circuit(cfg: dict, params: dict, seed: int) -> dict[str, float]:
    from hcs_neuro.brian.bench import run_bench

    circuit, kwargs = _circuit_call(cfg, params, seed)
    if cfg["device"] != "cpp_standalone":
        _CompiledCache.evict()  # back to the runtime device
        result = run_bench(circuit, **kwargs)
    else:
        from hcs_neuro.brian.device import StandaloneCircuit

        _ReusedStandalone.key = _standalone_key(circuit, kwargs)
        _ReusedStandalone.real = StandaloneCircuit
        try:
            result = run_bench(circuit, standalone_factory=_ReusedStandalone, **kwargs)
        except BaseException:
            _CompiledCache.evict()
            raise
    return {m: (float("nan") if result.get(m) is None else float(result[m]))
            for m in CIRCUIT_METRICS if m in result}


register_target(Target(
    kind="circuit",
    evaluate=_evaluate_circuit,
    prepare=_prepare_circuit,
    parameters=_circuit_parameters,
    metrics=lambda cfg: CIRCUIT_METRICS,
    needs_brian2=lambda cfg: True,
    check=_check_circuit,
    group_key=_circuit_group_key,
))


# -- the "network" target: a trained model simulated as a spiking network and validated --------

#: Scalar results of ``hcs_neuro.measure.validate.validate`` a network sweep can record.
NETWORK_METRICS = (
    "class_agreement", "spiking_accuracy", "reference_accuracy", "accuracy_difference",
    "undecided_fraction", "min_conditional_agreement_strict",
    "min_conditional_agreement_tie_tolerant", "latency_ms_mean", "latency_ms_median",
    "latency_ms_p95", "spikes_per_neuron_per_image", "input_spikes_per_image",
    "sop_check_passed", "wall_time_s", "images_per_s", "compile_time_s",
    "spikes_per_image", "sops_per_image", "energy_loihi_pj_per_image",
)
NETWORK_PARAMETERS: dict[str, ParamInfo] = {
    "model": ParamInfo(kind="str", doc="model .npz path or shipped model name"),
    "n_images": ParamInfo(kind="int", low=1, doc="images per point"),
    "tie_tol": ParamInfo(unit="", low=0.0, high=0.999, doc="near-tie tolerance"),
}
_NETWORK_FIELDS = {"model", "model_template", "dataset", "split", "data_dir", "n_images",
                   "images", "circuit", "chunk", "tie_tol"}


def _template_fields(template: str | None) -> list[str]:
    import string

    if not template:
        return []
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _fill_template(template: str, params: dict) -> str:
    """``models/w{weight_bits}_k{k}.npz`` with numbers written ``:g`` (2.0 -> 2, 0.25 -> 0.25)."""
    return template.format(**{n: (f"{v:g}" if isinstance(v, (int, float)) else v)
                               for n, v in params.items()})


def _model_ref(name: str, spec_dir: Path | None) -> tuple[str, str]:
    """(reference usable on the workers, SHA-256 of the file) for a model path or shipped name."""
    path = Path(name)
    if path.suffix == ".npz" or "/" in name or path.exists():
        if not path.is_absolute() and spec_dir is not None:
            path = spec_dir / path
        if not path.is_file():
            raise ConfigError(f"model {name!r}: no such file ({path})")
        return str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest()
    shipped = importlib.resources.files("hcs_neuro.models")
    entry = shipped / f"{name}.npz"
    if not entry.is_file():
        names = sorted(f.name[:-4] for f in shipped.iterdir() if f.name.endswith(".npz"))
        raise ConfigError(f"model {name!r}: no such file and not a shipped model; shipped: "
                          f"{', '.join(names) or '(none)'}")
    return f"shipped:{name}", hashlib.sha256(entry.read_bytes()).hexdigest()


def _load_model_ref(ref: str):
    from hcs_neuro.core.model import load_model

    if ref.startswith("shipped:"):
        entry = importlib.resources.files("hcs_neuro.models") / f"{ref[8:]}.npz"
        with importlib.resources.as_file(entry) as real:
            return load_model(real)
    return load_model(ref)


def _prepare_network(table: dict, spec_dir: Path | None) -> dict:
    unknown = sorted(set(table) - _NETWORK_FIELDS)
    if unknown:
        raise ConfigError(f"[target] (kind 'network'): unknown field(s) {unknown}; allowed: "
                          f"{sorted(_NETWORK_FIELDS)}")
    cfg = {"dataset": table.get("dataset", "digits"), "split": table.get("split", "test"),
           "data_dir": table.get("data_dir"), "images": table.get("images", "random"),
           "circuit": table.get("circuit"), "chunk": table.get("chunk", 64)}
    if cfg["images"] not in ("random", "first"):
        raise ConfigError(f"[target] images = {cfg['images']!r}; allowed: random (a seeded "
                          "sample per seed), first")
    if not isinstance(cfg["chunk"], int) or cfg["chunk"] < 1:
        raise ConfigError(f"[target] chunk = {cfg['chunk']!r}; must be an integer >= 1")
    if cfg["circuit"] is not None:
        from hcs_neuro.brian.session import load_race_circuit

        circuit = Path(cfg["circuit"])
        if spec_dir is not None and (circuit.suffix == ".toml" or "/" in cfg["circuit"]) \
                and not circuit.is_absolute():
            cfg["circuit"] = str((spec_dir / circuit).resolve())
        load_race_circuit(cfg["circuit"])  # validates
    models = {}
    template = table.get("model_template")
    if template is not None:
        if not isinstance(template, str) or not _template_fields(template) or "model" in table:
            raise ConfigError(f"[target] model_template = {template!r}: a path with {{fields}} "
                              "filled from swept parameters, e.g. 'models/w{weight_bits}_k{k}.npz' "
                              "(instead of model)")
        cfg["model_template"] = template
    if "model" in table:
        ref, digest = _model_ref(str(table["model"]), spec_dir)
        cfg["model"], models[ref] = ref, digest
    cfg["model_sha256"] = models
    cfg["n_images"] = int(_parse_parameter("n_images", table.get("n_images", 100),
                                           NETWORK_PARAMETERS["n_images"],
                                           "[target] n_images").values[0])
    cfg["tie_tol"] = float(table.get("tie_tol", 0.01))
    cfg["spec_dir"] = str(spec_dir) if spec_dir is not None else None
    return cfg


def _check_network(cfg: dict, parameters: tuple) -> None:
    swept = {p.name: p for p in parameters}
    spec_dir = cfg.pop("spec_dir", None)  # only needed here; keeps point hashes path-free
    fields = _template_fields(cfg.get("model_template"))
    if fields:
        missing = [f for f in fields if f not in swept]
        if missing:
            raise ConfigError(f"[target] model_template fields {missing} must be swept in "
                              "[parameters]")
        import itertools

        refs, absent = {}, []
        for combo in itertools.product(*(swept[f].values for f in fields)):
            path = _fill_template(cfg["model_template"], dict(zip(fields, combo)))
            try:
                ref, digest = _model_ref(path, Path(spec_dir) if spec_dir else None)
            except ConfigError:
                absent.append(path)
                continue
            cfg["model_sha256"][ref] = digest
            refs[path] = ref
        if absent:
            raise ConfigError(f"[target] model_template: {len(absent)} model file(s) missing, "
                              f"e.g. {absent[0]!r}; train them first (hcs-neuro train ... --out)")
        cfg["template_refs"] = refs
        return
    if "model" not in swept and "model" not in cfg:
        raise ConfigError("[target] model: required (a model .npz or shipped name), fixed in "
                          "[target] or swept in [parameters]")
    if "model" in swept:  # resolve the listed models now: typos fail before anything runs
        refs = []
        for name in swept["model"].values:
            ref, digest = _model_ref(name, Path(spec_dir) if spec_dir else None)
            cfg["model_sha256"][ref] = digest
            refs.append(ref)
        cfg["model_refs"] = dict(zip(swept["model"].values, refs))


def _evaluate_network(cfg: dict, params: dict, seed: int) -> dict[str, float]:
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.errors import DataError
    from hcs_neuro.brian.session import SimulationSession
    from hcs_neuro.sweep.worker import worker_scratch_dir
    from hcs_neuro.measure.validate import validate

    if cfg.get("model_template"):
        fields = _template_fields(cfg["model_template"])
        path = _fill_template(cfg["model_template"], {f: params[f] for f in fields})
        ref = cfg["template_refs"][path]
    else:
        ref = cfg.get("model_refs", {}).get(params.get("model"), cfg.get("model"))
    n_images = int(params.get("n_images", cfg["n_images"]))
    tie_tol = float(params.get("tie_tol", cfg["tie_tol"]))
    model = _load_model_ref(ref)
    images, labels = load_dataset(cfg["dataset"], cfg["split"], cfg["data_dir"])
    if tuple(images.shape[1:]) != tuple(model.architecture.input_shape):
        raise DataError(f"dataset {cfg['dataset']!r} images {tuple(images.shape[1:])} do not fit "
                        f"model {ref} input {tuple(model.architecture.input_shape)}")
    n_images = min(n_images, len(images))
    if cfg["images"] == "random":
        pick = np.sort(np.random.default_rng(seed).choice(len(images), n_images, replace=False))
    else:
        pick = np.arange(n_images)
    images, labels = np.ascontiguousarray(images[pick]), labels[pick]
    # one compiled network per (model, circuit, chunk), reused by the next points in this worker
    key = _digest({"model": ref, "sha": cfg["model_sha256"].get(ref), "circuit": cfg["circuit"],
                   "chunk": cfg["chunk"]})
    compile_time = 0.0
    if _CompiledCache.key != key or _CompiledCache.circuit is None:
        _CompiledCache.evict()
        session = SimulationSession(model, circuit=cfg["circuit"], n_jobs=1, chunk=cfg["chunk"],
                                    seed=0, directory=Path(worker_scratch_dir("network")) / key[:16])
        _CompiledCache.key, _CompiledCache.circuit = key, session
        _CompiledCache.builds += 1
        compile_time = session.compile_time_s
    else:
        _CompiledCache.reuses += 1
    try:
        spiking = _CompiledCache.circuit.run(images, progress=False)
    except BaseException:
        _CompiledCache.evict()
        raise
    from hcs_neuro.core import reference as ref_mod
    from hcs_neuro.measure.energy import network_energy

    reference = ref_mod.forward(model, images)
    result = validate(model, images, labels, spiking, reference=reference, tie_tol=tie_tol)
    result["compile_time_s"] = compile_time
    # counts and chip-level energy priced by the Loihi profile (hcs_neuro/data/energy_profiles.toml)
    energy = network_energy(model, reference, spiking, ["loihi"],
                            input_levels=ref_mod.quantize_input(model, images))
    result["spikes_per_image"] = energy["totals"]["spikes_per_image"]
    result["sops_per_image"] = energy["totals"]["sops_per_image"]
    result["energy_loihi_pj_per_image"] = energy["energy"]["loihi"]["per_image_pj"]["total_pj"]
    out = {}
    for m in NETWORK_METRICS:
        value = result.get(m)
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        out[m] = float("nan") if value is None else float(value)
    return out


def _network_parameters(cfg: dict) -> dict[str, ParamInfo]:
    out = dict(NETWORK_PARAMETERS)
    for name in _template_fields(cfg.get("model_template")):
        out[name] = ParamInfo(unit="", doc="model_template field")
    return out


register_target(Target(
    kind="network",
    evaluate=_evaluate_network,
    prepare=_prepare_network,
    parameters=_network_parameters,
    metrics=lambda cfg: NETWORK_METRICS,
    needs_brian2=lambda cfg: True,
    check=_check_network,
    group_key=lambda cfg, params, seed: json.dumps(
        [params.get(f) for f in _template_fields(cfg.get("model_template"))]
        + [params.get("model", cfg.get("model"))]),
))


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
        parameters.append(_parse_parameter(pname, pvalue, info, where))

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
    import difflib

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


def _parse_parameter(name: str, value, info: ParamInfo | None, where: str) -> SweepParameter:
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


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One point x seed of the grid.

    ``index`` is the row number in the results table; ``seed`` the user's seed and
    ``eval_seed`` the seed passed to the target (equal for ``seed_mode = "shared"``).
    """

    index: int
    params: dict
    seed: int
    eval_seed: int
    point_id: str


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def expand_grid(spec: SweepSpec) -> list[Point]:
    """Every point x seed of the spec, in table order (parameters in spec order, the first
    varying slowest; seeds innermost)."""
    import itertools

    target_key = {"kind": spec.target_kind, "cfg": spec.target_cfg}
    points = []
    names = [p.name for p in spec.parameters]
    units = {p.name: p.unit for p in spec.parameters}
    index = 0
    for combo in itertools.product(*(p.values for p in spec.parameters)):
        params = dict(zip(names, combo))
        key_params = {n: [params[n], units[n]] for n in names}
        for seed in spec.seeds:
            if spec.seed_mode == "shared":
                eval_seed = seed
            else:
                entropy = int(_digest(key_params)[:16], 16)
                eval_seed = int(np.random.SeedSequence([seed, entropy]).generate_state(1)[0])
            pid = _digest({"target": target_key, "params": key_params, "seed": seed,
                           "eval_seed": eval_seed})[:24]
            points.append(Point(index=index, params=params, seed=seed, eval_seed=eval_seed,
                                point_id=pid))
            index += 1
    return points


def _point_path(out: Path, point: Point) -> Path:
    return out / "points" / f"{point.point_id}.json"


def _read_point(out: Path, point: Point) -> dict | None:
    """A point's stored record, or None when there is none or it is unusable (not a JSON object
    for this point: it is then computed again and the file replaced)."""
    path = _point_path(out, point)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if (not isinstance(rec, dict) or rec.get("point_id") not in (None, point.point_id)
            or not isinstance(rec.get("metrics", {}), dict) or not isinstance(rec.get("error", ""), str)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in rec.get("metrics", {}).values())):
        return None
    return rec


def pending_points(spec: SweepSpec, out: str | os.PathLike | None = None, *,
                   retry_errors: bool = False) -> list[Point]:
    """The points of the grid without a usable result file under ``OUT/points``.

    A point file counts as done when it has every requested metric, or records an error (unless
    ``retry_errors``).
    """
    out = Path(out) if out is not None else spec.out
    todo = []
    for p in expand_grid(spec):
        rec = _read_point(out, p)
        if rec is None:
            todo.append(p)
        elif rec.get("error"):
            if retry_errors:
                todo.append(p)
        elif not all(m in rec.get("metrics", {}) for m in spec.metrics):
            todo.append(p)
    return todo


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


def run_point(evaluate: Callable, target_cfg: dict, params: dict, seed: int) -> dict:
    """Evaluate one point (on a worker); never raises for errors of the target itself.

    Returns
    -------
    dict
        ``metrics`` (name -> float), ``run_time_s`` (wall time of ``evaluate``),
        ``cpu_time_s`` (CPU time of the worker process meanwhile, all its threads), ``error``
        (``""`` or ``"ExceptionType: message"``), ``traceback`` and ``worker`` (host:pid).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    error, tb, metrics = "", "", {}
    try:
        result = evaluate(target_cfg, dict(params), int(seed))
        if not isinstance(result, Mapping):
            raise TypeError(f"target returned {type(result).__name__}, not a dict of metrics")
        for key, value in result.items():
            if isinstance(value, (bool, np.bool_)):
                value = float(value)
            if not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"metric {key!r} is {type(value).__name__}, not a number")
            metrics[str(key)] = float(value)
    except Exception as exc:  # recorded, not fatal: the sweep goes on
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        tb = traceback.format_exc(limit=20)[-4000:]
        metrics = {}
    return {"metrics": metrics, "run_time_s": time.perf_counter() - t0,
            "cpu_time_s": time.process_time() - c0, "error": error,
            "traceback": tb, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _write_point(out: Path, point: Point, rec: dict) -> None:
    data = {"point_id": point.point_id, "params": point.params, "seed": point.seed,
            "eval_seed": point.eval_seed, "finished_utc": _utcnow(), **rec}
    write_json_atomic(_point_path(out, point), data)


def _utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape sweep results (absent ones omitted)."""
    import platform
    from importlib import metadata

    from hcs_neuro import __version__

    out = {"python": platform.python_version(), "hcs_neuro": __version__}
    for dist in ("numpy", "brian2", "dask", "distributed", "pandas", "xarray", "pyarrow",
                 "h5netcdf", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class SweepResult:
    """What :func:`run_sweep` did (an interrupted sweep raises instead; its finished points
    stay on disk). Times are wall-clock seconds on the client."""

    spec: SweepSpec
    out: Path
    n_rows: int
    n_computed: int
    n_errors: int
    n_workers: int
    cluster_start_s: float
    compute_wall_s: float
    table: Any = None
    files: dict = field(default_factory=dict)

    @property
    def throughput_points_per_s(self) -> float:
        """Points computed in this run per second of compute wall time (cluster start excluded)."""
        return self.n_computed / self.compute_wall_s if self.compute_wall_s > 0 else float("nan")

    def summary(self) -> dict:
        """JSON-able summary with stable snake_case keys."""
        return {"name": self.spec.name, "out": str(self.out), "n_rows": self.n_rows,
                "n_computed": self.n_computed, "n_errors": self.n_errors,
                "n_workers": self.n_workers, "cluster_start_s": self.cluster_start_s,
                "compute_wall_s": self.compute_wall_s,
                "throughput_points_per_s": self.throughput_points_per_s,
                "files": {k: str(v) for k, v in self.files.items()}}


#: How long to try to reach an existing scheduler (``--scheduler``) before giving up.
CONNECT_TIMEOUT = "20s"


class _LocalOrRemote:
    """Context manager yielding a dask Client: a new LocalCluster or an existing scheduler."""

    def __init__(self, scheduler: str | None, n_workers: int, brian2: bool):
        self.scheduler, self.n_workers, self.brian2 = scheduler, n_workers, brian2
        self.cluster = self.client = None

    def __enter__(self):
        import logging

        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"--scheduler {self.scheduler}: cannot connect ({exc})") from None
        else:
            # worker processes start with Ctrl-C ignored (POSIX keeps an ignored signal ignored
            # across exec, and Python then installs no KeyboardInterrupt handler): a Ctrl-C reaches
            # only this process, which closes the cluster, instead of every worker printing a traceback
            import signal
            import threading

            main = threading.current_thread() is threading.main_thread()
            old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                self.cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1,
                                            processes=True, dashboard_address=":0",
                                            silence_logs=logging.CRITICAL)
            finally:
                if main:
                    signal.signal(signal.SIGINT, old)
            self.client = Client(self.cluster)
        try:
            if self.brian2:
                from hcs_neuro.sweep.worker import Brian2Preload

                self.client.register_plugin(Brian2Preload())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.client

    def __exit__(self, *exc):
        import contextlib
        import logging

        # closing while tasks run (Ctrl-C) makes distributed log cancelled-task and closed-stream
        # noise; the interruption itself is reported by the caller
        quiet = [logging.getLogger(n) for n in ("distributed", "distributed.client", "distributed.worker",
                                                   "distributed.nanny", "distributed.scheduler", "tornado")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.CRITICAL)
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close()
            if self.cluster is not None:
                with contextlib.suppress(Exception):
                    self.cluster.close()
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)
        return False


def run_sweep(spec: SweepSpec, out: str | os.PathLike | None = None, *,
              scheduler: str | None = None, n_workers: int | None = None, client=None,
              progress: bool = True, retry_errors: bool = False) -> SweepResult:
    """Run every missing point x seed of ``spec`` on Dask, then assemble the results.

    Parameters
    ----------
    spec : SweepSpec
    out : path-like, optional
        Output folder (default ``spec.out``). Finished points already there are reused.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); default: a new
        ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``.
    n_workers : int, optional
        Local workers (default: the CPU count, at most the number of missing points).
    client : distributed.Client, optional
        Use this client instead (tests, notebooks); ``scheduler``/``n_workers`` are then ignored.
    progress : bool
        tqdm progress bar as points complete.
    retry_errors : bool
        Recompute points whose file records an error.

    Returns
    -------
    SweepResult

    Notes
    -----
    Each finished point is written atomically to ``OUT/points/<point_id>.json`` by the client
    as soon as its future completes. A task whose worker dies is rescheduled by Dask (up to
    ``distributed.scheduler.allowed-failures`` times, default 3); beyond that it is recorded
    with a ``KilledWorker`` error. KeyboardInterrupt closes the cluster and propagates; running
    again computes only the missing points.
    """
    out = Path(out) if out is not None else spec.out
    if scheduler and n_workers:
        raise ConfigError("--workers applies to the local cluster only; with --scheduler the "
                          "cluster's own workers are used")
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"--workers {n_workers}: must be >= 1")
    target = spec.target
    _check_sweep_dir(out)  # a file there, or a foreign folder: refused before anything starts
    if spec.target_kind == "python":  # a spec is code: its module is imported only now, to run it
        try:
            _import_function(spec.target_cfg["function"])
        except (ImportError, AttributeError, ValueError, SyntaxError) as exc:
            raise ConfigError(f"sweep spec {spec.source}: [target] function = {spec.target_cfg['function']!r}: "
                              f"cannot import it ({type(exc).__name__}: {exc})") from None
    points = expand_grid(spec)
    todo = pending_points(spec, out, retry_errors=retry_errors)
    started = _utcnow()

    n_errors_run, cluster_start_s, compute_wall_s, used_workers = 0, 0.0, 0.0, 0
    if not todo:
        _prepare_sweep_dir(out)
    else:
        from hcs_neuro.core.progress import progress as progress_bar

        if n_workers is None:
            n_workers = max(1, min(os.cpu_count() or 1, len(todo)))
        t0 = time.perf_counter()
        manager = _LocalOrRemote(scheduler, n_workers, target.needs_brian2(spec.target_cfg)) \
            if client is None else None
        cl = manager.__enter__() if manager is not None else client  # an unreachable scheduler fails here
        try:
            _prepare_sweep_dir(out)  # written only once the cluster is there
            _write_metadata(spec, out, points, status="running", started=started)
            from distributed import as_completed

            if client is not None and target.needs_brian2(spec.target_cfg):
                from hcs_neuro.sweep.worker import Brian2Preload

                cl.register_plugin(Brian2Preload())
            used_workers = len(cl.scheduler_info(n_workers=-1)["workers"])
            cluster_start_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            futures = {}
            if target.group_key is not None:  # neighbours can reuse one compiled network
                todo = sorted(todo, key=lambda p: (
                    target.group_key(spec.target_cfg, p.params, p.eval_seed), p.index))
            for p in todo:
                fut = cl.submit(run_point, target.evaluate, spec.target_cfg, p.params,
                                p.eval_seed, key=f"hcs-sweep-{p.point_id}", pure=False)
                futures[fut] = p
            bar = progress_bar(total=len(todo), enabled=progress, unit="point", desc=f"sweep {spec.name}")
            try:
                for fut in as_completed(futures):
                    p = futures.pop(fut)
                    try:
                        rec = fut.result()
                    except Exception as exc:  # KilledWorker after repeated losses, ...
                        rec = {"metrics": {}, "run_time_s": float("nan"), "cpu_time_s": float("nan"),
                               "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                               "traceback": "", "worker": ""}
                    if not rec["error"]:
                        missing = [m for m in spec.metrics if m not in rec["metrics"]]
                        if missing:
                            rec["error"] = f"MissingMetric: target returned no {missing}"
                    n_errors_run += bool(rec["error"])
                    _write_point(out, p, rec)
                    bar.update(1)
            finally:
                bar.close()
                for fut in futures:
                    fut.cancel()
            compute_wall_s = time.perf_counter() - t1
        finally:
            if manager is not None:
                manager.__exit__(None, None, None)

    table = assemble_results(spec, out)
    files = write_results(spec, out, table)
    n_errors = int((table["error"] != "").sum())
    result = SweepResult(spec=spec, out=out, n_rows=len(table), n_computed=len(todo),
                         n_errors=n_errors, n_workers=used_workers,
                         cluster_start_s=cluster_start_s, compute_wall_s=compute_wall_s,
                         table=table, files=files)
    _write_metadata(spec, out, points, status="complete", started=started,
                    run=result.summary())
    files["metadata"] = out / "sweep.json"
    return result


#: Kind recorded in the marker of a sweep output folder.
SWEEP_KIND = "sweep"


def _is_legacy_sweep_dir(out: Path) -> bool:
    """A sweep folder written before folders were marked: a sweep.json with a name and status."""
    try:
        meta = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and "name" in meta and "status" in meta and "spec" in meta


def _check_sweep_dir(out: Path) -> None:
    """Refuse, before any work, an output folder that a sweep may not fill: a file, the current
    folder, a place that cannot be written, or a non-empty folder that is not an earlier sweep's."""
    from hcs_neuro.core.errors import OutputError
    from hcs_neuro.core.io import output_dir_marker

    if out.is_dir() and any(out.iterdir()):
        marker = output_dir_marker(out)
        if (marker is not None and marker.get("kind") == SWEEP_KIND) or _is_legacy_sweep_dir(out):
            return
        what = "was not written by hcs-neuro" if marker is None else f"holds an hcs-neuro {marker.get('kind')}"
        raise OutputError(f"sweep output folder {str(out)!r}: the folder exists, is not empty and {what}; "
                          "nothing was changed: name a new or empty folder (--out)")
    check_output_dir(out, option="sweep output folder", kind=SWEEP_KIND)


def _prepare_sweep_dir(out: Path) -> None:
    """Create (or reuse) the sweep's output folder: new, empty, or an earlier sweep's (resumed).

    A folder written by an older hcs-neuro (sweep.json, no marker) gets its marker now."""
    from hcs_neuro.core.io import MARKER_NAME, output_dir_marker

    if out.is_dir() and output_dir_marker(out) is None and _is_legacy_sweep_dir(out):
        write_json_atomic(out / MARKER_NAME, {"written_by": "hcs-neuro", "kind": SWEEP_KIND, "files": []})
        return
    prepare_output_dir(out, option="sweep output folder", kind=SWEEP_KIND)


def _write_metadata(spec: SweepSpec, out: Path, points: list[Point], *, status: str,
                    started: str, run: dict | None = None) -> None:
    meta = {
        "name": spec.name,
        "status": status,
        "spec_file": spec.source,
        "spec": spec.raw,
        "target": {"kind": spec.target_kind, "cfg": spec.target_cfg},
        "parameters": [{"name": p.name, "column": p.column, "unit": p.unit, "kind": p.kind,
                        "values": list(p.values)} for p in spec.parameters],
        "seeds": list(spec.seeds),
        "seed_mode": spec.seed_mode,
        "metrics": list(spec.metrics),
        "n_rows": len(points),
        "versions": package_versions(),
        "started_utc": started,
    }
    if run is not None:
        meta["finished_utc"] = _utcnow()
        meta["last_run"] = run
    write_json_atomic(out / "sweep.json", meta)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def assemble_results(spec: SweepSpec, out: str | os.PathLike | None = None):
    """The tidy results table, read from the point files.

    One row per point x seed in grid order; columns ``point_id``, one per parameter (unit in
    the name), ``seed``, the requested metrics, ``run_time_s`` (wall) and ``cpu_time_s`` of the
    evaluation on its worker, and ``error`` (``""`` when none; metrics are NaN then).

    Raises
    ------
    ConfigError
        If a point has no result file yet (the sweep has not finished).
    """
    import pandas as pd

    out = Path(out) if out is not None else spec.out
    rows = []
    missing = 0
    for p in expand_grid(spec):
        rec = _read_point(out, p)
        if rec is None:
            missing += 1
            continue
        row = {"point_id": p.point_id}
        for param in spec.parameters:
            row[param.column] = p.params[param.name]
        row["seed"] = p.seed
        for m in spec.metrics:
            row[m] = float(rec.get("metrics", {}).get(m, float("nan")))
        row["run_time_s"] = float(rec.get("run_time_s", float("nan")))
        row["cpu_time_s"] = float(rec.get("cpu_time_s", float("nan")))
        row["error"] = rec.get("error", "") or ""
        if not row["error"] and any(m not in rec.get("metrics", {}) for m in spec.metrics):
            row["error"] = "MissingMetric: point file lacks a requested metric"
        rows.append(row)
    if missing:
        raise ConfigError(f"sweep {spec.name} in {out}: {missing} of {spec.n_points} points have "
                          "no result yet; run the sweep again to compute them")
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("int64")
    for param in spec.parameters:
        if param.kind == "int":
            table[param.column] = table[param.column].astype("int64")
        elif param.kind == "float":
            table[param.column] = table[param.column].astype("float64")
    return table


def to_xarray(spec: SweepSpec, table):
    """The results as an xarray Dataset: one dimension per parameter (coordinate = its column
    name, unit in ``attrs``) plus ``seed``; data variables = metrics, ``run_time_s``, ``error``."""
    dims = [p.column for p in spec.parameters] + ["seed"]
    ds = table.drop(columns=["point_id"]).set_index(dims).to_xarray()
    for p in spec.parameters:
        ds[p.column].attrs.update({"parameter": p.name, "units": p.unit or "1"})
    ds["run_time_s"].attrs["units"] = "s"
    ds["cpu_time_s"].attrs["units"] = "s"
    ds["error"] = ds["error"].fillna("").astype(str)
    ds.attrs.update({"sweep": spec.name, "target_kind": spec.target_kind,
                     "seed_mode": spec.seed_mode, "metrics": ",".join(spec.metrics)})
    return ds


def write_results(spec: SweepSpec, out: str | os.PathLike, table) -> dict[str, Path]:
    """Write ``results.parquet``, ``results.csv`` and ``results.nc`` (h5netcdf) atomically."""
    out = Path(out)
    files = {"parquet": out / "results.parquet", "csv": out / "results.csv",
             "netcdf": out / "results.nc"}
    with atomic_path(files["parquet"]) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(files["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    ds = to_xarray(spec, table)
    engine = netcdf_engine()
    with atomic_path(files["netcdf"]) as tmp:
        ds.to_netcdf(tmp, engine=engine)
    return files


def netcdf_engine() -> str:
    """``"h5netcdf"`` (NetCDF4) when its h5py backend is importable, else ``"scipy"`` (NetCDF3
    classic, which xarray and every NetCDF reader open as well)."""
    try:
        import h5py  # noqa: F401  (h5netcdf's backend)
        import h5netcdf  # noqa: F401
    except ImportError:
        return "scipy"
    return "h5netcdf"


def load_metadata(path: str | os.PathLike) -> dict:
    """``sweep.json`` of a sweep folder (or of the folder holding a results file)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    meta_path = folder / "sweep.json"
    if not meta_path.is_file():
        raise ConfigError(f"{meta_path}: no sweep metadata (is {path} a sweep output folder?)")
    meta = read_json(meta_path, what="sweep metadata")
    for key, typ in (("metrics", list), ("parameters", list)):
        if key in meta and not isinstance(meta[key], typ):
            raise ConfigError(f"{meta_path}: field {key!r} must be a {typ.__name__}; not an hcs-neuro sweep.json")
    return meta


def load_results(path: str | os.PathLike):
    """Read a results table: a sweep folder (its ``results.parquet``), a ``.parquet`` or ``.csv``.

    Raises
    ------
    ConfigError
        Missing file or an unsupported extension.
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "results.parquet"
    if not path.is_file():
        raise ConfigError(f"{path}: no such results file (run `hcs-neuro sweep SPEC` first)")
    if path.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"{path}: unsupported results file; allowed: a sweep folder, "
                          ".parquet, .csv")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            read_text(path, what="results table", limit=2 ** 30)  # UTF-8 check, one clear message
            table = pd.read_csv(path, keep_default_na=False, na_values=[""])
            if "error" in table:
                table["error"] = table["error"].fillna("").astype(str)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (pyarrow/pandas raise many types for corrupt files)
        raise ConfigError(f"{path}: not a readable results table ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None
    if len(table.columns) == 0 or "seed" not in table.columns:
        raise ConfigError(f"{path}: not an hcs-neuro results table (no 'seed' column)")
    return table

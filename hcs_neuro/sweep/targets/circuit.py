"""The ``circuit`` sweep target: one hypercolumn circuit benchmarked at every point
(:func:`hcs_neuro.brian.bench.run_bench`); consecutive points with the same network shape reuse
one compiled cpp_standalone network per worker (:data:`hcs_neuro.brian.device.WORKER_CACHE`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
from pathlib import Path

from hcs_neuro.core.circuit_file import list_builtin_circuits, load_circuit
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.metrics import CIRCUIT_METRICS
from hcs_neuro.sweep.grid import content_digest
from hcs_neuro.sweep.spec import ParamInfo, Target, parse_parameter, register_target
from hcs_neuro.sweep.worker import worker_scratch_dir

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
_CIRCUIT_FIELDS = {"circuit", "overrides", "device", "batch_size", "codegen_target",
                   *CIRCUIT_BENCH_PARAMETERS}
_RESERVED_CIRCUIT_FIELDS = {  # non-parameter fields of circuit files that can be overridden
    "inhibition.n_interneurons": ParamInfo(kind="int", low=1),
    "refinement.max_levels": ParamInfo(kind="int", low=0),
    "refinement.factor": ParamInfo(kind="int", low=2),
    "input.coding": ParamInfo(kind="str", choices=("current", "poisson")),
}


def _prepare_circuit(table: dict, spec_dir: Path | None) -> dict:
    unknown = sorted(set(table) - _CIRCUIT_FIELDS)
    if unknown:
        raise ConfigError(f"[target] (kind 'circuit'): unknown field(s) {unknown}; allowed: "
                          f"{sorted(_CIRCUIT_FIELDS)}")
    name = table.get("circuit")
    if not isinstance(name, str):
        raise ConfigError("[target] circuit: required, a built-in circuit name "
                          f"({', '.join(list_builtin_circuits())}) or a .toml path")
    if name in list_builtin_circuits() and not name.endswith(".toml"):
        text = (importlib.resources.files("hcs_neuro.circuits") / f"{name}.toml").read_text()
        ref = name
    else:
        path = Path(name)
        if not path.is_absolute() and spec_dir is not None:
            path = spec_dir / path
        if not path.is_file():
            raise ConfigError(f"[target] circuit = {name!r}: no such file ({path}) and not a "
                              f"built-in circuit ({', '.join(list_builtin_circuits())})")
        ref, text = str(path.resolve()), path.read_text()
    circuit = load_circuit(ref)
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
            value = parse_parameter(key, table[key], info, f"[target] {key}").values[0]
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
    circuit = load_circuit(cfg["circuit"])
    out = {p.dotted: ParamInfo(unit="" if p.unit == "1" else p.unit) for p in circuit.params}
    out.update(_RESERVED_CIRCUIT_FIELDS)
    out.update(CIRCUIT_BENCH_PARAMETERS)
    return out


def _check_circuit(cfg: dict, parameters: tuple) -> None:
    circuit = load_circuit(cfg["circuit"]).with_overrides(cfg["overrides"])
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


def circuit_call(cfg: dict, params: dict, seed: int):
    """(circuit spec with overrides, run_bench keyword arguments) for one point."""
    circuit = load_circuit(cfg["circuit"])
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
    circuit, kw = circuit_call(cfg, params, seed)
    return _standalone_key(circuit, kw)


def _standalone_key(circuit, kw: dict) -> str:
    from hcs_neuro.brian.hypercolumn import noise_enabled

    noise = kw.get("noise")
    random_inside = (noise is not None and noise > 0) or (noise is None and noise_enabled(circuit)) \
        or circuit.coding != "current"
    n_channels = kw["n_channels"]
    size = min(kw.get("trials", 2000), kw["batch_size"])
    return content_digest({"circuit": circuit.to_dict(), "noise": noise, "size": size,
                    "n_channels": n_channels, "dt_ms": kw.get("dt_ms"),
                    "duration_ms": kw.get("duration_ms"),
                    "seed": kw["seed"] if random_inside else None})


class _ReusedStandalone:
    """The ``standalone_factory`` that sweep workers give ``run_bench``: the compiled network of
    the previous point is reused (:data:`hcs_neuro.brian.device.WORKER_CACHE`) when only run-time
    settable values (k, drives) differ; ``compile_time_s`` is 0 for a reused network."""

    key: str = ""

    def __init__(self, spec, n_hypercolumns, n_channels, k, **kwargs):
        from hcs_neuro.brian.device import WORKER_CACHE, StandaloneCircuit

        def build():
            kwargs["directory"] = Path(worker_scratch_dir("standalone")) / self.key[:16]
            return StandaloneCircuit(spec, n_hypercolumns, n_channels, k, **kwargs)

        self._circuit, built = WORKER_CACHE.get(self.key, build)
        self.compile_time_s = self._circuit.compile_time_s if built else 0.0
        self._k = int(k)

    def run(self, drives, **kwargs):
        kwargs.setdefault("k", self._k)  # k is a state variable: set it for every run
        return self._circuit.run(drives, **kwargs)

    def close(self) -> None:  # kept for the next point; evicted when the key changes
        pass


def _evaluate_circuit(cfg: dict, params: dict, seed: int) -> dict[str, float]:
    from hcs_neuro.brian.bench import run_bench
    from hcs_neuro.brian.device import WORKER_CACHE

    circuit, kwargs = circuit_call(cfg, params, seed)
    if cfg["device"] != "cpp_standalone":
        WORKER_CACHE.evict()  # back to the runtime device
        result = run_bench(circuit, **kwargs)
    else:
        _ReusedStandalone.key = _standalone_key(circuit, kwargs)
        try:
            result = run_bench(circuit, standalone_factory=_ReusedStandalone, **kwargs)
        except BaseException:
            WORKER_CACHE.evict()
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



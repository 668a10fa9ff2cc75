"""The ``python`` sweep target: any importable function ``fn(params, seed, **options) -> dict``.

The function's module is imported only when the sweep runs: a spec that names a module is code.
"""

from __future__ import annotations

import importlib
import importlib.resources
import re
from pathlib import Path
from typing import Mapping

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.units import parse_unit
from hcs_neuro.sweep.spec import ParamInfo, Target, register_target

# -- the "python" target: any importable function fn(params, seed, **options) -> dict ----------


def import_function(ref: str):
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
    fn = import_function(cfg["function"])
    return fn(params, seed, **cfg.get("options", {}))


def _before_run(cfg: dict) -> None:
    try:
        import_function(cfg["function"])
    except (ImportError, AttributeError, ValueError, SyntaxError) as exc:
        raise ConfigError(f"[target] function = {cfg['function']!r}: cannot import it "
                          f"({type(exc).__name__}: {exc})") from None


register_target(Target(
    kind="python",
    before_run=_before_run,
    evaluate=_evaluate_python,
    prepare=_prepare_python,
    parameters=_python_parameters,
    metrics=lambda cfg: None if cfg.get("metrics") is None else tuple(cfg["metrics"]),
    needs_brian2=lambda cfg: bool(cfg.get("brian2", False)),
))



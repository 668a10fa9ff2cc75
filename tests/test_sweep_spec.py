"""Sweep specs: units, ranges, validation errors, grid expansion and hashing (no Dask here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.units import split_quantity, unit_column_suffix
from hcs_neuro.sweep import (
    ParamInfo,
    Target,
    expand_grid,
    load_sweep_spec,
    parse_sweep_spec,
    pending_points,
    register_target,
    run_point,
    run_sweep,
)


def _toy_evaluate(cfg, params, seed):
    """Test-only target: a deterministic function of the parameters and the seed."""
    rng = np.random.default_rng(seed)
    tau = params["neuron.tau_m"]
    if params.get("coding") == "ttfs" and params.get("k", 1) == 3:
        raise RuntimeError("ttfs with k=3 is not supported by this toy")
    return {"agreement": 1.0 / (1.0 + tau / 10.0) + 0.01 * rng.normal(),
            "latency_ms": tau * params.get("k", 1) + cfg["offset_ms"]}


def _toy_prepare(table, spec_dir):
    bad = set(table) - {"offset_ms"}
    if bad:
        raise ConfigError(f"[target] unknown field(s) {sorted(bad)}; allowed: offset_ms")
    return {"offset_ms": float(table.get("offset_ms", 0.0))}


TOY = register_target(Target(
    kind="toy_test",
    evaluate=_toy_evaluate,
    prepare=_toy_prepare,
    parameters=lambda cfg: {
        "neuron.tau_m": ParamInfo(unit="ms", low=0.0),
        "k": ParamInfo(kind="int", low=1),
        "coding": ParamInfo(kind="str", choices=("rate", "ttfs")),
        "input.rate": ParamInfo(unit="Hz"),
    },
    metrics=lambda cfg: ("agreement", "latency_ms"),
), replace=True)


def _spec(params, **sweep):
    raw = {"sweep": {"seeds": [0, 1], **sweep}, "target": {"kind": "toy_test"},
           "parameters": params}
    return parse_sweep_spec(raw, source="toy.toml")


# -- units ------------------------------------------------------------------------------------


def test_parse_quantity_and_column_suffix():
    assert split_quantity("20 ms") == (20.0, "ms")
    assert split_quantity("1.5e-3 nS") == (1.5e-3, "nS")
    assert split_quantity(3) == (3.0, "")
    assert split_quantity("0.5 mV/ms") == (0.5, "mV/ms")
    for bad in ("fast", "20 parsecs", "ms 20", True):
        with pytest.raises(ValueError):
            split_quantity(bad)
    assert unit_column_suffix("ms") == "_ms"
    assert unit_column_suffix("mV/ms") == "_mV_per_ms"
    assert unit_column_suffix("") == ""


def test_values_are_converted_to_the_parameter_unit():
    spec = _spec({"neuron.tau_m": ["0.02 s", "5000 us", "7 ms"], "input.rate": ["0.1 kHz"]})
    tau = spec.parameters[0]
    assert tau.column == "neuron.tau_m_ms"
    assert tau.values == (20.0, 5.0, 7.0)
    assert spec.parameters[1].column == "input.rate_Hz"
    assert spec.parameters[1].values == (100.0,)
    assert spec.metrics == ("agreement", "latency_ms")  # default: every declared metric


def test_ranges_linear_log_step():
    spec = _spec({"neuron.tau_m": {"start": "5 ms", "stop": "50 ms", "num": 3, "scale": "log"},
                  "k": {"start": 1, "stop": 4, "step": 1}})
    tau, k = spec.parameters
    # values are rounded to 12 significant digits (canonical form for hashing)
    np.testing.assert_allclose(tau.values, [5.0, np.sqrt(250.0), 50.0], rtol=1e-11)
    assert k.values == (1, 2, 3, 4) and all(isinstance(v, int) for v in k.values)
    lin = _spec({"neuron.tau_m": {"start": "1 ms", "stop": "2 ms", "num": 3}}).parameters[0]
    assert lin.values == (1.0, 1.5, 2.0)
    step = _spec({"neuron.tau_m": {"start": "0.1 ms", "stop": "0.3 ms", "step": "0.1 ms"}})
    assert step.parameters[0].values == (0.1, 0.2, 0.3)  # inclusive stop despite round-off


@pytest.mark.parametrize("params, message", [
    ({"neuron.tau_x": ["20 ms"]}, "not a parameter of target 'toy_test'"),
    ({"neuron.tau_m": ["20 mV"]}, "wrong unit"),
    ({"neuron.tau_m": [20]}, "has no unit"),
    ({"neuron.tau_m": []}, "empty list"),
    ({"neuron.tau_m": {"start": "5 ms", "stop": "50 ms", "num": 0}}, "empty range"),
    ({"neuron.tau_m": {"start": "50 ms", "stop": "5 ms", "step": "1 ms"}}, "empty range"),
    ({"neuron.tau_m": {"start": "5 ms", "stop": "5 mV", "num": 2}}, "not compatible"),
    ({"neuron.tau_m": {"start": "0 ms", "stop": "5 ms", "num": 2, "scale": "log"}}, "log range"),
    ({"neuron.tau_m": {"start": "1 ms", "stop": "5 ms"}}, "exactly one of num or step"),
    ({"neuron.tau_m": ["-1 ms"]}, "below the allowed minimum"),
    ({"neuron.tau_m": ["1 ms", "0.001 s"]}, "appears twice"),
    ({"k": [1.5]}, "not an integer"),
    ({"coding": ["rate", "burst"]}, "'burst' is not allowed; allowed: rate, ttfs"),
    ({}, "at least one parameter"),
])
def test_bad_parameters_raise_config_error_naming_the_field(params, message):
    with pytest.raises(ConfigError, match=message) as exc:
        _spec(params)
    assert "toy.toml" in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("raw_update, message", [
    ({"sweep": {"metrics": ["agreement", "accuracy"]}}, "unknown metric 'accuracy'"),
    ({"sweep": {"seeds": []}}, "non-empty list"),
    ({"sweep": {"seeds": [1, 1]}}, "appears twice"),
    ({"sweep": {"seeds": [-1]}}, "not an integer in"),
    ({"sweep": {"seed_mode": "random"}}, "seed_mode"),
    ({"sweep": {"bogus": 1}}, "unknown field"),
    ({"target": {"kind": "spaceship"}}, "unknown target kind 'spaceship'"),
    ({"target": {"kind": "toy_test", "offset": 1}}, "unknown field"),
    ({"extra": {}}, "unknown section"),
])
def test_bad_spec_sections(raw_update, message):
    raw = {"sweep": {"seeds": [0]}, "target": {"kind": "toy_test"},
           "parameters": {"k": [1, 2]}}
    raw.update(raw_update)
    with pytest.raises(ConfigError, match=message):
        parse_sweep_spec(raw, source="toy.toml")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="sweep spec not found"):
        load_sweep_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep\nname=1")
    with pytest.raises(ConfigError, match="bad.toml: the sweep spec is not valid TOML"):
        load_sweep_spec(bad)


def test_python_target_validation(tmp_path):
    raw = {"sweep": {"metrics": ["y"]}, "target": {"kind": "python", "function": "math:nope"},
           "parameters": {"x": [1, 2]}}
    # validating a spec imports nothing (a spec is code: its module runs only with the sweep) ...
    spec = parse_sweep_spec(raw, out=tmp_path / "out")
    # ... and running it names the function that cannot be imported, before anything is written
    with pytest.raises(ConfigError, match="cannot import"):
        run_sweep(spec)
    assert not (tmp_path / "out").exists()
    raw["target"]["function"] = "not a reference"
    with pytest.raises(ConfigError, match="'module:function'"):
        parse_sweep_spec(raw)
    raw["target"]["function"] = "math:hypot"
    raw["target"]["parameters"] = {"x": "ms"}
    with pytest.raises(ConfigError, match="has no unit"):
        parse_sweep_spec(raw)
    raw["parameters"] = {"x": ["1 ms"], "z": [1]}
    with pytest.raises(ConfigError, match="not a parameter"):
        parse_sweep_spec(raw)


# -- grid -------------------------------------------------------------------------------------


def test_grid_order_hashes_and_seeds():
    spec = _spec({"neuron.tau_m": ["5 ms", "10 ms"], "k": [1, 2, 3]}, seeds=[7, 8])
    points = expand_grid(spec)
    assert len(points) == spec.n_points == 12
    assert [p.index for p in points] == list(range(12))
    assert points[0].params == {"neuron.tau_m": 5.0, "k": 1} and points[0].seed == 7
    assert points[1].params == {"neuron.tau_m": 5.0, "k": 1} and points[1].seed == 8
    assert points[2].params["k"] == 2 and points[-1].params == {"neuron.tau_m": 10.0, "k": 3}
    assert len({p.point_id for p in points}) == 12
    # same point written differently (0.01 s vs 10 ms) -> same hash; shared seeds pass through
    again = expand_grid(_spec({"neuron.tau_m": ["0.005 s", "0.01 s"], "k": [1, 2, 3]},
                              seeds=[7, 8]))
    assert [p.point_id for p in again] == [p.point_id for p in points]
    assert [p.eval_seed for p in points] == [7, 8] * 6
    # per_point: deterministic, distinct per point
    pp = expand_grid(_spec({"neuron.tau_m": ["5 ms", "10 ms"], "k": [1, 2, 3]}, seeds=[7, 8],
                           seed_mode="per_point"))
    pp2 = expand_grid(_spec({"neuron.tau_m": ["5 ms", "10 ms"], "k": [1, 2, 3]}, seeds=[7, 8],
                            seed_mode="per_point"))
    assert [p.eval_seed for p in pp] == [p.eval_seed for p in pp2]
    assert len({p.eval_seed for p in pp}) == 12
    assert set(p.point_id for p in pp).isdisjoint(p.point_id for p in points)


def test_target_settings_change_the_hash():
    raw = {"sweep": {"seeds": [0]}, "target": {"kind": "toy_test", "offset_ms": 1.0},
           "parameters": {"k": [1]}}
    a = expand_grid(parse_sweep_spec(raw))[0].point_id
    raw["target"]["offset_ms"] = 2.0
    assert expand_grid(parse_sweep_spec(raw))[0].point_id != a


def test_run_point_records_errors_instead_of_raising():
    ok = run_point(_toy_evaluate, {"offset_ms": 1.0}, {"neuron.tau_m": 10.0, "k": 2}, 3)
    assert ok["error"] == "" and ok["metrics"]["latency_ms"] == 21.0 and ok["run_time_s"] >= 0
    bad = run_point(_toy_evaluate, {"offset_ms": 0.0},
                    {"neuron.tau_m": 10.0, "k": 3, "coding": "ttfs"}, 0)
    assert bad["error"].startswith("RuntimeError: ttfs with k=3") and bad["metrics"] == {}
    assert "Traceback" in bad["traceback"]
    wrong = run_point(lambda c, p, s: {"x": "high"}, {}, {}, 0)
    assert wrong["error"].startswith("TypeError: metric 'x' is str")


def test_pending_points_reads_point_files(tmp_path):
    spec = _spec({"k": [1, 2]}, seeds=[0])
    points = expand_grid(spec)
    assert pending_points(spec, tmp_path) == points
    (tmp_path / "points").mkdir()
    (tmp_path / "points" / f"{points[0].point_id}.json").write_text(
        json.dumps({"metrics": {"agreement": 1.0, "latency_ms": 2.0}, "error": ""}))
    (tmp_path / "points" / f"{points[1].point_id}.json").write_text('{"metrics": ')  # torn
    assert pending_points(spec, tmp_path) == [points[1]]
    (tmp_path / "points" / f"{points[1].point_id}.json").write_text(
        json.dumps({"metrics": {}, "error": "RuntimeError: x"}))
    assert pending_points(spec, tmp_path) == []
    assert pending_points(spec, tmp_path, retry_errors=True) == [points[1]]


# -- the circuit target (validation only; runs are in test_sweep_dask.py) ---------------------


def _circuit_spec(params, **target):
    raw = {"sweep": {"seeds": [0]},
           "target": {"kind": "circuit", "circuit": "lif_kwta", "k": 2, "n_channels": 8, **target},
           "parameters": params}
    return parse_sweep_spec(raw, source="c.toml")


def test_circuit_target_parameters_and_units():
    spec = _circuit_spec({"neuron.tau_m": ["0.5 ms", "0.002 s"], "noise": ["0 mV", "1 mV"],
                          "inhibition.w_ie": [0.3, 3], "refinement.max_levels": [0, 6]})
    cols = [p.column for p in spec.parameters]
    assert cols == ["neuron.tau_m_ms", "noise_mV", "inhibition.w_ie", "refinement.max_levels"]
    assert spec.parameters[0].values == (0.5, 2.0)
    assert spec.target_cfg["bench"] == {"k": 2, "n_channels": 8}
    assert len(spec.target_cfg["circuit_sha256"]) == 64
    assert "strict_agreement" in spec.metrics and "latency_ms_median" in spec.metrics


@pytest.mark.parametrize("params, target, message", [
    ({"neuron.tau_x": ["1 ms"]}, {}, "not a parameter of target 'circuit' .lif_kwta.; allowed: did you mean neuron.tau_m"),
    ({"neuron.tau_m": ["1 mV"]}, {}, "wrong unit"),
    ({"inhibition.w_ie": ["3 mV"]}, {}, "wrong unit"),
    ({"neuron.tau_m": ["-1 ms"]}, {}, "neuron.tau_m is a time constant and must be > 0"),
    ({"k": [2, 8]}, {}, "k = 8 needs n_channels > k"),
    ({"input.coding": ["spikes"]}, {}, "not allowed; allowed: current, poisson"),
    ({"k": [1]}, {"circuit": "nope"}, "no such file"),
    ({"k": [1]}, {"device": "gpu"}, "device = 'gpu'"),
    ({"k": [1]}, {"noise": "1 ms"}, "wrong unit"),
    ({"k": [1]}, {"overrides": {"neuron.tau_m": "3 mV"}},
     r"\[target\] overrides: neuron.tau_m must be a time"),
    ({"k": [1]}, {"colour": "red"}, "unknown field"),
])
def test_circuit_target_errors(params, target, message):
    with pytest.raises(ConfigError, match=message):
        _circuit_spec(params, **target)


def test_circuit_target_defaults_and_known_metrics():
    from hcs_neuro.core.circuit_file import load_circuit
    from hcs_neuro.sweep.targets.circuit import circuit_call

    raw = {"target": {"kind": "circuit", "circuit": "lif_kwta"}, "parameters": {"trials": [10]}}
    spec = parse_sweep_spec(raw)  # k and n_channels default to the circuit file's
    circuit, kwargs = circuit_call(spec.target_cfg, expand_grid(spec)[0].params, 0)
    builtin = load_circuit("lif_kwta")
    assert (kwargs["k"], kwargs["n_channels"], kwargs["trials"]) == (builtin.k, builtin.n_channels, 10)
    raw["target"]["k"] = 1
    raw["sweep"] = {"metrics": ["accuracy"]}
    with pytest.raises(ConfigError, match="unknown metric 'accuracy' for target 'circuit'"):
        parse_sweep_spec(raw)


def test_example_specs_are_valid():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "analysis" / "sweeps"
    specs = sorted(folder.glob("*.toml"))
    assert len(specs) >= 4
    for path in specs:
        try:
            spec = load_sweep_spec(path)
        except ConfigError as exc:  # network examples need models trained first (see the file)
            assert "model file(s) missing" in str(exc) and "network" in path.name, exc
            continue
        assert spec.n_points >= 1


# -- the network target (validation only) -----------------------------------------------------


def test_network_target_validation(tmp_path):
    base = {"sweep": {"seeds": [0]}, "target": {"kind": "network", "model": "digits_hcs"},
            "parameters": {"n_images": [10, 20]}}
    spec = parse_sweep_spec(base)
    assert spec.target_cfg["model"] == "shipped:digits_hcs"
    assert len(spec.target_cfg["model_sha256"]["shipped:digits_hcs"]) == 64
    assert "class_agreement" in spec.metrics and "spiking_accuracy" in spec.metrics
    bad = {**base, "target": {"kind": "network", "model": "nope_model"}}
    with pytest.raises(ConfigError, match="not a shipped model; shipped models: .*digits_hcs"):
        parse_sweep_spec(bad)
    with pytest.raises(ConfigError, match=r"\[target\] model: required"):
        parse_sweep_spec({**base, "target": {"kind": "network"}})
    with pytest.raises(ConfigError, match="images = 'some'"):
        parse_sweep_spec({**base, "target": {"kind": "network", "model": "digits_hcs",
                                             "images": "some"}})
    # a model_template: one model file per combination of the swept fields, all checked up front
    (tmp_path / "m").mkdir()
    for bits in (1, 2):
        (tmp_path / "m" / f"w{bits}_k0.25.npz").write_bytes(b"stand-in %d" % bits)
    raw = {"sweep": {"seeds": [0]},
           "target": {"kind": "network", "model_template": "m/w{weight_bits}_k{k}.npz"},
           "parameters": {"weight_bits": [1, 2], "k": [0.25]}}
    spec = load_spec_from(tmp_path, raw)
    assert len(spec.target_cfg["template_refs"]) == 2
    raw["parameters"]["k"] = [0.25, 0.5]
    with pytest.raises(ConfigError, match="2 model file.s. missing, e.g. 'm/w1_k0.5.npz'"):
        load_spec_from(tmp_path, raw)
    raw["parameters"] = {"weight_bits": [1, 2]}
    with pytest.raises(ConfigError, match=r"fields \['k'\] must be swept"):
        load_spec_from(tmp_path, raw)


def load_spec_from(folder, raw):
    """Parse ``raw`` as if it were a spec file in ``folder`` (relative paths resolve there)."""
    return parse_sweep_spec(raw, source=str(folder / "spec.toml"), spec_dir=folder)

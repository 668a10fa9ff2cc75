"""Circuit files: loading, units, overrides and every bad-file case (no Brian2 simulation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hcs_neuro.core.circuit_file import check_k, list_builtin_circuits, load_circuit
from hcs_neuro.core.units import CONDUCTANCE, DIMENSIONLESS, TIME, parse_quantity
from hcs_neuro.core.errors import ConfigError, HCSError

BUILTIN = Path(__file__).resolve().parents[1] / "circuits" / "lif_kwta.toml"


def test_builtins_listed_and_load():
    names = list_builtin_circuits()
    assert {"lif_kwta", "lif_pool", "cond_kwta"} <= set(names)
    for n in names:
        spec = load_circuit(n)
        assert spec.name == n
        json.dumps(spec.to_dict())  # JSON-able
        hash(spec)  # frozen, hashable
        # every parameter is cited
        assert {p.dotted for p in spec.params} == {k for k, _ in spec.citations}


def test_units_parse_to_si():
    v, dim = parse_quantity("20 ms")
    assert v == pytest.approx(0.02) and dim == TIME
    assert parse_quantity("0.8 mV/ms")[0] == pytest.approx(0.8)
    assert parse_quantity("25 nS")[1] == CONDUCTANCE
    assert parse_quantity(3) == (3.0, DIMENSIONLESS)


def test_namespace_has_brian_units():
    import brian2 as b2
    from hcs_neuro.brian.hypercolumn import circuit_namespace

    ns = circuit_namespace(load_circuit("lif_kwta"))
    assert ns["tau_m"] == 1 * b2.ms
    assert ns["urgency_rate"] == 0.8 * b2.mV / b2.ms


def test_overrides_return_new_validated_spec():
    spec = load_circuit("lif_kwta")
    s2 = spec.with_overrides({"neuron.tau_m": "10 ms", "refinement.max_levels": 0, "inhibition.w_ie": 2})
    assert s2.value("tau_m") == 10.0 and s2.max_levels == 0 and s2.value("w_ie") == 2.0
    assert spec.value("tau_m") == 1.0  # original untouched
    assert s2.with_overrides({}) == s2


@pytest.mark.parametrize(
    "override, message",
    [
        ({"neuron.tau_m": "5 mV"}, "neuron.tau_m must be a time, got 5 mV"),
        ({"neuron.tau_mm": "5 ms"}, "unknown field"),
        ({"synapse.w": "1 mV"}, "unknown section"),
        ({"neuron.tau_m": "-5 ms"}, "must be > 0"),
        ({"neuron.tau_m": "5 furlongs"}, "unknown unit"),
        ({"refinement.max_levels": "two"}, "must be an integer"),
        ({"tau_m": "5 ms"}, "dotted name"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_circuit("lif_kwta").with_overrides(override)


def _write(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('tau_m = "1 ms"', 'tau_m = "1 mV"', "neuron.tau_m must be a time, got 1 mV"),
        ('tau_m = "1 ms"', 'tau_m = 1', "neuron.tau_m must be a time"),  # missing unit
        ('tau_m = "1 ms"', 'tau_m = "-1 ms"', "time constant and must be > 0"),
        ('tau_syn = "2 ms"', 'tau_syn = "2 ms"\ntau_extra = "3 ms"', "unknown field neuron.tau_extra"),
        ('v_reset = "-55 mV"', 'v_reset = "-55 ms"', "neuron.v_reset must be a voltage"),
        ("[refinement]", "[refinemnt]", "unknown section"),
        ('"neuron.tau_m" = ', '"neuron.tau_x" = ', "names no parameter"),
        ("max_levels = 6", "max_levels = -1", "max_levels must be in 0..12"),
        ("n_interneurons = 1", "n_interneurons = 0", "n_interneurons must be >= 1"),
        ('coding = "current"', 'coding = "morse"', "input.coding must be one of"),
        ("dv/dt = s * (v_rest", "dv/dt = s * (v_rst", "uses 'v_rst'"),
        ('method = "euler"', 'method = "magic"', "integration method"),
        ('delay_ie = "0 ms"', 'delay_ie = "1 ms"', "needs delay-free"),
        ('name = "lif_kwta"', 'name = "lif_kwta', "not valid TOML"),
        ("k = 2", "k = 0", "circuit.k must satisfy 0 < k < n_channels = 32, got k = 0"),
        ("k = 2", "k = 32", "circuit.k must satisfy 0 < k < n_channels = 32, got k = 32"),
        ('method = "euler"', 'methd = "euler"', "unknown field neuron.methd"),
    ],
)
def test_bad_circuit_files(tmp_path, old, new, message):
    text = BUILTIN.read_text()
    assert old in text
    p = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_circuit(p)
    assert isinstance(info.value, HCSError)
    assert "\n" not in str(info.value)  # one line, names the file
    if "TOML" not in message:
        assert str(p) in str(info.value)


def test_missing_citation(tmp_path):
    lines = [ln for ln in BUILTIN.read_text().splitlines() if not ln.startswith('"neuron.v_reset"')]
    with pytest.raises(ConfigError, match="neuron.v_reset has no entry in \\[citations\\]"):
        load_circuit(_write(tmp_path, "\n".join(lines)))


def test_missing_file_and_unknown_builtin(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_circuit(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="neither a file nor a built-in"):
        load_circuit("no_such_circuit")


@pytest.mark.parametrize("k, n", [(0, 32), (-1, 32), (32, 32), (40, 32)])
def test_k_range(k, n):
    with pytest.raises(ConfigError, match="0 < k < n_channels"):
        check_k(k, n)

"""Energy profiles and the memory table (hcs_neuro.measure.profiles): the built-in file, user profile
files validated like every other input, and the per-access energy of an array."""

from __future__ import annotations

import math

import pytest

from hcs_neuro.core.errors import ConfigError, HCSError
from hcs_neuro.measure.profiles import (
    INCLUDES,
    get_profile,
    load_memory_table,
    load_profile_file,
    load_profiles,
    resolve_profiles,
)

GOOD = '''
[profiles.mychip]
kind = "spiking"
description = "a test chip"
citation = "Doe et al., Journal 1(1), 2030, Table 3"
scope = "per-operation"
includes = ["compute"]
synaptic_op = "2 pJ"
spike = "500 fJ"
neuron_update = "0.003 nJ"

[profiles.myref]
kind = "reference"
description = "a test accelerator"
citation = "Doe et al., Journal 1(1), 2030, Table 4"
scope = "per-operation"
includes = ["compute"]
mac = "1 pJ"
accumulate = "0.5 pJ"
'''


def write(tmp_path, text, name="chip.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_profiles_cite_and_declare_what_they_include():
    profiles = load_profiles()
    assert {"loihi", "truenorth", "odin", "cmos45_snn", "cmos45_lowprec", "cmos45_fp32"} <= set(profiles)
    for p in profiles.values():
        assert len(p.citation) > 40, p.name
        assert set(p.includes) <= set(INCLUDES) and "compute" in p.includes, p.name
        assert p.scope in ("per-operation", "all-in")
    # all-in figures contain memory (no data-movement term is added to them); 45 nm arithmetic does not
    assert profiles["truenorth"].scope == "all-in" and profiles["truenorth"].includes_memory
    assert profiles["loihi"].includes_memory and "leakage" not in profiles["loihi"].includes
    assert not profiles["cmos45_snn"].includes_memory and not profiles["cmos45_lowprec"].includes_memory
    assert profiles["odin"].unpriced == ("spike", "neuron_update")
    assert profiles["loihi"].synaptic_op_pj == pytest.approx(23.6)
    assert profiles["loihi"].neuron_update_pj == pytest.approx(52.0)
    assert profiles["cmos45_snn"].synaptic_op_pj == pytest.approx(0.1)
    assert profiles["cmos45_fp32"].mac_pj == pytest.approx(4.6)


def test_memory_table_is_horowitz_and_interpolates_log_log():
    mem = load_memory_table()
    assert "Horowitz" in mem.citation and mem.word_bits == 64
    assert mem.access_pj(100) == pytest.approx(10.0)  # below 8 KB: the 8 KB figure
    assert mem.access_pj(8192) == pytest.approx(10.0)
    assert mem.access_pj(32768) == pytest.approx(20.0)
    assert mem.access_pj(1 << 20) == pytest.approx(100.0)
    assert mem.access_pj(16384) == pytest.approx(10.0 * math.sqrt(2.0))  # halfway (log) from 8 to 32 KB
    assert mem.access_pj(2 << 20) == pytest.approx(1300.0)  # beyond the largest SRAM: DRAM
    assert mem.level_name(16384) == "sram_8kb..sram_32kb"


def test_user_profile_file_loads_with_units(tmp_path):
    profiles, memory = load_profile_file(write(tmp_path, GOOD))
    assert memory is None
    chip = profiles["mychip"]
    assert chip.kind == "spiking" and chip.source.endswith("chip.toml")
    assert (chip.synaptic_op_pj, chip.spike_pj, chip.neuron_update_pj) == pytest.approx((2.0, 0.5, 3.0))
    assert profiles["myref"].mac_pj == pytest.approx(1.0)
    got, mem = resolve_profiles(["loihi", str(tmp_path / "chip.toml")])
    assert [p.name for p in got] == ["loihi", "mychip", "myref"] and mem is None


def test_user_file_may_bring_its_own_memory_table(tmp_path):
    text = GOOD + '''
[memory]
description = "7 nm SRAM"
citation = "Jouppi et al., ISCA 2021, Table 2"
word_bits = 64
[[memory.levels]]
name = "sram_32kb"
capacity_bytes = 32768
access = "8.5 pJ"
[[memory.levels]]
name = "hbm"
access = "300 pJ"
'''
    _profiles, mem = load_profile_file(write(tmp_path, text))
    assert mem.access_pj(1000) == pytest.approx(8.5) and mem.access_pj(1e9) == pytest.approx(300.0)


BAD = [
    ('synaptic_op = "2 pJ"', 'synaptic_op = 2', "synaptic_op = 2 has no unit"),
    ('synaptic_op = "2 pJ"', 'synaptic_op = "2 ms"', "synaptic_op = '2 ms' is a time, not an energy"),
    ('synaptic_op = "2 pJ"', 'synaptic_op = "-2 pJ"', "synaptic_op = '-2 pJ': an energy must be >= 0"),
    ('synaptic_op = "2 pJ"', 'synaptic_op = "2 parsecs"', "profiles.mychip.synaptic_op = '2 parsecs'"),
    ('synaptic_op = "2 pJ"\n', '', "profiles.mychip.synaptic_op is missing"),
    ('citation = "Doe et al., Journal 1(1), 2030, Table 3"\n', '', "profiles.mychip.citation is missing"),
    ('citation = "Doe et al., Journal 1(1), 2030, Table 3"', 'citation = ""', "profiles.mychip.citation must be a"),
    ('includes = ["compute"]\nsynaptic_op', 'synaptic_op', "profiles.mychip.includes is missing"),
    ('includes = ["compute"]\nsynaptic_op', 'includes = ["compute", "magic"]\nsynaptic_op',
     "profiles.mychip.includes: unknown 'magic'"),
    ('scope = "per-operation"\nincludes = ["compute"]\nsynaptic_op',
     'scope = "all-in"\nincludes = ["compute", "memory"]\nsynaptic_op', "leakage, routing missing"),
    ('kind = "spiking"', 'kind = "analog"', "profiles.mychip.kind = 'analog'"),
    ('spike = "500 fJ"', 'spike = "500 fJ"\nmac = "1 pJ"', "unknown field 'mac' for a spiking profile"),
    ('spike = "500 fJ"\n', 'unpriced = ["spike"]\nspike = "500 fJ"\n', "spike is given and also listed in unpriced"),
    ('[profiles.mychip]', '[profile.mychip]', "unknown section [profile]"),
    ('[profiles.mychip]', '[profiles.mychip', "is not valid TOML"),
]


@pytest.mark.parametrize("old, new, message", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_profile_file_is_one_line_error_naming_file_and_field(tmp_path, old, new, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_profile_file(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_unpriced_events_are_allowed_and_flagged(tmp_path):
    path = write(tmp_path, GOOD.replace('spike = "500 fJ"\nneuron_update = "0.003 nJ"',
                                        'unpriced = ["spike", "neuron_update"]'))
    chip = load_profile_file(path)[0]["mychip"]
    assert chip.unpriced == ("spike", "neuron_update") and chip.spike_pj == 0.0


@pytest.mark.parametrize("text, message", [
    ('[memory]\ndescription = "x"\ncitation = "y"\nword_bits = 64\n[[memory.levels]]\nname = "a"\naccess = "1 pJ"\n'
     '[[memory.levels]]\nname = "b"\ncapacity_bytes = 10\naccess = "2 pJ"\n', "memory.levels[0].capacity_bytes is missing"),
    ('[memory]\ndescription = "x"\ncitation = "y"\nword_bits = 64\n[[memory.levels]]\nname = "a"\ncapacity_bytes = 100\n'
     'access = "1 pJ"\n[[memory.levels]]\nname = "b"\ncapacity_bytes = 10\naccess = "2 pJ"\n', "capacities must increase"),
    ('[memory]\ndescription = "x"\ncitation = "y"\n[[memory.levels]]\nname = "a"\naccess = "1 pJ"\n', "word_bits is missing"),
    ('[memory]\ndescription = "x"\nword_bits = 64\n[[memory.levels]]\nname = "a"\naccess = "1 pJ"\n', "memory.citation is missing"),
    ('[memory]\ndescription = "x"\ncitation = "y"\nword_bits = 64\n[[memory.levels]]\nname = "a"\naccess = "0 pJ"\n',
     "an access costs more than 0 pJ"),
])
def test_bad_memory_table(tmp_path, text, message):
    path = write(tmp_path, text, "mem.toml")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_profile_file(path)


def test_unknown_profile_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown spiking energy profile 'cmos45_fp32'"):
        get_profile("cmos45_fp32", kind="spiking")
    with pytest.raises(HCSError, match="not found"):
        resolve_profiles([str(tmp_path / "nope.toml")])
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="given twice"):
        resolve_profiles([str(path), str(path)])


def test_cli_energy_with_a_user_profile_file(tmp_path, capsys):
    import json

    from hcs_neuro.cli import main

    path = write(tmp_path, GOOD)
    rc = main(["energy", "digits_hcs", "--dataset", "digits", "--n-images", "12", "--analytic", "--no-progress",
               "--profile", str(path), "--profile", "truenorth", "--json", str(tmp_path / "e.json")])
    assert rc == 0, capsys.readouterr().err
    e = json.loads((tmp_path / "e.json").read_text())
    assert set(e["energy"]) == {"mychip", "myref", "truenorth"}
    chip = e["energy"]["mychip"]
    assert chip["source"] == str(path) and chip["data_movement_pj"]["total_pj"] > 0
    assert chip["totals_pj"]["with_data_movement_pj"] > chip["totals_pj"]["without_data_movement_pj"]
    tn = e["energy"]["truenorth"]
    assert tn["data_movement_pj"] is None  # all-in: no memory term
    assert tn["totals_pj"]["with_data_movement_pj"] == tn["totals_pj"]["without_data_movement_pj"]
    # the comparison always holds the model's own 45 nm pair, priced even if not requested
    assert {r["profile"] for r in e["comparison"]["rows"]} == {"cmos45_snn", "mychip", "truenorth"}


@pytest.mark.parametrize("edit, message", [
    (('mac = "1 pJ"', 'mac = "1 pW"'), "not an energy"),
    (('citation = "Doe et al., Journal 1(1), 2030, Table 4"\n', ''), "profiles.myref.citation is missing"),
])
def test_cli_energy_bad_profile_file_exit_2_before_any_work(tmp_path, capsys, edit, message):
    from hcs_neuro.cli import main

    path = write(tmp_path, GOOD.replace(*edit))
    rc = main(["energy", "digits_hcs", "--dataset", "digits", "--analytic", "--profile", str(path),
               "--json", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and str(path) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e.json").exists()

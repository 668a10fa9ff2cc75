"""Operation counting and energy profiles (hcs_neuro.measure.energy)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcs_neuro.measure.energy import (
    conv_dense_macs,
    conv_fan_out,
    linear_fan_out,
    reference_energy_pj,
    spiking_energy_pj,
    synaptic_ops,
)
from hcs_neuro.measure.profiles import get_profile, load_profiles
from hcs_neuro.core.errors import ConfigError


def _brute_force_conv2d(w, x, stride, padding):
    """Loop over every output and kernel tap; return (fan_out map, effective ops, dense MACs)."""
    c_out, c_in, kh, kw = w.shape
    _, h, wd = x.shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    fan = np.zeros((c_in, h, wd), dtype=np.int64)
    eff = dense = 0
    for o in range(c_out):
        for y in range(oh):
            for z in range(ow):
                for c in range(c_in):
                    for dy in range(kh):
                        for dz in range(kw):
                            i, j = y * stride - padding + dy, z * stride - padding + dz
                            if not (0 <= i < h and 0 <= j < wd):
                                continue
                            dense += 1
                            if w[o, c, dy, dz] != 0:
                                fan[c, i, j] += 1
                                eff += int(x[c, i, j] != 0)
    return fan, eff, dense


@settings(max_examples=40, deadline=None)
@given(
    c_out=st.integers(1, 3),
    c_in=st.integers(1, 3),
    k=st.integers(1, 3),
    h=st.integers(3, 7),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    seed=st.integers(0, 10_000),
)
def test_conv_fan_out_matches_brute_force(c_out, c_in, k, h, stride, padding, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, size=(c_out, c_in, k, k))  # ternary levels, many zeros
    x = rng.integers(0, 2, size=(c_in, h, h + 1))  # binary activities (spikes)
    fan, eff, dense = _brute_force_conv2d(w, x, stride, padding)
    got = conv_fan_out(w, (h, h + 1), stride, padding)
    np.testing.assert_array_equal(got, fan)
    # SOPs of one spike per active unit equal the effective (zero-skipping) ops of the reference.
    assert synaptic_ops(x, got) == eff
    assert conv_dense_macs(w.shape, (h, h + 1), stride, padding) == dense


def test_conv1d_fan_out_border_positions_have_fewer_targets():
    w = np.ones((2, 1, 3), dtype=int)
    fan = conv_fan_out(w, (5,), stride=1, padding=1)
    np.testing.assert_array_equal(fan, [[4, 6, 6, 6, 4]])


def test_linear_fan_out_counts_nonzero_columns():
    w = np.array([[1, 0, -1], [0, 0, 1]])
    np.testing.assert_array_equal(linear_fan_out(w), [1, 0, 2])


def test_profiles_have_citations_and_price_events():
    profiles = load_profiles()
    assert {"loihi", "cmos45_fp32", "cmos45_lowprec"} <= set(profiles)
    for p in profiles.values():
        assert len(p.citation) > 20, p.name
    loihi = get_profile("loihi", kind="spiking")
    e = spiking_energy_pj(loihi, sops=1000, spikes=10, neuron_updates=100)
    assert e["total_pj"] == pytest.approx(1000 * 23.6 + 10 * 1.7 + 100 * 52.0)
    ref = reference_energy_pj(get_profile("cmos45_fp32"), dense_macs=10, effective_ops=4)
    assert ref == {"dense_pj": pytest.approx(46.0), "effective_pj": pytest.approx(18.4)}


def test_unknown_or_wrong_kind_profile_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown energy profile 'tpu'.*loihi"):
        get_profile("tpu")
    with pytest.raises(ConfigError, match="unknown spiking energy profile 'cmos45_fp32'"):
        get_profile("cmos45_fp32", kind="spiking")
    with pytest.raises(ConfigError):
        spiking_energy_pj(get_profile("cmos45_fp32"), sops=1, spikes=1, neuron_updates=1)

"""Quantizers: ranges, idempotence, and unbiased stochastic rounding (statistical test)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.quant import (check_bits, probabilistic_step, quantize_levels, quantize_unsigned, stochastic_round,
                             weight_level_range)

reals = arrays(np.float64, st.integers(1, 50), elements=st.floats(-200, 200, allow_nan=False))


@pytest.mark.parametrize("bits,expected", [(1, (-1, 1)), (2, (-1, 1)), (3, (-3, 3)), (8, (-127, 127))])
def test_ranges(bits, expected):
    assert weight_level_range(bits) == expected


@settings(max_examples=80, deadline=None)
@given(reals, st.sampled_from([1, 2, 3, 4, 8]))
def test_quantize_levels_idempotent_and_in_range(x, bits):
    q = quantize_levels(x, bits)
    assert np.array_equal(quantize_levels(q, bits), q)
    lo, hi = weight_level_range(bits)
    assert q.min() >= lo and q.max() <= hi
    if bits == 1:
        assert not np.any(q == 0)


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-1, 2, allow_nan=False)), st.integers(1, 8))
def test_quantize_unsigned_idempotent(x, bits):
    q = quantize_unsigned(x, bits)
    top = 2 ** bits - 1
    assert q.min() >= 0 and q.max() <= top
    assert np.array_equal(quantize_unsigned(q / top, bits), q)


def test_stochastic_round_unbiased():
    """Mean of N = 200000 draws equals x within 5 standard errors (sd <= 0.5/sqrt(N) = 0.0011)."""
    rng = np.random.default_rng(7)
    n = 200_000
    for x in (0.1, 0.5, 0.93, -0.3, 2.25, -3.75):
        draws = stochastic_round(np.full(n, x), rng)
        se = np.sqrt((x - np.floor(x)) * (1 - (x - np.floor(x))) / n)
        assert abs(draws.mean() - x) <= 5 * se + 1e-12
        assert set(np.unique(draws)) <= {np.floor(x), np.floor(x) + 1}


def test_probabilistic_step_unbiased_ternary_and_binary():
    """E[new level] = level + delta away from the clip limits; tolerance 5 standard errors."""
    rng = np.random.default_rng(3)
    n = 200_000
    new = probabilistic_step(np.zeros(n, dtype=np.int64), np.full(n, 0.3), 2, rng)
    assert set(np.unique(new)) <= {0, 1}
    assert abs(new.mean() - 0.3) <= 5 * np.sqrt(0.3 * 0.7 / n)
    new = probabilistic_step(np.ones(n, dtype=np.int64), np.full(n, -0.5), 1, rng)  # binary: spacing 2
    assert set(np.unique(new)) <= {-1, 1}
    p = 0.25
    assert abs(new.mean() - (1 - 0.5)) <= 5 * 2 * np.sqrt(p * (1 - p) / n)
    # clipped at the range limits
    assert np.all(probabilistic_step(np.ones(10, dtype=np.int64), np.full(10, 5.0), 2, rng) == 1)


def test_stochastic_round_seeded():
    a = stochastic_round(np.linspace(-2, 2, 101), np.random.default_rng(5))
    b = stochastic_round(np.linspace(-2, 2, 101), np.random.default_rng(5))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("bits", [0, 9, 31, -1, 2.0, True, "2"])
def test_bits_out_of_range(bits):
    with pytest.raises(ConfigError, match="weight_bits"):
        check_bits(bits, "weight_bits", "cfg.toml")


def test_bits_full_precision_allowed():
    assert check_bits(32, "act_bits") == 32

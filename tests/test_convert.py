"""Conversion of a model into synapses, biases, bounds and race windows (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcs_neuro.core import reference
from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.brian.race import ladder_race, plan_network, race_window
from hcs_neuro.core.circuit_file import RaceParams
from hcs_neuro.core.topology import layer_synapses
from hcs_neuro.core.topology import conv_fan_out, linear_fan_out
from hcs_neuro.core.errors import ConfigError, ModelError
from hcs_neuro.core.model import random_model

TINY = {
    "name": "tiny",
    "input": {"shape": [1, 6, 6], "bits": 3},
    "precision": {"weight_bits": 2, "act_bits": 1},
    "hcs": {"k": 2},
    "layers": [
        {"type": "conv2d", "channels": 6, "kernel": 3, "padding": 1},
        {"type": "pool2d", "kernel": 2},
        {"type": "conv2d", "channels": 8, "kernel": 3, "stride": 2, "padding": 1, "k": 3},
        {"type": "linear", "channels": 4},
    ],
}


def tiny_model(seed=0):
    return random_model(load_architecture(TINY), seed=seed)


def test_synapse_count_equals_nonzero_weight_instances():
    """Synapses into a layer = non-zero weight instances (exact border fan-out from energy)."""
    m = tiny_model()
    arch = m.architecture
    for i, spec in enumerate(arch.layers):
        pre, post, w = layer_synapses(spec, m.layers[i])
        assert np.all(w != 0)
        if spec.type.startswith("conv"):
            expected = conv_fan_out(m.layers[i].weight_levels, spec.in_shape[1:], spec.stride, spec.padding).sum()
        elif spec.type == "linear":
            expected = linear_fan_out(m.layers[i].weight_levels).sum()
        else:
            expected = int(np.prod(spec.out_shape)) * spec.kernel ** 2
        assert pre.size == expected
        # no duplicate (pre, post) pairs
        assert len(set(zip(pre.tolist(), post.tolist()))) == pre.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synapses_reproduce_reference_drives_exactly(seed):
    """Summing level x weight over the synapses plus bias gives the reference's integer drive."""
    m = tiny_model(seed)
    rng = np.random.default_rng(seed)
    images = rng.random((5, 1, 6, 6))
    r = reference.forward(m, images)
    plan = plan_network(m)
    prev = reference.quantize_input(m, images).reshape(5, -1)
    for i, lp in enumerate(plan.layers):
        acc = np.tile(lp.bias, (5, 1))
        for n in range(5):
            np.add.at(acc[n], lp.post, lp.weight * prev[n, lp.pre])
        np.testing.assert_array_equal(acc, r.layers[i].drive.reshape(5, -1))
        assert acc.max() <= lp.drive_max and acc.min() >= lp.drive_min
        prev = r.layers[i].output.reshape(5, -1)


def test_hypercolumn_layout_and_tie_scores():
    plan = plan_network(tiny_model())
    lp = plan.layers[0]
    assert lp.n_hypercolumns == 36 and lp.n_channels == 6
    # cell c * 36 + s is channel c at location s; lower channels get the higher within-drive score
    assert lp.hypercolumn_of[2 * 36 + 5] == 5
    assert lp.tie[0] == 5 and lp.tie[5 * 36] == 0


def test_race_window_bound_and_timeline():
    # one-way race (1 rung): the coarse descent plus at most f steps per finer level
    g0, levels, steps = race_window(1000, 4)
    assert g0 == 4 ** levels
    assert steps == -(-1000 // g0) + levels * 4
    assert all(steps <= -(-1000 // 4 ** L) + L * 4 for L in range(0, 12))  # the chosen L minimises it
    # M rungs per step: M g0 per coarse step, ceil(f / M) steps per finer level
    for f, m in [(8, 8), (4, 8), (8, 3), (2, 1)]:
        g0, levels, steps = race_window(14592, f, rungs=m)
        assert g0 == f ** levels
        assert steps == -(-14592 // (m * g0)) + levels * -(-f // m)
        assert all(steps <= -(-14592 // (m * f ** L)) + L * -(-f // m) for L in range(0, 20))
    assert race_window(14592, 8, rungs=8)[2] == 5  # 8**5 >= 14592: one coarse step + 4 levels
    plan = plan_network(tiny_model(), RaceParams(refine_factor=2))
    assert plan.layers[0].race_start == 1  # step 0: the input spikes
    for a, b in zip(plan.layers, plan.layers[1:]):
        assert a.emit_step == a.race_start + a.window_steps - 1
        assert b.race_start == a.emit_step + 1  # the emission step is b's integration step
    assert plan.steps_per_image == plan.layers[-1].emit_step + 1 == 1 + sum(lp.window_steps for lp in plan.layers)


def test_phases_run_each_layer_in_its_window_only():
    plan = plan_network(tiny_model())
    ph = plan.phases()
    assert sum(n for n, _, _ in ph) == plan.steps_per_image
    assert ph[0] == (1, True, ())  # the input alone at step 0
    step = 1
    for (n, inputs, layers), lp in zip(ph[1:], plan.layers):
        assert not inputs and layers == (lp.index,) and n == lp.window_steps and step == lp.race_start
        step += n


def _reference_top_k(drive, k, eligible):
    order = np.lexsort((np.arange(drive.size), -drive))  # largest drive first, ties: lower index
    win = np.zeros(drive.size, bool)
    win[[c for c in order if eligible[c]][:k]] = True
    return win


@settings(max_examples=300, deadline=None)
@given(data=st.data(), c=st.integers(1, 40), f=st.sampled_from([2, 3, 4, 8]), m=st.sampled_from([1, 2, 3, 4, 8, 16]),
       positive=st.booleans(), levels=st.one_of(st.none(), st.integers(0, 5)))
def test_ladder_race_is_exact_and_within_its_window(data, c, f, m, positive, levels):
    """The race of one hypercolumn (the NumPy specification of the circuit) picks exactly the
    reference's top-k (ties to the lower channel, positive drives only in conv/pool layers) and
    decides within the window of race_window, for any ladder (rungs, refinement, levels)."""
    k = data.draw(st.integers(1, c))
    d_max = data.draw(st.integers(1, 300))
    d_min = -data.draw(st.integers(0, 300))
    pool = data.draw(st.lists(st.integers(d_min, d_max), min_size=1, max_size=4))  # few values: ties
    drive = np.array(data.draw(st.lists(st.sampled_from(pool), min_size=c, max_size=c)), dtype=np.int64)
    scores = drive * c + (c - 1 - np.arange(c))
    theta0 = (d_max + 1) * c
    floor = c if positive else d_min * c
    eligible = drive > 0 if positive else np.ones(c, bool)
    g0, _, window = race_window(theta0 - floor, f, levels, m)
    win, probes, received = ladder_race(scores, eligible, k, theta0, floor, g0, f, m)
    np.testing.assert_array_equal(win, _reference_top_k(drive, k, eligible))
    assert len(probes) <= window


def test_shipped_race_is_at_most_a_third_of_the_one_way_race():
    """The shipped ladder (8 rungs, f = 8) against the one-way race of the earlier release
    (1 rung, f = 4): steps per image <= 1/3 on the tiny model (docs/studies/network.md measures
    the shipped models)."""
    m = tiny_model()
    new = plan_network(m).steps_per_image
    old = plan_network(m, RaceParams(refine_factor=4, rungs=1))
    # the earlier release: per layer its window + a decision step, a spare step and an integration step
    one_way = 1 + sum(race_window(lp.theta0 - lp.floor, 4)[2] + 3 for lp in old.layers)
    assert new * 3 <= one_way


def test_full_precision_model_is_refused():
    arch = load_architecture(dict(TINY, precision={"weight_bits": 32, "act_bits": 1}))
    with pytest.raises(ModelError, match="full-precision"):
        plan_network(random_model(arch))


def test_bad_race_parameters():
    with pytest.raises(ConfigError, match="refine_factor"):
        RaceParams(refine_factor=1)
    with pytest.raises(ConfigError, match="dt"):
        RaceParams(dt_ms=-1.0)
    for bad in (0, 65, 2.0, True):
        with pytest.raises(ConfigError, match="rungs"):
            RaceParams(rungs=bad)


def test_float32_bound_covers_the_ladder():
    """float32 is refused where a score or a rung of the ladder reaches 2**24."""
    arch = load_architecture(dict(TINY, input={"shape": [1, 6, 6], "bits": 8}))
    m = random_model(arch, seed=0)
    m.layers[0].weight_levels = np.ones_like(m.layers[0].weight_levels)
    plan_network(m, RaceParams(float32=True))  # small scores: fine
    m.layers[0].bias_levels = np.full_like(m.layers[0].bias_levels, 2 ** 20)
    with pytest.raises(ConfigError, match="2\\*\\*24"):
        plan_network(m, RaceParams(float32=True))

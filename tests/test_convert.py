"""Conversion of a model into synapses, biases, bounds and race windows (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.core import reference
from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.brian.race import plan_network, race_window
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
    g0, levels, steps = race_window(1000, 4)
    assert g0 == 4 ** levels
    assert steps == -(-1000 // g0) + levels * 4 + 2
    # the chosen L minimises the bound
    assert all(steps <= -(-1000 // 4 ** L) + L * 4 + 2 for L in range(0, 12))
    plan = plan_network(tiny_model(), RaceParams(refine_factor=2))
    for a, b in zip(plan.layers, plan.layers[1:]):
        assert b.race_start == a.emit_step + 1
    assert plan.steps_per_image == plan.layers[-1].emit_step + 1


def test_full_precision_model_is_refused():
    arch = load_architecture(dict(TINY, precision={"weight_bits": 32, "act_bits": 1}))
    with pytest.raises(ModelError, match="full-precision"):
        plan_network(random_model(arch))


def test_bad_race_parameters():
    with pytest.raises(ConfigError, match="refine_factor"):
        RaceParams(refine_factor=1)
    with pytest.raises(ConfigError, match="dt"):
        RaceParams(dt_ms=-1.0)

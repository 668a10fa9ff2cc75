"""Model files: round trip, atomic writes, and every malformed-file error."""

import json

import numpy as np
import pytest

from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.errors import ModelError
from hcs_neuro.core.model import load_model, random_model, save_model

ARCH = {"name": "io", "input": {"shape": [1, 8, 8], "bits": 4}, "precision": {"weight_bits": 2, "act_bits": 1},
        "layers": [{"type": "conv2d", "channels": 8, "kernel": 3, "padding": 1, "k": 2},
                   {"type": "pool2d", "kernel": 2}, {"type": "linear", "channels": 10}]}


@pytest.fixture
def model():
    return random_model(load_architecture(ARCH), seed=3)


def test_round_trip(tmp_path, model):
    model.metadata = {"dataset": "digits", "test_accuracy": 0.5}
    path = save_model(model, tmp_path / "m.npz")
    back = load_model(path)
    assert back.architecture == model.architecture
    assert back.metadata == model.metadata
    for a, b in zip(model.layers, back.layers):
        if a.weight_levels is not None:
            assert np.array_equal(a.weight_levels, b.weight_levels) and b.weight_levels.dtype == np.int8
            assert np.array_equal(a.bias_levels, b.bias_levels)
            assert a.weight_scale == b.weight_scale
        assert a.act_step == b.act_step
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert all(npz[k].dtype != object for k in npz.files)


def test_random_model_seeded():
    arch = load_architecture(ARCH)
    a, b = random_model(arch, 5), random_model(arch, 5)
    assert all(np.array_equal(x.weight_levels, y.weight_levels) for x, y in zip(a.layers, b.layers)
               if x.weight_levels is not None)


def test_save_invalid_writes_nothing(tmp_path, model):
    model.layers[0].weight_levels = np.zeros((3, 3), dtype=np.int64)
    with pytest.raises(ModelError, match="layer0_weight_levels"):
        save_model(model, tmp_path / "bad.npz")
    assert list(tmp_path.iterdir()) == []


def test_truncated(tmp_path, model):
    path = save_model(model, tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="m.npz"):
        load_model(path)
    path.write_bytes(b"")
    with pytest.raises(ModelError):
        load_model(path)


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    for k, v in list(arrays.items()):
        if v is None:
            del arrays[k]
    np.savez(path, **arrays)


def test_wrong_shape_names_array(tmp_path, model):
    path = save_model(model, tmp_path / "m.npz")
    _rewrite(path, layer2_weight_levels=np.zeros((10, 7), dtype=np.int8))
    with pytest.raises(ModelError, match=r"'layer2_weight_levels' has shape \(10, 7\)"):
        load_model(path)


def test_object_array(tmp_path, model):
    path = save_model(model, tmp_path / "m.npz")
    _rewrite(path, layer0_bias_levels=np.array([{"evil": 1}] * 8, dtype=object))
    with pytest.raises(ModelError, match="layer0_bias_levels"):
        load_model(path)


def test_missing_array_and_levels_out_of_range(tmp_path, model):
    path = save_model(model, tmp_path / "m.npz")
    _rewrite(path, layer0_weight_scale=None)
    with pytest.raises(ModelError, match="layer0_weight_scale"):
        load_model(path)
    path = save_model(model, tmp_path / "m2.npz")
    _rewrite(path, layer0_weight_levels=np.full((8, 1, 3, 3), 5, dtype=np.int8))
    with pytest.raises(ModelError, match=r"levels in -1..1"):
        load_model(path)


def test_bad_architecture_json(tmp_path, model):
    path = save_model(model, tmp_path / "m.npz")
    spec = dict(ARCH, layers=[dict(ARCH["layers"][0], k=99)] + ARCH["layers"][1:])
    _rewrite(path, architecture_json=np.str_(json.dumps(spec)))
    with pytest.raises(ModelError, match="architecture_json"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.npz")

"""Architecture TOML: shapes, k resolution, overrides and every malformed-config error."""

import pytest

from hcs_neuro.core.architecture import load_architecture, with_overrides
from hcs_neuro.core.errors import ConfigError

BASE = {
    "name": "t",
    "input": {"shape": [1, 8, 8], "bits": 4},
    "precision": {"weight_bits": 2, "act_bits": 1},
    "hcs": {"k": 0.25},
    "layers": [{"type": "conv2d", "channels": 16, "kernel": 3, "padding": 1},
               {"type": "pool2d", "kernel": 2, "k": 0.5},
               {"type": "linear", "channels": 10}],
}


def _with(**changes):
    import copy

    d = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = d
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return d


def test_shapes_and_k():
    a = load_architecture(BASE)
    conv, pool, lin = a.layers
    assert conv.out_shape == (16, 8, 8) and conv.k == 4 and conv.weight_shape == (16, 1, 3, 3)
    assert pool.out_shape == (16, 4, 4) and pool.k == 8 and pool.stride == 2
    assert lin.weight_shape == (10, 256) and lin.k is None and a.n_classes == 10
    assert load_architecture(a.to_dict()) == a


def test_conv1d_signals():
    a = load_architecture({"input": {"shape": [2, 50]}, "layers": [
        {"type": "conv1d", "channels": 8, "kernel": 5, "stride": 2, "k": 2},
        {"type": "pool1d", "kernel": 3}, {"type": "linear", "channels": 3}]})
    assert a.layers[0].out_shape == (8, 23) and a.layers[1].out_shape == (8, 7)
    assert a.layers[0].weight_shape == (8, 2, 5)


def test_overrides():
    a = load_architecture(BASE)
    b = with_overrides(a, weight_bits=4, act_bits=2, k=2, hcs=None)
    assert all(l.weight_bits == 4 for l in b.layers) and b.layers[0].k == 2 and b.layers[1].k == 2
    c = with_overrides(a, hcs=False)
    assert all(l.k is None for l in c.layers)


def test_file_errors_name_file(tmp_path):
    p = tmp_path / "arch.toml"
    p.write_text('name = "x"\n[input]\nshape = [1, 8, 8]\nbogus = 3\n[[layers]]\ntype = "linear"\nchannels = 10\n')
    with pytest.raises(ConfigError) as exc:
        load_architecture(p)
    assert str(p) in str(exc.value) and "bogus" in str(exc.value)
    p.write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_architecture(p)
    with pytest.raises(ConfigError, match="not found"):
        load_architecture(tmp_path / "missing.toml")


@pytest.mark.parametrize("changes,match", [
    ({"layers.0.colour": 1}, "unknown key 'colour'"),
    ({"layers.0.channels": "16"}, "wrong type"),
    ({"layers.0.kernel": 2.5}, "wrong type"),
    ({"input.shape": [1, 8]}, "needs a 3-D input"),
    ({"input.shape": [0, 8, 8]}, "shape"),
    ({"layers.0.k": 0}, "k = 0"),
    ({"layers.0.k": 17}, "k = 17"),
    ({"layers.0.k": -0.5}, "k = -0.5"),
    ({"precision.weight_bits": 9}, "weight_bits = 9"),
    ({"precision.act_bits": 0}, "act_bits = 0"),
    ({"input.bits": 12}, "input_bits = 12"),
    ({"layers.0.type": "conv3d"}, "type = 'conv3d'"),
    ({"layers.0.kernel": 20}, "does not fit"),
    ({"layers.1.type": "linear"}, "linear"),
    ({"hcs.enabled": 1}, "wrong type"),
])
def test_malformed(changes, match):
    with pytest.raises(ConfigError, match=match):
        load_architecture(_with(**changes))


def test_documented_experiment_configs_load():
    """The variant configs that docs/studies/training.md's experiments name still load, keep the shipped
    Fashion config's input, and really differ from it in their layers (k, width or precision)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shipped = load_architecture(root / "models" / "configs" / "fashion_hcs_ternary.toml")
    configs = sorted((root / "docs" / "data" / "configs").glob("fashion_*.toml"))
    assert len(configs) >= 5
    for path in configs:
        arch = load_architecture(path)
        assert arch.name != shipped.name and arch.input_shape == shipped.input_shape, path.name
        assert _signature(arch) != _signature(shipped), path.name


def _signature(arch):
    return [(l.type, l.out_shape, l.k, l.weight_bits, l.act_bits) for l in arch.layers]

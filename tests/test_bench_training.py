"""The plain-PyTorch baseline of analysis/bench/bench_training.py is the same architecture as the HCS
model it is compared with (same layers, same weight shapes), only float, ReLU and no k-WTA."""

import importlib.util
from pathlib import Path

import pytest

import torch

from hcs_neuro.core.architecture import load_architecture  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_training", ROOT / "analysis" / "bench" / "bench_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("config", ["digits.toml", "fashion_short_budget.toml"])
def test_plain_baseline_has_the_architectures_weights(config):
    arch = load_architecture(ROOT / "models" / "configs" / config)
    net = _bench().plain_pytorch_net(arch)
    weights = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear))]
    expected = [tuple(s.weight_shape) for s in arch.layers if s.has_weights]
    assert [tuple(w.shape) for w in weights] == expected
    x = torch.rand((3,) + tuple(arch.input_shape))
    assert net(x).shape == (3, arch.layers[-1].out_shape[0])
    # sum pooling, as in the HCS model: a window of ones sums to its size
    pools = [m for m in net.modules() if type(m).__name__ == "SumPool"]
    assert pools and float(pools[0](torch.ones(1, 1, 4, 4)).max()) == pools[0].spec.kernel ** 2

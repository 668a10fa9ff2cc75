"""NumPy reference forward pass: exact integer arithmetic, semantics of each layer."""

import numpy as np
import pytest

from hcs_neuro.core.architecture import load_architecture
from hcs_neuro.core.errors import DataError
from hcs_neuro.core.kwta import kwta_mask
from hcs_neuro.core.model import random_model
from hcs_neuro.core.reference import evaluate, forward, layer_forward, quantize_input

ARCH = {"input": {"shape": [1, 8, 8], "bits": 4}, "precision": {"weight_bits": 2, "act_bits": 1},
        "layers": [{"type": "conv2d", "channels": 8, "kernel": 3, "padding": 1, "k": 2},
                   {"type": "pool2d", "kernel": 2, "k": 3}, {"type": "linear", "channels": 10}]}


def _naive_conv(x, w, b, pad):
    n, c, h, wd = x.shape
    o = w.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, o, h, wd), dtype=np.int64)
    for i in range(h):
        for j in range(wd):
            patch = xp[:, :, i:i + 3, j:j + 3].reshape(n, -1)
            out[:, :, i, j] = patch @ w.reshape(o, -1).T
    return out + b[None, :, None, None]


def test_forward_matches_naive_integer_loops():
    model = random_model(load_architecture(ARCH), seed=1)
    images = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    res = forward(model, images)
    x0 = quantize_input(model, images)
    assert x0.dtype == np.int64 and x0.max() <= 15
    p0 = model.layers[0]
    drive0 = _naive_conv(x0, np.asarray(p0.weight_levels, np.int64), np.asarray(p0.bias_levels, np.int64), 1)
    assert res.layers[0].drive.dtype == np.int64
    assert np.array_equal(res.layers[0].drive, drive0)
    win0 = kwta_mask(drive0, 2) & (drive0 > 0)
    assert np.array_equal(res.layers[0].winners, win0)
    pooled = win0.reshape(6, 8, 4, 2, 4, 2).sum(axis=(3, 5))
    assert np.array_equal(res.layers[1].drive, pooled)
    win1 = kwta_mask(pooled, 3) & (pooled > 0)
    assert np.array_equal(res.layers[1].output, win1.astype(np.int64))
    p2 = model.layers[2]
    logits = win1.reshape(6, -1).astype(np.int64) @ np.asarray(p2.weight_levels, np.int64).T + p2.bias_levels
    assert np.array_equal(res.logits, logits) and np.array_equal(res.pred, np.argmax(logits, 1))
    assert res.layers[2].winners is None
    # layer_forward on a given input reproduces the chained result
    d, w, o = layer_forward(model, 1, res.layers[0].output)
    assert np.array_equal(d, res.layers[1].drive) and np.array_equal(o, res.layers[1].output)


def test_batch_size_does_not_change_results():
    model = random_model(load_architecture(ARCH), seed=2)
    images = np.random.default_rng(1).random((9, 1, 8, 8))
    a = forward(model, images, batch_size=2)
    b = forward(model, images, batch_size=256)
    assert np.array_equal(a.logits, b.logits)


def test_multibit_activity_levels():
    arch = load_architecture(dict(ARCH, precision={"weight_bits": 3, "act_bits": 2}))
    model = random_model(arch, seed=4)
    model.layers[0].act_step = 5
    x = quantize_input(model, np.random.default_rng(2).random((4, 1, 8, 8)))
    drive, win, out = layer_forward(model, 0, x)
    expect = np.where(win, np.clip(np.ceil(drive / 5), 0, 3), 0)
    assert np.array_equal(out, expect) and out.max() <= 3
    assert np.all(out[win] >= 1)


def test_evaluate_counts():
    model = random_model(load_architecture(ARCH), seed=1)
    images = np.random.default_rng(0).random((20, 1, 8, 8))
    labels = np.arange(20) % 10
    rep = evaluate(model, images, labels)
    res = forward(model, images)
    assert rep["accuracy"] == pytest.approx(float((res.pred == labels).mean()))
    assert rep["macs_per_image"] == 8 * 64 * 9 + 10 * 8 * 16
    # conv layer: at most k = 2 of 8 channels active per location
    assert rep["layers"][0]["active_per_hypercolumn"] <= 2.0
    assert rep["layers"][0]["active_fraction"] == pytest.approx(float((res.layers[0].output != 0).mean()))
    zero = np.mean(np.concatenate([np.ravel(model.layers[i].weight_levels) == 0 for i in (0, 2)]))
    assert rep["zero_weight_fraction"] == pytest.approx(zero)
    assert rep["effective_macs_per_image"] <= rep["macs_per_image"]


def test_wrong_image_shape():
    model = random_model(load_architecture(ARCH), seed=1)
    with pytest.raises(DataError, match="do not fit"):
        forward(model, np.zeros((2, 1, 28, 28)))

"""The compiled k-WTA (hcs_neuro/train/csrc/kwta.cpp) equals the PyTorch path bit for bit.

In CI ``HCS_NEURO_KWTA_EXT=1`` (set by .ci/run) makes a failed build an error, so these tests
cannot skip there; elsewhere they skip when no C++ toolchain is available.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import torch

from hcs_neuro.train import ext as _kwta_ext  # noqa: E402
from hcs_neuro.core.architecture import load_architecture, with_overrides  # noqa: E402
from hcs_neuro.core.datasets import load_dataset  # noqa: E402
from hcs_neuro.train import load_train_config, train  # noqa: E402
from hcs_neuro.train.kwta import select_torch  # noqa: E402

from test_training import IMG, SIG  # noqa: E402


@pytest.fixture(scope="module")
def ext():
    module = _kwta_ext.load()
    if module is None:
        pytest.skip("compiled k-WTA unavailable here (no C++ toolchain?)")
    return module


shapes = st.one_of(
    st.tuples(st.integers(1, 3), st.integers(2, 12), st.integers(1, 4), st.integers(1, 4)),  # conv2d
    st.tuples(st.integers(1, 3), st.integers(2, 12), st.integers(1, 6)))  # conv1d


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_select_equals_pytorch_path(ext, data):
    shape = data.draw(shapes)
    exact = data.draw(st.booleans())
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    # small integer ranges: ties at the k-th value are the common case, as with pooled counts
    hi = data.draw(st.sampled_from([2, 5, 300]))
    d = data.draw(arrays(dtype, shape, elements=st.integers(-hi, hi).map(float)))
    if not exact:  # real-valued drives (full precision)
        d = d + data.draw(arrays(dtype, shape, elements=st.floats(-0.5, 0.5, width=32)))
    k = data.draw(st.integers(1, shape[1] - 1))
    scale = data.draw(st.sampled_from([0.05, 0.3, 1.0, 1 / 255]))
    dd = torch.as_tensor(d)
    for window in (True, False):
        win, winf, surr = select_torch(dd, k, exact, window, scale)
        res = ext.kwta_select(dd, k, exact, window, scale)
        assert torch.equal(res[0], winf), "winners"
        if exact:
            assert torch.all(res[0].sum(1) <= k)
        if window:
            assert torch.equal(res[1], surr), "surrogate"
        else:
            assert len(res) == 1


@pytest.mark.parametrize("channels", [5, 32, 63, 64, 65, 128, 200])
@pytest.mark.parametrize("exact", [True, False])
def test_select_wide_hypercolumns(ext, channels, exact):
    """Both selection paths of the kernel (bisection over integer drives where it takes fewer
    passes than insertion, insertion otherwise), tiles of 16 locations full and partial."""
    gen = torch.Generator().manual_seed(channels)
    for hi, k in ((3, channels // 4), (400, channels // 2), (1, 1), (2, channels - 1), (5000, max(1, channels // 8))):
        k = max(1, min(k, channels - 1))
        d = torch.randint(-hi, hi + 1, (3, channels, 7, 5), generator=gen).float()
        if not exact:
            d = d + torch.rand(d.shape, generator=gen) - 0.5
        _, winf, surr = select_torch(d, k, exact, True, 0.2)
        res = ext.kwta_select(d, k, exact, True, 0.2)
        assert torch.equal(res[0], winf) and torch.equal(res[1], surr)


def test_select_mixed_ranges_across_a_tile(ext):
    """Locations of one tile whose drive ranges call for different passes (one wide lane, the
    rest pooled-count-like), in float32 and float64."""
    gen = torch.Generator().manual_seed(7)
    for dtype in (torch.float32, torch.float64):
        d = torch.randint(0, 5, (2, 48, 40), generator=gen).to(dtype)
        d[0, :, 3] = torch.randint(-30000, 30000, (48,), generator=gen).to(dtype)
        d[1, :, 17] = 7.0  # every channel tied
        for k in (1, 6, 24, 47):
            _, winf, surr = select_torch(d, k, True, True, 0.01)
            res = ext.kwta_select(d, k, True, True, 0.01)
            assert torch.equal(res[0], winf) and torch.equal(res[1], surr)


def test_select_handles_non_contiguous_input(ext):
    d = torch.randint(-3, 4, (2, 5, 6, 8)).float().permute(0, 1, 3, 2)
    assert not d.is_contiguous()
    _, winf, surr = select_torch(d, 2, True, True, 0.5)
    res = ext.kwta_select(d, 2, True, True, 0.5)
    assert torch.equal(res[0], winf) and torch.equal(res[1], surr)


def test_select_empty_batch(ext):
    d = torch.zeros(0, 4, 2, 2)
    res = ext.kwta_select(d, 2, True, True, 1.0)
    assert res[0].shape == d.shape and res[1].shape == d.shape


def test_select_rejects_bad_k(ext):
    d = torch.zeros(1, 4, 2, 2)
    for k in (0, 4, 5):
        with pytest.raises(RuntimeError, match="k < channels"):
            ext.kwta_select(d, k, True, False, 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel,shape", [(2, (3, 5, 8, 6)), (2, (2, 4, 28, 28)), (3, (2, 3, 9, 6)), (1, (1, 2, 3, 3))])
def test_sum_pool_equals_straight_through_then_avg_pool(ext, dtype, kernel, shape):
    """The fused pooling of binary activities: forward the window sums, backward the gradient of
    _STE then avg_pool2d(divisor_override=1), bit for bit."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(kernel * 100 + shape[-1])
    value = torch.randint(0, 2, shape, generator=gen).to(dtype)
    slope = torch.rand(shape, generator=gen, dtype=dtype) * (torch.rand(shape, generator=gen) < 0.7).to(dtype)
    out = ext.sum_pool2d(value, kernel, kernel)
    ref_in = value.clone().requires_grad_()
    ref = F.avg_pool2d(ref_in, kernel, kernel, 0, count_include_pad=True, divisor_override=1)
    assert torch.equal(out, ref)
    grad = torch.randn(ref.shape, generator=gen, dtype=dtype)
    grad[0, 0, 0, 0] = -0.0
    ref.backward(grad)
    back = ext.sum_pool2d_backward(grad, slope, kernel, kernel)
    expected = ref_in.grad * slope
    assert torch.equal(back, expected)
    assert torch.equal(torch.signbit(back), torch.signbit(expected))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,k,kernel,exact,hi", [
    ((3, 32, 28, 28), 8, 2, True, 1500),   # Fashion conv 1: insertion
    ((2, 64, 14, 14), 16, 2, True, 60),    # Fashion conv 2: bisection
    ((2, 12, 9, 6), 3, 3, True, 4),        # ties everywhere, 3x3 windows, short rows
    ((2, 7, 4, 10), 2, 2, False, 3),       # real-valued drives
])
def test_kwta_pool_equals_select_then_pool(ext, dtype, shape, k, kernel, exact, hi):
    """The fused k-WTA + straight-through activities + sum pooling of a binary layer: forward the
    window sums of the winners, backward the drive's gradient, both bit for bit as kwta_select,
    _STE and avg_pool2d(divisor_override=1)."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(shape[1] + kernel)
    d = torch.randint(-hi, hi + 1, shape, generator=gen).to(dtype)
    if not exact:
        d = d + torch.rand(shape, generator=gen, dtype=dtype) - 0.5
    scale = 0.013
    win, surr = ext.kwta_select(d, k, exact, True, scale)
    pooled, centre = ext.kwta_pool(d, k, exact, kernel, kernel)
    assert torch.equal(pooled, F.avg_pool2d(win, kernel, kernel, 0, count_include_pad=True, divisor_override=1))
    assert centre.shape == (shape[0],) + shape[2:]
    value = win.clone().requires_grad_()
    ref = F.avg_pool2d(value, kernel, kernel, 0, count_include_pad=True, divisor_override=1)
    grad = torch.randn(ref.shape, generator=gen, dtype=dtype)
    ref.backward(grad)
    assert torch.equal(ext.kwta_pool_backward(grad, d, centre, scale, kernel, kernel), value.grad * surr)


def _data(arch, n=320):
    if tuple(arch.input_shape) == (1, 8, 8):
        x, y = load_dataset("digits", "train")
        xt, yt = load_dataset("digits", "test")
        return (x[:n], y[:n]), (xt[:100], yt[:100])
    rng = np.random.default_rng(0)  # random 1-D signals, 4 classes (for the conv1d layer)
    x = rng.random((n + 100,) + tuple(arch.input_shape)).astype(np.float32)
    y = rng.integers(0, 4, n + 100)
    return (x[:n], y[:n]), (x[n:], y[n:])


@pytest.mark.parametrize("spec,overrides,train_over", [
    (IMG, {}, {}),                                            # ternary / binary, window STE
    (IMG, {"weight_bits": 1}, {"learning": "shadow"}),        # binary weights, shadow
    (IMG, {"act_bits": 2}, {}),                               # multi-bit activities
    (IMG, {}, {"ste": "winners"}),                            # winners-only STE
    (IMG, {}, {"ste_width": 0.4}),                            # a narrower window
    (SIG, {}, {}),                                            # conv1d
    (IMG, {"hcs": False}, {}),                                # binarisation without k-WTA, pooled
])
def test_training_with_compiled_kwta_is_bit_identical(ext, spec, overrides, train_over, monkeypatch):
    import hcs_neuro.train as T

    arch = load_architecture(spec)
    if overrides:
        arch = with_overrides(arch, **overrides)
    cfg = load_train_config({"training": {"dataset": "digits", "epochs": 1, "batch_size": 32, "seed": 3,
                                          "lr": 0.05, **train_over}})
    train_data, test_data = _data(arch)
    runs = []
    for fused in (True, False):
        make = T.HCSNet

        def patched(*a, _fused=fused, _make=make, **kw):
            net = _make(*a, **kw)
            net.use_fused = None if _fused else False
            return net

        monkeypatch.setattr(T, "HCSNet", patched)
        runs.append(train(arch, cfg, progress=False, train_data=train_data, test_data=test_data))
        monkeypatch.setattr(T, "HCSNet", make)
    (m1, r1), (m2, r2) = runs
    assert r1["test_accuracy"] == r2["test_accuracy"]
    for a, b in zip(m1.layers, m2.layers):
        if a.weight_levels is not None:
            assert np.array_equal(a.weight_levels, b.weight_levels)
            assert np.array_equal(a.bias_levels, b.bias_levels)
        assert a.act_step == b.act_step


def test_disabled_or_failed_build_falls_back(monkeypatch, tmp_path):
    monkeypatch.setattr(_kwta_ext, "_STATE", {})
    monkeypatch.setenv("HCS_NEURO_KWTA_EXT", "0")
    assert _kwta_ext.load() is None
    # a build that fails: one warning, then the PyTorch path (None); with =1 it raises instead
    broken = tmp_path / "kwta.cpp"
    broken.write_text("#error this extension does not compile\n")
    monkeypatch.setattr(_kwta_ext, "_SOURCE", broken)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(_kwta_ext, "_STATE", {})
    monkeypatch.setenv("HCS_NEURO_KWTA_EXT", "auto")
    with pytest.warns(RuntimeWarning, match="compiled k-WTA unavailable"):
        assert _kwta_ext.load() is None
    assert _kwta_ext.load() is None  # cached: no second build, no second warning
    monkeypatch.setattr(_kwta_ext, "_STATE", {})
    monkeypatch.setenv("HCS_NEURO_KWTA_EXT", "1")
    with pytest.raises(Exception):
        _kwta_ext.load()


def test_pip_installed_ninja_is_found_without_an_activated_venv(monkeypatch, tmp_path):
    """`.venv/bin/python` run directly has no .venv/bin on PATH; the build must still find ninja."""
    import shutil

    import ninja  # noqa: F401  (a required dependency: a broken install fails here)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("ninja") is None
    _kwta_ext._put_ninja_on_path()
    assert shutil.which("ninja") is not None

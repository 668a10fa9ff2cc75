"""The compiled k-WTA (hcs_neuro/csrc/kwta.cpp) equals the PyTorch path bit for bit.

In CI ``HCS_NEURO_KWTA_EXT=1`` (set by .ci/run) makes a failed build an error, so these tests
cannot skip there; elsewhere they skip when no C++ toolchain is available.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

torch = pytest.importorskip("torch")

from hcs_neuro import _kwta_ext  # noqa: E402
from hcs_neuro.architecture import load_architecture, with_overrides  # noqa: E402
from hcs_neuro.datasets import load_dataset  # noqa: E402
from hcs_neuro.training import _select_torch, load_train_config, train  # noqa: E402

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
        win, winf, surr = _select_torch(torch, dd, k, exact, window, scale)
        res = ext.kwta_select(dd, k, exact, window, scale)
        assert torch.equal(res[0], winf), "winners"
        if exact:
            assert torch.all(res[0].sum(1) <= k)
        if window:
            assert torch.equal(res[1], surr), "surrogate"
        else:
            assert len(res) == 1


@pytest.mark.parametrize("channels", [63, 64, 65, 128, 200])
@pytest.mark.parametrize("exact", [True, False])
def test_select_wide_hypercolumns(ext, channels, exact):
    """Both selection paths of the kernel (rank counting up to 64 channels, nth_element above)."""
    gen = torch.Generator().manual_seed(channels)
    for hi, k in ((3, channels // 4), (400, channels // 2), (1, 1), (2, channels - 1)):
        d = torch.randint(-hi, hi + 1, (3, channels, 5, 4), generator=gen).float()
        if not exact:
            d = d + torch.rand(d.shape, generator=gen) - 0.5
        _, winf, surr = _select_torch(torch, d, k, exact, True, 0.2)
        res = ext.kwta_select(d, k, exact, True, 0.2)
        assert torch.equal(res[0], winf) and torch.equal(res[1], surr)


def test_select_handles_non_contiguous_input(ext):
    d = torch.randint(-3, 4, (2, 5, 6, 8)).float().permute(0, 1, 3, 2)
    assert not d.is_contiguous()
    _, winf, surr = _select_torch(torch, d, 2, True, True, 0.5)
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
    (SIG, {}, {}),                                            # conv1d
])
def test_training_with_compiled_kwta_is_bit_identical(ext, spec, overrides, train_over, monkeypatch):
    import hcs_neuro.training as T

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

    pytest.importorskip("ninja")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("ninja") is None
    _kwta_ext._put_ninja_on_path()
    assert shutil.which("ninja") is not None

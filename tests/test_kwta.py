"""k-WTA across channels: exactly k winners, deterministic ties, equivariance, monotonicity."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hcs_neuro.core.errors import ConfigError, HCSError
from hcs_neuro.core.kwta import kwta_mask, resolve_k

drives = arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 3), st.integers(1, 3)),
                elements=st.integers(-5, 5))


@settings(max_examples=60, deadline=None)
@given(drives, st.data())
def test_keeps_exactly_k(d, data):
    k = data.draw(st.integers(1, d.shape[1]))
    mask = kwta_mask(d, k)
    assert mask.shape == d.shape
    assert np.all(mask.sum(axis=1) == k)
    # every winner's drive >= every loser's drive, per hypercolumn
    win_min = np.where(mask, d, 99).min(axis=1)
    lose_max = np.where(~mask, d, -99).max(axis=1)
    assert np.all(win_min >= lose_max)


@settings(max_examples=60, deadline=None)
@given(drives, st.data())
def test_ties_lower_index_wins(d, data):
    k = data.draw(st.integers(1, d.shape[1]))
    mask = kwta_mask(d, k)
    # among channels equal to the k-th largest value, the winners are the lowest indices
    for n, h, w in np.ndindex(d.shape[0], d.shape[2], d.shape[3]):
        col, m = d[n, :, h, w], mask[n, :, h, w]
        kth = np.sort(col)[::-1][k - 1]
        tied = np.flatnonzero(col == kth)
        n_tied_winners = int(m[tied].sum())
        assert list(np.flatnonzero(m[tied])) == list(range(n_tied_winners))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=12, unique=True), st.data())
def test_permutation_equivariant_without_ties(values, data):
    d = np.array(values)[None, :]
    k = data.draw(st.integers(1, len(values)))
    perm = np.array(data.draw(st.permutations(range(len(values)))))
    assert np.array_equal(kwta_mask(d[:, perm], k), kwta_mask(d, k)[:, perm])


@settings(max_examples=60, deadline=None)
@given(drives, st.data())
def test_monotone(d, data):
    """Raising a winner keeps it winning; lowering a loser keeps it losing."""
    k = data.draw(st.integers(1, d.shape[1]))
    mask = kwta_mask(d, k)
    bump = data.draw(st.integers(1, 10))
    up = d + bump * mask
    assert np.array_equal(kwta_mask(up, k) & mask, mask)
    down = d - bump * (~mask)
    assert np.array_equal(kwta_mask(down, k), mask)


def test_axis_and_float_input():
    d = np.array([[0.5, 2.0, 2.0, -1.0]])
    assert kwta_mask(d, 2, axis=1).tolist() == [[False, True, True, False]]
    assert kwta_mask(d.T, 1, axis=0)[:, 0].tolist() == [False, True, False, False]


@pytest.mark.parametrize("k,channels,expected", [(3, 8, 3), (0.25, 8, 2), (1.0, 8, 8), (0.01, 8, 1), (8, 8, 8)])
def test_resolve_k(k, channels, expected):
    assert resolve_k(k, channels) == expected


@pytest.mark.parametrize("k", [0, -1, 9, 1.5, -0.25, 0.0, "a", True])
def test_resolve_k_rejects(k):
    with pytest.raises(ConfigError) as exc:
        resolve_k(k, 8)
    assert isinstance(exc.value, HCSError)
    assert "k = " in str(exc.value)


def test_kwta_rejects_bad_k():
    with pytest.raises(ConfigError):
        kwta_mask(np.zeros((1, 4)), 5)


# -- the PyTorch k-WTA used in training (topk path and counting path) --------------------------

small_drives = arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 3), st.integers(1, 3)),
                      elements=st.integers(0, 8))


@settings(max_examples=80, deadline=None)
@given(small_drives, st.data())
def test_torch_kwta_paths_equal_reference(d, data):
    """Both training k-WTA paths give the reference's winners and the k-th/(k+1)-th midpoint."""
    import torch
    from hcs_neuro.train.kwta import kwta_torch

    k = data.draw(st.integers(1, d.shape[1]))
    t = torch.as_tensor(d, dtype=torch.float32)
    want = kwta_mask(d, k)
    desc = -np.sort(-d, axis=1)
    for vmax in (None, 8):  # None: unsorted topk on index-tagged keys; 8: counting
        mask = kwta_torch(t, k, True, vmax=vmax)
        np.testing.assert_array_equal(mask.numpy(), want)
        mask2, theta = kwta_torch(t, k, True, True, vmax)
        np.testing.assert_array_equal(mask2.numpy(), want)
        if k < d.shape[1]:
            mid = 0.5 * (desc[:, k - 1:k] + desc[:, k:k + 1])
            np.testing.assert_array_equal(theta.numpy(), mid)
        else:
            assert theta is None

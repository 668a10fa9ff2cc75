"""k-winners-take-all in PyTorch for training: the reference's selection, on tensors.

Exactly the reference's winners (:func:`hcs_neuro.core.kwta.kwta_mask`, lower channel index wins
ties) on integer drives, plus the decision boundary that the ``window`` straight-through
estimator needs. The compiled kernels of ``hcs_neuro/train/csrc/kwta.cpp``
(:mod:`hcs_neuro.train.ext`) compute the same, bit for bit; :func:`select_torch` is their
specification and the fallback without a compiler.
"""

from __future__ import annotations

import torch

from hcs_neuro.core.architecture import Architecture

__all__ = ["COUNTING_MAX_LEVEL", "kwta_counting", "kwta_torch", "select_torch", "pools_compiled"]


#: Integer drives with at most this many distinct non-negative values (pooled binary or 2-bit
#: activities) use the counting k-WTA instead of ``topk``.
COUNTING_MAX_LEVEL = 16


def kwta_counting(drive, k: int, vmax: int, want_theta: bool):
    """Exact k-WTA for integer drives in ``0..vmax`` by counting, without sorting.

    Lower channel index wins ties, as in the reference. With ``cnt_ge[v]`` the number of
    channels whose drive is at least ``v`` (non-increasing in ``v``), the k-th largest drive is
    ``v* = #{v >= 1 : cnt_ge[v] >= k}``; the winners are every channel above ``v*`` and the
    first ``k - #above`` channels (by index) at ``v*``. A handful of element-wise passes replace
    a ``topk`` over the channels at every location.
    """
    vstar = torch.zeros_like(drive.narrow(1, 0, 1))
    vnext = torch.zeros_like(vstar) if want_theta else None
    for v in range(1, vmax + 1):
        cnt = (drive >= v).sum(1, keepdim=True)
        vstar += cnt >= k
        if want_theta:
            vnext += cnt >= k + 1
    above = drive > vstar
    need = k - above.sum(1, keepdim=True)
    tied = drive == vstar
    mask = above | (tied & (tied.cumsum(1) <= need))
    if not want_theta:
        return mask
    return mask, 0.5 * (vstar + vnext)


def kwta_torch(drive, k: int, exact: bool, want_theta: bool = False, vmax: int | None = None):
    """Top-k mask along dim 1 with the reference's ties (lower channel index wins).

    With ``want_theta`` also returns the decision boundary of each hypercolumn: the midpoint
    between the k-th and (k+1)-th largest drive (used by the ``window`` straight-through
    estimator). ``vmax``: the drive is known to be an integer in ``0..vmax`` (pooling of
    low-bit activities); small ranges take the counting path (:func:`kwta_counting`).

    Speed (the k-WTA dominated the low-precision training step): ``topk`` runs unsorted and
    the k-th / (k+1)-th values are taken from its k+1 outputs with two small reductions.
    """
    channels = drive.shape[1]
    if k >= channels:
        mask = torch.ones_like(drive, dtype=torch.bool)
        return (mask, None) if want_theta else mask
    if exact and vmax is not None and vmax <= COUNTING_MAX_LEVEL:
        return kwta_counting(drive, k, int(vmax), want_theta)
    if exact:
        shape = (1, channels) + (1,) * (drive.dim() - 2)
        key = drive * channels - torch.arange(channels, dtype=drive.dtype).view(shape)
    else:
        key = drive
    if not want_theta:
        kth = key.topk(k, dim=1, sorted=False).values.amin(1, keepdim=True)
        return key >= kth
    top = key.topk(k + 1, dim=1, sorted=False).values
    # the two smallest of the k+1 largest: the (k+1)-th and the k-th value (duplicates allowed)
    low = top.amin(1, keepdim=True)
    is_low = top == low
    second = torch.where(is_low, torch.full_like(top, float("inf")), top).amin(1, keepdim=True)
    kth = torch.where(is_low.sum(1, keepdim=True) >= 2, low, second)
    mask = key >= kth
    if exact:
        kth, low = torch.ceil(kth / channels), torch.ceil(low / channels)
    return mask, 0.5 * (kth + low)


def select_torch(dd, k, exact: bool, window_surr: bool, scale: float, vmax=None, key64: bool = False):
    """The PyTorch path of a hypercolumn layer's selection: ``(winners, winners as 0/1 floats,
    window surrogate or None)``.

    Winners: the k-WTA (``k`` None: all channels) and ``drive > 0``. With ``window_surr`` also the
    slope of the binary activities' straight-through estimator: a triangle of half-width 1 (real
    units, ``scale`` per drive unit) around the hypercolumn's decision boundary. The compiled
    ``hcs_neuro/train/csrc/kwta.cpp`` computes the same, bit for bit, in one pass.
    """
    positive = dd > 0
    theta = None
    if k is None:
        win = positive
    else:
        key_in = dd.double() if key64 else dd
        if window_surr:
            win, theta = kwta_torch(key_in, k, exact, True, vmax)
            theta = None if theta is None else theta.to(dd.dtype)
        else:
            win = kwta_torch(key_in, k, exact, vmax=vmax)
        win = win & positive
    winf = win.to(dd.dtype)
    surr = None
    if window_surr:
        surr = dd - (0.5 if theta is None else torch.clamp(theta, min=0.5))
        surr = surr.abs_().mul_(-scale).add_(1.0).clamp_(min=0.0).mul_(scale)
    return win, winf, surr


def pools_compiled(arch: Architecture, j: int, shape) -> bool:
    """Whether layer ``j`` of ``arch`` pools the activities of shape ``shape`` (N, C, H, W) of the
    layer before with the compiled sum pooling of training (``kwta_pool``/``sum_pool2d`` of
    hcs_neuro/train/csrc/kwta.cpp): non-overlapping 2-D windows tiling the map exactly."""
    if j >= len(arch.layers):
        return False
    spec = arch.layers[j]
    return (spec.type == "pool2d" and spec.stride == spec.kernel and spec.padding == 0 and len(shape) == 4
            and shape[2] % spec.kernel == 0 and shape[3] % spec.kernel == 0)



"""k-winners-take-all across the channels of every hypercolumn (the specification, NumPy only).

A *hypercolumn* is the set of C channels at one spatial location of a convolutional or pooling
layer. k-WTA keeps the k channels with the largest drive at each location and quenches the rest.

Tie semantics (shared with the PyTorch layer in :mod:`hcs_neuro.train` and documented for
the Brian2 circuits): among equal drives the **lower channel index wins**. Integer weight and
activity levels make exact ties common, so the rule must be deterministic; "lower index wins"
is what a stable sort gives and what a circuit with a tiny index-dependent bias realises.
"""

from __future__ import annotations

import numbers

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = ["resolve_k", "kwta_mask"]


def resolve_k(k, channels: int) -> int:
    """Turn a k given as a count or a fraction of the channels into a count.

    Parameters
    ----------
    k : int or float
        An integer count in ``1..channels`` or a fraction in ``(0, 1]`` of the channels
        (rounded to the nearest count, at least 1).
    channels : int
        Number of channels C of the hypercolumn.

    Returns
    -------
    int
        The number of winners, ``1 <= k <= channels``.

    Raises
    ------
    ConfigError
        For ``k <= 0``, ``k > channels``, a fraction above 1, or a non-numeric k.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise ConfigError(f"k = {k!r}: allowed an integer count 1..{channels} or a fraction in (0, 1]")
    if isinstance(k, numbers.Integral) or (isinstance(k, float) and k > 1 and float(k).is_integer()):
        count = int(k)
        if count <= 0 or count > channels:
            raise ConfigError(f"k = {k!r} with {channels} channels: allowed an integer count 1..{channels} "
                              f"or a fraction in (0, 1]")
        return count
    k = float(k)
    if not (0.0 < k <= 1.0):
        raise ConfigError(f"k = {k!r} with {channels} channels: allowed an integer count 1..{channels} "
                          f"or a fraction in (0, 1]")
    return max(1, min(channels, int(round(k * channels))))


def kwta_mask(drive: np.ndarray, k: int, axis: int = 1) -> np.ndarray:
    """Boolean mask of the k largest drives along ``axis`` at every other index.

    Parameters
    ----------
    drive : ndarray
        Drives, e.g. shape (N, C, H, W) with the channels on ``axis``.
    k : int
        Number of winners per hypercolumn, ``1 <= k <= drive.shape[axis]``.
    axis : int
        The channel axis (default 1).

    Returns
    -------
    ndarray of bool
        Same shape as ``drive``; exactly k True entries along ``axis`` at every location.
        Ties: the lower channel index wins (a stable sort of the negated drives).

    Raises
    ------
    ConfigError
        If k is out of range for the number of channels.
    """
    drive = np.asarray(drive)
    channels = drive.shape[axis]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not (1 <= k <= channels):
        raise ConfigError(f"k = {k!r}: allowed an integer count 1..{channels}")
    mask = np.zeros(drive.shape, dtype=bool)
    if k == channels:
        mask[...] = True
        return mask
    if np.issubdtype(drive.dtype, np.unsignedinteger):
        drive = drive.astype(np.int64)
    order = np.argsort(-drive, axis=axis, kind="stable")
    top = np.take(order, np.arange(k), axis=axis)
    np.put_along_axis(mask, top, True, axis=axis)
    return mask

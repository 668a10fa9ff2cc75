"""Network topology shared by every spiking network and every count: which unit feeds which.

NumPy only. What becomes what when a trained integer model is run as a spiking network:

* Every **conv** layer: one synapse per *non-zero* weight instance (pre input unit, post output
  unit, integer weight level). Pruned (zero-level) weights create no synapse.
* Every **pooling** layer: unit synapses from the window's inputs (the reference's sum pooling
  of activity levels; :func:`hcs_neuro.core.reference.layer_forward`).
* The **linear readout**: one synapse per non-zero weight.

:func:`layer_synapses` lists the synapses into a layer (C-major flat indices, as
``ndarray.reshape``), :func:`drive_bounds` bounds any cell's drive from the weights alone, and the
fan-out functions count the existing synapses leaving each unit (the synaptic operations of one
spike; border positions of a convolution have fewer targets, as in sinabs' synop counter).
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = ["layer_synapses", "drive_bounds", "conv_fan_out", "linear_fan_out", "conv_dense_macs", "layer_fan_out",
           "output_fan_out"]


def _conv_pairs(in_shape, out_shape, kernel, stride, padding):
    """For every kernel offset: (offset tuple, pre spatial flat index, post spatial flat index)."""
    nd = len(in_shape) - 1
    in_sp, out_sp = in_shape[1:], out_shape[1:]
    pairs = []
    for off in np.ndindex(*((kernel,) * nd)):
        grids = np.meshgrid(*[np.arange(n) for n in out_sp], indexing="ij")
        ins = [g * stride - padding + d for g, d in zip(grids, off)]
        ok = np.ones(grids[0].shape, dtype=bool)
        for x, n in zip(ins, in_sp):
            ok &= (x >= 0) & (x < n)
        post_s = np.ravel_multi_index([g[ok] for g in grids], out_sp) if ok.any() else np.zeros(0, np.int64)
        pre_s = np.ravel_multi_index([x[ok] for x in ins], in_sp) if ok.any() else np.zeros(0, np.int64)
        pairs.append((off, np.asarray(pre_s, np.int64), np.asarray(post_s, np.int64)))
    return pairs


def layer_synapses(spec, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feed-forward synapses into one layer: ``(pre, post, weight_level)``, non-zero levels only.

    Indices are C-major flat indices of the layer's input and output (as ``ndarray.reshape``).
    """
    if spec.type == "linear":
        w = np.asarray(params.weight_levels, dtype=np.int64)
        post, pre = np.nonzero(w)
        return pre.astype(np.int64), post.astype(np.int64), w[post, pre]
    s_in = int(np.prod(spec.in_shape[1:]))
    c_out, s_out = spec.out_shape[0], int(np.prod(spec.out_shape[1:]))
    pres, posts, ws = [], [], []
    for off, pre_s, post_s in _conv_pairs(spec.in_shape, spec.out_shape, spec.kernel, spec.stride, spec.padding):
        if pre_s.size == 0:
            continue
        if spec.type.startswith("conv"):
            wd = np.asarray(params.weight_levels)[(slice(None), slice(None)) + off].astype(np.int64)  # (O, I)
            o, ci = np.nonzero(wd)
            levels = wd[o, ci]
        else:  # pooling: channel c pools channel c, unit weight
            o = ci = np.arange(c_out)
            levels = np.ones(c_out, dtype=np.int64)
        pres.append((ci[:, None] * s_in + pre_s[None, :]).ravel())
        posts.append((o[:, None] * s_out + post_s[None, :]).ravel())
        ws.append(np.repeat(levels, pre_s.size))
    if not pres:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(pres), np.concatenate(posts), np.concatenate(ws)


def _top_k_sum(w: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Sum of the k largest non-negative entries along ``axis``."""
    pos = np.sort(np.clip(w, 0, None), axis=axis)
    pos = np.flip(pos, axis=axis)
    return np.take(pos, np.arange(min(k, w.shape[axis])), axis=axis).sum(axis=axis)


def drive_bounds(spec, params, in_top: int, in_k: int) -> tuple[int, int]:
    """Largest and smallest drive any cell of a layer can reach, from the weights alone.

    Every input location holds at most ``in_k`` non-zero activities (k-WTA of the previous
    layer; all channels for the image), each at most ``in_top``. Per output channel and kernel
    offset the largest contribution is ``in_top`` x the sum of the ``in_k`` largest positive
    weights (symmetrically for the smallest), plus the bias.
    """
    if spec.type.startswith("pool"):
        return int(in_top * spec.kernel ** spec.spatial_dims), 0
    w = np.asarray(params.weight_levels, dtype=np.int64)
    b = np.asarray(params.bias_levels, dtype=np.int64)
    if spec.type == "linear":
        w = w.reshape((w.shape[0],) + tuple(spec.in_shape))  # (O, C, *spatial)
    # channel axis 1; sum over every other axis after the top-k over channels
    hi = _top_k_sum(w, in_k, axis=1)
    lo = -_top_k_sum(-w, in_k, axis=1)
    red = tuple(range(1, hi.ndim))
    d_max = in_top * (hi.sum(axis=red) if red else hi) + b
    d_min = in_top * (lo.sum(axis=red) if red else lo) + b
    return int(d_max.max()), int(d_min.min())


def _axis_reach(n_in: int, n_out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """reach[d, i] = 1 where input index i feeds an output through kernel offset d.

    Output o reads input ``i = o * stride - padding + d``; the input reaches an output through
    offset d if ``(i + padding - d)`` is a non-negative multiple of stride below ``n_out * stride``.
    """
    reach = np.zeros((kernel, n_in), dtype=np.int64)
    i = np.arange(n_in)
    for d in range(kernel):
        q = i + padding - d
        ok = (q >= 0) & (q % stride == 0) & (q // stride < n_out)
        reach[d] = ok
    return reach


def _out_size(n_in: int, kernel: int, stride: int, padding: int) -> int:
    return (n_in + 2 * padding - kernel) // stride + 1


def conv_fan_out(weight_levels: np.ndarray, in_spatial: tuple[int, ...], stride=1, padding=0) -> np.ndarray:
    """Existing outgoing synapses of every input unit of a 1-D or 2-D convolution.

    Parameters
    ----------
    weight_levels : ndarray, shape ``(C_out, C_in, *kernel)``
        Integer weight levels; zero levels are pruned connections and are not counted.
    in_spatial : tuple of int
        Input spatial shape, ``(H, W)`` or ``(L,)``.
    stride, padding : int or tuple of int
        As in the convolution (zero padding; padded positions have no neurons).

    Returns
    -------
    ndarray of int64, shape (C_in, *in_spatial)
        Number of non-zero synapses leaving each input unit.
    """
    w = np.asarray(weight_levels)
    nd = w.ndim - 2
    if nd not in (1, 2) or len(in_spatial) != nd:
        raise ConfigError(f"conv_fan_out: weights of shape {w.shape} do not fit input {in_spatial}")
    stride = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    padding = (padding,) * nd if np.isscalar(padding) else tuple(padding)
    nz = (w != 0).astype(np.int64).sum(axis=0)  # (C_in, *kernel): how many output channels per offset
    reaches = [
        _axis_reach(n, _out_size(n, k, s, p), k, s, p)
        for n, k, s, p in zip(in_spatial, w.shape[2:], stride, padding)
    ]
    if nd == 1:
        return np.einsum("cd,di->ci", nz, reaches[0])
    return np.einsum("cde,di,ej->cij", nz, reaches[0], reaches[1])


def linear_fan_out(weight_levels: np.ndarray) -> np.ndarray:
    """Existing outgoing synapses of every input of a dense layer with weights (out, in)."""
    return (np.asarray(weight_levels) != 0).sum(axis=0).astype(np.int64)


def conv_dense_macs(weight_shape: tuple[int, ...], in_spatial: tuple[int, ...], stride=1, padding=0) -> int:
    """Dense multiply-accumulates of a convolution, counting only taps on real (unpadded) inputs."""
    ones = np.ones(weight_shape, dtype=np.int8)
    return int(conv_fan_out(ones, in_spatial, stride, padding).sum())


def layer_fan_out(model, i: int) -> np.ndarray:
    """Existing feed-forward synapses from each input unit of layer ``i`` into layer ``i``.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    i : int
        Layer index; its input is the network input (``i = 0``) or layer ``i - 1``'s output.

    Returns
    -------
    ndarray of int64, shape ``model.architecture.layers[i].in_shape``
        Convolutions: non-zero weight taps reaching real outputs (exact at borders); pooling:
        one unit synapse per window containing the unit (pooling synapses all exist); readout:
        non-zero weights of the unit's column.
    """
    spec = model.architecture.layers[i]
    params = model.layers[i]
    spatial = tuple(spec.in_shape[1:])
    if spec.type == "linear":
        return linear_fan_out(params.weight_levels).reshape(spec.in_shape)
    if spec.type.startswith("conv"):
        return conv_fan_out(params.weight_levels, spatial, spec.stride, spec.padding)
    ones = np.ones((1, 1) + (spec.kernel,) * spec.spatial_dims, dtype=np.int8)
    per_channel = conv_fan_out(ones, spatial, spec.stride, spec.padding)[0]
    return np.broadcast_to(per_channel, spec.in_shape).astype(np.int64)


def output_fan_out(model, i: int) -> np.ndarray:
    """Existing outgoing synapses of every unit of layer ``i`` (``i = -1``: the input), shaped like
    that layer's output; zeros for the readout (nothing follows it)."""
    arch = model.architecture
    if i + 1 >= len(arch.layers):
        return np.zeros(arch.layers[i].out_shape, np.int64)
    return layer_fan_out(model, i + 1)

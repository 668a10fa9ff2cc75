"""The rate-based reference forward pass (NumPy only): the specification the spiking network
and the PyTorch training forward pass must reproduce.

Per layer (integer models; all arrays are exact int64):

* **conv2d / conv1d**: ``drive = conv(x, weight_levels) + bias_levels`` (cross-correlation, as
  in PyTorch), integer accumulator units.
* **pool2d / pool1d**: ``drive = sum of the input activity levels over the window`` (no weights;
  for binary activities, the number of active inputs). Sum pooling is what a spiking pooling
  neuron with unit synapses computes, and it keeps the integer pass exact; a following k-WTA
  across channels makes the pooling layer a hypercolumn too.
* **winners** (HCS layers): ``kwta_mask(drive, k) & (drive > 0)``: the top-k channels of each
  hypercolumn, ties to the lower channel index, and only if their drive is positive (a neuron
  without positive drive never fires). Without k-WTA: ``drive > 0``.
* **output** activity levels: binary (``act_bits = 1``): 1 for winners; multi-bit:
  ``clip(ceil(drive / act_step), 0, 2**act_bits - 1)`` for winners; full precision
  (``act_bits = 32``): the drive of winners (ReLU + k-WTA).
* **linear readout**: ``logits = x_flat @ weight_levels.T + bias_levels``; ``pred = argmax``
  (ties: lowest class index).

Integer sums are evaluated with float64 BLAS matrix products and converted back with
``rint``: every partial sum is an integer far below 2**53, so the result is exact while being
tens of times faster than NumPy's integer matmul. Full-precision models (any width 32) run in
float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hcs_neuro.core.errors import DataError
from hcs_neuro.core.kwta import kwta_mask
from hcs_neuro.core.progress import progress as progress_bar
from hcs_neuro.core.quant import (
    FLOAT_BITS,
    act_level_max,
    activity_levels,
    quantize_unsigned,
)

__all__ = ["LayerResult", "ReferenceResult", "quantize_input", "layer_forward", "spiking_output", "conditional_layer",
           "forward", "evaluate", "layer_macs"]


@dataclass
class LayerResult:
    """Per-layer arrays of :func:`forward` (batch first)."""

    drive: np.ndarray
    winners: np.ndarray | None
    output: np.ndarray


@dataclass
class ReferenceResult:
    """Result of :func:`forward`: logits, predicted classes and per-layer arrays."""

    logits: np.ndarray
    pred: np.ndarray
    layers: list = field(default_factory=list)


def quantize_input(model, images) -> np.ndarray:
    """Quantize images in [0, 1] to the model's integer input levels (int64).

    ``level = floor(x * (2**input_bits - 1) + 0.5)`` after clipping to [0, 1]. A model with
    ``input_bits = 32`` gets the images as float64.

    Raises
    ------
    DataError
        If the image shape does not match the model input.
    """
    images = np.asarray(images)
    arch = model.architecture
    if images.ndim != len(arch.input_shape) + 1 or tuple(images.shape[1:]) != tuple(arch.input_shape):
        raise DataError(f"images of shape {images.shape} do not fit the model input "
                        f"(N, {', '.join(map(str, arch.input_shape))}) of {arch.source}")
    if arch.input_bits == FLOAT_BITS:
        return images.astype(np.float64)
    return quantize_unsigned(images, arch.input_bits)


def _is_int(a) -> bool:
    return np.asarray(a).dtype.kind in "iub"


def _windows(x: np.ndarray, kernel: int, stride: int, padding: int, nd: int) -> np.ndarray:
    """Sliding windows (N, C, *out, *kernel) of the zero-padded input."""
    if padding:
        x = np.pad(x, [(0, 0), (0, 0)] + [(padding, padding)] * nd)
    axes = tuple(range(2, 2 + nd))
    win = np.lib.stride_tricks.sliding_window_view(x, (kernel,) * nd, axis=axes)
    return win[(slice(None), slice(None)) + (slice(None, None, stride),) * nd]


def _conv(x: np.ndarray, w: np.ndarray, stride: int, padding: int, exact_int: bool) -> np.ndarray:
    nd = w.ndim - 2
    win = _windows(x.astype(np.float64, copy=False), w.shape[2], stride, padding, nd)
    axes_x = [1] + list(range(2 + nd, 2 + 2 * nd))
    axes_w = [1] + list(range(2, 2 + nd))
    out = np.tensordot(win, w.astype(np.float64), axes=(axes_x, axes_w))  # (N, *out, O)
    out = np.moveaxis(out, -1, 1)
    return np.rint(out).astype(np.int64) if exact_int else out


def _pool(x: np.ndarray, kernel: int, stride: int, padding: int, nd: int) -> np.ndarray:
    win = _windows(x, kernel, stride, padding, nd)
    return win.sum(axis=tuple(range(-nd, 0)))


def layer_forward(model, i: int, x_in):
    """Apply layer ``i`` of ``model`` alone to the input ``x_in``.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    i : int
        Layer index.
    x_in : ndarray
        The layer's input with batch axis: integer levels (the previous layer's ``output``, or
        :func:`quantize_input` for layer 0).

    Returns
    -------
    drive : ndarray
        Exact integer drive (pre-k-WTA, incl. bias); the logits for the readout.
    winners : ndarray of bool or None
        k-WTA winners with positive drive; None for the readout.
    output : ndarray
        Activity levels passed to the next layer (the logits for the readout).
    """
    spec = model.architecture.layers[i]
    p = model.layers[i]
    x = np.asarray(x_in)
    if tuple(x.shape[1:]) != tuple(spec.in_shape):
        raise DataError(f"layer {i} ({spec.type}) input has shape {x.shape[1:]}; expected {spec.in_shape}")
    exact = _is_int(x) and (not spec.has_weights or spec.weight_bits != FLOAT_BITS)
    if spec.type == "linear":
        flat = x.reshape(len(x), -1).astype(np.float64)
        drive = flat @ np.asarray(p.weight_levels, dtype=np.float64).T + np.asarray(p.bias_levels, np.float64)
        if exact:
            drive = np.rint(drive).astype(np.int64)
        return drive, None, drive
    if spec.type.startswith("conv"):
        w = np.asarray(p.weight_levels)
        drive = _conv(x, w, spec.stride, spec.padding, exact)
        bias = np.asarray(p.bias_levels, dtype=np.int64 if exact else np.float64)
        drive = drive + bias.reshape((-1,) + (1,) * spec.spatial_dims)
    else:
        drive = _pool(x.astype(np.int64) if exact else x.astype(np.float64), spec.kernel, spec.stride,
                      spec.padding, spec.spatial_dims)
    positive = drive > 0
    winners = positive if spec.k is None else kwta_mask(drive, spec.k, axis=1) & positive
    if spec.act_bits == 1:
        output = winners.astype(np.int64)
    elif spec.act_bits == FLOAT_BITS:
        output = np.where(winners, drive, 0).astype(np.float64)
    else:
        levels = activity_levels(drive if exact else drive.astype(np.float64), int(p.act_step),
                                 act_level_max(spec.act_bits))
        output = np.where(winners, levels, 0).astype(np.int64)
    return drive, winners, output


def spiking_output(model, i: int, drive, spiking_winners) -> np.ndarray:
    """What a spiking network passes on from layer ``i``, as activity levels: binary layers their
    spiking winners; multi-bit layers the activity level of the (exactly integrated) drive at the
    spiking winners."""
    spec = model.architecture.layers[i]
    if spec.act_bits == 1:
        return np.asarray(spiking_winners).astype(np.int64)
    levels = activity_levels(drive, int(model.layers[i].act_step), act_level_max(spec.act_bits))
    return np.where(spiking_winners, levels, 0).astype(np.int64)


def conditional_layer(model, i: int, x_in, spiking_winners):
    """The reference layer ``i`` applied to a spiking network's layer ``i - 1`` output ``x_in``
    (*conditional* on the spiking input), and the spiking output of layer ``i`` passed on.

    Returns
    -------
    drive, winners : ndarray
        Conditional drive and reference winners of layer ``i`` (:func:`layer_forward`).
    out : ndarray
        :func:`spiking_output` of layer ``i``.
    """
    drive, winners, _ = layer_forward(model, i, x_in)
    return drive, winners, spiking_output(model, i, drive, spiking_winners)


def forward(model, images, keep_layers: bool = True, batch_size: int = 256) -> ReferenceResult:
    """Run the reference forward pass on images in [0, 1].

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    images : ndarray, shape ``(N, *input_shape)``
        Images in [0, 1] (quantized here with :func:`quantize_input`).
    keep_layers : bool
        Keep every layer's drive/winners/output (memory: N x all activations). With False only
        the logits and predictions are returned.
    batch_size : int
        Images per chunk (bounds memory; does not change results).

    Returns
    -------
    ReferenceResult
    """
    x_all = quantize_input(model, images)
    logits, per_layer = [], [[] for _ in model.architecture.layers]
    for start in range(0, max(len(x_all), 1), batch_size):
        x = x_all[start:start + batch_size]
        for i in range(len(model.architecture.layers)):
            drive, winners, out = layer_forward(model, i, x)
            if keep_layers:
                per_layer[i].append((drive, winners, out))
            x = out
        logits.append(x)
    logits = np.concatenate(logits) if logits else np.zeros((0, model.architecture.n_classes))
    layers = []
    if keep_layers:
        for chunks in per_layer:
            drive = np.concatenate([c[0] for c in chunks])
            winners = None if chunks[0][1] is None else np.concatenate([c[1] for c in chunks])
            out = np.concatenate([c[2] for c in chunks])
            layers.append(LayerResult(drive, winners, out))
    return ReferenceResult(logits=logits, pred=np.argmax(logits, axis=1), layers=layers)


def layer_macs(spec) -> int:
    """Dense multiply-accumulates (weighted layers) or additions (pooling) per image."""
    n_out = int(np.prod(spec.out_shape))
    return n_out * spec.fan_in


def evaluate(model, images, labels, batch_size: int = 256, progress: bool = False, ops: bool = True) -> dict:
    """Accuracy, per-layer activity sparsity, zero-level weight fraction and operation counts.

    Returns a JSON-able dict with stable keys: ``accuracy``, ``n_images``, ``macs_per_image``
    (dense MACs of weighted layers), ``effective_macs_per_image`` (MACs left when zero
    activities and zero weights are skipped), ``zero_weight_fraction`` (all weighted layers),
    and ``layers``: one dict per layer with ``type``, ``k``, ``out_shape``,
    ``active_fraction`` (non-zero outputs / all outputs), ``active_per_hypercolumn`` (mean
    non-zero channels per location), ``zero_weight_fraction``, ``weight_values_per_channel``
    (the most distinct weight levels any output channel uses: 3 for ternary weights, also for
    multi-bit levels trained as ternary times a per-channel gain), ``macs_per_image`` (or
    ``adds_per_image`` for pooling) and ``effective_ops_per_image``. With ``ops=False`` the
    effective operation counts (which cost a second pass) are skipped and reported as None.
    """
    arch = model.architecture
    n = len(labels)
    x_all = quantize_input(model, images)
    n_layers = len(arch.layers)
    active = np.zeros(n_layers)
    eff = np.zeros(n_layers)
    correct = 0
    starts = range(0, n, batch_size)
    if progress:
        starts = progress_bar(starts, desc="evaluate", unit="batch")
    for start in starts:
        x = x_all[start:start + batch_size]
        for i, spec in enumerate(arch.layers):
            nz_in = (x != 0)
            drive, winners, out = layer_forward(model, i, x)
            if not ops:
                pass
            elif spec.has_weights:
                nz_w = (np.asarray(model.layers[i].weight_levels) != 0).astype(np.float64)
                if spec.type == "linear":
                    eff[i] += float((nz_in.reshape(len(x), -1).astype(np.float64) @ nz_w.T).sum())
                else:
                    eff[i] += float(_conv(nz_in.astype(np.float64), nz_w, spec.stride, spec.padding, False).sum())
            else:
                eff[i] += float(_pool(nz_in.astype(np.int64), spec.kernel, spec.stride, spec.padding,
                                      spec.spatial_dims).sum())
            if not spec.is_readout:
                active[i] += float((out != 0).sum())
            x = out
        correct += int((np.argmax(x, axis=1) == labels[start:start + batch_size]).sum())
    layers = []
    n_w = n_zero = 0
    for i, spec in enumerate(arch.layers):
        entry = {"index": i, "type": spec.type, "k": spec.k, "out_shape": list(spec.out_shape),
                 "weight_bits": spec.weight_bits if spec.has_weights else None, "act_bits": spec.act_bits,
                 "effective_ops_per_image": float(eff[i] / max(n, 1)) if ops else None}
        if spec.has_weights:
            w = np.asarray(model.layers[i].weight_levels)
            zero = int((w == 0).sum())
            n_w += w.size
            n_zero += zero
            entry["zero_weight_fraction"] = zero / w.size
            entry["weight_values_per_channel"] = max(len(np.unique(c)) for c in w.reshape(len(w), -1))
            entry["macs_per_image"] = layer_macs(spec)
        else:
            entry["adds_per_image"] = layer_macs(spec)
        if not spec.is_readout:
            units = int(np.prod(spec.out_shape))
            entry["active_fraction"] = float(active[i] / max(n * units, 1))
            entry["active_per_hypercolumn"] = float(active[i] / max(n * units // spec.out_shape[0], 1))
        layers.append(entry)
    return {
        "accuracy": correct / max(n, 1),
        "n_images": n,
        "macs_per_image": int(sum(layer_macs(s) for s in arch.layers if s.has_weights)),
        "effective_macs_per_image": float(sum(eff[i] / max(n, 1) for i, s in enumerate(arch.layers)
                                              if s.has_weights)) if ops else None,
        "zero_weight_fraction": n_zero / max(n_w, 1),
        "layers": layers,
    }

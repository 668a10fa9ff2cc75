"""The training network: :class:`HCSNet`, a ``torch.nn.Module`` computing in the reference's
integer units.

The input is quantized to integer levels, weights are integer levels, convolutions run in
float32 (or float64 when an integer could exceed 2**24) and are rounded, so drives, k-WTA
winners and logits equal the reference exactly (tested). The real-valued interpretation
(``drive * scale`` with ``scale = weight_scale * input scale``) is used only for the loss and the
gradients.

Gradients (straight-through, ``ste``): binary activity ``a = winner`` gets, with ``window``
(default), a triangle surrogate ``max(0, 1 - |drive_real - boundary_real|)`` around the
hypercolumn's decision boundary (midway between the k-th and (k+1)-th drives), so near-losers
learn too; with ``winners``, ``da/d(drive_real) = 1`` for winners and 0 elsewhere (gradient
through winners only; trains binary activities badly, see docs/studies/training.md). Multi-bit
activity gets ``1/act_step`` for winners inside its range; full-precision activity is ReLU
masked by the winners (winners only).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hcs_neuro.core.architecture import Architecture
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.model import LayerParams, Model, load_model
from hcs_neuro.core.quant import (
    FLOAT_BITS,
    act_level_max,
    bias_level_range,
    weight_level_range,
)
from hcs_neuro.core.reference import quantize_input
from hcs_neuro.train import ext
from hcs_neuro.train.kwta import pools_compiled, select_torch

__all__ = ["HCSNet", "torch_forward", "load_init", "step_top", "layer_scales", "layer_bounds", "key_bound"]


def step_top(bits: int, weight_step: str) -> int:
    """The unit of a low-precision layer's step, in levels: 1 (``level``), or its largest weight
    level with ``weight_step = "range"`` (also 1 for binary and ternary)."""
    return int(weight_level_range(bits)[1]) if weight_step == "range" else 1


def layer_scales(arch: Architecture, weight_step: str = "level"):
    """Per weighted layer: (weight_scale, in_top), chosen once at initialisation.

    ``weight_scale = 2 / sqrt(fan_in * density) / in_top`` makes the real drive of a layer
    O(1) for inputs of ``density`` non-zero levels (batch-norm-free scale choice; the forward
    pass of hidden layers does not depend on it, only gradient magnitudes, the window
    surrogate's width in level units and the readout's initial temperature do). With
    ``weight_step = "range"`` it is further divided by the layer's top weight level (see
    :class:`TrainConfig`).
    """
    out = []
    in_top = 1.0 if arch.input_bits == FLOAT_BITS else float(2 ** arch.input_bits - 1)
    density = 0.5 if arch.input_bits != FLOAT_BITS else 1.0
    for spec in arch.layers:
        if spec.has_weights:
            if spec.weight_bits == FLOAT_BITS:
                out.append((1.0, in_top))
            else:
                top = step_top(spec.weight_bits, weight_step)
                out.append((1.0 / math.sqrt(spec.fan_in * max(density, 1e-3)) / max(in_top, 1.0) * 2.0 / top, in_top))
        else:
            out.append((1.0, in_top))
        if not spec.is_readout:
            if spec.act_bits == FLOAT_BITS:
                in_top, density = 1.0, 0.5
            else:
                in_top = float(2 ** spec.act_bits - 1)
                density = (spec.k / spec.out_shape[0]) if spec.k else 0.5
    return out


def layer_bounds(arch: Architecture) -> list:
    """Largest possible absolute integer drive of each layer."""
    out = []
    in_top = 1.0 if arch.input_bits == FLOAT_BITS else float(2 ** arch.input_bits - 1)
    for spec in arch.layers:
        if spec.has_weights and spec.weight_bits != FLOAT_BITS:
            w_top = weight_level_range(spec.weight_bits)[1]
            out.append(spec.fan_in * in_top * w_top + bias_level_range(spec.bias_bits)[1])
        elif not spec.has_weights:
            out.append(spec.fan_in * in_top)
        else:
            out.append(float("inf"))
        if not spec.is_readout:
            in_top = 1.0 if spec.act_bits == FLOAT_BITS else float(2 ** spec.act_bits - 1)
    return out


def key_bound(arch: Architecture) -> float:
    """Largest possible k-WTA key ``|drive| * channels`` over the layers with integer drives (for the
    float32 exactness check; layers of float weights are not integer and not counted)."""
    return max((b * max(spec.out_shape[0], 1) for b, spec in zip(layer_bounds(arch), arch.layers)
                if math.isfinite(b)), default=0.0)


class _STE(torch.autograd.Function):
    """Forward: the given activity; backward: the gradient times a surrogate slope."""

    @staticmethod
    def forward(ctx, d, value, slope):
        ctx.save_for_backward(slope)
        return value

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None

class _PoolSTE(torch.autograd.Function):
    """A binary layer's straight-through activities followed by sum pooling, fused (the
    compiled kernels of hcs_neuro/train/csrc/kwta.cpp): forward the window sums of the winners,
    backward the pooled gradient spread over each window times the surrogate slope. The same
    numbers as ``_STE`` then ``avg_pool2d(divisor_override=1)``, without the two passes over
    the full-resolution activities that those make."""

    @staticmethod
    def forward(ctx, d, value, slope, kernel, module):
        ctx.save_for_backward(slope)
        ctx.kernel, ctx.module = kernel, module
        return module.sum_pool2d(value, kernel, kernel)

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return ctx.module.sum_pool2d_backward(grad, slope, ctx.kernel, ctx.kernel), None, None, None, None

class _KWTAPool(torch.autograd.Function):
    """A binary hypercolumn layer's k-WTA, its straight-through activities and the sum pooling
    of the next layer in one compiled pass (``kwta_pool`` of hcs_neuro/train/csrc/kwta.cpp): the
    full-resolution winner map and surrogate are never written; backward recomputes the
    window surrogate from the drive. The same numbers as ``kwta_select``, ``_STE`` and
    ``avg_pool2d(divisor_override=1)`` (tests/test_kwta_ext.py)."""

    @staticmethod
    def forward(ctx, d, k, exact, scale, kernel, module):
        pooled, centre = module.kwta_pool(d, k, exact, kernel, kernel)
        ctx.save_for_backward(d, centre)
        ctx.scale, ctx.kernel, ctx.module = scale, kernel, module
        return pooled

    @staticmethod
    def backward(ctx, grad):
        d, centre = ctx.saved_tensors
        g = ctx.module.kwta_pool_backward(grad, d, centre, ctx.scale, ctx.kernel, ctx.kernel)
        return g, None, None, None, None, None

class HCSNet(torch.nn.Module):
    def __init__(self, arch: Architecture, learning: str = "probabilistic", seed: int = 0, model=None,
                 ste: str = "window", weight_step: str = "level"):
        super().__init__()
        self.ste = ste
        # the window surrogate's half-width in real units (TrainConfig.ste_width): the kernels
        # take scale / width, a triangle of that half-width and height 1 / width
        self.ste_width = 1.0
        self.use_fused = None  # None: use the compiled k-WTA if it builds; False: PyTorch path
        # TrainConfig.homeostasis > 0: training passes record, per k-WTA layer with weights, each
        # channel's win rate on the batch and the layer's real units per drive unit
        self.track_rates = False
        self.win_rates, self.drive_scale = {}, {}
        self.arch = arch
        self.learning = learning
        self.bias_learning = learning  # the rule of the bias levels (TrainConfig.bias_learning)
        self.shadow_layers = set()  # layers whose weights are shadow weights (TrainConfig.shadow_layers)
        # TrainConfig.channel_gains: layer index -> per-channel gain parameter (use_channel_gains)
        self.gains = torch.nn.ParameterDict()
        self.int_input = arch.input_bits != FLOAT_BITS
        self.dtype = torch.float64 if key_bound(arch) >= 2 ** 24 else torch.float32
        self.gen = torch.Generator().manual_seed(int(seed))
        self.weight_step = weight_step  # TrainConfig.weight_step: the scales' and LevelUpdater's unit
        self.scales = layer_scales(arch, weight_step)
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        self.widx = {}
        self.act_step = [1] * len(arch.layers)
        self.log_temp = torch.nn.Parameter(torch.zeros((), dtype=self.dtype))
        for i, spec in enumerate(arch.layers):
            if not spec.has_weights:
                continue
            self.widx[i] = len(self.weights)
            if spec.weight_bits == FLOAT_BITS:
                in_top = self.scales[i][1]
                bound = math.sqrt(6.0 / spec.fan_in) / max(in_top, 1.0)  # He-uniform (He et al. 2015)
                w = (torch.rand(spec.weight_shape, generator=self.gen, dtype=self.dtype) * 2 - 1) * bound
                b = torch.zeros(spec.out_shape[0], dtype=self.dtype)
            else:
                lo, hi = weight_level_range(spec.weight_bits)
                if spec.weight_bits == 1:
                    w = torch.randint(0, 2, spec.weight_shape, generator=self.gen).to(self.dtype) * 2 - 1
                else:  # uniform over the levels
                    w = torch.randint(lo, hi + 1, spec.weight_shape, generator=self.gen).to(self.dtype)
                b = torch.zeros(spec.out_shape[0], dtype=self.dtype)
            self.weights.append(torch.nn.Parameter(w))
            self.biases.append(torch.nn.Parameter(b))
        self.calibrated = all(s.act_bits in (1, FLOAT_BITS) for s in arch.layers if not s.is_readout)
        if model is not None:
            self.load_levels(model)
        self.exact = self.int_input and not arch.is_full_precision
        # k-WTA keys drive * C - c must stay below 2**24 to be exact in float32
        self.key64 = [b * max(spec.out_shape[0], 1) + spec.out_shape[0] >= 2 ** 24
                      for b, spec in zip(layer_bounds(arch), arch.layers)]

    def load_levels(self, model, calibration: bool = True) -> None:
        """Set the weight and bias levels to ``model``'s (same layers and weight bits); with
        ``calibration`` also its activity steps and readout temperature, so that the network
        computes ``model`` (a warm start into other activity bits leaves those as they are)."""
        with torch.no_grad():
            for i, j in self.widx.items():
                p = model.layers[i]
                self.weights[j].copy_(torch.as_tensor(np.asarray(p.weight_levels, dtype=np.float64),
                                                      dtype=self.dtype))
                self.biases[j].copy_(torch.as_tensor(np.asarray(p.bias_levels, dtype=np.float64),
                                                     dtype=self.dtype))
            if calibration:
                self.act_step = [int(p.act_step) for p in model.layers]
                ro = len(self.arch.layers) - 1
                self.log_temp.fill_(math.log(model.layers[ro].weight_scale / self.scales[ro][0]))
                self.calibrated = True

    def _fused(self):
        """The compiled k-WTA module (:mod:`hcs_neuro.train.ext`), or None for the PyTorch path."""
        if self.use_fused is False:
            return None
        module = ext.load()
        self.use_fused = module is not None
        return module

    def use_channel_gains(self, layers) -> None:
        """Train the weights of ``layers`` (multi-bit) as ternary levels times a per-channel
        integer gain (:class:`TrainConfig` ``channel_gains``): the layer's weight parameter
        is re-drawn uniform over -1/0/+1 from the network's generator and each output
        channel's gain starts at the layer's top level."""
        for i in sorted(layers):
            spec = self.arch.layers[i]
            top = float(weight_level_range(spec.weight_bits)[1])
            w = self.weights[self.widx[i]]
            with torch.no_grad():
                w.copy_(torch.randint(-1, 2, tuple(w.shape), generator=self.gen).to(w.dtype))
            self.gains[str(i)] = torch.nn.Parameter(torch.full((spec.out_shape[0],), top, dtype=self.dtype))

    def weight_rule(self, i: int) -> str:
        """The learning rule of layer ``i``'s low-precision weights (``learning``, or
        ``shadow`` for the layers in ``shadow_layers``)."""
        return "shadow" if i in self.shadow_layers else self.learning

    # -- parameters as used by the forward pass ------------------------------------------
    def effective(self, i: int):
        """The weights and biases of layer ``i`` as the forward pass uses them (levels; shadow
        weights rounded with a straight-through gradient; a gain layer's ternary levels times the
        gain)."""
        spec = self.arch.layers[i]
        w = self.weights[self.widx[i]]
        b = self.biases[self.widx[i]]
        if spec.weight_bits == FLOAT_BITS:
            return w, b
        gain = self.gains[str(i)] if str(i) in self.gains else None
        shadow = self.weight_rule(i) == "shadow"
        if shadow:  # float shadow weights, rounded levels forward (STE)
            lo, hi = (-1, 1) if gain is not None else weight_level_range(spec.weight_bits)
            if spec.weight_bits == 1:
                q = torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))
            else:
                q = torch.clamp(torch.sign(w) * torch.floor(w.abs() + 0.5), lo, hi)
            w = w + (q - w).detach()
        if gain is not None:  # ternary levels times the channel's gain level
            if shadow:
                gain = gain + (torch.floor(gain + 0.5) - gain).detach()
            w = w * gain.view(-1, *([1] * (w.dim() - 1)))
        if self.bias_learning == "shadow":
            qb = torch.sign(b) * torch.floor(b.abs() + 0.5)
            b = b + (qb - b).detach()
        return w, b

    def forward(self, x, record: bool = False):
        """Logits in real units (and, with record=True, per-layer (drive, winners, output))."""
        arch = self.arch
        s_in = (1.0 / (2 ** arch.input_bits - 1)) if self.int_input else 1.0
        exact_x = self.int_input
        x_top = (2 ** arch.input_bits - 1) if self.int_input else None  # largest input level
        records = []
        pending = None  # (autograd function, its inputs): a binary layer, pooled by the next
        rates = self.track_rates and self.training
        if rates:
            self.win_rates = {}
        pooled_rate = None  # (layer, locations): that layer's win rates, from the pooled counts
        for i, spec in enumerate(arch.layers):
            if pending is not None:  # (the pooling of a binary layer, compiled)
                fn, *args = pending
                d = fn.apply(*args, spec.kernel, self._fused())
                pending, scale, exact = None, s_in, exact_x
                if pooled_rate is not None:  # the windows tile the map: their counts sum all winners
                    j, n_loc = pooled_rate
                    self.win_rates[j] = d.detach().sum(dim=(0, 2, 3)) / n_loc
                    pooled_rate = None
            elif spec.has_weights:
                w, b = self.effective(i)
                float_w = spec.weight_bits == FLOAT_BITS
                scale = 1.0 if float_w else self.scales[i][0] * s_in
                if spec.type == "linear":
                    d = F.linear(x.flatten(1), w, b)
                elif spec.type == "conv2d":
                    d = F.conv2d(x, w, b, stride=spec.stride, padding=spec.padding)
                else:
                    d = F.conv1d(x, w, b, stride=spec.stride, padding=spec.padding)
                exact = exact_x and not float_w
                if rates and spec.k is not None and spec.k < d.shape[1]:
                    self.drive_scale[i] = float(scale)
            else:
                scale = s_in
                if spec.type == "pool2d":
                    d = F.avg_pool2d(x, spec.kernel, spec.stride, spec.padding, count_include_pad=True,
                                     divisor_override=1)
                else:
                    d = F.avg_pool1d(x, spec.kernel, spec.stride, spec.padding, count_include_pad=True) * spec.kernel
                exact = exact_x
            # pooled low-bit levels are small non-negative integers: counting k-WTA
            vmax = spec.fan_in * x_top if (not spec.has_weights and exact and x_top is not None) else None
            if exact and not self.training:
                # float32 sums of integers below 2**24 are exact; rounding guards the evaluation
                # pass against any non-exact convolution algorithm
                d = torch.round(d)
            if spec.is_readout:
                if record:
                    records.append((d.detach(), None, d.detach()))
                logits = d * (scale * torch.exp(self.log_temp))
                return (logits, records) if record else logits
            window = self.ste == "window" and self.training
            want_surr = spec.act_bits == 1 and self.training  # binary activities: STE slope
            window_surr = window and want_surr
            # the window's drive-unit scale: the kernels' triangle of half-width ste_width (real units)
            window_scale = float(scale) / self.ste_width
            # training, binary activities pooled next: compiled pooling of the activities; with
            # a k-WTA and the window surrogate, fused with the selection itself
            pool_next = (want_surr and not record and pools_compiled(arch, i + 1, d.shape)
                         and self._fused() is not None)
            if pool_next and window_surr and spec.k is not None and spec.k < d.shape[1]:
                pending = (_KWTAPool, d, spec.k, exact, window_scale)
                if i in self.drive_scale and rates:
                    pooled_rate = (i, d.shape[0] * d[0, 0].numel())
                s_in, exact_x, x_top = 1.0, True, 1
                continue
            with torch.no_grad():
                dd = d.detach()
                fused = self._fused() if (spec.k is not None and spec.k < dd.shape[1]) else None
                if fused is not None:
                    # one compiled pass over the channels of every location: the winners and
                    # the window surrogate, bit-identical to select_torch
                    res = fused.kwta_select(dd, spec.k, exact, window_surr, window_scale)
                    win, winf, surr = None, res[0], (res[1] if window_surr else None)
                else:
                    win, winf, surr = select_torch(dd, spec.k, exact, window_surr, window_scale,
                                                    vmax, exact and self.key64[i])
                if want_surr and not window:  # gradient through the winners only
                    surr = winf * scale
                if win is None and (record or spec.act_bits not in (1, FLOAT_BITS)):
                    win = winf > 0
                if rates and i in self.drive_scale:
                    self.win_rates[i] = winf.mean(dim=[a for a in range(winf.dim()) if a != 1])
            if spec.act_bits == 1:
                s_in, exact_x, x_top = 1.0, True, 1
                if pool_next:
                    pending = (_PoolSTE, d, winf, surr)
                    continue
                out = _STE.apply(d, winf, surr) if self.training else winf
            elif spec.act_bits == FLOAT_BITS:
                out = d * winf
                s_in, exact_x, x_top = scale, exact, None
            else:
                top = act_level_max(spec.act_bits)
                if not self.calibrated and self.act_step[i] == 1 and self.training:
                    sel = d.detach()[win]
                    q = float(torch.quantile(sel[:100000].double(), 0.99)) if sel.numel() else 1.0
                    self.act_step[i] = max(1, int(math.ceil(q / top)))
                step = self.act_step[i]
                with torch.no_grad():
                    lev = torch.clamp(torch.ceil(d.detach() / step), 0, top) * winf
                    inrange = winf * (d.detach() < step * top).to(d.dtype)
                out = lev + inrange * (d - d.detach()) / step
                s_in, exact_x, x_top = 1.0, True, top
            if record:
                records.append((d.detach(), win, out.detach()))
            x = out
        raise AssertionError("architecture without readout")  # pragma: no cover

    # -- conversion -------------------------------------------------------------------------
    def to_model(self, metadata=None) -> Model:
        layers = []
        for i, spec in enumerate(self.arch.layers):
            p = LayerParams(act_step=int(self.act_step[i]))
            if spec.has_weights:
                with torch.no_grad():
                    w, b = self.effective(i)
                if spec.weight_bits == FLOAT_BITS:
                    p.weight_levels = w.detach().numpy().astype(np.float32)
                    p.bias_levels = b.detach().numpy().astype(np.float32)
                    p.weight_scale = 1.0
                else:
                    blo, bhi = bias_level_range(spec.bias_bits)
                    p.weight_levels = np.rint(w.detach().numpy()).astype(np.int64)
                    p.bias_levels = np.clip(np.rint(b.detach().numpy()), blo, bhi).astype(np.int64)
                    p.weight_scale = float(self.scales[i][0])
                if spec.is_readout:
                    p.weight_scale = float(p.weight_scale * math.exp(float(self.log_temp.detach())))
            layers.append(p)
        self.calibrated = True
        return Model(self.arch, layers, dict(metadata or {})).validate("trained model")





def torch_forward(model: Model, images, batch_size: int = 512, keep_layers: bool = True):
    """Run ``model`` through the PyTorch forward pass (no gradients).

    Returns ``(logits_int, layers)``: integer logits (float64 array holding integers for
    low-precision models) and per layer ``(drive, winners, output)`` numpy arrays, for
    comparison with :func:`hcs_neuro.core.reference.forward` (an empty list with
    ``keep_layers=False``, which needs memory for the logits only).
    """
    net = HCSNet(model.architecture, "probabilistic", 0, model=model)
    net.eval()
    x_all = quantize_input(model, images)
    logits, per = [], None
    with torch.no_grad():
        for s in range(0, len(x_all), batch_size):
            xb = torch.as_tensor(x_all[s:s + batch_size].astype(np.float64), dtype=net.dtype)
            _, rec = net(xb, record=True)
            if not keep_layers:
                logits.append(rec[-1][0].double().numpy())
                continue
            if per is None:
                per = [[] for _ in rec]
            for j, (d, w, o) in enumerate(rec):
                per[j].append((d.double().numpy(), None if w is None else w.numpy(), o.double().numpy()))
            logits.append(rec[-1][0].double().numpy())
    if not keep_layers:
        return np.concatenate(logits), []
    layers = [(np.concatenate([c[0] for c in chunks]),
               None if chunks[0][1] is None else np.concatenate([c[1] for c in chunks]),
               np.concatenate([c[2] for c in chunks])) for chunks in per]
    return np.concatenate(logits), layers


def load_init(path, arch: Architecture) -> Model:
    """Load the warm start (``TrainConfig.init``) and check that its levels fit ``arch``.

    Raises
    ------
    ModelError
        The file does not load (see :func:`hcs_neuro.core.model.load_model`).
    ConfigError
        A layer's type, shape or weight bits differ from ``arch``'s, or a bias level lies outside
        ``arch``'s bias range; the message names the layer.
    """
    init = load_model(path)
    i_arch = init.architecture
    if (tuple(i_arch.input_shape) != tuple(arch.input_shape) or i_arch.input_bits != arch.input_bits
            or len(i_arch.layers) != len(arch.layers)):
        raise ConfigError(f"init {path}: its network ({i_arch.source}: input {list(i_arch.input_shape)} at "
                          f"{i_arch.input_bits} bits, {len(i_arch.layers)} layers) is not {arch.source}'s "
                          f"(input {list(arch.input_shape)} at {arch.input_bits} bits, {len(arch.layers)} layers)")
    for i, (a, b) in enumerate(zip(i_arch.layers, arch.layers)):
        if a.type != b.type or tuple(a.out_shape) != tuple(b.out_shape) or a.weight_shape != b.weight_shape:
            raise ConfigError(f"init {path}: layer {i} is a {a.type} of output {list(a.out_shape)}, but in "
                              f"{arch.source} a {b.type} of output {list(b.out_shape)}")
        if b.has_weights and a.weight_bits != b.weight_bits:
            raise ConfigError(f"init {path}: layer {i} has {a.weight_bits}-bit weights, {arch.source} "
                              f"{b.weight_bits}-bit ones (a warm start keeps the weight levels)")
        if b.has_weights and b.weight_bits != FLOAT_BITS:
            lo, hi = bias_level_range(b.bias_bits)
            levels = np.asarray(init.layers[i].bias_levels)
            if levels.size and (levels.min() < lo or levels.max() > hi):
                raise ConfigError(f"init {path}: layer {i}'s bias levels span {int(levels.min())}..{int(levels.max())}, "
                                  f"outside the {b.bias_bits}-bit range {lo}..{hi} of {arch.source}")
    return init

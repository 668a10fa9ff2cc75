"""Training in PyTorch: HCS (k-WTA) layers, low-precision forward pass, probabilistic learning.

PyTorch is imported lazily (inside functions), so ``import hcs_neuro.train`` is cheap.

Forward pass
------------
:class:`HCSNet` computes in the same *integer units* as :mod:`hcs_neuro.core.reference`: the input
is quantized to integer levels, weights are integer levels, convolutions run in float32 (or
float64 when an integer could exceed 2**24) and are rounded, so drives, k-WTA winners and logits
equal the reference exactly (tested). The real-valued interpretation (``drive * scale`` with
``scale = weight_scale * input scale``) is used only for the loss and the gradients.

Gradients (straight-through, ``ste``): binary activity ``a = winner`` gets, with ``window``
(default), a triangle surrogate ``max(0, 1 - |drive_real - boundary_real|)`` around the
hypercolumn's decision boundary (midway between the k-th and (k+1)-th drives), so near-losers
learn too; with ``winners``, ``da/d(drive_real) = 1`` for winners and 0 elsewhere (gradient
through winners only; trains binary activities badly, see docs/training.md). Multi-bit activity
gets ``1/act_step`` for winners inside its range; full-precision activity is ReLU masked by the
winners (winners only).

Learning rules (``learning``)
-----------------------------
``probabilistic`` (default)
    The learned state *is* the integer level. Each step computes a desired change in level
    units from an Adam-normalised gradient step (per-element normalisation, so that every layer
    moves at the same rate relative to its level spacing whatever its gradient magnitude), and
    moves the level by one spacing with probability ``|change| / spacing`` (stochastic
    rounding: unbiased in expectation), with the run's seeded generator. Biases are levels in
    accumulator units (a much finer grid), updated the same way with steps scaled by the layer's
    largest input level. With ``adam_norm = "tensor"`` the momentum is divided by the RMS
    gradient of the whole tensor instead of each element's own, so a level's move probability
    keeps its gradient's size relative to the rest of its layer. With ``reset_momentum`` a
    weight level that moves starts a fresh momentum, so its next move needs new evidence
    (with ``beta1 = 0.99`` the best probabilistic Fashion-MNIST recipe; docs/training.md).
``naive``
    The rule the issue calls naive: probability proportional to ``lr * |grad|`` (plain SGD
    step in level units, no normalisation), for comparison.
``shadow``
    The usual baseline: full-precision shadow weights (level units) trained with Adam, the
    forward pass uses their rounded levels, gradients pass straight through the rounding.
``float``
    Full-precision weights (``weight_bits = 32``) trained with Adam.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from hcs_neuro.core.architecture import Architecture, load_config
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.model import LayerParams, Model
from hcs_neuro.core.quant import FLOAT_BITS, act_level_max, bias_level_range, weight_level_range

__all__ = ["LEARNING_RULES", "TrainConfig", "load_train_config", "low_precision_layers", "parse_layer_weight_lr",
           "HCSNet", "LevelUpdater", "train", "chance_loss_warning", "torch_forward", "measure_throughput",
           "load_teacher", "teacher_logits", "distill_loss", "load_init"]

LEARNING_RULES = ("probabilistic", "shadow", "naive")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (the ``[training]`` table of an architecture file).

    Attributes
    ----------
    dataset : str
        Dataset name (see :func:`hcs_neuro.core.datasets.load_dataset`).
    epochs : int
        Passes over the training set.
    batch_size : int
        Images per step.
    lr : float
        Peak step size in weight-level units for the low-precision rules (Adam-normalised for
        ``probabilistic``/``shadow``; times the raw gradient for ``naive``).
    lr_float : float
        Adam learning rate for full-precision weights.
    lr_schedule : str
        ``cosine`` (decay to 0 over all steps) or ``constant``.
    beta1, beta2, eps : float
        Adam moments (Kingma & Ba 2015 defaults 0.9, 0.999, 1e-8).
    adam_norm : str
        How the low-precision rules normalise the step: ``element`` (Adam: each element's
        momentum by its own RMS gradient) or ``tensor`` (each element's momentum by the RMS
        gradient of its whole tensor, so that a weight's step keeps its gradient's size
        relative to the other weights of the layer, as in layer-wise adaptive rates).
    reset_momentum : bool
        Probabilistic rule: when a weight level moves, zero its Adam momentum (the first
        moment), so that the next move needs fresh evidence gathered at the new level instead of
        the momentum that caused the last one (default off; bias levels, on their fine grid,
        are not reset).
    step_power : float
        Probabilistic rule, weight levels: the desired change is ``lr * sign(r) * |r| **
        step_power`` with ``r = m_hat / sqrt(v_hat)`` Adam's normalised momentum (default 1:
        Adam's step). Above 1 it shrinks the steps of noise-dominated levels (``|r|`` small: the
        momentum of pure noise has ``|r|`` about ``sqrt((1 - beta1) / (1 + beta1))``) more than
        those with a consistent gradient (``|r|`` near 1); the rounding stays unbiased for the
        step it is given. Only with ``adam_norm = "element"``.
    weight_step : str
        The unit of ``lr`` for multi-bit weight levels: ``level`` (default: one level spacing,
        whatever the width, so a 4- or 8-bit layer moves ``2**(b-1) - 1`` times slower across its
        range than a ternary one) or ``range``: ``lr`` is a fraction of the top level
        ``2**(b-1) - 1``, and the layer's real-unit scale is divided by that top level, so that
        at every width the network starts with the same real drives and moves the same fraction
        of its weight range per step (the float rule's convention). Identical for binary and
        ternary layers (top level 1); for mixing widths, e.g. a 4-bit first layer in a ternary
        network.
    shift : int
        Random translation augmentation, in pixels (0: off).
    hflip : bool
        Random horizontal flips (fashion items, not digits).
    learning : str
        ``probabilistic``, ``shadow`` or ``naive`` (ignored for full-precision weights).
    bias_learning : str
        The rule for the bias levels: ``""`` (default: the same as ``learning``),
        ``probabilistic`` or ``shadow``. For experiments that separate the weights' and the
        biases' share of a difference between the rules.
    shadow_layers : str
        Comma-separated indices of layers (in the architecture's layer list, e.g. ``"0"`` or
        ``"0,5"``) whose weights follow the shadow rule while the others follow ``learning``:
        for experiments that locate a difference between the rules in the network (default
        ``""``: none). Each must be a layer with low-precision weights.
    layer_weight_lr : str
        Per-layer factors on ``lr`` for the weight levels (not the biases) of the named layers,
        ``"index:factor"`` pairs separated by commas (e.g. ``"0:0.15"``: the first layer's
        weights step 0.15 times as far); default ``""``: 1 everywhere. Layers of low-precision
        weights only.
    channel_gains : str
        Comma-separated indices of layers of multi-bit weights (e.g. ``"2,4"``) trained as
        **ternary weights with a per-channel integer gain**: output channel ``c`` has weights
        ``t * g[c]`` with ``t`` in {-1, 0, +1} and ``g[c]`` in ``1..top`` (the layer's largest
        weight level, 7 for 4 bits), both learned by the layer's rule (``t`` as a ternary layer's
        weights, ``layer_weight_lr`` included; ``g`` with ``lr`` a fraction of its range, as
        ``weight_step = "range"`` makes it for multi-bit weights). Each channel
        then uses three weight values, and channels differ in scale, so that the k-WTA compares
        finer drives than ternary weights give. The model stores ``t * g`` as the layer's levels,
        so model files, the reference and the spiking network are unchanged. Needs ``weight_step
        = "range"``; the network starts with ``g = top``, i.e. as the ternary network.
        Default ``""``: none.
    ste : str
        The straight-through estimator of binary activities: ``window`` (default; a triangle
        surrogate around each hypercolumn's decision boundary) or ``winners``.
    ste_width : float
        The ``window`` triangle's half-width in real drive units (default 1: about the spread of
        a layer's drives at initialisation, see ``_layer_scales``); its height is ``1 /
        ste_width``, which the Adam-normalised steps of every rule but ``naive`` do not see.
    seed : int
        Seeds initialisation, shuffling, augmentation and the probabilistic rounding.
    threads : int
        PyTorch intra-op threads (0: PyTorch's default).
    train_subset : int
        Train on this many images of the training split (a seeded random subset; 0: all), for
        budget-limited runs on shared CPUs.
    teacher : str
        Knowledge distillation (Hinton et al. 2015, "Distilling the knowledge in a neural
        network", arXiv:1503.02531): a model file whose logits on each training image are soft
        targets for this network, e.g. the full-precision baseline ``models/fashion_fp32_wide.npz``
        (default ``""``: no teacher). The teacher must take the same images and classes. Its logits
        are computed once before training (on every batch instead when augmenting).
    distill_weight : float
        With a teacher, the loss is ``(1 - distill_weight) * CE(labels) + distill_weight *
        distill_temp**2 * KL(teacher || student)`` at temperature ``distill_temp`` (the ``T**2``
        keeps the soft targets' gradient on the scale of the hard ones'; Hinton et al. 2015).
        Default 0.5; in [0, 1].
    distill_temp : float
        The softmax temperature ``T`` of the soft targets (default 4; > 0).
    homeostasis : float
        Homeostatic thresholds (intrinsic plasticity: adaptive thresholds that share out the wins
        of a competitive layer, as in Földiák 1990, Biol. Cybern. 64:165, and Diehl & Cook 2015,
        Front. Comput. Neurosci. 9:99): after each step, every k-WTA layer with low-precision
        weights moves each channel's bias by ``homeostasis * (mean win rate of the layer - the
        channel's win rate)`` real drive units, times the learning rate's schedule, with win
        rates measured on the step's batch (the fraction of locations where the channel won). Channels that win more than their share get a higher threshold,
        silent ones a lower, and the layer's mean is unchanged. The bias levels stay the model's
        only thresholds, so models, the reference and the spiking network are unchanged.
        Default 0: off; >= 0.
    init : str
        Warm start (staged training): a model file whose weight and bias levels start this
        network instead of a random draw (default ``""``: random). The model must have the same
        layers (types, shapes, weight bits) and bias levels within this architecture's range; its
        activity bits and k may differ. That is the second stage of the two-stage recipes for binary
        activities: train with real-valued (or multi-bit) activities first, then binarise the
        activities and train on from those weights (Martinez et al. 2020, "Training binary
        neural networks with real-to-binary convolutions", ICLR, arXiv:2003.11535; Zhuang et
        al. 2018, "Towards effective low-bitwidth convolutional neural networks", CVPR,
        arXiv:1711.00205). Shadow weights start at the levels, optimiser states at zero; the
        readout's temperature and the activity steps are taken over only when every layer's
        activity bits match (a plain continuation), else they start as in a fresh network.
    """

    dataset: str = "digits"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.02
    lr_float: float = 2e-3
    lr_schedule: str = "cosine"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    adam_norm: str = "element"
    reset_momentum: bool = False
    step_power: float = 1.0
    weight_step: str = "level"
    shift: int = 0
    hflip: bool = False
    learning: str = "probabilistic"
    bias_learning: str = ""
    shadow_layers: str = ""
    layer_weight_lr: str = ""
    channel_gains: str = ""
    ste: str = "window"
    ste_width: float = 1.0
    seed: int = 0
    threads: int = 0
    train_subset: int = 0
    teacher: str = ""
    distill_weight: float = 0.5
    distill_temp: float = 4.0
    homeostasis: float = 0.0
    init: str = ""


_TRAIN_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def parse_train_overrides(items) -> dict:
    """``["beta1=0.99", "learning=shadow"]`` -> ``{"beta1": 0.99, "learning": "shadow"}``, each value
    converted to the type of its :class:`TrainConfig` field (for ``--set KEY=VALUE`` options).

    Raises
    ------
    ConfigError
        Not ``KEY=VALUE``, an unknown key, or a value that does not convert.
    """
    out = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        if key not in _TRAIN_TYPES:
            raise ConfigError(f"--set {item!r}: unknown key {key!r}; allowed keys: {', '.join(sorted(_TRAIN_TYPES))}")
        want = _TRAIN_TYPES[key]
        try:
            if want == "bool":
                if text.lower() not in ("true", "false"):
                    raise ValueError
                value = text.lower() == "true"
            else:
                value = {"int": int, "float": float}.get(want, str)(text)
        except ValueError:
            raise ConfigError(f"--set {item!r}: {key} needs a value of type {want}") from None
        out[key] = value
    return out


def low_precision_layers(arch: Architecture) -> list:
    """Indices of the layers of ``arch`` with low-precision (integer-level) weights."""
    return [i for i, spec in enumerate(arch.layers) if spec.has_weights and spec.weight_bits != FLOAT_BITS]


def _parse_layer_indices(arch: Architecture, key: str, text: str, allowed: list, what: str) -> set:
    """``"0,5"`` -> ``{0, 5}`` for the ``[training]`` field ``key``; each index must be in
    ``allowed`` (a ConfigError naming the field, the item, ``what`` the layers must be, and the
    allowed indices)."""
    out = set()
    for item in filter(None, (t.strip() for t in str(text).split(","))):
        try:
            i = int(item)
        except ValueError:
            i = None
        if i not in allowed:
            raise ConfigError(f"[training] {key} = {text!r}: {item!r} is not a layer {what} of {arch.name!r}; "
                              f"allowed indices: {allowed}")
        out.add(i)
    return out


def parse_shadow_layers(arch: Architecture, text: str) -> set:
    """``"0,5"`` -> ``{0, 5}``: the layers of ``arch`` whose weights follow the shadow rule.

    Raises
    ------
    ConfigError
        Not a comma-separated list of integers, or an index that is not a layer with
        low-precision weights.
    """
    return _parse_layer_indices(arch, "shadow_layers", text, low_precision_layers(arch),
                                "with low-precision weights")


def parse_channel_gains(arch: Architecture, text: str, weight_step: str = "range") -> set:
    """``"2,4"`` -> ``{2, 4}``: the layers trained as ternary weights times a per-channel gain
    (:class:`TrainConfig` ``channel_gains``).

    Raises
    ------
    ConfigError
        Not a comma-separated list of integers, an index that is not a layer of multi-bit
        (3 to 8 bits) weights, or ``weight_step`` other than ``"range"``.
    """
    allowed = [i for i in low_precision_layers(arch) if arch.layers[i].weight_bits >= 3]
    out = _parse_layer_indices(arch, "channel_gains", text, allowed, "of multi-bit (3 to 8 bits) weights")
    if out and weight_step != "range":
        raise ConfigError(f"[training] channel_gains = {text!r} needs weight_step = 'range' (got {weight_step!r}), "
                          f"so that the network starts as the ternary one")
    return out


def parse_layer_weight_lr(arch: Architecture, text: str) -> dict:
    """``"0:0.15,5:2"`` -> ``{0: 0.15, 5: 2.0}``: factors on ``lr`` for the weight levels of layers.

    Raises
    ------
    ConfigError
        Not comma-separated ``index:factor`` pairs, an index that is not a layer with
        low-precision weights, or a factor that is not a positive number.
    """
    out = {}
    allowed = low_precision_layers(arch)
    for item in filter(None, (t.strip() for t in str(text).split(","))):
        index, _, factor = item.partition(":")
        try:
            i, f = int(index), float(factor)
        except ValueError:
            raise ConfigError(f"[training] layer_weight_lr = {text!r}: {item!r} is not 'index:factor' "
                              f"(e.g. '0:0.15')") from None
        if i not in allowed:
            raise ConfigError(f"[training] layer_weight_lr = {text!r}: {i} is not a layer with low-precision "
                              f"weights of {arch.name!r}; allowed indices: {allowed}")
        if not (math.isfinite(f) and f > 0):
            raise ConfigError(f"[training] layer_weight_lr = {text!r}: factor {factor!r} of layer {i}; "
                              f"allowed: a positive number")
        out[i] = f
    return out


def load_train_config(path_or_dict, **overrides) -> TrainConfig:
    """Read the ``[training]`` table of an architecture file and apply overrides (None: keep).

    Raises
    ------
    ConfigError
        Unknown key, wrong type, or a value out of range.
    """
    raw, src = load_config(path_or_dict)
    table = dict(raw.get("training", {}))
    where = f"{src} [training]"
    for key, value in table.items():
        if key not in _TRAIN_TYPES:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(_TRAIN_TYPES))}")
        want = _TRAIN_TYPES[key]
        ok = (want == "int" and isinstance(value, int) and not isinstance(value, bool)) or \
             (want == "float" and isinstance(value, (int, float)) and not isinstance(value, bool)) or \
             (want == "bool" and isinstance(value, bool)) or (want == "str" and isinstance(value, str))
        if not ok:
            raise ConfigError(f"{where}: field {key!r} = {value!r} has the wrong type; expected {want}")
    given = {k: v for k, v in overrides.items() if v is not None}
    table.update(given)
    cfg = TrainConfig(**table)
    checks = [("epochs", cfg.epochs >= 1, ">= 1"), ("batch_size", cfg.batch_size >= 1, ">= 1"),
              ("lr", cfg.lr > 0, "> 0"), ("lr_float", cfg.lr_float > 0, "> 0"),
              ("lr_schedule", cfg.lr_schedule in ("cosine", "constant"), "'cosine' or 'constant'"),
              ("learning", cfg.learning in LEARNING_RULES, " or ".join(LEARNING_RULES)),
              ("bias_learning", cfg.bias_learning in ("", "probabilistic", "shadow"),
               "'' (same as learning), 'probabilistic' or 'shadow'"),
              ("ste", cfg.ste in ("winners", "window"), "'winners' or 'window'"),
              ("ste_width", cfg.ste_width > 0, "> 0"),
              ("adam_norm", cfg.adam_norm in ("element", "tensor"), "'element' or 'tensor'"),
              ("weight_step", cfg.weight_step in ("level", "range"), "'level' or 'range'"),
              ("beta1", 0.0 <= cfg.beta1 < 1.0, "0 <= beta1 < 1"), ("beta2", 0.0 <= cfg.beta2 < 1.0, "0 <= beta2 < 1"),
              ("eps", cfg.eps > 0, "> 0"), ("step_power", 0 < cfg.step_power <= 4, "0 < step_power <= 4"),
              ("step_power", cfg.step_power == 1.0 or cfg.adam_norm == "element",
               "1 with adam_norm = 'tensor' (the power applies to Adam's per-element step)"),
              ("shift", cfg.shift >= 0, ">= 0"), ("threads", cfg.threads >= 0, ">= 0"),
              ("seed", cfg.seed >= 0, ">= 0"), ("train_subset", cfg.train_subset >= 0, ">= 0"),
              ("distill_weight", 0.0 <= cfg.distill_weight <= 1.0, "0 <= distill_weight <= 1"),
              ("distill_temp", cfg.distill_temp > 0, "> 0"),
              ("homeostasis", 0.0 <= cfg.homeostasis < math.inf, ">= 0 and finite")]
    for name, ok, allowed in checks:
        if not ok:
            # a value from the command line (an option or --set) is named as such, not as the file's
            source = "command line" if name in given else where
            raise ConfigError(f"{source}: {name} = {getattr(cfg, name)!r}: allowed {allowed}")
    return cfg


def _step_top(bits: int, weight_step: str) -> int:
    """The unit of a low-precision layer's step, in levels: 1 (``level``), or its largest weight
    level with ``weight_step = "range"`` (also 1 for binary and ternary)."""
    return int(weight_level_range(bits)[1]) if weight_step == "range" else 1


def _layer_scales(arch: Architecture, weight_step: str = "level"):
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
                top = _step_top(spec.weight_bits, weight_step)
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


def _layer_bounds(arch: Architecture) -> list:
    """Largest possible |integer drive| of each layer."""
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


def _bound(arch: Architecture) -> float:
    """Largest possible k-WTA key ``|drive| * channels`` over the layers with integer drives (for the
    float32 exactness check; layers of float weights are not integer and not counted)."""
    return max((b * max(spec.out_shape[0], 1) for b, spec in zip(_layer_bounds(arch), arch.layers)
                if math.isfinite(b)), default=0.0)


#: Integer drives with at most this many distinct non-negative values (pooled binary or 2-bit
#: activities) use the counting k-WTA instead of ``topk``.
_COUNTING_MAX_LEVEL = 16


def _kwta_counting(torch, drive, k: int, vmax: int, want_theta: bool):
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


def _kwta_torch(torch, drive, k: int, exact: bool, want_theta: bool = False, vmax: int | None = None):
    """Top-k mask along dim 1 with the reference's ties (lower channel index wins).

    With ``want_theta`` also returns the decision boundary of each hypercolumn: the midpoint
    between the k-th and (k+1)-th largest drive (used by the ``window`` straight-through
    estimator). ``vmax``: the drive is known to be an integer in ``0..vmax`` (pooling of
    low-bit activities); small ranges take the counting path (:func:`_kwta_counting`).

    Speed (the k-WTA dominated the low-precision training step): ``topk`` runs unsorted and
    the k-th / (k+1)-th values are taken from its k+1 outputs with two small reductions.
    """
    channels = drive.shape[1]
    if k >= channels:
        mask = torch.ones_like(drive, dtype=torch.bool)
        return (mask, None) if want_theta else mask
    if exact and vmax is not None and vmax <= _COUNTING_MAX_LEVEL:
        return _kwta_counting(torch, drive, k, int(vmax), want_theta)
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


def _select_torch(torch, dd, k, exact: bool, window_surr: bool, scale: float, vmax=None, key64: bool = False):
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
            win, theta = _kwta_torch(torch, key_in, k, exact, True, vmax)
            theta = None if theta is None else theta.to(dd.dtype)
        else:
            win = _kwta_torch(torch, key_in, k, exact, vmax=vmax)
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


def _make_net_class():
    import torch
    import torch.nn.functional as F

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

    class _HCSNet(torch.nn.Module):
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
            self.dtype = torch.float64 if _bound(arch) >= 2 ** 24 else torch.float32
            self.gen = torch.Generator().manual_seed(int(seed))
            self.weight_step = weight_step  # TrainConfig.weight_step: the scales' and LevelUpdater's unit
            self.scales = _layer_scales(arch, weight_step)
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
                          for b, spec in zip(_layer_bounds(arch), arch.layers)]

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
            from hcs_neuro.train import ext as _kwta_ext

            module = _kwta_ext.load()
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
        def _effective(self, i: int):
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
                    w, b = self._effective(i)
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
                        # the window surrogate, bit-identical to _select_torch
                        res = fused.kwta_select(dd, spec.k, exact, window_surr, window_scale)
                        win, winf, surr = None, res[0], (res[1] if window_surr else None)
                    else:
                        win, winf, surr = _select_torch(torch, dd, spec.k, exact, window_surr, window_scale,
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
                        w, b = self._effective(i)
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

    return _HCSNet


_NET_CLASS = None


def HCSNet(arch: Architecture, learning: str = "probabilistic", seed: int = 0, model=None, ste: str = "window",
           weight_step: str = "level"):
    """Build the PyTorch network for ``arch`` (random init from ``seed``, or the levels of ``model``).

    Returns a ``torch.nn.Module`` whose ``forward(x_levels, record=False)`` takes the quantized
    input (float tensor of integer levels, as :func:`hcs_neuro.core.reference.quantize_input`) and
    returns real-valued logits; ``to_model()`` converts it to a :class:`~hcs_neuro.core.model.Model`.
    """
    global _NET_CLASS
    if _NET_CLASS is None:
        _NET_CLASS = _make_net_class()
    return _NET_CLASS(arch, learning, seed, model, ste, weight_step)


def torch_forward(model: Model, images, batch_size: int = 512, keep_layers: bool = True):
    """Run ``model`` through the PyTorch forward pass (no gradients).

    Returns ``(logits_int, layers)``: integer logits (float64 array holding integers for
    low-precision models) and per layer ``(drive, winners, output)`` numpy arrays, for
    comparison with :func:`hcs_neuro.core.reference.forward` (an empty list with
    ``keep_layers=False``, which needs memory for the logits only).
    """
    import torch

    from hcs_neuro.core.reference import quantize_input

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


def load_teacher(path, arch: Architecture) -> Model:
    """Load the distillation teacher (``TrainConfig.teacher``) and check that it fits ``arch``.

    Raises
    ------
    ModelError
        The file does not load (see :func:`hcs_neuro.core.model.load_model`).
    ConfigError
        Its input shape or number of classes differs from ``arch``'s.
    """
    from hcs_neuro.core.model import load_model

    teacher = load_model(path)
    t_arch = teacher.architecture
    if tuple(t_arch.input_shape) != tuple(arch.input_shape) or t_arch.n_classes != arch.n_classes:
        raise ConfigError(f"teacher {path}: it takes input {list(t_arch.input_shape)} with {t_arch.n_classes} "
                          f"classes, but {arch.source} takes {list(arch.input_shape)} with {arch.n_classes}")
    return teacher


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
    from hcs_neuro.core.model import load_model

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


def teacher_logits(teacher: Model, images, batch_size: int = 512) -> np.ndarray:
    """Real-valued logits of ``teacher`` (the values its own training loss saw), float32.

    Soft targets for distillation: :func:`torch_forward` returns the integer logits of a
    low-precision model instead, which differ from these by the readout's scale.
    """
    return _teacher_fn(teacher)(images, batch_size)


def _teacher_fn(teacher: Model):
    """``images -> teacher_logits(teacher, images)`` with the teacher's network built once."""
    import torch

    from hcs_neuro.core.reference import quantize_input

    net = HCSNet(teacher.architecture, "probabilistic", 0, model=teacher)
    net.eval()

    def run(images, batch_size: int = 512) -> np.ndarray:
        x_all = quantize_input(teacher, images)
        out = [np.zeros((0, teacher.architecture.n_classes), np.float32)]
        with torch.no_grad():
            for s in range(0, len(x_all), batch_size):
                xb = torch.as_tensor(x_all[s:s + batch_size].astype(np.float64), dtype=net.dtype)
                out.append(net(xb).float().numpy())
        return np.concatenate(out)

    return run


def distill_loss(logits, targets, soft, weight: float, temp: float):
    """``(1 - weight) * CE(logits, targets) + weight * temp**2 * KL(softmax(soft / temp) ||
    softmax(logits / temp))`` (Hinton et al. 2015), and the cross-entropy alone (for the loss
    curve, so that runs with and without a teacher compare)."""
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, targets)
    kl = F.kl_div(F.log_softmax(logits / temp, dim=1), F.log_softmax(soft / temp, dim=1),
                  reduction="batchmean", log_target=True)
    return (1.0 - weight) * ce + weight * temp * temp * kl, ce


class LevelUpdater:
    """One learning step of ``cfg.learning`` on the parameters of an :class:`HCSNet`.

    The public hook for custom training loops (instrumented runs, e.g. the theory probe of
    ``analysis/paper``): after ``loss.backward()`` call ``step(frac)`` with ``frac`` the
    fraction of the run done (drives the cosine schedule). Low-precision levels move by the
    chosen rule (probabilistic: Adam-normalised step, stochastically rounded to whole levels
    with the network's seeded generator; shadow: full-precision shadow values; naive);
    full-precision parameters take an Adam step. Clear the gradients before each backward pass.

    Example
    -------
    >>> net = HCSNet(arch, "probabilistic", seed=0)          # doctest: +SKIP
    >>> upd = LevelUpdater(net, cfg)                          # doctest: +SKIP
    >>> loss = F.cross_entropy(net(x), y); loss.backward()    # doctest: +SKIP
    >>> upd.step(step / total_steps)                          # doctest: +SKIP
    """

    def __init__(self, net, cfg: TrainConfig):
        import torch

        self.torch = torch
        self.net = net
        self.cfg = cfg
        self.t = 0
        self.state = {}
        arch = net.arch
        self.groups = []  # (param, kind, bits, lr_mult, lo, hi, layer index or None)
        net.track_rates = cfg.homeostasis > 0  # (the training passes then record the win rates)
        factors = parse_layer_weight_lr(arch, cfg.layer_weight_lr)
        if cfg.weight_step != net.weight_step:  # the net's scales and these steps share one unit
            raise ConfigError(f"[training] weight_step = {cfg.weight_step!r}, but the network was built with "
                              f"{net.weight_step!r}: pass HCSNet(..., weight_step=cfg.weight_step)")
        gain_layers = parse_channel_gains(arch, cfg.channel_gains, cfg.weight_step)
        if gain_layers != {int(i) for i in net.gains}:
            raise ConfigError(f"[training] channel_gains = {cfg.channel_gains!r}, but the network's gain layers are "
                              f"{sorted(int(i) for i in net.gains)}: call net.use_channel_gains(...) with the same layers")
        for i, spec in enumerate(arch.layers):
            if not spec.has_weights:
                continue
            j = net.widx[i]
            in_top = net.scales[i][1]
            if spec.weight_bits == FLOAT_BITS:
                self.groups.append((net.weights[j], "float", 32, 1.0, None, None, i))
                self.groups.append((net.biases[j], "float", 32, 1.0, None, None, i))
            else:
                lo, hi = weight_level_range(spec.weight_bits)
                blo, bhi = bias_level_range(spec.bias_bits)
                # lr in level units, or (weight_step = "range") a fraction of the top level; the
                # bias levels are in accumulator units, whose drive grows with both tops
                top = _step_top(spec.weight_bits, net.weight_step)
                if str(i) in net.gains:  # ternary levels (a ternary layer's step), gain levels 1..top
                    # moving lr * top levels per step (lr a fraction of the range, as weight_step = "range")
                    self.groups.append((net.weights[j], "weight", 2, factors.get(i, 1.0), -1, 1, i))
                    self.groups.append((net.gains[str(i)], "gain", spec.weight_bits, float(hi), 1, hi, i))
                else:
                    self.groups.append((net.weights[j], "weight", spec.weight_bits, top * factors.get(i, 1.0), lo, hi, i))
                self.groups.append((net.biases[j], "bias", spec.bias_bits, max(in_top, 1.0) * top, blo, bhi, i))
        self.groups.append((net.log_temp, "float", 32, 1.0, None, None, None))

    def step(self, frac: float):
        torch = self.torch
        cfg = self.cfg
        self.t += 1
        decay = 0.5 * (1 + math.cos(math.pi * frac)) if cfg.lr_schedule == "cosine" else 1.0
        b1, b2 = cfg.beta1, cfg.beta2
        bc1 = 1 - b1 ** self.t
        bc2 = 1 - b2 ** self.t
        with torch.no_grad():
            for p, kind, bits, mult, lo, hi, layer in self.groups:
                g = p.grad
                if g is None:
                    continue
                rule = "float" if kind == "float" else (self.net.bias_learning if kind == "bias" else self.net.weight_rule(layer))
                if rule == "naive":
                    delta = g * (-cfg.lr * decay * mult)
                else:
                    st = self.state.get(id(p))
                    if st is None:
                        st = self.state[id(p)] = (torch.zeros_like(p), torch.zeros_like(p))
                    m, v = st
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    lr = (cfg.lr_float if kind == "float" else cfg.lr * mult) * decay
                    if kind != "float" and cfg.adam_norm == "tensor":
                        delta = (m / bc1) * (-lr / (math.sqrt(float(v.mean()) / bc2) + cfg.eps))
                    else:
                        delta = (m / bc1) / ((v / bc2).sqrt_().add_(cfg.eps))
                        if cfg.step_power != 1.0 and kind == "weight" and rule == "probabilistic":
                            delta = delta.sign() * delta.abs().pow_(cfg.step_power)
                        delta = delta * (-lr)
                if kind == "bias" and cfg.homeostasis and layer in self.net.win_rates:
                    # homeostatic thresholds: real drive units -> accumulator units (the bias levels')
                    r = self.net.win_rates[layer]
                    delta = delta + (r.mean() - r) * (cfg.homeostasis * decay / self.net.drive_scale[layer])
                if rule in ("float", "shadow"):
                    p.add_(delta)
                    if rule == "shadow" and lo is not None:
                        p.clamp_(lo, hi)
                    continue
                spacing = 2.0 if (kind == "weight" and bits == 1) else 1.0
                q = delta / spacing
                low = torch.floor(q)
                r = torch.rand(q.shape, generator=self.net.gen, dtype=q.dtype)
                move = (low + (r < (q - low)).to(q.dtype)) * spacing
                if cfg.reset_momentum and rule == "probabilistic" and kind == "weight":
                    new = (p + move).clamp_(lo, hi)
                    m.masked_fill_(new != p, 0.0)  # moved levels start a fresh momentum
                    p.copy_(new)
                else:
                    p.add_(move).clamp_(lo, hi)
                p.grad = None


def _augment(rng, x: np.ndarray, shift: int, hflip: bool) -> np.ndarray:
    """Random translations by up to ``shift`` pixels (zero fill) and horizontal flips."""
    if shift:
        n, c, h, w = x.shape
        pad = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
        oy = rng.integers(0, 2 * shift + 1, n)
        ox = rng.integers(0, 2 * shift + 1, n)
        rows = oy[:, None] + np.arange(h)
        cols = ox[:, None] + np.arange(w)
        x = pad.transpose(0, 2, 3, 1)[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if hflip:
        flip = rng.random(len(x)) < 0.5
        x = x.copy()
        x[flip] = x[flip][..., ::-1]
    return x


#: An epoch whose mean training loss is at least this fraction of chance (ln of the number of
#: classes: the cross-entropy of a uniform guess) has not learned, or has collapsed: see
#: :func:`chance_loss_warning`.
CHANCE_LOSS_FRACTION = 0.97


def chance_loss_warning(epoch: int, mean_loss: float, n_classes: int) -> str:
    """A warning if ``epoch`` (1-based, from the second on) ended with its mean training loss at chance.

    A network whose loss sits at ln(n_classes) does no better than a uniform guess. This is how
    the collapse of docs/training.md ("k sweep with the momentum reset") shows: at k = 1/8 one
    run fell from 74.7 % to chance in epoch 5, when the first layer's largest biases
    won at every location of every image, and never recovered. The first epoch is not checked
    (a short or small run may still be near chance there). Returns ``""`` when all is well.
    """
    chance = math.log(n_classes)
    if epoch < 2 or mean_loss < CHANCE_LOSS_FRACTION * chance:  # (a NaN loss warns too)
        return ""
    return (f"warning: epoch {epoch}: mean training loss {mean_loss:.3f} is at or above chance (ln {n_classes} = "
            f"{chance:.3f}, a uniform guess): the network is not learning, or has collapsed (see "
            "docs/training.md: k sweep); try another --seed, a smaller --lr or a denser --k")


def train(arch: Architecture, cfg: TrainConfig, data_dir=None, progress: bool = True, command: str = "",
          train_data=None, test_data=None, max_steps: int | None = None, teacher=None,
          on_epoch=None, init=None) -> tuple[Model, dict]:
    """Train ``arch`` with ``cfg`` and return ``(model, report)``.

    The report (also stored as the model's metadata) holds the dataset, bits, k, learning
    rule, seed, epochs, final training loss (a running average of the cross-entropy with the
    labels, also when a teacher adds soft targets) and each epoch's mean (``epoch_train_loss``),
    ``teacher_train_accuracy`` (with a teacher and no augmentation: its accuracy on the training
    images, else None), ``warnings`` (e.g. an epoch at chance, printed on stderr as it
    happens: :func:`chance_loss_warning`), ``train_images_per_s`` (training steps only),
    ``test_accuracy`` from the NumPy reference forward pass, ``test_accuracy_torch`` from the
    PyTorch forward pass (they must be equal), and the command line.

    Parameters
    ----------
    arch, cfg : Architecture, TrainConfig
    data_dir : optional
        IDX folder for ``fashion-mnist``/``mnist``.
    progress : bool
        Show a tqdm progress bar (on stderr).
    command : str
        The command line, recorded in the metadata.
    train_data, test_data : (images, labels), optional
        Use these instead of loading ``cfg.dataset`` (tests, benchmarks).
    teacher : Model, optional
        ``cfg.teacher`` already loaded and checked (:func:`load_teacher`), so that it is not read
        twice (the CLI loads it before the data, to fail early); ignored without ``cfg.teacher``.
    init : Model, optional
        ``cfg.init`` already loaded and checked (:func:`load_init`), likewise.
    max_steps : int, optional
        Stop after this many steps (benchmarks).
    on_epoch : callable, optional
        ``on_epoch(epoch, model)`` is called after each completed epoch (1-based) with a
        snapshot :class:`~hcs_neuro.core.model.Model` of the current levels, e.g. to record a
        learning curve. Its time is not counted in ``train_images_per_s``.
    """
    import torch
    import torch.nn.functional as F

    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.reference import evaluate, quantize_input

    shadow_layers = parse_shadow_layers(arch, cfg.shadow_layers)  # (a bad value fails before any work)
    parse_layer_weight_lr(arch, cfg.layer_weight_lr)
    gain_layers = parse_channel_gains(arch, cfg.channel_gains, cfg.weight_step)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    x_train, y_train = train_data if train_data is not None else load_dataset(cfg.dataset, "train", data_dir)
    x_test, y_test = test_data if test_data is not None else load_dataset(cfg.dataset, "test", data_dir)
    if tuple(x_train.shape[1:]) != tuple(arch.input_shape):
        raise ConfigError(f"{arch.source}: input shape {list(arch.input_shape)} does not fit dataset "
                          f"{cfg.dataset!r} images of shape {list(x_train.shape[1:])}")
    if int(y_train.max()) >= arch.n_classes:
        raise ConfigError(f"{arch.source}: readout has {arch.n_classes} channels but dataset {cfg.dataset!r} "
                          f"has {int(y_train.max()) + 1} classes")
    if cfg.train_subset and cfg.train_subset < len(y_train):
        keep = np.sort(np.random.default_rng(cfg.seed + 1).permutation(len(y_train))[:cfg.train_subset])
        x_train, y_train = x_train[keep], y_train[keep]
    soft_of, soft_all, teacher_acc = None, None, None
    if cfg.teacher:
        soft_of = _teacher_fn(teacher if teacher is not None else load_teacher(cfg.teacher, arch))
        if not (cfg.shift or cfg.hflip):  # fixed images: the soft targets once, before the clock starts
            soft_all = soft_of(x_train)
            teacher_acc = float((soft_all.argmax(1) == y_train).mean())
    learning = "float" if all(s.weight_bits == FLOAT_BITS for s in arch.layers if s.has_weights) else cfg.learning
    net = HCSNet(arch, cfg.learning, cfg.seed, ste=cfg.ste, weight_step=cfg.weight_step)
    net.bias_learning = cfg.bias_learning or cfg.learning
    net.ste_width = cfg.ste_width
    net.shadow_layers = shadow_layers
    if cfg.init:
        if gain_layers:
            raise ConfigError(f"init = {cfg.init!r} with channel_gains = {cfg.channel_gains!r}: a warm start "
                              "keeps the weight levels, which gains would re-draw; use one or the other")
        init = init if init is not None else load_init(cfg.init, arch)
        # a plain continuation (same activity bits everywhere) also keeps the activity steps and
        # the readout's temperature; into other activity bits those start fresh
        net.load_levels(init, calibration=all(a.act_bits == b.act_bits
                                              for a, b in zip(init.architecture.layers, arch.layers)))
    net.use_channel_gains(gain_layers)
    upd = LevelUpdater(net, cfg)
    rng = np.random.default_rng(cfg.seed)
    stub = _model_stub(arch)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if max_steps is None else min(max_steps, steps_per_epoch * cfg.epochs)
    bar = None
    if progress:
        from hcs_neuro.core.progress import progress as progress_bar

        bar = progress_bar(total=total, desc=f"train {arch.name} ({learning})", unit="step", leave=True)
    step = 0
    t_train = 0.0
    images_seen = 0
    loss_avg = None
    epoch_losses, warnings_ = [], []
    y_t = torch.as_tensor(y_train)
    net.train()
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        loss_sum, loss_steps = 0.0, 0
        for s in range(0, n, cfg.batch_size):
            if step >= total:
                break
            idx = order[s:s + cfg.batch_size]
            t0 = time.perf_counter()
            xb = x_train[idx]
            if cfg.shift or cfg.hflip:
                xb = _augment(rng, xb, cfg.shift, cfg.hflip)
            xq = torch.as_tensor(quantize_input(stub, xb), dtype=net.dtype)
            logits = net(xq)
            if soft_of is None:
                loss = ce = F.cross_entropy(logits, y_t[idx])
            else:  # (augmented images: the teacher runs on each batch, inside the timed step)
                soft = soft_all[idx] if soft_all is not None else soft_of(xb)
                loss, ce = distill_loss(logits, y_t[idx], torch.as_tensor(soft, dtype=logits.dtype),
                                        cfg.distill_weight, cfg.distill_temp)
            for p in net.parameters():
                p.grad = None
            loss.backward()
            upd.step(step / total)
            t_train += time.perf_counter() - t0
            images_seen += len(idx)
            step += 1
            lv = float(ce.detach())  # the cross-entropy with the labels, with or without a teacher
            loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
            loss_sum, loss_steps = loss_sum + lv, loss_steps + 1
            if bar is not None:
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss_avg:.3f}")
        else:  # the epoch ran to its end
            epoch_losses.append(loss_sum / max(loss_steps, 1))
            message = chance_loss_warning(epoch + 1, epoch_losses[-1], arch.n_classes)
            if message:
                warnings_.append(message)
                if bar is not None:
                    bar.write(message, file=sys.stderr)  # above the progress bar
                else:
                    print(message, file=sys.stderr)
            if on_epoch is not None:
                net.eval()
                on_epoch(epoch + 1, net.to_model(dict(epoch=epoch + 1)))
                net.train()
    if bar is not None:
        bar.close()
    net.eval()
    model = net.to_model()
    ev = evaluate(model, x_test, y_test, progress=progress, ops=False)
    logits_t, _ = torch_forward(model, x_test, keep_layers=False)
    acc_torch = float((np.argmax(logits_t, axis=1) == y_test).mean())
    report = {
        "dataset": cfg.dataset,
        "architecture": arch.name,
        "config_file": arch.source,
        "learning": learning,
        "weight_bits": sorted({s.weight_bits for s in arch.layers if s.has_weights}),
        "act_bits": sorted({s.act_bits for s in arch.layers if not s.is_readout}),
        "input_bits": arch.input_bits,
        "k": [s.k for s in arch.layers if not s.is_readout],
        "hcs": arch.hcs,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "steps": step,
        "n_train": int(len(y_train)),
        "training": dataclasses.asdict(cfg),
        "train_loss": loss_avg,
        "epoch_train_loss": epoch_losses,
        "warnings": warnings_,
        "teacher_train_accuracy": teacher_acc,
        "train_images_per_s": images_seen / max(t_train, 1e-9),
        "train_time_s": t_train,
        "test_accuracy": ev["accuracy"],
        "test_accuracy_torch": acc_torch,
        "zero_weight_fraction": ev["zero_weight_fraction"],
        "n_test": ev["n_images"],
        "command": command,
        "torch_version": torch.__version__,
    }
    model.metadata = report
    return model, report


def _model_stub(arch):
    return Model(arch, [])


def measure_throughput(arch: Architecture, cfg: TrainConfig, x, y, steps: int, fused_kwta: bool = True) -> float:
    """Training images per second over ``steps`` steps (after one warm-up step).

    ``fused_kwta=False`` forces the pure-PyTorch k-WTA (for comparing it with the compiled one).
    """
    import torch
    import torch.nn.functional as F

    from hcs_neuro.core.reference import quantize_input

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net = HCSNet(arch, cfg.learning, cfg.seed, ste=cfg.ste, weight_step=cfg.weight_step)
    if not fused_kwta:
        net.use_fused = False
    upd = LevelUpdater(net, cfg)
    stub = _model_stub(arch)
    rng = np.random.default_rng(cfg.seed)
    y_t = torch.as_tensor(y)
    net.train()
    t_total, n_img = 0.0, 0
    for s in range(steps + 1):
        idx = rng.integers(0, len(y), cfg.batch_size)
        t0 = time.perf_counter()
        xq = torch.as_tensor(quantize_input(stub, x[idx]), dtype=net.dtype)
        loss = F.cross_entropy(net(xq), y_t[idx])
        for p in net.parameters():
            p.grad = None
        loss.backward()
        upd.step(s / (steps + 1))
        if s:
            t_total += time.perf_counter() - t0
            n_img += len(idx)
    return n_img / t_total

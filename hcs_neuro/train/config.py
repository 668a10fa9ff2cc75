"""Training configuration: the ``[training]`` table of an architecture file.

:class:`TrainConfig` is a frozen dataclass that checks every field at construction (type and
range; the message names the field and what is allowed), so ``TrainConfig(lr=-1)`` is refused
wherever it is made. :func:`load_train_config` reads the table and applies command-line
overrides; the ``parse_*`` functions read the per-layer fields against an architecture.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from hcs_neuro.core.architecture import Architecture, load_config
from hcs_neuro.core.errors import ConfigError, FieldError
from hcs_neuro.core.quant import FLOAT_BITS

__all__ = ["LEARNING_RULES", "TrainConfig", "parse_train_overrides", "load_train_config", "low_precision_layers",
           "parse_layer_indices", "parse_shadow_layers", "parse_channel_gains", "parse_layer_weight_lr"]

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

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, want = getattr(self, f.name), f.type
            ok = (want == "int" and isinstance(value, int) and not isinstance(value, bool)) or \
                 (want == "float" and isinstance(value, (int, float)) and not isinstance(value, bool)) or \
                 (want == "bool" and isinstance(value, bool)) or (want == "str" and isinstance(value, str))
            if not ok:
                raise FieldError(f.name, f"{f.name} = {value!r} has the wrong type; expected {want}")
        for name, ok, allowed in self._checks():
            if not ok:
                raise FieldError(name, f"{name} = {getattr(self, name)!r}: allowed {allowed}")

    def _checks(self):
        """``(field, ok, allowed)`` for every range rule."""
        return [("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
                ("lr", math.isfinite(self.lr) and self.lr > 0, "> 0"),
                ("lr_float", math.isfinite(self.lr_float) and self.lr_float > 0, "> 0"),
                ("lr_schedule", self.lr_schedule in ("cosine", "constant"), "'cosine' or 'constant'"),
                ("learning", self.learning in LEARNING_RULES, " or ".join(LEARNING_RULES)),
                ("bias_learning", self.bias_learning in ("", "probabilistic", "shadow"),
                 "'' (same as learning), 'probabilistic' or 'shadow'"),
                ("ste", self.ste in ("winners", "window"), "'winners' or 'window'"),
                ("ste_width", math.isfinite(self.ste_width) and self.ste_width > 0, "> 0"),
                ("adam_norm", self.adam_norm in ("element", "tensor"), "'element' or 'tensor'"),
                ("weight_step", self.weight_step in ("level", "range"), "'level' or 'range'"),
                ("beta1", 0.0 <= self.beta1 < 1.0, "0 <= beta1 < 1"), ("beta2", 0.0 <= self.beta2 < 1.0, "0 <= beta2 < 1"),
                ("eps", math.isfinite(self.eps) and self.eps > 0, "> 0"),
                ("step_power", 0 < self.step_power <= 4, "0 < step_power <= 4"),
                ("step_power", self.step_power == 1.0 or self.adam_norm == "element",
                 "1 with adam_norm = 'tensor' (the power applies to Adam's per-element step)"),
                ("shift", self.shift >= 0, ">= 0"), ("threads", self.threads >= 0, ">= 0"),
                ("seed", 0 <= self.seed < 2 ** 32, "0 <= seed < 2**32"),
                ("train_subset", self.train_subset >= 0, ">= 0"),
                ("distill_weight", 0.0 <= self.distill_weight <= 1.0, "0 <= distill_weight <= 1"),
                ("distill_temp", math.isfinite(self.distill_temp) and self.distill_temp > 0, "> 0"),
                ("homeostasis", 0.0 <= self.homeostasis < math.inf, ">= 0 and finite")]


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


def parse_layer_indices(arch: Architecture, key: str, text: str, allowed: list, what: str) -> set:
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
    return parse_layer_indices(arch, "shadow_layers", text, low_precision_layers(arch),
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
    out = parse_layer_indices(arch, "channel_gains", text, allowed, "of multi-bit (3 to 8 bits) weights")
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
    for key in table:
        if key not in _TRAIN_TYPES:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(_TRAIN_TYPES))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    table.update(given)
    try:
        cfg = TrainConfig(**table)
    except FieldError as exc:
        # a value from the command line (an option or --set) is named as such, not as the file's
        source = "command line" if exc.field in given else where
        raise ConfigError(f"{source}: {exc}") from None
    return cfg



"""Network architectures from TOML: layers, k per HCS layer, bit widths; validation.

A file looks like this (``models/configs/digits.toml`` is a complete example)::

    name = "digits-hcs"
    [input]
    shape = [1, 8, 8]          # (C, H, W) for images, (C, L) for 1-D signals
    bits = 4                   # input quantized to 0..2**bits-1 (32: no quantization)
    [precision]
    weight_bits = 2            # 1 binary, 2 ternary, ..., 8; 32 = full precision
    act_bits = 1               # 1 binary activities; 2..8 levels; 32 = full-precision ReLU
    bias_bits = 16             # bias levels in accumulator units, clipped to this width
    [hcs]
    enabled = true
    k = 0.25                   # default k: count or fraction of the channels
    [[layers]]
    type = "conv2d"            # conv2d, conv1d, pool2d, pool1d, linear (the readout, last)
    channels = 32
    kernel = 3
    padding = 1                # optional: stride (1), padding (0), k, hcs, weight_bits, ...
    [[layers]]
    type = "pool2d"
    kernel = 2                 # stride defaults to the kernel
    [[layers]]
    type = "linear"
    channels = 10
    [training]                 # optional, read by hcs_neuro.train
    epochs = 20

Pooling layers sum the incoming activity levels over the window (for binary activities: the
number of active inputs, a count a spiking neuron with unit synapses realises) and then apply
the k-WTA of the layer across channels, so that pooling layers are hypercolumns too.

Unknown keys and wrong types raise :class:`~hcs_neuro.core.errors.ConfigError` naming the file and
field.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass
from pathlib import Path

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import read_toml
from hcs_neuro.core.kwta import resolve_k
from hcs_neuro.core.limits import check_memory
from hcs_neuro.core.quant import FLOAT_BITS, check_bits

__all__ = ["LayerSpec", "Architecture", "load_architecture", "load_config", "with_overrides", "LAYER_TYPES",
           "MAX_CHANNELS", "MAX_SIZE"]

LAYER_TYPES = ("conv2d", "conv1d", "pool2d", "pool1d", "linear")
#: Largest number of channels (or classes) of one layer.
MAX_CHANNELS = 65536
#: Largest input size, kernel, stride or padding along one axis.
MAX_SIZE = 65536

_TOP_KEYS = {"name": str, "description": str, "input": dict, "precision": dict, "hcs": dict,
             "layers": list, "training": dict}
_INPUT_KEYS = {"shape": list, "bits": int}
_PRECISION_KEYS = {"weight_bits": int, "act_bits": int, "bias_bits": int}
_HCS_KEYS = {"enabled": bool, "k": (int, float)}
_LAYER_KEYS = {"type": str, "channels": int, "kernel": int, "stride": int, "padding": int,
               "k": (int, float), "hcs": bool, "weight_bits": int, "act_bits": int, "bias_bits": int}


@dataclass(frozen=True)
class LayerSpec:
    """One resolved layer.

    Attributes
    ----------
    type : str
        ``conv2d``, ``conv1d``, ``pool2d``, ``pool1d`` or ``linear``.
    in_shape, out_shape : tuple of int
        (C, H, W), (C, L) or (F,) without the batch axis.
    kernel, stride, padding : int
        Convolution/pooling geometry (1, 1, 0 for ``linear``).
    k : int or None
        Winners per hypercolumn (a count); None when k-WTA is off for this layer (then every
        positive drive is active: plain binarisation / ReLU).
    weight_bits, act_bits, bias_bits : int
        Bit widths (32 = full precision). Pooling layers have no weights.
    """

    type: str
    in_shape: tuple
    out_shape: tuple
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    k: int | None = None
    weight_bits: int = 2
    act_bits: int = 1
    bias_bits: int = 16

    @property
    def has_weights(self) -> bool:
        return self.type in ("conv2d", "conv1d", "linear")

    @property
    def is_readout(self) -> bool:
        return self.type == "linear"

    @property
    def spatial_dims(self) -> int:
        return {"conv2d": 2, "pool2d": 2, "conv1d": 1, "pool1d": 1, "linear": 0}[self.type]

    @property
    def weight_shape(self) -> tuple | None:
        """Shape of the weight array: (out, in, kh, kw), (out, in, k), (out, in) or None."""
        if self.type == "linear":
            return (self.out_shape[0], int(_prod(self.in_shape)))
        if self.type in ("conv2d", "conv1d"):
            return (self.out_shape[0], self.in_shape[0]) + (self.kernel,) * self.spatial_dims
        return None

    @property
    def fan_in(self) -> int:
        """Inputs summed into one unit (kernel area x in-channels; for pooling the window)."""
        if self.type == "linear":
            return int(_prod(self.in_shape))
        if self.type in ("conv2d", "conv1d"):
            return self.in_shape[0] * self.kernel ** self.spatial_dims
        return self.kernel ** self.spatial_dims


@dataclass(frozen=True)
class Architecture:
    """A validated network: input, bit widths and layers (frozen, hashable).

    ``to_dict()`` returns a plain dict that ``load_architecture`` accepts again (used to store
    the architecture inside model files).
    """

    name: str
    input_shape: tuple
    input_bits: int
    layers: tuple
    hcs: bool = True
    description: str = ""
    source: str = dataclasses.field(default="<dict>", compare=False)
    spec: str = dataclasses.field(default="{}", compare=False, repr=False)

    @property
    def n_classes(self) -> int:
        return self.layers[-1].out_shape[0]

    @property
    def is_full_precision(self) -> bool:
        return any(l.weight_bits == FLOAT_BITS for l in self.layers if l.has_weights) or any(
            l.act_bits == FLOAT_BITS for l in self.layers if not l.is_readout) or self.input_bits == FLOAT_BITS

    def to_dict(self) -> dict:
        """The source specification (without the training table) as a plain dict."""
        return json.loads(self.spec)


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _check_type(value, expected, where: str, field: str):
    types = expected if isinstance(expected, tuple) else (expected,)
    ok = any(
        (t is int and isinstance(value, numbers.Integral) and not isinstance(value, bool))
        or (t is float and isinstance(value, numbers.Real) and not isinstance(value, bool))
        or (t is bool and isinstance(value, bool))
        or (t not in (int, float, bool) and isinstance(value, t))
        for t in types
    )
    if not ok:
        names = " or ".join({"dict": "table", "list": "array"}.get(t.__name__, t.__name__) for t in types)
        raise ConfigError(f"{where}: field {field!r} = {value!r} has the wrong type; expected {names}")


def _check_table(table: dict, allowed: dict, where: str):
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}")
        _check_type(value, allowed[key], where, key)


def load_config(path_or_dict) -> tuple[dict, str]:
    """Read a TOML file (or take a dict) and return ``(dict, source_name)``.

    Raises
    ------
    ConfigError
        Missing file or TOML syntax error.
    """
    if isinstance(path_or_dict, dict):
        return path_or_dict, "<dict>"
    return read_toml(path_or_dict, what="config file"), str(path_or_dict)


def load_architecture(path_or_dict) -> Architecture:
    """Validate an architecture TOML file (or dict) and resolve shapes and k.

    Parameters
    ----------
    path_or_dict : str, Path or dict
        A TOML file path or its parsed content. A ``[training]`` table is allowed and ignored
        here (see :mod:`hcs_neuro.train`).

    Returns
    -------
    Architecture

    Raises
    ------
    ConfigError
        Unknown key, wrong type, bits out of range, k <= 0 or k > channels, shapes that do not
        fit (e.g. a kernel larger than its input), a readout that is not last.
    """
    raw, src = load_config(path_or_dict)
    _check_table(raw, _TOP_KEYS, src)
    for key in ("input", "layers"):
        if key not in raw:
            raise ConfigError(f"{src}: missing required table {key!r}")
    inp = raw["input"]
    _check_table(inp, _INPUT_KEYS, f"{src} [input]")
    if "shape" not in inp:
        raise ConfigError(f"{src} [input]: missing required field 'shape' (e.g. [1, 28, 28])")
    shape = inp["shape"]
    if (not isinstance(shape, list) or not (2 <= len(shape) <= 3)
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_SIZE for s in shape)):
        raise ConfigError(f"{src} [input]: shape = {shape!r}: allowed [C, H, W] or [C, L] with integers "
                          f"1..{MAX_SIZE}")
    input_bits = check_bits(inp.get("bits", 8), "input_bits", f"{src} [input]")

    prec = raw.get("precision", {})
    _check_table(prec, _PRECISION_KEYS, f"{src} [precision]")
    g_wbits = check_bits(prec.get("weight_bits", 2), "weight_bits", f"{src} [precision]")
    g_abits = check_bits(prec.get("act_bits", 1), "act_bits", f"{src} [precision]")
    g_bbits = check_bits(prec.get("bias_bits", 16), "bias_bits", f"{src} [precision]")

    hcs = raw.get("hcs", {})
    _check_table(hcs, _HCS_KEYS, f"{src} [hcs]")
    enabled = hcs.get("enabled", True)
    g_k = hcs.get("k", 0.25)

    layers_raw = raw["layers"]
    if not layers_raw:
        raise ConfigError(f"{src}: 'layers' is empty; at least a linear readout is required")
    cur = tuple(int(s) for s in shape)
    layers = []
    for i, lr in enumerate(layers_raw):
        where = f"{src} layers[{i}]"
        if not isinstance(lr, dict):
            raise ConfigError(f"{where}: expected a table ([[layers]])")
        _check_table(lr, _LAYER_KEYS, where)
        typ = lr.get("type")
        if typ not in LAYER_TYPES:
            raise ConfigError(f"{where}: type = {typ!r}: allowed {', '.join(LAYER_TYPES)}")
        last = i == len(layers_raw) - 1
        if (typ == "linear") != last:
            raise ConfigError(f"{where}: type = {typ!r}: the network must end with exactly one 'linear' "
                              f"readout layer (and have no other linear layer)")
        wbits = check_bits(lr.get("weight_bits", g_wbits), "weight_bits", where)
        abits = check_bits(lr.get("act_bits", g_abits), "act_bits", where)
        bbits = check_bits(lr.get("bias_bits", g_bbits), "bias_bits", where)
        if typ == "linear":
            if "channels" not in lr:
                raise ConfigError(f"{where}: linear readout needs 'channels' (the number of classes)")
            for bad in ("kernel", "stride", "padding", "k"):
                if bad in lr:
                    raise ConfigError(f"{where}: field {bad!r} does not apply to the linear readout")
            out = (int(lr["channels"]),)
            if not 2 <= out[0] <= MAX_CHANNELS:
                raise ConfigError(f"{where}: channels = {out[0]}: a readout needs 2..{MAX_CHANNELS} classes")
            layers.append(LayerSpec("linear", cur, out, 1, 1, 0, None, wbits, abits, bbits))
            cur = out
            continue
        nd = 2 if typ.endswith("2d") else 1
        if len(cur) != nd + 1:
            raise ConfigError(f"{where}: type = {typ!r} needs a {nd + 1}-D input (C, ...), got shape {cur}")
        if "kernel" not in lr:
            raise ConfigError(f"{where}: missing required field 'kernel'")
        kernel = int(lr["kernel"])
        stride = int(lr.get("stride", 1 if typ.startswith("conv") else kernel))
        padding = int(lr.get("padding", 0))
        if any(isinstance(lr.get(f), bool) for f in ("kernel", "stride", "padding", "channels")):
            raise ConfigError(f"{where}: kernel, stride, padding and channels must be integers, not true/false")
        if kernel > MAX_SIZE or stride > MAX_SIZE or padding > MAX_SIZE:
            raise ConfigError(f"{where}: kernel = {kernel}, stride = {stride}, padding = {padding}: allowed "
                              f"at most {MAX_SIZE} each")
        if kernel < 1 or stride < 1 or padding < 0:
            raise ConfigError(f"{where}: kernel = {kernel}, stride = {stride}, padding = {padding}: allowed "
                              f"kernel >= 1, stride >= 1, padding >= 0")
        if typ.startswith("conv"):
            if "channels" not in lr:
                raise ConfigError(f"{where}: missing required field 'channels'")
            channels = int(lr["channels"])
            if not 1 <= channels <= MAX_CHANNELS:
                raise ConfigError(f"{where}: channels = {channels}: allowed 1..{MAX_CHANNELS}")
        else:
            if "channels" in lr:
                raise ConfigError(f"{where}: field 'channels' does not apply to pooling (it keeps its input's)")
            channels = cur[0]
        spatial = []
        for s in cur[1:]:
            n = (s + 2 * padding - kernel) // stride + 1
            if n < 1:
                raise ConfigError(f"{where}: kernel = {kernel} does not fit the input of size {s} "
                                  f"(padding {padding})")
            spatial.append(n)
        on = enabled and lr.get("hcs", True)
        k = None
        if on:
            try:
                k = resolve_k(lr.get("k", g_k), channels)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        out = (channels, *spatial)
        layers.append(LayerSpec(typ, cur, out, kernel, stride, padding, k, wbits, abits, bbits))
        cur = out

    # parameters (trained as float32 with Adam state: ~16 bytes each) and one image's activations
    n_params = sum(_prod(l.weight_shape) + l.out_shape[0] for l in layers if l.has_weights)
    n_cells = sum(_prod(l.out_shape) for l in layers)
    check_memory(16.0 * n_params + 8.0 * n_cells, f"{src}: architecture with {n_params:,} parameters and "
                                                   f"{n_cells:,} units per image")
    spec = {key: raw[key] for key in raw if key != "training"}
    return Architecture(
        name=str(raw.get("name", Path(src).stem if src != "<dict>" else "unnamed")),
        input_shape=tuple(int(s) for s in shape),
        input_bits=input_bits,
        layers=tuple(layers),
        hcs=bool(enabled),
        description=str(raw.get("description", "")),
        source=src,
        spec=json.dumps(spec, sort_keys=True),
    )


def with_overrides(arch: Architecture, *, weight_bits=None, act_bits=None, k=None, hcs=None,
                   input_bits=None) -> Architecture:
    """A copy of ``arch`` with global settings replaced (command-line overrides).

    A given ``weight_bits``/``act_bits``/``k`` replaces the global value and every per-layer
    value; ``hcs=False`` turns k-WTA off in every layer. The result is validated again.
    """
    spec = arch.to_dict()
    prec = dict(spec.get("precision", {}))
    hcs_t = dict(spec.get("hcs", {}))
    layers = [dict(l) for l in spec["layers"]]
    if weight_bits is not None:
        prec["weight_bits"] = weight_bits
        for l in layers:
            l.pop("weight_bits", None)
    if act_bits is not None:
        prec["act_bits"] = act_bits
        for l in layers:
            l.pop("act_bits", None)
    if k is not None:
        hcs_t["k"] = k
        for l in layers:
            l.pop("k", None)
    if hcs is not None:
        hcs_t["enabled"] = bool(hcs)
    if input_bits is not None:
        spec["input"] = dict(spec["input"], bits=input_bits)
    spec.update(precision=prec, hcs=hcs_t, layers=layers)
    new = load_architecture(spec)
    return dataclasses.replace(new, source=arch.source)

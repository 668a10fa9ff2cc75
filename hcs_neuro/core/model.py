"""Model files: integer weight/bias levels, scales, the architecture and metadata in one ``.npz``.

File layout (``format_version`` 1), all plain arrays, loaded with ``allow_pickle=False``:

``format_version``            int64 scalar
``architecture_json``         str scalar: the architecture spec (see ``Architecture.to_dict``)
``metadata_json``             str scalar: dataset, bits, k, accuracy, seed, command line, ...
``layer{i}_weight_levels``    int8/int16 levels (float32 weights for full precision)
``layer{i}_weight_scale``     float64 scalar: real weight = scale * level
``layer{i}_bias_levels``      int32 levels in accumulator units (float32 for full precision)
``layer{i}_act_step``         int64 scalar: accumulator units per activity level (multi-bit)
``input_scale``               float64 scalar: real input = input_scale * input level

Pooling layers have only ``act_step``. The readout's logits in real units are
``weight_scale * input_scale_of_layer * (sum(w * x) + b)``; their argmax is that of the integer
logits.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hcs_neuro.core.architecture import Architecture, LayerSpec, load_architecture
from hcs_neuro.core.errors import ConfigError, ModelError
from hcs_neuro.core.io import atomic_path, json_default
from hcs_neuro.core.quant import (
    FLOAT_BITS,
    bias_level_range,
    storage_dtype,
    weight_level_range,
)

__all__ = ["LayerParams", "Model", "save_model", "load_model", "random_model", "FORMAT_VERSION"]

FORMAT_VERSION = 1


@dataclass
class LayerParams:
    """Parameters of one layer (None for what a pooling layer does not have)."""

    weight_levels: np.ndarray | None = None
    weight_scale: float = 1.0
    bias_levels: np.ndarray | None = None
    act_step: int = 1


@dataclass
class Model:
    """A trained (or random) network: architecture, per-layer parameters, metadata."""

    architecture: Architecture
    layers: list
    metadata: dict = field(default_factory=dict)

    @property
    def input_scale(self) -> float:
        bits = self.architecture.input_bits
        return 1.0 if bits == FLOAT_BITS else 1.0 / (2 ** bits - 1)

    def validate(self, where: str = "model") -> "Model":
        """Check every array against the architecture; raise ModelError naming the array."""
        arch = self.architecture
        if len(self.layers) != len(arch.layers):
            raise ModelError(f"{where}: {len(self.layers)} layer parameter sets for {len(arch.layers)} layers")
        for i, (spec, p) in enumerate(zip(arch.layers, self.layers)):
            _check_layer(spec, p, i, where)
        return self


def _check_layer(spec: LayerSpec, p: LayerParams, i: int, where: str):
    if not spec.has_weights:
        if p.weight_levels is not None or p.bias_levels is not None:
            raise ModelError(f"{where}: layer{i} ({spec.type}) must not have weights or biases")
    else:
        for name, arr, shape in (("weight_levels", p.weight_levels, spec.weight_shape),
                                 ("bias_levels", p.bias_levels, (spec.out_shape[0],))):
            if arr is None:
                raise ModelError(f"{where}: layer{i}_{name} is missing")
            arr = np.asarray(arr)
            if arr.dtype.kind not in "iuf":
                raise ModelError(f"{where}: layer{i}_{name} has dtype {arr.dtype}; expected numbers")
            if tuple(arr.shape) != tuple(shape):
                raise ModelError(f"{where}: layer{i}_{name} has shape {tuple(arr.shape)}; the architecture "
                                 f"({spec.type}, in {spec.in_shape}, out {spec.out_shape}) needs {tuple(shape)}")
            if not np.all(np.isfinite(arr)):
                raise ModelError(f"{where}: layer{i}_{name} holds NaN or infinite values")
        if spec.weight_bits != FLOAT_BITS:
            w = np.asarray(p.weight_levels)
            lo, hi = weight_level_range(spec.weight_bits)
            if w.dtype.kind not in "iu" or (w.size and (w.min() < lo or w.max() > hi)) or (
                    spec.weight_bits == 1 and np.any(w == 0)):
                raise ModelError(f"{where}: layer{i}_weight_levels must be integer levels in {lo}..{hi} "
                                 f"(weight_bits {spec.weight_bits}{', no 0' if spec.weight_bits == 1 else ''})")
            b = np.asarray(p.bias_levels)
            blo, bhi = bias_level_range(spec.bias_bits)
            if b.dtype.kind not in "iu" or (b.size and (b.min() < blo or b.max() > bhi)):
                raise ModelError(f"{where}: layer{i}_bias_levels must be integers in {blo}..{bhi} "
                                 f"(bias_bits {spec.bias_bits})")
        if not (np.isfinite(p.weight_scale) and p.weight_scale > 0):
            raise ModelError(f"{where}: layer{i}_weight_scale = {p.weight_scale!r}; expected a positive number")
    if not (isinstance(p.act_step, (int, np.integer)) and p.act_step >= 1):
        raise ModelError(f"{where}: layer{i}_act_step = {p.act_step!r}; expected an integer >= 1")


def save_model(model: Model, path) -> Path:
    """Write ``model`` to ``path`` (``.npz``) atomically, integer levels in the smallest dtype.

    Raises
    ------
    ModelError
        If the model does not fit its architecture (nothing is written).
    """
    model.validate(str(path))
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "architecture_json": np.str_(json.dumps(model.architecture.to_dict(), sort_keys=True)),
        "metadata_json": np.str_(json.dumps(model.metadata, sort_keys=True, default=json_default)),
        "input_scale": np.float64(model.input_scale),
    }
    for i, (spec, p) in enumerate(zip(model.architecture.layers, model.layers)):
        arrays[f"layer{i}_act_step"] = np.int64(p.act_step)
        if not spec.has_weights:
            continue
        if spec.weight_bits == FLOAT_BITS:
            arrays[f"layer{i}_weight_levels"] = np.asarray(p.weight_levels, dtype=np.float32)
            arrays[f"layer{i}_bias_levels"] = np.asarray(p.bias_levels, dtype=np.float32)
        else:
            arrays[f"layer{i}_weight_levels"] = np.asarray(p.weight_levels).astype(
                storage_dtype(*weight_level_range(spec.weight_bits)))
            arrays[f"layer{i}_bias_levels"] = np.asarray(p.bias_levels).astype(
                storage_dtype(*bias_level_range(spec.bias_bits)))
        arrays[f"layer{i}_weight_scale"] = np.float64(p.weight_scale)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


#: Largest ``architecture_json`` / ``metadata_json`` member read from a model file (bytes).
JSON_MEMBER_LIMIT = 16 * 2 ** 20


def _member_header(zf: zipfile.ZipFile, path: Path, key: str):
    """``(zip info, shape, dtype)`` of array ``key`` from its ``.npy`` header, without reading the data."""
    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        raise ModelError(f"{path}: array {key!r} is missing") from None
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ModelError(f"{path}: array {key!r} has an unknown .npy format version {version}")
    if dtype.hasobject:
        raise ModelError(f"{path}: array {key!r} holds Python objects; model files are loaded without pickle")
    return info, tuple(int(n) for n in shape), dtype


def _read_member(zf: zipfile.ZipFile, path: Path, key: str, *, shape=None, kinds: str = "iuf",
                 max_bytes: int | None = None) -> np.ndarray:
    """Array ``key`` of the npz, read only after its header passed every check.

    ``shape`` (when given) must match exactly, the dtype kind must be in ``kinds``, and the data
    may not exceed ``max_bytes`` (by default the expected size): a member declaring gigabytes is
    refused before a byte of it is inflated.
    """
    info, got, dtype = _member_header(zf, path, key)
    if dtype.kind not in kinds:
        names = {"i": "integer", "u": "integer", "f": "float", "U": "string"}
        allowed = " or ".join(sorted({names[k] for k in kinds}))
        raise ModelError(f"{path}: array {key!r} has dtype {dtype}; expected {allowed}")
    if shape is not None and got != tuple(shape):
        raise ModelError(f"{path}: array {key!r} has shape {got}; the architecture needs {tuple(shape)}")
    nbytes = int(np.prod(got, dtype=object)) * dtype.itemsize
    limit = nbytes if max_bytes is None else max_bytes
    if nbytes > limit or info.file_size > limit + 4096:
        raise ModelError(f"{path}: array {key!r} declares {max(nbytes, info.file_size):,} bytes, more than the "
                         f"{limit:,} it may hold; the file is corrupt or not an hcs-neuro model")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _read_json_member(zf, path: Path, key: str) -> dict:
    arr = _read_member(zf, path, key, shape=(), kinds="U", max_bytes=JSON_MEMBER_LIMIT)
    try:
        data = json.loads(str(arr))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: {key} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: {key} must hold a JSON object, not {type(data).__name__}")
    return data


def load_model(path) -> Model:
    """Load a model file without pickle, checking every array against its architecture.

    Only the arrays the architecture needs are read, each after its ``.npy`` header was checked
    (dtype, shape, size): a file whose members declare more data than the architecture needs is
    refused before anything large is inflated.

    Raises
    ------
    ModelError
        Missing or truncated file, not an npz, arrays holding Python objects, missing arrays,
        wrong types, shapes or levels that do not fit the architecture. The message names the file
        and array.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with zipfile.ZipFile(path) as zf:
            version = _read_member(zf, path, "format_version", shape=(), kinds="iu")
            if int(version) != FORMAT_VERSION:
                raise ModelError(f"{path}: format_version = {int(version)}; this hcs-neuro reads {FORMAT_VERSION}")
            spec = _read_json_member(zf, path, "architecture_json")
            metadata = _read_json_member(zf, path, "metadata_json")
            try:
                arch = load_architecture(spec)
            except ConfigError as exc:
                raise ModelError(f"{path}: architecture_json: {exc}") from None
            arch = _with_source(arch, str(path))
            layers = []
            for i, lspec in enumerate(arch.layers):
                act_step = _read_member(zf, path, f"layer{i}_act_step", shape=(), kinds="iu")
                p = LayerParams(act_step=int(act_step))
                if lspec.has_weights:
                    p.weight_levels = _read_member(zf, path, f"layer{i}_weight_levels", shape=lspec.weight_shape)
                    p.bias_levels = _read_member(zf, path, f"layer{i}_bias_levels", shape=(lspec.out_shape[0],))
                    p.weight_scale = float(_read_member(zf, path, f"layer{i}_weight_scale", shape=(), kinds="f"))
                layers.append(p)
    except ModelError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, TypeError,
            NotImplementedError, RuntimeError) as exc:
        # zlib.error is an Exception subclass raised by a corrupt deflate stream
        raise ModelError(f"{path}: not a readable model .npz file (truncated or corrupt?): {exc}") from None
    except Exception as exc:  # noqa: BLE001

        if isinstance(exc, zlib.error):
            raise ModelError(f"{path}: not a readable model .npz file (corrupt compressed data: {exc})") from None
        raise
    return Model(arch, layers, metadata).validate(str(path))


def random_model(arch: Architecture, seed: int = 0) -> Model:
    """A model with random levels (for tests and circuit benchmarks), reproducible by ``seed``.

    Weight levels are uniform over the allowed levels; bias levels uniform in
    ``±fan_in * max_input_level / 8`` accumulator units; multi-bit layers get
    ``act_step = max(1, fan_in * max_input_level // (4 * top_level))``. Full-precision layers get
    normal(0, 1/sqrt(fan_in)) weights.
    """
    rng = np.random.default_rng(seed)
    in_top = 1.0 if arch.input_bits == FLOAT_BITS else float(2 ** arch.input_bits - 1)
    layers = []
    for spec in arch.layers:
        p = LayerParams()
        if spec.has_weights:
            if spec.weight_bits == FLOAT_BITS:
                p.weight_levels = (rng.standard_normal(spec.weight_shape) / np.sqrt(spec.fan_in)).astype(np.float32)
                p.bias_levels = (0.1 * rng.standard_normal(spec.out_shape[0])).astype(np.float32)
            else:
                lo, hi = weight_level_range(spec.weight_bits)
                levels = np.array([-1, 1]) if spec.weight_bits == 1 else np.arange(lo, hi + 1)
                p.weight_levels = rng.choice(levels, size=spec.weight_shape).astype(np.int64)
                blo, bhi = bias_level_range(spec.bias_bits)
                span = int(min(max(1, spec.fan_in * in_top // 8), bhi))
                p.bias_levels = rng.integers(-span, span + 1, size=spec.out_shape[0]).astype(np.int64)
        if spec.act_bits not in (1, FLOAT_BITS) and not spec.is_readout:
            top = 2 ** spec.act_bits - 1
            p.act_step = int(max(1, spec.fan_in * in_top // (4 * top)))
        if not spec.is_readout:
            in_top = 1.0 if spec.act_bits == FLOAT_BITS else float(2 ** spec.act_bits - 1)
        layers.append(p)
    return Model(arch, layers, {"random_seed": seed}).validate("random model")


def _with_source(arch: Architecture, src: str) -> Architecture:
    return dataclasses.replace(arch, source=src)

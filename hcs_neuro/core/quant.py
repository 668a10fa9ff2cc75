"""Integer levels, scales, deterministic and stochastic rounding (NumPy only).

Conventions
-----------
* **Weights** are stored as integer levels with a per-layer float scale: ``w = scale * level``.
  ``weight_bits = 1`` gives binary levels {-1, +1} (no zero), ``2`` ternary {-1, 0, +1}, and
  ``b`` bits in general the symmetric range ``-(2**(b-1) - 1) .. 2**(b-1) - 1`` (so 8 bits is
  -127..127). ``32`` means full precision (float32, scale 1) and is the baseline.
* **Activities** of a layer are unsigned levels ``0 .. 2**act_bits - 1``: ``act_bits = 1`` is
  binary (a winner emits 1), ``32`` means full-precision ReLU activity.
* **Input images** in [0, 1] are quantized to ``0 .. 2**input_bits - 1`` so that the whole
  forward pass runs in integer arithmetic.
* **Biases** are integer levels in the units of the layer's integer accumulator (so the drive
  ``sum(w_level * x_level) + b_level`` is an exact integer), clipped to ``bias_bits``.

Finding a scale (:func:`choose_weight_scale`) is kept apart from applying it
(:func:`quantize_levels`), as in sinabs' ``discretize``.
"""

from __future__ import annotations

import numbers

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = [
    "activity_levels",
    "ACTIVITY_LEVEL_CODE",
    "FLOAT_BITS",
    "check_bits",
    "is_float",
    "weight_level_range",
    "act_level_max",
    "bias_level_range",
    "quantize_levels",
    "quantize_unsigned",
    "stochastic_round",
    "probabilistic_step",
    "choose_weight_scale",
    "storage_dtype",
]

#: The bit width that stands for full precision (float32).
FLOAT_BITS = 32

_ALLOWED = {
    "weight_bits": (1, 8),
    "act_bits": (1, 8),
    "input_bits": (1, 8),
    "bias_bits": (2, 31),
}


def check_bits(bits, field: str = "weight_bits", where: str = "") -> int:
    """Validate a bit width and return it as an int.

    Parameters
    ----------
    bits : int
        The bit width. ``weight_bits``, ``act_bits``, ``input_bits``: 1..8 or 32 (full
        precision); ``bias_bits``: 2..31 or 32.
    field : str
        Field name used in the error message (and to pick the allowed range).
    where : str
        Where the value came from (file, table), for the error message.

    Raises
    ------
    ConfigError
        If ``bits`` is not an integer in the allowed range.
    """
    lo, hi = _ALLOWED.get(field, (1, 8))
    prefix = f"{where}: " if where else ""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not (
        lo <= int(bits) <= hi or int(bits) == FLOAT_BITS
    ):
        raise ConfigError(f"{prefix}{field} = {bits!r}: allowed an integer {lo}..{hi}, "
                          f"or {FLOAT_BITS} for full precision")
    return int(bits)


def is_float(bits: int) -> bool:
    """True when ``bits`` stands for full precision."""
    return int(bits) == FLOAT_BITS


def weight_level_range(bits: int) -> tuple[int, int]:
    """Smallest and largest weight level for ``bits`` (1 bit: (-1, 1) without 0)."""
    bits = check_bits(bits, "weight_bits")
    if is_float(bits):
        raise ConfigError("weight_bits = 32 (full precision) has no integer levels")
    if bits == 1:
        return -1, 1
    top = 2 ** (bits - 1) - 1
    return -top, top


def act_level_max(bits: int) -> int:
    """Largest activity level for ``act_bits`` (1 for binary activities)."""
    bits = check_bits(bits, "act_bits")
    if is_float(bits):
        raise ConfigError("act_bits = 32 (full precision) has no integer levels")
    return 2 ** bits - 1


def bias_level_range(bits: int) -> tuple[int, int]:
    """Symmetric range of the bias levels (accumulator units) for ``bias_bits``."""
    bits = check_bits(bits, "bias_bits")
    top = 2 ** (min(bits, 31) - 1) - 1
    return -top, top


def quantize_levels(x, bits: int) -> np.ndarray:
    """Round real values given in level units to the nearest allowed weight level.

    ``x`` is ``w / scale``. Binary (1 bit) maps ``x >= 0`` to +1 and ``x < 0`` to -1; otherwise
    values are rounded half away from zero and clipped to :func:`weight_level_range`.
    Idempotent: ``quantize_levels(quantize_levels(x, b), b) == quantize_levels(x, b)``.
    """
    x = np.asarray(x, dtype=np.float64)
    lo, hi = weight_level_range(bits)
    if bits == 1:
        return np.where(x >= 0, 1, -1).astype(np.int64)
    rounded = np.sign(x) * np.floor(np.abs(x) + 0.5)
    return np.clip(rounded, lo, hi).astype(np.int64)


def quantize_unsigned(x, bits: int) -> np.ndarray:
    """Quantize values in [0, 1] to integer levels ``0 .. 2**bits - 1`` (round half up).

    Values outside [0, 1] are clipped first. Idempotent on the grid ``level / (2**bits - 1)``.
    """
    top = act_level_max(check_bits(bits, "input_bits"))
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.floor(x * top + 0.5).astype(np.int64)


def stochastic_round(x, rng: np.random.Generator) -> np.ndarray:
    """Round down or up at random so that the expectation equals ``x`` (unbiased).

    ``floor(x) + Bernoulli(x - floor(x))``; integers are returned unchanged.

    Parameters
    ----------
    x : array_like
        Real values.
    rng : numpy.random.Generator
        The (seeded) random generator.
    """
    x = np.asarray(x, dtype=np.float64)
    low = np.floor(x)
    return (low + (rng.random(x.shape) < (x - low))).astype(np.int64)


def probabilistic_step(levels, delta, bits: int, rng: np.random.Generator) -> np.ndarray:
    """Probabilistic learning step: move integer levels by a desired real step ``delta``.

    A level moves by one level spacing in the direction of ``delta`` with probability
    ``|delta| / spacing`` (the spacing is 1, or 2 for binary ±1 levels); steps larger than one
    spacing move ``floor`` spacings plus one more with the fractional probability. The result
    is clipped to the allowed range. Away from the range limits the new level equals
    ``levels + delta`` in expectation.

    Parameters
    ----------
    levels : ndarray of int
        Current levels.
    delta : ndarray of float
        Desired change in level units (e.g. ``-lr * grad / scale``).
    bits : int
        Weight bits (1..8).
    rng : numpy.random.Generator
        Seeded random generator.
    """
    lo, hi = weight_level_range(bits)
    spacing = 2 if bits == 1 else 1
    moved = np.asarray(levels, dtype=np.int64) + spacing * stochastic_round(np.asarray(delta) / spacing, rng)
    return np.clip(moved, lo, hi)


def choose_weight_scale(weights, bits: int) -> float:
    """Find a per-layer scale for real weights: the mean absolute value over the top level.

    ``scale = mean(|w|) / (hi / 2)`` for multi-level weights and ``mean(|w|)`` for binary, so
    that typical weights land on the middle of the level range (the choice of XNOR-Net and TWN
    style quantizers). Returns 1.0 for all-zero weights.
    """
    w = np.abs(np.asarray(weights, dtype=np.float64))
    mean = float(w.mean()) if w.size else 0.0
    if mean == 0.0:
        return 1.0
    lo, hi = weight_level_range(bits)
    return mean if bits == 1 else mean / max(hi / 2.0, 0.5)


def storage_dtype(lo: int, hi: int) -> np.dtype:
    """Smallest signed integer dtype that holds ``lo..hi``."""
    for dt in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    raise ValueError(f"range {lo}..{hi} does not fit in int64")


#: The same formula as Brian2 code, for the spiking networks (``{drive}``, ``{step}``, ``{top}`` are
#: the names of the variables that hold them).
ACTIVITY_LEVEL_CODE = "clip(ceil({drive} / {step}), 0, {top})"


def activity_levels(drive, step: int, top: int) -> np.ndarray:
    """Activity level of a winner with this drive: ``clip(ceil(drive / step), 0, top)``.

    Integer drives use integer ceiling division (exact for any magnitude); float drives (a
    calibration on real-valued drives) use ``ceil``.
    """
    d = np.asarray(drive)
    if d.dtype.kind in "iu":
        return np.clip(-((-d) // int(step)), 0, int(top))
    return np.clip(np.ceil(d / step), 0, int(top)).astype(np.int64)

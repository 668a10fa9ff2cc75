"""Claim 5, robustness: accuracy of trained models under input noise and faulty synapses.

Ahmad & Scheinkman 2019 ("How can we be so dense? The benefits of using highly sparse
representations", arXiv 1903.11257) report that sparse k-WTA networks keep far more accuracy
under input noise than dense ones. Here the models of the claims grid (HCS on and off, same
architecture, precision and recipe, one per seed) are run by the NumPy reference forward pass
(:func:`hcs_neuro.core.reference.forward`, the specification) on test images with

* additive Gaussian noise (:func:`gaussian_noise`: ``x + N(0, sigma)``, pixels in [0, 1], clipped),
* salt-and-pepper noise (:func:`salt_and_pepper`: a fraction of the pixels set to 0 or 1),
* random weight-level flips (:func:`flip_weight_levels`: a fraction of every layer's weight levels
  replaced by another level of the layer's range, a model of faulty synapses).

Every draw is seeded from (model seed, kind, level, draw), so the HCS and no-HCS models of a
seed see the same noise (common random numbers). :func:`robustness_point` is the ``python``
sweep target of ``analysis/paper/specs/robustness_*.toml``; it reads the models that
:func:`paper_grid.train_point` kept.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = ["KIND_CODES", "noise_rng", "gaussian_noise", "salt_and_pepper", "flip_weight_levels", "metric_name",
           "robustness_point"]

#: Stream identifiers of the three perturbations (part of every draw's seed).
KIND_CODES = {"gauss": 1, "sp": 2, "flip": 3}


def noise_rng(seed: int, kind: str, level: float, draw: int) -> np.random.Generator:
    """The generator of one draw: seeded by (model seed, kind, level in millionths, draw), so a
    draw does not depend on which other levels are evaluated."""
    if kind not in KIND_CODES:
        raise ConfigError(f"noise kind {kind!r}: allowed {', '.join(KIND_CODES)}")
    return np.random.default_rng([int(seed), KIND_CODES[kind], int(round(float(level) * 1e6)), int(draw)])


def _check_fraction(name: str, value: float, high: float = 1.0) -> float:
    value = float(value)
    if not (0.0 <= value <= high):
        raise ConfigError(f"{name} = {value!r}: allowed 0 .. {high}")
    return value


def gaussian_noise(images, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(images + N(0, sigma**2), 0, 1)`` as float32 (pixels in [0, 1]; ``sigma`` in those units).

    Raises
    ------
    ConfigError
        ``sigma`` negative or not finite.
    """
    sigma = float(sigma)
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ConfigError(f"gaussian sigma = {sigma!r}: allowed >= 0 (pixel units, images in [0, 1])")
    x = np.asarray(images, dtype=np.float32)
    if sigma == 0:
        return x.copy()
    return np.clip(x + rng.normal(0.0, sigma, size=x.shape).astype(np.float32), 0.0, 1.0)


def salt_and_pepper(images, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``images`` in which each pixel, independently with probability ``fraction``, is set
    to 0 or 1 (each with probability 1/2).

    Raises
    ------
    ConfigError
        ``fraction`` outside [0, 1].
    """
    fraction = _check_fraction("salt-and-pepper fraction", fraction)
    x = np.array(images, dtype=np.float32, copy=True)
    hit = rng.random(x.shape) < fraction
    salt = rng.random(x.shape) < 0.5
    x[hit] = salt[hit].astype(np.float32)
    return x


def flip_weight_levels(model, fraction: float, rng: np.random.Generator):
    """A copy of ``model`` in which ``round(fraction * n)`` of the ``n`` weight levels of every
    weighted layer (chosen without replacement) hold another level of the layer's range, drawn
    uniformly from the levels other than the current one (binary weights: the sign flips).
    Biases, scales and activity steps are kept.

    Raises
    ------
    ConfigError
        ``fraction`` outside [0, 1], or a layer with float32 weights (no levels to flip).
    """
    import copy

    from hcs_neuro.core.model import LayerParams, Model
    from hcs_neuro.core.quant import weight_level_range

    fraction = _check_fraction("weight flip fraction", fraction)
    layers = []
    for i, (spec, p) in enumerate(zip(model.architecture.layers, model.layers)):
        if not spec.has_weights:
            layers.append(copy.copy(p))
            continue
        if spec.weight_bits == 32:
            raise ConfigError(f"weight flips: layer {i} has float32 weights (no levels to flip)")
        w = np.array(p.weight_levels, dtype=np.int64, copy=True)
        lo, hi = weight_level_range(spec.weight_bits)
        levels = np.array([-1, 1]) if spec.weight_bits == 1 else np.arange(lo, hi + 1)
        n_flip = int(round(fraction * w.size))
        if n_flip:
            flat = w.reshape(-1)
            idx = rng.choice(flat.size, size=n_flip, replace=False)
            old = flat[idx]
            # draw among the len(levels) - 1 other levels: an offset 1..L-1 from the current position
            pos = np.searchsorted(levels, old)
            new_pos = (pos + rng.integers(1, len(levels), size=n_flip)) % len(levels)
            flat[idx] = levels[new_pos]
        layers.append(LayerParams(weight_levels=w, weight_scale=p.weight_scale, bias_levels=p.bias_levels,
                                  act_step=p.act_step))
    return Model(model.architecture, layers, dict(model.metadata)).validate("model with flipped levels")


def metric_name(kind: str, level: float) -> str:
    """``acc_gauss_0.1``, ``acc_sp_0.05``, ``acc_flip_0.01``: the sweep metric of one condition."""
    if kind not in KIND_CODES:
        raise ConfigError(f"noise kind {kind!r}: allowed {', '.join(KIND_CODES)}")
    return f"acc_{kind}_{float(level):g}"


def _accuracy(model, images, labels) -> float:
    from hcs_neuro.core.reference import forward

    return float((forward(model, images, keep_layers=False).pred == labels).mean())


def robustness_point(params: dict, seed: int, *, dataset: str, model_dir: str, gauss=(), sp=(), flip=(),
                     draws: int = 1, test_images: int = 0, float_flip: str = "nan") -> dict:
    """Accuracy of one grid model under every perturbation (the ``python`` sweep target).

    Parameters
    ----------
    params : dict
        ``weight_bits``, ``act_bits``, ``hcs`` (and optionally ``data_fraction``) of the grid
        point whose model to load (:func:`paper_grid.model_file`).
    seed : int
        The model's seed; also seeds the noise draws (:func:`noise_rng`).
    dataset, model_dir : str
        Where the grid kept the model.
    gauss, sp, flip : sequences of float
        Gaussian sigmas (pixel units), salt-and-pepper fractions, weight-flip fractions.
    draws : int
        Independent noise draws per level (accuracies averaged).
    test_images : int
        0: the whole test split; else a fixed class-stratified subset of that many test images
        (:func:`paper_grid.stratified_subset` with seed 0, in the split's order), the same for
        every model and condition.
    float_flip : str
        ``"nan"``: a float32-weight model reports NaN for the flip conditions (no levels).

    Returns
    -------
    dict
        ``acc_clean`` and one :func:`metric_name` entry per condition (fractions in [0, 1]),
        ``n_test``, ``draws``.

    Raises
    ------
    ConfigError
        The model file is missing (run the grid spec first).
    """
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.model import load_model
    from paper_grid import model_file, stratified_subset

    draws = int(draws)
    if draws < 1:
        raise ConfigError(f"option draws = {draws}: allowed >= 1")
    path = model_file(model_dir, dataset, params, seed)
    if not path.exists():
        raise ConfigError(f"{path}: no model (train the grid point first: its grid spec keeps it there)")
    model = load_model(path)
    x, y = load_dataset(dataset, "test")
    if test_images:
        keep = np.sort(stratified_subset(y, int(test_images), seed=0))
        x, y = x[keep], y[keep]
    out = {"acc_clean": _accuracy(model, x, y), "n_test": len(y), "draws": draws}
    for sigma in gauss:
        out[metric_name("gauss", sigma)] = float(np.mean(
            [_accuracy(model, gaussian_noise(x, sigma, noise_rng(seed, "gauss", sigma, d)), y) for d in range(draws)]))
    for frac in sp:
        out[metric_name("sp", frac)] = float(np.mean(
            [_accuracy(model, salt_and_pepper(x, frac, noise_rng(seed, "sp", frac, d)), y) for d in range(draws)]))
    is_float = any(s.weight_bits == 32 for s in model.architecture.layers if s.has_weights)
    for frac in flip:
        if is_float:
            out[metric_name("flip", frac)] = float("nan")
            continue
        out[metric_name("flip", frac)] = float(np.mean(
            [_accuracy(flip_weight_levels(model, frac, noise_rng(seed, "flip", frac, d)), x, y) for d in range(draws)]))
    return out

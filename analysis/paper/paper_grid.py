"""One point of the claims study: train a shipped recipe at one precision, measure it.

The sweep engine (:mod:`hcs_neuro.sweep`, target kind ``python``) calls :func:`train_point` at
every point x seed of the specs in ``analysis/paper/specs/`` and stores what it returns as
``<out>/points/<point_id>.json``; that file *is* the record (the engine resumes from it, the
report reads it). There is no other cache.

A point is (``weight_bits``, ``act_bits``, ``hcs``, ``data_fraction``) plus the seed; the recipe
(dataset, base config, epochs, batch, step size, the settings of the probabilistic rule) is fixed
in the spec's ``[target] options``, so it is part of every point's hash. The training is that of
``hcs-neuro train`` with the same options (:func:`hcs_neuro.core.architecture.with_overrides` for the
precision and HCS, :func:`hcs_neuro.train.load_train_config` for the recipe); the accuracy and
the pruning counts come from the NumPy reference forward pass on the whole test split.

Run it through the engine from the repository root (this folder must be importable)::

    PYTHONPATH=analysis/paper .venv/bin/hcs-neuro sweep analysis/paper/specs/fashion_grid.toml --workers 1

Uses the public API of :mod:`hcs_neuro` only.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = ["HCS_VALUES", "hcs_flag", "train_point", "model_file", "subset_epochs", "stratified_subset", "test_pass",
           "point_architecture", "point_train_config", "point_recipe", "point_data", "init_zero_fraction"]

#: The values of the ``hcs`` parameter (a string parameter of the sweep).
HCS_VALUES = ("on", "off")

#: ``weight_bits`` / ``act_bits`` of full precision (float32), as in :mod:`hcs_neuro.core.quant`.
FLOAT_BITS = 32


def hcs_flag(value) -> bool:
    """True for ``hcs = "on"``, False for ``"off"``; anything else is a ConfigError."""
    if value not in HCS_VALUES:
        raise ConfigError(f"parameter hcs = {value!r}: allowed {', '.join(HCS_VALUES)}")
    return value == "on"


def point_recipe(config: str, params: dict, *, epochs: int, batch_size: int, lr: float, seed: int, threads: int,
                 weight_step: str, settings: dict | None, channels: int = 0):
    """``(architecture, TrainConfig)`` of one grid point (its weight/activity bits and HCS flag)."""
    wb, ab = int(params["weight_bits"]), int(params["act_bits"])
    arch = point_architecture(config, wb, ab, hcs_flag(params["hcs"]), channels=channels or None)
    cfg = point_train_config(config, wb, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, threads=threads,
                             weight_step=weight_step, settings=settings or {})
    return arch, cfg


def point_data(dataset: str, test_images: int = 0):
    """``((x_train, y_train), (x_test, y_test))``; the first ``test_images`` test images if given."""
    from hcs_neuro.core.datasets import load_dataset

    x_tr, y_tr = load_dataset(dataset, "train")
    x_te, y_te = load_dataset(dataset, "test")
    if test_images:
        x_te, y_te = x_te[:int(test_images)], y_te[:int(test_images)]
    return (x_tr, y_tr), (x_te, y_te)


def subset_epochs(epochs: int, fraction: float, max_epochs: int) -> int:
    """Epochs of a run on ``fraction`` of the training images: ``ceil(epochs / fraction)`` (as many
    steps as the full run), at most ``max_epochs`` and at least ``epochs``.

    Raises
    ------
    ConfigError
        ``fraction`` outside (0, 1] or ``max_epochs < epochs``.
    """
    if not (0.0 < float(fraction) <= 1.0):
        raise ConfigError(f"parameter data_fraction = {fraction!r}: allowed 0 < fraction <= 1")
    if int(max_epochs) < int(epochs):
        raise ConfigError(f"option max_epochs = {max_epochs!r}: must be >= epochs ({epochs})")
    if float(fraction) >= 1.0:
        return int(epochs)
    return int(min(int(max_epochs), max(int(epochs), math.ceil(int(epochs) / float(fraction) - 1e-9))))


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a class-stratified subset of ``n`` examples (at least one per class), seeded.

    Each class contributes ``round(n * class_share)`` examples (at least 1), drawn without
    replacement by ``numpy.random.default_rng(seed)``; the indices are returned shuffled.
    """
    labels = np.asarray(labels)
    n = int(n)
    if n < 1 or n > len(labels):
        raise ConfigError(f"training subset size = {n}: allowed 1 .. {len(labels)}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    out = []
    for c, cnt in zip(classes, counts):
        take = max(1, int(round(n * cnt / len(labels))))
        idx = np.flatnonzero(labels == c)
        out.append(rng.choice(idx, size=min(take, cnt), replace=False))
    out = np.concatenate(out)
    rng.shuffle(out)
    return out


def init_zero_fraction(weight_bits: int) -> float:
    """Share of zero weight levels at initialisation (uniform over the levels, as
    :func:`hcs_neuro.train.HCSNet` draws them): ``1 / (2**bits - 1)`` for 2..8 bits, 0 for
    binary weights (no zero level) and for float weights."""
    b = int(weight_bits)
    if b in (1, FLOAT_BITS):
        return 0.0
    return 1.0 / (2 ** b - 1)


def point_architecture(config: str, weight_bits: int, act_bits: int, hcs: bool, channels: int | None = None):
    """The architecture of ``config`` at this precision, with or without k-WTA (as ``hcs-neuro
    train --weight-bits W --act-bits A [--no-hcs]``; ``channels`` replaces every conv layer's
    width, for the smoke test only)."""
    from hcs_neuro.core.architecture import load_architecture, with_overrides

    arch = load_architecture(config)
    if channels:
        raw = arch.to_dict()
        raw["layers"] = [dict(l, channels=int(channels)) if l["type"].startswith("conv") else dict(l)
                         for l in raw["layers"]]
        arch = load_architecture(raw)
    return with_overrides(arch, weight_bits=int(weight_bits), act_bits=int(act_bits), hcs=None if hcs else False)


def point_train_config(config: str, weight_bits: int, *, epochs: int, batch_size: int, lr: float, seed: int,
                       threads: int, weight_step: str, settings: dict):
    """The training config of one point: the base config's ``[training]`` table with the recipe's
    epochs, batch, step size and ``weight_step``; ``settings`` (``--set`` of the shipped recipe,
    e.g. the momentum reset) apply to integer-level weights only: float32 weights train as the
    shipped float32 baseline (``fashion_fp32``: plain Adam)."""
    from hcs_neuro.train import load_train_config

    extra = dict(settings) if int(weight_bits) != FLOAT_BITS else {}
    return load_train_config(config, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), seed=int(seed),
                             threads=int(threads), weight_step=weight_step, learning="probabilistic", **extra)


def model_file(model_dir, dataset: str, params: dict, seed: int) -> Path:
    """Where :func:`train_point` keeps the trained model of a point (``.npz``, integer levels)."""
    frac = float(params.get("data_fraction", 1.0))
    name = (f"{dataset}_w{int(params['weight_bits'])}_a{int(params['act_bits'])}_hcs-{params['hcs']}"
            f"_f{frac:g}_s{int(seed)}.npz")
    return Path(model_dir) / name


def test_pass(model, images, labels, batch_size: int = 500) -> dict:
    """Accuracy, activity sparsity, zero-level weights and never-used connections on a test set.

    One batched pass of the NumPy reference forward pass (:func:`hcs_neuro.core.reference.layer_forward`).
    A *synapse* is a non-zero weight instance of the spiking network (a convolution weight
    repeated at every position it reaches, counted per presynaptic unit with
    :func:`hcs_neuro.core.topology.layer_fan_out`; border positions have fewer targets). A synapse is
    *never used* when its presynaptic unit (an input pixel or a unit of the previous layer) has
    zero activity on every image of ``images``.

    Returns
    -------
    dict
        ``accuracy``, ``active_fraction`` per non-readout layer (non-zero outputs / all outputs),
        ``conv_active_fraction`` (mean over conv layers) and ``pruning``: ``dense_synapses``
        (all weight instances of the weighted layers, zero levels included),
        ``nonzero_synapses``, ``used_synapses`` (non-zero and presynaptic unit active at least
        once), ``zero_level_weight_fraction`` (of the weight parameters),
        ``never_used_synapse_fraction`` (of the non-zero synapses), ``removed_fraction``
        (1 - used / dense), ``never_active_unit_fraction`` (hidden units that never win), and
        the same per weighted layer in ``layers``.
    """
    from hcs_neuro.core.topology import conv_fan_out, layer_fan_out
    from hcs_neuro.core.reference import layer_forward, quantize_input

    arch = model.architecture
    n_layers = len(arch.layers)
    ever = [None] * (n_layers + 1)  # ever[i]: input of layer i ever non-zero (ever[0]: pixels)
    active = np.zeros(n_layers)
    correct = 0
    for s in range(0, len(labels), batch_size):
        x = quantize_input(model, images[s:s + batch_size])
        nz = (x != 0).any(axis=0)
        ever[0] = nz if ever[0] is None else ever[0] | nz
        for i, spec in enumerate(arch.layers):
            _, _, x = layer_forward(model, i, x)
            if not spec.is_readout:
                nz = x != 0
                active[i] += float(nz.sum())
                nz = nz.any(axis=0)
                ever[i + 1] = nz if ever[i + 1] is None else ever[i + 1] | nz
        correct += int((np.argmax(x, axis=1) == labels[s:s + batch_size]).sum())
    n = len(labels)
    act = {}
    for i, spec in enumerate(arch.layers):
        if not spec.is_readout:
            act[i] = active[i] / (n * int(np.prod(spec.out_shape)))
    layers = []
    tot = {"dense": 0, "nonzero": 0, "used": 0, "w": 0, "wzero": 0, "units": 0, "dead": 0}
    for i, spec in enumerate(arch.layers):
        if not spec.has_weights:
            continue
        ev = ever[i].reshape(spec.in_shape)
        fan = layer_fan_out(model, i)
        w = np.asarray(model.layers[i].weight_levels)
        if spec.type == "linear":
            dense = np.full(spec.in_shape, w.shape[0], dtype=np.int64)
        else:
            dense = conv_fan_out(np.ones(w.shape, dtype=np.int8), tuple(spec.in_shape[1:]), spec.stride,
                                 spec.padding)
        entry = {
            "index": i, "type": spec.type, "dense_synapses": int(dense.sum()), "nonzero_synapses": int(fan.sum()),
            "used_synapses": int(fan[ev].sum()), "zero_level_weight_fraction": float((w == 0).mean()),
            "never_active_presynaptic_fraction": float(1.0 - ev.mean()),
        }
        layers.append(entry)
        tot["dense"] += entry["dense_synapses"]
        tot["nonzero"] += entry["nonzero_synapses"]
        tot["used"] += entry["used_synapses"]
        tot["w"] += w.size
        tot["wzero"] += int((w == 0).sum())
        if i > 0:
            tot["units"] += ev.size
            tot["dead"] += int((~ev).sum())
    convs = [act[i] for i, s in enumerate(arch.layers) if s.type.startswith("conv")]
    return {
        "accuracy": correct / max(n, 1),
        "active_fraction": [act.get(i) for i in range(n_layers)],
        "conv_active_fraction": float(np.mean(convs)) if convs else float("nan"),
        "pruning": {
            "dense_synapses": tot["dense"],
            "nonzero_synapses": tot["nonzero"],
            "used_synapses": tot["used"],
            "zero_level_weight_fraction": tot["wzero"] / max(tot["w"], 1),
            "never_used_synapse_fraction": 1.0 - tot["used"] / max(tot["nonzero"], 1),
            "removed_fraction": 1.0 - tot["used"] / max(tot["dense"], 1),
            "never_active_unit_fraction": tot["dead"] / max(tot["units"], 1),
            "layers": layers,
        },
    }


def train_point(params: dict, seed: int, *, dataset: str, config: str, epochs: int, batch_size: int, lr: float,
                weight_step: str = "range", settings: dict | None = None, max_epochs: int | None = None,
                model_dir: str | None = None, threads: int = 1, channels: int = 0, test_images: int = 0) -> dict:
    """Train and evaluate one point of the claims grid (the ``python`` sweep target).

    Parameters
    ----------
    params : dict
        ``weight_bits`` (1..8, or 32 = float32), ``act_bits`` (likewise), ``hcs`` (``"on"`` /
        ``"off"``: k-WTA in every conv and pooling layer as in the base config, or none) and,
        optionally, ``data_fraction`` (default 1: every training image; below 1 a class-stratified
        subset drawn with ``seed``, trained for :func:`subset_epochs` epochs).
    seed : int
        Seeds the initialisation, the batch order, the probabilistic rounding and the subset.
    dataset, config, epochs, batch_size, lr, weight_step, settings
        The recipe (``hcs-neuro train --config CONFIG --epochs ... --batch-size ... --lr ...
        --set weight_step=range --set KEY=VALUE...``); ``settings`` apply to integer-level weights.
    max_epochs : int, optional
        Cap on the epochs of subset runs (default ``10 * epochs``).
    model_dir : str, optional
        Keep the trained model there (:func:`model_file`), for the robustness sweep.
    threads : int
        PyTorch threads (1 on the shared machine).
    channels, test_images : int
        Smoke test only (0: as the config / the whole test split): every conv layer this wide;
        evaluate on the first ``test_images`` test images.

    Returns
    -------
    dict
        Numbers only (the sweep's metrics): ``test_accuracy``, ``zero_level_weight_fraction``,
        ``init_zero_level_weight_fraction``, ``never_used_synapse_fraction``, ``removed_fraction``,
        ``never_active_unit_fraction``, ``dense_synapses``, ``nonzero_synapses``,
        ``used_synapses``, ``conv_active_fraction``, ``n_train``, ``n_test``, ``epochs``,
        ``steps``, ``train_time_s``, ``train_images_per_s``, ``train_loss``,
        ``torch_numpy_agree`` (1 when the PyTorch and NumPy forward passes agree on 200 test
        images), and ``zero_level_weight_fraction_layer{i}`` per weighted layer.
    """
    from hcs_neuro.train import train

    unknown = sorted(set(params) - {"weight_bits", "act_bits", "hcs", "data_fraction"})
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; allowed weight_bits, act_bits, hcs, data_fraction")
    frac = float(params.get("data_fraction", 1.0))
    max_epochs = int(max_epochs) if max_epochs else 10 * int(epochs)
    n_epochs = subset_epochs(int(epochs), frac, max_epochs)
    arch, cfg = point_recipe(config, params, epochs=n_epochs,
                             batch_size=batch_size, lr=lr, seed=seed, threads=threads, weight_step=weight_step,
                             settings=settings, channels=channels)
    (x_tr, y_tr), (x_te, y_te) = point_data(dataset, test_images)
    if frac < 1.0:
        keep = stratified_subset(y_tr, max(10, int(round(frac * len(y_tr)))), seed=int(seed))
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    t0 = time.perf_counter()
    # train() checks its test_data with the NumPy and the PyTorch forward pass (they must agree);
    # a 200-image slice for that, and the full test pass once, below
    model, report = train(arch, cfg, progress=False, command="analysis/paper/paper_grid.py:train_point",
                          train_data=(x_tr, y_tr), test_data=(x_te[:200], y_te[:200]))
    tp = test_pass(model, x_te, y_te)
    if model_dir:
        from hcs_neuro.core.model import save_model

        path = model_file(model_dir, dataset, params, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, path)
    pr = tp["pruning"]
    out = {
        "test_accuracy": tp["accuracy"],
        "zero_level_weight_fraction": pr["zero_level_weight_fraction"],
        "init_zero_level_weight_fraction": init_zero_fraction(int(params["weight_bits"])),
        "never_used_synapse_fraction": pr["never_used_synapse_fraction"],
        "removed_fraction": pr["removed_fraction"],
        "never_active_unit_fraction": pr["never_active_unit_fraction"],
        "dense_synapses": pr["dense_synapses"],
        "nonzero_synapses": pr["nonzero_synapses"],
        "used_synapses": pr["used_synapses"],
        "conv_active_fraction": tp["conv_active_fraction"],
        "n_train": len(y_tr),
        "n_test": len(y_te),
        "epochs": n_epochs,
        "steps": report["steps"],
        "train_time_s": report["train_time_s"],
        "train_images_per_s": report["train_images_per_s"],
        "train_loss": float("nan") if report["train_loss"] is None else report["train_loss"],
        "torch_numpy_agree": float(report["test_accuracy"] == report["test_accuracy_torch"]),
        "eval_wall_s": time.perf_counter() - t0 - report["train_time_s"],
    }
    for layer in pr["layers"]:
        out[f"zero_level_weight_fraction_layer{layer['index']}"] = layer["zero_level_weight_fraction"]
        out[f"never_used_synapse_fraction_layer{layer['index']}"] = (
            1.0 - layer["used_synapses"] / max(layer["nonzero_synapses"], 1))
    return out

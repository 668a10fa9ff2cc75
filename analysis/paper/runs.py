"""One grid point of the paper study: train, evaluate, measure pruning; cached as JSON.

A *run spec* is a plain dict (dataset, channels, weight/act bits, hcs, k, learning, data
fraction, epochs, seed, ...). :func:`run_key` hashes it; :func:`run_cached` trains the point
unless ``<cache>/<key>.json`` exists, and always returns the stored record, which says when
and by which command it was produced (the report prints that; cached numbers are never
presented as fresh).

Uses the public API of :mod:`hcs_neuro` only (architecture, training, reference, energy).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import socket
import time
from pathlib import Path

import numpy as np

from hcs_neuro.core.io import write_json_atomic
from hcs_neuro.core.errors import ConfigError

__all__ = ["SCHEMA", "run_key", "unique_specs", "read_cached", "build_architecture_dict", "stratified_subset", "run_point", "run_cached",
           "test_pass", "load_split", "energy_point", "ENERGY_IMAGES", "code_version"]

#: Bumped whenever the content of a run record changes meaning (old cache files are then ignored).
SCHEMA = 2


def run_key(spec: dict) -> str:
    """A short stable hash of a run spec (sorted JSON)."""
    blob = json.dumps({"schema": SCHEMA, **spec}, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def unique_specs(specs) -> list:
    """``specs`` without repeats (same :func:`run_key`), first occurrence kept, order kept."""
    seen, out = set(), []
    for s in specs:
        key = run_key(s)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def read_cached(path) -> dict | None:
    """The record stored at ``path`` marked ``cached: True``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    rec["cached"] = True
    return rec


def build_architecture_dict(spec: dict) -> tuple[dict, dict]:
    """The architecture dict (and its [training] table) of a run spec.

    Starts from ``spec["base_config"]`` and replaces: conv channels, the number of conv
    blocks (``layers``), weight/activity bits, HCS on/off and the k of the conv layers
    (pooling layers keep their own k from the base config).
    """
    from hcs_neuro.core.architecture import load_config

    raw, _ = load_config(spec["base_config"])
    raw = copy.deepcopy(raw)
    layers = [dict(l) for l in raw["layers"]]
    convs = [l for l in layers if l["type"].startswith("conv")]
    pool = next((l for l in layers if l["type"].startswith("pool")), None)
    n_blocks = int(spec.get("layers") or len(convs))
    new = []
    for b in range(n_blocks):
        conv = dict(convs[min(b, len(convs) - 1)])
        conv["channels"] = int(spec["channels"])
        conv.pop("k", None)
        new.append(conv)
        if pool is not None and b < 2:  # at most two 2x2 poolings (8x8 digits -> 2x2)
            new.append(dict(pool))
    new.append(dict(layers[-1]))
    raw["layers"] = new
    prec = dict(raw.get("precision", {}))
    prec["weight_bits"] = int(spec["weight_bits"])
    prec["act_bits"] = int(spec["act_bits"])
    raw["precision"] = prec
    hcs = dict(raw.get("hcs", {}))
    hcs["enabled"] = bool(spec["hcs"])
    hcs["k"] = spec["k"]
    raw["hcs"] = hcs
    raw["name"] = f"paper-{spec['dataset']}"
    training = dict(raw.pop("training", {}))
    if "lr" in spec:  # pinned by the grid (see experiments.toml), else the base config's [training] lr
        training["lr"] = float(spec["lr"])
    return raw, training


def load_split(dataset: str, split: str):
    """Images and labels of a dataset split (digits or fashion-mnist, no download)."""
    from hcs_neuro.core.datasets import load_dataset

    return load_dataset(dataset, split)


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
        "conv_active_fraction": float(np.mean(convs)) if convs else None,
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


def run_point(spec: dict, command: str = "", threads: int = 1, model_path=None, return_model: bool = False):
    """Train and evaluate one grid point; return its JSON-able record.

    ``spec`` keys: dataset, base_config, channels, layers (optional), weight_bits, act_bits,
    hcs, k, learning, epochs, batch_size, seed, train_subset (optional: a fixed stratified
    subset of the training set, seed 0, shared by all runs), data_fraction (of that set,
    stratified, drawn with the run's seed), test_subset (optional: a fixed stratified subset of
    the test split, seed 0, in the split's order; default the whole test split).

    ``model_path``: also save the trained model there (``.npz``, :func:`hcs_neuro.core.model.save_model`).
    ``return_model``: return ``(record, model)`` instead of the record.
    """
    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.train import load_train_config, train

    code = code_version()  # before training: identifies the imported code
    raw, training = build_architecture_dict(spec)
    arch = load_architecture(raw)
    cfg_dict = {"training": {**training, "dataset": spec["dataset"]}}
    cfg = load_train_config(cfg_dict, epochs=int(spec["epochs"]), batch_size=int(spec["batch_size"]),
                            learning=spec["learning"], seed=int(spec["seed"]), threads=threads)
    x_tr, y_tr = load_split(spec["dataset"], "train")
    x_te, y_te = load_split(spec["dataset"], "test")
    if spec.get("test_subset"):
        keep = np.sort(stratified_subset(y_te, int(spec["test_subset"]), seed=0))
        x_te, y_te = x_te[keep], y_te[keep]
    if spec.get("train_subset"):
        keep = stratified_subset(y_tr, int(spec["train_subset"]), seed=0)
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    frac = float(spec.get("data_fraction", 1.0))
    if frac < 1.0:
        keep = stratified_subset(y_tr, max(10, int(round(frac * len(y_tr)))), seed=int(spec["seed"]))
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    t0 = time.perf_counter()
    # train() evaluates on its test_data with the NumPy and the PyTorch forward pass (they must
    # agree); give it a 200-image slice for that check and do the full test pass once, below.
    model, report = train(arch, cfg, progress=False, command=command, train_data=(x_tr, y_tr),
                          test_data=(x_te[:200], y_te[:200]))
    tp = test_pass(model, x_te, y_te)
    energy = energy_point(model, x_te[:ENERGY_IMAGES])
    if model_path is not None:
        from hcs_neuro.core.model import save_model

        save_model(model, model_path)
    rec = {
        "spec": spec,
        "key": run_key(spec),
        "test_accuracy": tp["accuracy"],
        "torch_numpy_agree_200": report["test_accuracy"] == report["test_accuracy_torch"],
        "n_train": int(len(y_tr)),
        "n_test": int(len(y_te)),
        "steps": report["steps"],
        "train_time_s": report["train_time_s"],
        "wall_time_s": time.perf_counter() - t0,
        "train_loss": report["train_loss"],
        "k_per_layer": report["k"],
        "active_fraction": tp["active_fraction"],
        "conv_active_fraction": tp["conv_active_fraction"],
        "pruning": tp["pruning"],
        "energy": energy,
        "produced_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "produced_by": command,
        "host": socket.gethostname(),
        "code": code,
    }
    return (rec, model) if return_model else rec


#: Test images (the first ones of the split) priced by :func:`energy_point`.
ENERGY_IMAGES = 200


def energy_point(model, images) -> dict:
    """Analytic energy per image of the reference network and of its spiking twin.

    Uses :func:`hcs_neuro.measure.energy.network_energy` without a simulation: the spiking counts are
    the *analytic* ones (what a correct spiking network emits: one spike per activity level of
    every winner, ``single`` input coding), priced with the Loihi profile (synaptic ops and
    spikes; neuron updates are not counted without a simulation); the reference network is
    priced dense at fp32 (``cmos45_fp32``) and with zeros skipped at its own precision
    (``cmos45_lowprec`` when weights and activities are integer levels, ``cmos45_fp32`` when
    either is full precision).
    Chip-level figures only (see :data:`hcs_neuro.measure.energy.CHIP_LEVEL_NOTE`).
    """
    from hcs_neuro.measure.energy import network_energy
    from hcs_neuro.core.reference import forward, quantize_input
    from hcs_neuro.core.quant import FLOAT_BITS

    ref = forward(model, images, keep_layers=True)
    e = network_energy(model, ref, None, ["loihi", "cmos45_fp32", "cmos45_lowprec"],
                       input_levels=quantize_input(model, images), input_coding="single")
    arch = model.architecture
    float_w = any(s.weight_bits == FLOAT_BITS for s in arch.layers if s.has_weights) or any(
        s.act_bits == FLOAT_BITS for s in arch.layers if not s.is_readout)
    own = e["energy"]["cmos45_fp32" if float_w else "cmos45_lowprec"]["per_image_pj"]
    return {
        "n_images": int(len(images)),
        "sops_analytic_per_image": e["totals"]["sops_analytic_per_image"],
        "spikes_analytic_per_image": e["totals"]["spikes_analytic_per_image"],
        "dense_macs_per_image": e["totals"]["dense_macs_per_image"],
        "effective_ops_per_image": e["totals"]["effective_ops_per_image"],
        "spiking_loihi_uj": e["energy"]["loihi"]["per_image_pj"]["total_pj"] * 1e-6,
        "reference_dense_fp32_uj": e["energy"]["cmos45_fp32"]["per_image_pj"]["dense_pj"] * 1e-6,
        "reference_effective_own_precision_uj": own["effective_pj"] * 1e-6,
        "reference_profile": "cmos45_fp32" if float_w else "cmos45_lowprec",
        "note": e["note"],
    }


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """Git HEAD and the SHA-1 of hcs_neuro/training.py, read once per process when training is imported.

    A process imports the training code once; hashing the file at that moment (and caching it)
    identifies the code that actually ran, even when the file changes on disk later.
    """
    import subprocess

    import hcs_neuro.train as tr

    src = Path(tr.__file__).read_bytes()
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(tr.__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return {"git_head": head, "training_py_sha1": hashlib.sha1(src).hexdigest()[:12], "hashed_at_import": True}


def run_cached(spec: dict, cache_dir, command: str = "", threads: int = 1) -> dict:
    """Return the cached record of ``spec`` or compute and store it (atomically).

    The trained model is saved as ``<key>.npz`` beside ``<key>.json`` (records made before this
    was added have no model file).

    The record carries ``cached: True`` when it was read from disk (its ``produced_utc`` and
    ``produced_by`` say when and how it was made), ``False`` when computed now.
    """
    path = Path(cache_dir) / f"{run_key(spec)}.json"
    if path.exists():
        try:
            rec = json.loads(path.read_text())
            if rec.get("spec") == spec:
                rec["cached"] = True
                return rec
        except (OSError, json.JSONDecodeError):
            pass  # unreadable cache entry: recompute
    # the trained model is kept beside its record (written first: a record implies its model)
    rec = run_point(spec, command=command, threads=threads, model_path=path.with_suffix(".npz"))
    write_json_atomic(path, rec)
    rec["cached"] = False
    return rec

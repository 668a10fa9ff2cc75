"""The pipeline every caller uses: a model as a spiking network, validated and counted.

``simulate -> validate -> energy`` is assembled here once; the command line (``simulate``,
``validate``, ``energy``, ``demo``), the sweeps' ``network`` target and the analysis scripts call
:func:`run_network` (or :func:`simulate_images` for spikes only) instead of wiring the stages
themselves.

Images are processed in blocks with one compiled network (memory bounded by the block, not by
the number of images); the simulation of later chunks overlaps with the validation and counting
of a finished block. Every result says which circuit, device and time step produced it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hcs_neuro.core import reference as ref_mod
from hcs_neuro.core.catalog import load_model_named
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.io import check_output_dir
from hcs_neuro.core.progress import progress as progress_bar
from hcs_neuro.measure.energy import merge_energy, network_energy
from hcs_neuro.measure.profiles import resolve_profiles
from hcs_neuro.measure.validate import Validator

__all__ = [
    "NetworkRun",
    "resolve_model",
    "load_images",
    "run_network",
    "simulate_images",
    "write_network_report",
    "validation_summary",
    "run_demo",
    "DEMO_MODEL",
    "DEVICES",
]

#: Brian2 devices a network runs on.
DEVICES = ("cpp_standalone", "runtime")
#: The shipped model the demo runs (``models/digits_hcs.npz``, found by name).
DEMO_MODEL = "digits_hcs"


def resolve_model(name_or_path):
    """A model from a file or a shipped name (``digits_hcs``); see :mod:`hcs_neuro.core.catalog`."""
    return load_model_named(name_or_path)


def load_images(model, dataset: str, split: str = "test", data_dir=None, n_images: int | None = None):
    """Images and labels of a dataset split, checked against the model before anything runs.

    Raises
    ------
    DataError
        Missing dataset, images that do not fit the model input (e.g. a 28x28 model on 8x8
        digits), or labels outside the model's classes.
    ConfigError
        ``n_images`` < 1.
    """
    if n_images is not None and n_images < 1:
        raise ConfigError(f"--n-images {n_images}: allowed an integer >= 1")
    images, labels = load_dataset(dataset, split, data_dir, limit=n_images)
    arch = model.architecture
    if tuple(images.shape[1:]) != tuple(arch.input_shape):
        raise DataError(f"dataset {dataset!r} has images of shape {tuple(images.shape[1:])} but model "
                        f"{arch.source} ({arch.name}) takes {tuple(arch.input_shape)}; use a model trained "
                        f"on {dataset}")
    if labels.size and int(labels.max()) >= arch.n_classes:
        raise DataError(f"dataset {dataset!r} has labels up to {int(labels.max())} but model {arch.source} "
                        f"has {arch.n_classes} classes")
    return np.ascontiguousarray(images), labels


@dataclass
class NetworkRun:
    """What :func:`run_network` measured.

    Attributes
    ----------
    n_images : int
    validation : dict or None
        :class:`hcs_neuro.measure.validate.Validator` result over all images (with labels).
    energy : dict or None
        :func:`hcs_neuro.measure.energy.merge_energy` over all blocks.
    first_block : tuple or None
        ``(images, labels, reference, spiking)`` of the first block (for reports).
    compile_time_s, total_time_s, wall_time_s : float
        Building the network, everything, and everything after the build (simulation overlaps
        validation and counting).
    simulation_time_s : float
        The spiking runs alone, summed over blocks (without the build).
    metadata : dict
        Circuit, device, chunk, seed, time step of the spiking runs.
    """

    n_images: int
    validation: dict | None = None
    energy: dict | None = None
    first_block: tuple | None = None
    compile_time_s: float = 0.0
    total_time_s: float = 0.0
    wall_time_s: float = 0.0
    simulation_time_s: float = 0.0
    metadata: dict = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.n_images / max(self.wall_time_s, 1e-9)


def _check_run_args(block: int, tie_tol: float, device: str) -> None:
    if block < 1:
        raise ConfigError(f"--block {block}: allowed an integer >= 1")
    if not 0 <= tie_tol < 1:
        raise ConfigError(f"--tie-tol {tie_tol}: allowed 0 <= tie_tol < 1")
    if device not in DEVICES:
        raise ConfigError(f"device = {device!r}: allowed {', '.join(DEVICES)}")


def _blocks(model, images, *, circuit, device, n_jobs, chunk, seed, block, progress, analytic, session):
    """``(start, spiking or None)`` per block of images, from one compiled network."""
    n = len(images)
    if analytic:
        for start in range(0, n, block):
            yield start, None
        return
    from hcs_neuro.brian.session import SimulationSession, default_chunk, simulate

    if device == "runtime":  # a network built per chunk: the slow, naive path
        for start in range(0, n, block):
            yield start, simulate(model, images[start:start + block], circuit=circuit, n_jobs=1, seed=seed,
                                  progress=progress, device="runtime")
        return
    chunk = chunk or default_chunk(min(block, n), n_jobs)
    own = session is None
    sess = session or SimulationSession(model, circuit=circuit, n_jobs=min(n_jobs, -(-min(block, n) // chunk)),
                                        chunk=chunk, seed=seed)
    try:
        yield from sess.iter_blocks(images, block, progress=progress)
    finally:
        if own:
            sess.close()


def run_network(model, images, labels=None, *, circuit=None, device: str = "cpp_standalone", n_jobs: int = 2,
                chunk: int | None = None, seed: int = 0, block: int = 500, validate: bool = True,
                energy: bool = True, profiles=None, tie_tol: float = 0.01, analytic: bool = False,
                keep_first: bool = False, progress: bool = True, session=None, memory=None) -> NetworkRun:
    """Simulate ``model`` as a spiking network on ``images``, validate it and count its energy.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    images : ndarray, shape ``(N, *input_shape)``
        Images in [0, 1].
    labels : ndarray, optional
        Needed for validation (accuracy).
    circuit : str, Path or hcs_neuro.core.circuit_file.RaceParams, optional
        Whole-network circuit (default ``network_race``).
    device : {"cpp_standalone", "runtime"}
    n_jobs, chunk, seed : int
        Simulation processes, images per run of the compiled binary, Brian2 seed.
    block : int
        Images simulated, validated and counted together (bounds memory).
    validate, energy : bool
        Which measurements to make.
    profiles : list of str, EnergyProfile or TOML file paths, optional
        Hardware profiles to price with (default: all built-in profiles).
    memory : MemoryTable or TOML file path, optional
        Memory-access table of the data-movement term (default: the built-in Horowitz 45 nm one).
    tie_tol : float
        Near-tie tolerance of the validation (fraction of each hypercolumn's drive range).
    analytic : bool
        No simulation: count what a network that reproduces the reference emits (energy only).
    keep_first : bool
        Keep the first block's images, reference and spikes (for a report).
    progress : bool
    session : hcs_neuro.brian.session.SimulationSession, optional
        An open compiled network to reuse (sweeps keep one per model); not closed here.

    Returns
    -------
    NetworkRun
    """

    _check_run_args(block, tie_tol, device)
    if energy and profiles is not None:  # names and files resolved once, before any work
        profiles, file_memory = resolve_profiles([profiles] if isinstance(profiles, str) else profiles)
        memory = memory if memory is not None else file_memory
    if analytic and validate:
        raise ConfigError("analytic counting has no spiking network to validate (validate=False)")
    if validate and labels is None:
        raise ConfigError("validation needs the images' labels")
    t0 = time.perf_counter()
    n = len(images)
    if n == 0:
        raise DataError("no images given (N = 0)")
    block = min(block, n)
    validator = Validator(model, tie_tol=tie_tol) if validate else None
    parts, first, meta, compile_s, sim_s = [], None, {}, 0.0, 0.0
    bar = progress_bar(total=n, desc="energy", unit="img", enabled=progress and analytic and n > block)
    with contextlib.closing(bar):
        for start, spiking in _blocks(model, images, circuit=circuit, device=device, n_jobs=n_jobs, chunk=chunk,
                                      seed=seed, block=block, progress=progress, analytic=analytic,
                                      session=session):
            m = spiking.n_images if spiking is not None else min(block, n - start)
            x = images[start:start + m]
            y = labels[start:start + m] if labels is not None else None
            ref = ref_mod.forward(model, x)
            if validator is not None:
                validator.update(x, y, spiking, ref)
            if energy:
                parts.append(network_energy(model, ref, spiking, profiles, input_levels=ref_mod.quantize_input(model, x),
                                            memory=memory))
            if spiking is not None:
                meta = dict(spiking.metadata or {})
                sim_s += float(meta.get("run_time_s") or 0.0)
                compile_s = float(meta.get("compile_time_s") or 0.0) if device == "cpp_standalone" else \
                    compile_s + float(meta.get("compile_time_s") or 0.0)
            if keep_first and first is None:
                first = (x, y, ref, spiking)
            bar.update(m)
    total = time.perf_counter() - t0
    meta.pop("plan", None)
    return NetworkRun(n_images=n, validation=validator.result() if validator is not None else None,
                      energy=merge_energy(parts) if parts else None, first_block=first, compile_time_s=compile_s,
                      total_time_s=total, wall_time_s=total - (compile_s if device == "cpp_standalone" else 0.0),
                      simulation_time_s=sim_s, metadata=meta)


def validation_summary(run: NetworkRun) -> dict:
    """The validation dict of a run with its timing: ``compile_time_s``, ``total_time_s``,
    ``wall_time_s`` (everything after compiling: simulation overlaps validation) and
    ``images_per_s``."""
    out = dict(run.validation or {})
    out.update(compile_time_s=run.compile_time_s, total_time_s=run.total_time_s, wall_time_s=run.wall_time_s,
               images_per_s=run.images_per_s)
    return out


def simulate_images(model, images, *, circuit=None, device: str = "cpp_standalone", n_jobs: int = 2,
                    chunk: int | None = None, seed: int = 0, progress: bool = True):
    """Spikes only: :func:`hcs_neuro.brian.session.simulate` (one :class:`SpikingResult` for all
    images)."""
    from hcs_neuro.brian.session import simulate

    if device not in DEVICES:
        raise ConfigError(f"device = {device!r}: allowed {', '.join(DEVICES)}")
    return simulate(model, images, circuit=circuit, n_jobs=n_jobs, progress=progress, seed=seed, chunk=chunk,
                    device=device)


def write_network_report(run: NetworkRun, model, out, *, title: str, overwrite: bool = False) -> Path:
    """The one-page report folder (report.md, figures, JSON) of a run's first block."""
    from hcs_neuro.report import write_report

    if run.first_block is None:
        raise ConfigError("write_network_report: run_network(..., keep_first=True) keeps the block a report shows")
    x, y, ref, sp = run.first_block
    energy = network_energy(model, ref, sp, input_levels=ref_mod.quantize_input(model, x))
    return write_report(out, model=model, reference=ref, spiking=sp, validation=run.validation, energy=energy,
                        title=title, overwrite=overwrite)


def _own_ratios(energy: dict) -> dict:
    """The model's own 45 nm spiking profile over the reference at its own precision."""
    row = next(r for r in energy["comparison"]["rows"] if r["profile"] == energy["snn_profile_own_precision"])
    return {"profile": row["profile"], "reference": energy["comparison"]["reference_profile"],
            "without_data_movement": row["ratio_without_data_movement"],
            "with_data_movement": row["ratio_with_data_movement"],
            "with_data_movement_sparse": row["ratio_with_data_movement_vs_sparse"]}


def run_demo(*, model=DEMO_MODEL, n_images=None, out="hcs-neuro-demo", circuit=None, n_jobs: int = 2, seed: int = 0,
             progress: bool = True, device: str = "cpp_standalone", log=print, overwrite: bool = False) -> dict:
    """The main job on the embedded default: the shipped digits model (scikit-learn's bundled 8x8
    digits, nothing downloaded) simulated as a spiking network on the digits test split, validated,
    counted and priced; a report folder is written.

    Returns
    -------
    dict
        ``report`` (path of report.md), ``n_images``, ``class_agreement``, ``spiking_accuracy``,
        ``reference_accuracy``, ``sops_per_image``, ``spikes_per_image``, ``effective_ops_per_image``,
        ``energy_per_image_uj`` (per profile, without data movement; for profiles whose figures
        include memory, the figure as published), ``energy_per_image_with_data_movement_uj``,
        ``snn_over_reference`` (the model's 45 nm spiking profile over the reference at its own
        precision: ``without_data_movement``, ``with_data_movement`` against the dense
        reference, ``with_data_movement_sparse`` against the sparse bound),
        ``sops_equal_where_winners_agree``, ``wall_time_s``
        (simulation, with the build), ``compile_time_s``, ``device``, ``circuit`` and
        ``total_time_s`` (everything, this call).
    """
    from hcs_neuro.brian.session import make_network
    from hcs_neuro.report import REPORT_KIND

    t0 = time.perf_counter()
    check_output_dir(out, overwrite=overwrite, kind=REPORT_KIND)  # before any work
    model = resolve_model(model)
    race = make_network(model, circuit).race  # a bad circuit file: error before any work
    images, labels = load_images(model, "digits", "test", None, n_images)
    log(f"demo: {model.architecture.name} on {len(images)} digits test images "
        f"(8x8, scikit-learn's bundled set), circuit {race.name}")
    log(f"demo: spiking simulation (Brian2 {device}"
        f"{'; compiles the C++ project once first' if device == 'cpp_standalone' else ''})")
    run = run_network(model, images, labels, circuit=race, device=device, n_jobs=n_jobs, seed=seed,
                      block=len(images), keep_first=True, progress=progress)
    report = write_network_report(run, model, out, overwrite=overwrite,
                                  title=f"hcs-neuro demo: {model.architecture.name} as a spiking network")
    validation, energy = run.validation, run.energy
    meta = run.metadata
    return {
        "report": str(report),
        "n_images": int(len(images)),
        "class_agreement": validation.get("class_agreement"),
        "spiking_accuracy": validation.get("spiking_accuracy"),
        "reference_accuracy": validation.get("reference_accuracy"),
        "spikes_per_image": energy["totals"]["spikes_per_image"],
        "sops_per_image": energy["totals"]["sops_per_image"],
        "effective_ops_per_image": energy["totals"]["effective_ops_per_image"],
        "sops_equal_where_winners_agree": energy["sop_check"]["sops_equal_where_winners_agree"],
        "energy_per_image_uj": {name: p["per_image_uj"] for name, p in energy["energy"].items()},
        "energy_per_image_with_data_movement_uj": {name: p["per_image_with_data_movement_uj"]
                                                   for name, p in energy["energy"].items()},
        "snn_over_reference": _own_ratios(energy),
        "wall_time_s": float(run.compile_time_s) + float(run.simulation_time_s),
        "compile_time_s": meta.get("compile_time_s"),
        "device": device,
        "circuit": race.name,
        "total_time_s": time.perf_counter() - t0,
    }

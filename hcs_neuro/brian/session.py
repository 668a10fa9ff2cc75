"""Run a model's spiking network on many images: compiled once, rerun in chunks, in parallel.

A *network* (the exact race, :class:`hcs_neuro.brian.race.RaceNetwork`) describes how to build
its Brian2 objects for ``chunk`` images, which TimedArray carries the input levels, how to read
its monitors and how to assemble a :class:`~hcs_neuro.core.spiking_result.SpikingResult`. This
module is independent of the kind of network:

* :class:`NetworkRunner` builds a network for ``chunk`` images with
  :class:`hcs_neuro.brian.device.BuiltNetwork` and reruns the compiled binary on new input
  levels through ``run_args`` (cpp_standalone), or runs it once (runtime device);
* :class:`SimulationSession` keeps one runner and ``n_jobs`` forked worker processes for many
  blocks of images (each run writes its own results folder in the shared project);
* :func:`simulate` is the one-call form.

Images are presented one after another, each in its own period; the input levels come from a
:class:`brian2.TimedArray` indexed by the image. ``device="runtime"`` builds the same network with
Brian2's runtime device (NumPy code generation), one chunk per build: the slow reference path
for tests and the "naive" baseline of ``analysis/bench/bench_network.py``.

Every entry point takes the neuron-update policy (``updates``: ``clock``, ``gated`` or ``event``,
:mod:`hcs_neuro.core.updates`); the network runs its schedule (every group at every step, or the
gated phases) and counts its updates under it. The spikes do not depend on the policy.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np

from hcs_neuro.brian import b2
from hcs_neuro.brian.bionet import BioNetwork
from hcs_neuro.brian.device import DEVICES, BuiltNetwork
from hcs_neuro.brian.race import RaceNetwork
from hcs_neuro.core.circuit_file import NetworkCircuit, RaceParams, load_network_circuit
from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.progress import progress as progress_bar
from hcs_neuro.core.reference import quantize_input
from hcs_neuro.core.spiking_result import SpikingResult
from hcs_neuro.core.updates import DEFAULT_UPDATES, check_update_policy

__all__ = ["make_network", "network_circuit", "simulate", "SimulationSession", "NetworkRunner", "default_chunk"]


def make_network(model, circuit=None, updates: str = DEFAULT_UPDATES):
    """The network of ``model`` for a circuit (a file, a built-in name, RaceParams or
    NetworkCircuit; default: the exact race), run and counted under the neuron-update policy
    ``updates``. A biophysical circuit (``[network]`` section, or a single-hypercolumn name with a
    network form such as ``lif_kwta``) gives a :class:`hcs_neuro.brian.bionet.BioNetwork`, which
    runs every cell at every step (``clock`` only)."""
    spec = circuit if isinstance(circuit, (RaceParams, NetworkCircuit)) else load_network_circuit(circuit)
    if isinstance(spec, NetworkCircuit):  # -- biophysical networks (issue 25) --
        if updates != "clock":
            raise ConfigError(f"--updates {updates}: the biophysical circuit {spec.name!r} runs every cell at every "
                              f"step; only 'clock' is allowed (gated and event policies are for the exact race)")
        return BioNetwork(model, spec)
    return RaceNetwork(model, spec, updates=updates)


def network_circuit(network):
    """The loaded circuit of a network made by :func:`make_network` (RaceParams or NetworkCircuit)."""
    return network.circuit if isinstance(network, BioNetwork) else network.race


class NetworkRunner:
    """A network built for ``chunk`` images that reruns on chunks of input levels (one process).

    Parameters
    ----------
    network : RaceNetwork
    chunk : int
        Images per run of the binary (compiled in; the last chunk is padded).
    device : {"cpp_standalone", "runtime"}
    directory : str or Path, optional
        cpp_standalone project directory (default: a cached folder per network shape, see
        :func:`hcs_neuro.brian.device.cached_project_dir`).
    seed : int
        Seed of Brian2's random generators.
    levels : ndarray, optional
        Input levels of a runtime run (the runtime device takes them at build time).
    """

    def __init__(self, network, chunk: int, *, device: str = "cpp_standalone", directory=None, seed: int = 0,
                 levels=None):
        self.network, self.chunk, self.device_name = network, int(chunk), device
        self._runs = 0
        self._built = BuiltNetwork(lambda b2: network.build(b2, self.chunk, levels), network.duration_ms(self.chunk),
                                   device=device, directory=directory,
                                   cache_key=network.cache_key(self.chunk) if directory is None else None,
                                   seed=seed, float32=network.float32, drop_static=network.static_arrays,
                                   schedule=network.schedule(b2, self.chunk))
        self.h = self._built.handles
        self.directory = self._built.directory
        self.compile_time_s = self._built.compile_time_s

    def run(self, levels: np.ndarray, tag: str = "") -> dict:
        """Run one chunk: ``levels`` (n <= chunk, n_inputs) integer input levels."""
        n = len(levels)
        self._runs += 1
        if self.device_name == "cpp_standalone":
            vals = np.zeros((self.chunk, self.network.n_inputs))
            vals[:n] = levels
            res = f"results_{tag}{self._runs}"
            self._built.run({self.network.input_array(self.h): vals}, results_directory=res)
            out = self.network.collect(self.h, n)
            self._built.drop_results(res)
        else:  # runtime: the levels were given at construction; one run per build
            self._built.run()
            out = self.network.collect(self.h, n)
        return out

    def close(self) -> None:
        self._built.close()
        self.h = None


# ---- parallel chunks (forked workers share the compiled project; separate results folders) ----
_WORKER: dict = {}


def _worker_run(args):
    idx, levels = args
    runner = _WORKER["runner"]
    return idx, runner.run(levels, tag=f"w{os.getpid()}_")


def _levels(model, images) -> np.ndarray:
    levels = np.asarray(quantize_input(model, images), dtype=np.int64)
    levels = levels.reshape(len(levels), -1)
    if len(levels) == 0:
        raise DataError("simulate: no images given (N = 0)")
    return levels


class SimulationSession:
    """A compiled network plus worker processes, reused for many blocks of images.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    circuit : str, Path or hcs_neuro.core.circuit_file.RaceParams, optional
    n_jobs : int
        Worker processes (forked after the single compilation; each run writes its own results
        folder inside the project).
    chunk : int
        Images per run of the compiled binary.
    seed : int
    directory : str or Path, optional
        Project directory (default: a cached folder per network shape).
    updates : {"clock", "gated", "event"}
        Neuron-update policy (:mod:`hcs_neuro.core.updates`; default ``clock``).

    Notes
    -----
    Use as a context manager; :meth:`run` returns one :class:`SpikingResult` per block.
    """

    def __init__(self, model, *, circuit=None, n_jobs: int = 2, chunk: int = 64, seed: int = 0, directory=None,
                 updates: str = DEFAULT_UPDATES):
        t0 = time.perf_counter()
        self.model = model
        self.network = make_network(model, circuit, check_update_policy(updates))
        self.n_jobs = max(1, int(n_jobs))
        cap = getattr(self.network, "max_chunk", None)  # BioNetwork bounds the simulated time per run
        self.chunk = max(1, int(chunk) if cap is None else min(int(chunk), cap))
        self.seed = int(seed)
        self.runner = NetworkRunner(self.network, self.chunk, device="cpp_standalone", directory=directory, seed=seed)
        self.compile_time_s = time.perf_counter() - t0
        self._pool = None
        if self.n_jobs > 1:
            _WORKER["runner"] = self.runner
            self._pool = mp.get_context("fork").Pool(self.n_jobs)

    def _metadata(self, run_s: float) -> dict:
        return {**self.network.metadata(), "device": "cpp_standalone", "n_jobs": self.n_jobs, "chunk": self.chunk,
                "seed": self.seed, "compile_time_s": self.compile_time_s, "run_time_s": run_s}

    def _chunks(self, levels: np.ndarray, ordered: bool):
        jobs = [(s, levels[s:s + self.chunk]) for s in range(0, len(levels), self.chunk)]
        if self._pool is not None and len(jobs) > 1:
            return (self._pool.imap if ordered else self._pool.imap_unordered)(_worker_run, jobs)
        return ((s, self.runner.run(lv)) for s, lv in jobs)

    def run(self, images, *, progress: bool = True) -> SpikingResult:
        """Simulate one block of images (float in [0, 1], shape ``(N, *input_shape)``)."""
        t0 = time.perf_counter()
        levels = _levels(self.model, images)
        parts = []
        bar = progress_bar(total=len(levels), desc="simulate", unit="img", enabled=progress)
        try:
            for s, out in self._chunks(levels, ordered=False):
                parts.append((s, out))
                bar.update(out["n"])
        finally:
            bar.close()
        parts.sort(key=lambda p: p[0])
        run_s = time.perf_counter() - t0
        return self.network.assemble(levels, parts, run_s, self._metadata(run_s))

    def iter_blocks(self, images, block: int, *, progress: bool = True):
        """Simulate ``images`` and yield ``(start, SpikingResult)`` per block of whole chunks.

        The workers keep simulating later chunks while the caller processes a block (e.g.
        validates it), so validation overlaps with simulation. Results come in image order.
        """
        levels = _levels(self.model, images)
        n = len(levels)
        per_block = -(-max(1, int(block)) // self.chunk) * self.chunk  # whole chunks, at least ``block`` images
        bar = progress_bar(total=n, desc="simulate", unit="img", enabled=progress)
        parts, b_start, t0 = [], 0, time.perf_counter()
        try:
            for s, out in self._chunks(levels, ordered=True):
                parts.append((s - b_start, out))
                bar.update(out["n"])
                end = s + out["n"]
                if end - b_start >= per_block or end >= n:
                    run_s = time.perf_counter() - t0
                    yield b_start, self.network.assemble(levels[b_start:end], parts, run_s, self._metadata(run_s))
                    parts, b_start, t0 = [], end, time.perf_counter()
        finally:
            bar.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
        _WORKER.clear()
        self.runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def default_chunk(n: int, n_jobs: int) -> int:
    """Images per binary run: about N / (2 n_jobs), between 8 and 256 (each start of the binary
    creates every synapse and writes every array, so fewer, larger runs are cheaper; two runs per
    process keep the load balanced)."""
    return int(min(n, np.clip(-(-n // (2 * max(n_jobs, 1))), 8, 256)))


def simulate(model, images, *, circuit=None, n_jobs: int = 2, progress: bool = True, seed: int = 0,
             chunk: int | None = None, device: str = "cpp_standalone", directory=None,
             updates: str = DEFAULT_UPDATES) -> SpikingResult:
    """Simulate ``model`` as a spiking network on ``images``.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    images : ndarray, shape ``(N, *input_shape)``
        Images in [0, 1] (quantized to the model's input levels as in the reference).
    circuit : str, Path or hcs_neuro.core.circuit_file.RaceParams, optional
        Whole-network circuit (default ``circuits/network_race.toml``).
    n_jobs : int
        Processes running chunks in parallel (cpp_standalone; the project is compiled once).
    progress : bool
        Show progress over images.
    seed : int
        Brian2 seed (the race uses no random numbers: results do not depend on it).
    chunk : int, optional
        Images per run of the compiled binary (default :func:`default_chunk`).
    device : {"cpp_standalone", "runtime"}
        ``runtime`` builds the same network per chunk with NumPy code generation (no compiler;
        slow): the naive path.
    directory : str or Path, optional
        cpp_standalone project directory (default: a persistent, locked folder per network shape
        under ``$HCS_NEURO_CACHE`` or ``~/.cache/hcs-neuro/standalone``, so that a second run of the
        same network recompiles nothing).
    updates : {"clock", "gated", "event"}
        Neuron-update policy: how the network is run and how its ``neuron_updates`` are counted
        (``clock``: every group at every step; ``gated``: only the layer that can change, the
        others are not simulated; ``event``: the gated run, a cell counted at the steps with a
        synaptic event or an emission). Every figure is counted in the simulation;
        ``metadata["count_basis"]["neuron_updates"]`` says which policy and how.

    Returns
    -------
    SpikingResult
        Arrays indexed like the reference's; ``metadata`` holds the plan summary (windows,
        synapse counts), the device, chunk size, ``compile_time_s``, ``run_time_s``, the update
        policy and the basis of every count; ``wall_time_s`` includes the compilation.

    Raises
    ------
    DataError
        No images, or images that do not fit the model input.
    ConfigError, ModelError
        A bad circuit file or device, or a model that cannot be converted (full precision).
    """
    t0 = time.perf_counter()
    if device not in DEVICES:
        raise ConfigError(f"device = {device!r}: allowed {', '.join(repr(d) for d in DEVICES)}")
    network = make_network(model, circuit, check_update_policy(updates))
    levels = _levels(model, images)
    n = len(levels)
    n_jobs = max(1, int(n_jobs))
    chunk = default_chunk(n, n_jobs) if chunk is None else int(min(max(chunk, 1), n))
    if device == "runtime":
        return _simulate_runtime(network, levels, chunk, progress, seed, t0)
    n_jobs = min(n_jobs, -(-n // chunk))
    with SimulationSession(model, circuit=network_circuit(network), n_jobs=n_jobs, chunk=chunk, seed=seed,
                           directory=directory, updates=updates) as sess:
        result = sess.run(images, progress=progress)
    result.wall_time_s = time.perf_counter() - t0
    return result


def _simulate_runtime(network, levels, chunk, progress, seed, t0) -> SpikingResult:
    """The runtime-device path: a network built per chunk (NumPy code generation)."""
    n = len(levels)
    parts = []
    build_s = 0.0
    for s in progress_bar(range(0, n, chunk), desc="simulate (runtime)", unit="chunk", enabled=progress):
        lv = levels[s:s + chunk]
        runner = NetworkRunner(network, len(lv), device="runtime", seed=seed, levels=lv)
        build_s += runner.compile_time_s
        try:
            parts.append((s, runner.run(lv)))
        finally:
            runner.close()
    wall = time.perf_counter() - t0
    meta = {**network.metadata(), "device": "runtime", "n_jobs": 1, "chunk": chunk, "seed": int(seed),
            "compile_time_s": build_s, "run_time_s": wall - build_s}
    return network.assemble(levels, parts, wall, meta)

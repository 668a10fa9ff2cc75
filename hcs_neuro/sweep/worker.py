"""Dask worker start-up for sweeps: import Brian2 in the worker's main thread.

Brian2 installs a SIGINT handler when it is imported, and Python allows that only in the main
thread; Dask runs tasks in worker threads, so ``import brian2`` inside a task fails with
"signal only works in main thread". Importing it once when the worker starts (in the main thread)
avoids that: later imports inside tasks find it in ``sys.modules``.

Two ways in, one effect:

* :class:`Brian2Preload`, a ``WorkerPlugin`` that :func:`hcs_neuro.sweep.run_sweep` registers on
  the cluster (local or remote) when the target needs Brian2; Dask calls its ``setup`` on every
  current and future worker, in the worker's event-loop (main) thread.
* the preload-module hook :func:`dask_setup`, for workers you start yourself:
  ``dask worker tcp://host:8786 --preload hcs_neuro.sweep.worker``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["Brian2Preload", "import_brian2", "dask_setup", "dask_teardown", "worker_scratch_dir",
           "cleanup_worker"]


def import_brian2() -> str:
    """Import Brian2 (must run in the main thread the first time); returns its version.

    Raises
    ------
    RuntimeError
        If called first from a non-main thread, which is exactly the failure this module avoids.
    """

    if "brian2" not in sys.modules and threading.current_thread() is not threading.main_thread():
        raise RuntimeError("Brian2 must first be imported in the worker's main thread "
                           "(it installs a SIGINT handler)")
    import brian2

    import hcs_neuro.brian  # noqa: F401  (imports Brian2, configured)

    return brian2.__version__


def worker_scratch_dir(name: str = "brian2") -> str:
    """A folder private to this worker process (for Brian2 standalone projects and caches).

    Parallel standalone builds must not share a directory; this returns
    ``$TMPDIR/hcs-neuro-<name>-<pid>`` and creates it.
    """

    path = os.path.join(tempfile.gettempdir(), f"hcs-neuro-{name}-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    _SCRATCH_DIRS.add(path)
    return path


_SCRATCH_DIRS: set[str] = set()


def cleanup_worker() -> None:
    """Release a cached compiled network and remove this process's scratch folders."""

    if "hcs_neuro.brian.device" in sys.modules:  # only a worker that built something holds one
        from hcs_neuro.brian.device import WORKER_CACHE

        WORKER_CACHE.evict()
    for path in sorted(_SCRATCH_DIRS):
        shutil.rmtree(path, ignore_errors=True)
    _SCRATCH_DIRS.clear()


class Brian2Preload(WorkerPlugin):
    """Worker plugin importing Brian2 at worker start; records the thread and version."""

    name = "hcs-neuro-brian2-preload"
    idempotent = True

    def setup(self, worker=None):
        self.thread = threading.current_thread().name
        self.brian2_version = import_brian2()

    def teardown(self, worker=None):
        cleanup_worker()


def dask_setup(worker=None) -> None:
    """Preload-module hook (``dask worker --preload hcs_neuro.sweep.worker``)."""
    import_brian2()


def dask_teardown(worker=None) -> None:
    """Preload-module hook: clean up when the worker closes."""
    cleanup_worker()

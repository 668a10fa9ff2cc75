"""The Brian2 layer of hcs-neuro: importing this package imports Brian2 once, configured.

Everything in hcs-neuro that simulates imports Brian2 through here (``from hcs_neuro.brian
import b2``), so the settings below hold in every process, including Dask workers and forked
simulation processes:

* **Ctrl-C interrupts.** Brian2 turns the first Ctrl-C during a run into "stop at the end of this
  step" and returns normally, so a cut-short run would be scored and written as if complete.
  ``core.stop_on_keyboard_interrupt = False`` makes Ctrl-C raise ``KeyboardInterrupt`` instead;
  the CLI then writes nothing and exits with status 130.
* **No leftovers in /tmp.** Brian2 writes a debug log (``/tmp/brian_debug_*.log``) and a copy of
  the running script (``/tmp/brian_script_*.py``) at import and keeps them after any crash or
  kill. Both are switched off and the files made at import are deleted at once.
* **No warnings about unused objects.** A build that fails half-way (a user's equation Brian2
  rejects, see :func:`hcs_neuro.brian.hypercolumn.check_with_brian`) leaves objects that were never added
  to a network; Brian2 warns about each when it is collected. hcs-neuro builds every network
  explicitly, so these warnings say nothing to its users and are suppressed.
* **Bounded compilation.** Brian2's default ``make`` arguments are ``['-j']``: an *unlimited*
  number of parallel compiler processes (hundreds were seen on a 2-core machine, load average
  > 300). :func:`limit_compile_jobs` caps them at the CPU count.
"""

from __future__ import annotations

import logging
import os

import brian2 as b2

__all__ = ["b2", "limit_compile_jobs"]


def _quiet_brian_files() -> None:
    """Turn off Brian2's debug log and script copy, and delete the ones its import created."""
    from brian2.utils.logger import BrianLogger

    b2.prefs["logging.file_log"] = False
    b2.prefs["logging.save_script"] = False
    handler = BrianLogger.file_handler
    if handler is not None:
        logging.getLogger("brian2").removeHandler(handler)
        handler.close()
        BrianLogger.file_handler = None
    for attr in ("tmp_log", "tmp_script"):
        path = getattr(BrianLogger, attr, None)
        if path:
            for p in (path, f"{path}.1"):
                try:
                    os.remove(p)
                except OSError:
                    pass
            setattr(BrianLogger, attr, None)


def limit_compile_jobs(jobs: int | None = None) -> None:
    """Compile standalone projects with at most ``jobs`` parallel processes (default: CPU count).

    A user's explicit setting of ``devices.cpp_standalone.extra_make_args_unix`` (anything other
    than Brian2's default ``['-j']``) is left alone.
    """
    current = list(b2.prefs["devices.cpp_standalone.extra_make_args_unix"])
    if current == ["-j"]:
        b2.prefs["devices.cpp_standalone.extra_make_args_unix"] = [f"-j{jobs or os.cpu_count() or 1}"]


b2.prefs["core.stop_on_keyboard_interrupt"] = False
b2.BrianLogger.suppress_name("unused_brian_object")
_quiet_brian_files()
limit_compile_jobs()

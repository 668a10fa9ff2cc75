"""Brian2 preferences that hcs-neuro sets before it compiles a cpp_standalone project.

Brian2's default ``make`` arguments are ``['-j']``: an *unlimited* number of parallel compiler
processes. A project with a few dozen code objects then starts that many ``cc1plus`` processes at
once (hundreds were seen on a 2-core machine, load average > 300), which is slower than compiling
with one job per core and starves everything else on the machine.
"""

from __future__ import annotations

import os

__all__ = ["limit_compile_jobs"]


def limit_compile_jobs(jobs: int | None = None) -> None:
    """Compile standalone projects with at most ``jobs`` parallel processes (default: CPU count).

    A user's explicit setting of ``devices.cpp_standalone.extra_make_args_unix`` (anything other
    than Brian2's default ``['-j']``) is left alone.
    """
    import brian2 as b2

    current = list(b2.prefs["devices.cpp_standalone.extra_make_args_unix"])
    if current == ["-j"]:
        b2.prefs["devices.cpp_standalone.extra_make_args_unix"] = [f"-j{jobs or os.cpu_count() or 1}"]

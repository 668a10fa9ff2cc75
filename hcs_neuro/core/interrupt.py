"""Ctrl-C that always interrupts, and never lets interrupted work write a result.

Python runs a signal handler in the main thread between two bytecodes, wherever that is. When
that place is a ``__del__`` method or a weakref callback (Brian2 tracks its objects with weakref
callbacks), the ``KeyboardInterrupt`` it raises is printed as "Exception ignored in ..." and
swallowed: the program runs on as if nothing had happened. So the handler here

* records that Ctrl-C came (:func:`interrupted`),
* raises ``KeyboardInterrupt``, and
* until the program acknowledges it (:func:`acknowledge`), raises it again every
  :data:`REPEAT_S` seconds from a watchdog thread (``_thread.interrupt_main``), so a swallowed
  interrupt is followed by one that lands;

and hides the "Exception ignored" report of such a swallowed interrupt (``sys.unraisablehook``;
every other unraisable exception is reported as usual). :func:`check` (called by :mod:`hcs_neuro.core.io` before an output file or folder is put in
place) turns a recorded interrupt into ``KeyboardInterrupt``: interrupted work never commits a
result, whatever swallowed the exception.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading

__all__ = ["install", "uninstall", "interrupted", "acknowledge", "check", "REPEAT_S"]

#: Seconds between repeated interrupts until the program acknowledges the first.
REPEAT_S = 0.5


class _State:
    seen = False
    acknowledged = False
    watchdog: threading.Thread | None = None
    previous = None
    previous_hook = None


def _unraisable(info) -> None:
    if issubclass(info.exc_type, KeyboardInterrupt) and _State.seen:
        return  # swallowed by a __del__ or weakref callback: the watchdog raises it again
    (_State.previous_hook or sys.__unraisablehook__)(info)


def _watchdog() -> None:
    stop = threading.Event()
    while not _State.acknowledged:
        stop.wait(REPEAT_S)
        if _State.acknowledged:
            break
        _thread.interrupt_main(signal.SIGINT)


def _handler(signum, frame):
    _State.seen = True
    if _State.watchdog is None and not _State.acknowledged:
        _State.watchdog = threading.Thread(target=_watchdog, name="hcs-neuro-interrupt", daemon=True)
        _State.watchdog.start()
    if not _State.acknowledged:
        raise KeyboardInterrupt


def install() -> None:
    """Make Ctrl-C interrupt reliably (main thread only; a no-op elsewhere). Installed before
    Brian2 is imported, this is the handler Brian2 falls back to (see :mod:`hcs_neuro.brian`)."""
    _State.seen = _State.acknowledged = False
    _State.watchdog = None
    if threading.current_thread() is threading.main_thread():
        _State.previous = signal.signal(signal.SIGINT, _handler)
        if sys.unraisablehook is not _unraisable:
            _State.previous_hook = sys.unraisablehook
            sys.unraisablehook = _unraisable


def uninstall() -> None:
    """Stop repeating and restore the handler that :func:`install` replaced."""
    acknowledge()
    if _State.previous is not None and signal.getsignal(signal.SIGINT) is _handler:
        signal.signal(signal.SIGINT, _State.previous)
    _State.previous = None
    if sys.unraisablehook is _unraisable:
        sys.unraisablehook = _State.previous_hook or sys.__unraisablehook__
    _State.previous_hook = None


def interrupted() -> bool:
    """True once Ctrl-C has come during this command."""
    return _State.seen


def acknowledge() -> None:
    """The interrupt has been handled: stop raising it again."""
    _State.acknowledged = True


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C came (even if something swallowed it)."""
    if _State.seen:
        raise KeyboardInterrupt

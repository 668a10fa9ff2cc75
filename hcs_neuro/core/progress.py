"""Progress reporting for long stages, quiet where nobody watches.

On a terminal this is a tqdm bar on stderr. When stderr is a file or a pipe (a log, CI), a bar
redrawn at every step would write one line per step (megabytes for a training run), so instead
one plain line is printed at most every :data:`LOG_INTERVAL_S` seconds, plus one at the end.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

__all__ = ["progress", "LOG_INTERVAL_S", "Progress"]

#: Seconds between progress lines when stderr is not a terminal.
LOG_INTERVAL_S = 30.0


class Progress:
    """The interface used everywhere: ``update(n)``, ``set_postfix(**values)``,
    ``set_postfix_str(text)``, ``close()``, and
    iteration over ``iterable`` when one is given. Plain lines at most every ``interval`` seconds."""

    def __init__(self, iterable=None, *, total=None, desc: str = "", unit: str = "it", file=None,
                 interval: float = LOG_INTERVAL_S):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file or sys.stderr
        self.n = 0
        self.postfix = ""
        self.interval = interval
        self.t0 = self._last = time.monotonic()
        self._closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self) -> str:
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" {100 * self.n / self.total:.0f} %" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}:{pct} ({done} {self.unit}), {time.monotonic() - self.t0:.0f} s{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(self._line(), file=self.file, flush=True)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:  # noqa: ARG002 (tqdm API)
        self.postfix = text

    def set_postfix(self, **values) -> None:
        """``set_postfix(epoch=2, loss="0.41")`` as tqdm does: ``epoch=2, loss=0.41``."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if time.monotonic() - self.t0 >= self.interval:  # short stages stay silent
                print(self._line() + " (done)", file=self.file, flush=True)


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it", enabled: bool = True,
             leave: bool = False):
    """A progress reporter: a tqdm bar on a terminal, rare plain lines otherwise, nothing when
    ``enabled`` is False.

    Returns an object with ``update(n)``, ``set_postfix_str(text)``, ``close()``; iterating it
    iterates ``iterable``.
    """
    if not enabled:
        return Progress(iterable, total=total, desc=desc, unit=unit, interval=float("inf"))
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)
    return Progress(iterable, total=total, desc=desc, unit=unit)

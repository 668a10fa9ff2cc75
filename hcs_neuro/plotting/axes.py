"""The one helper every plot function uses for its ``ax=None`` argument."""

from __future__ import annotations

__all__ = ["axes_or_new"]


def axes_or_new(ax, figsize=(6.4, 4.2), *, constrained: bool = False):
    """``ax`` itself, or the Axes of a new figure of ``figsize`` inches (``constrained``: with
    matplotlib's constrained layout)."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, constrained_layout=constrained)
    return ax

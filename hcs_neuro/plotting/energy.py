"""Energy figures across models: the break-even activity against k.

Every function takes ``ax=None`` (a new figure is made), draws only on that Axes, labels its axes
with units and returns it. Inputs are the dicts of
:func:`hcs_neuro.measure.energy.break_even_summary`, so each plot is testable without a simulation.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.plotting.axes import axes_or_new

__all__ = ["plot_break_even", "BREAK_EVEN_STYLES"]

#: Marker, label and short name of each comparison of a break-even summary.
BREAK_EVEN_STYLES = {
    "with_dm_dense": ("*", "break-even vs dense reference, with data movement", "dense+DM"),
    "with_dm_sparse": ("^", "break-even vs sparse reference bound, with data movement", "sparse+DM"),
    "without_dm_dense": ("s", "break-even vs dense reference, compute only", "dense"),
}


def _axes(ax, figsize=(7.0, 4.8)):
    return axes_or_new(ax, figsize)


def plot_break_even(models, *, comparisons=("with_dm_dense", "with_dm_sparse", "without_dm_dense"),
                    step_updates: bool = True, ax=None, title: str | None = None):
    """Break-even activity against k/C, one line per model, its measured activity marked.

    Parameters
    ----------
    models : list of dict
        :func:`hcs_neuro.measure.energy.break_even_summary` of each model.
    comparisons : tuple of str
        Which break-even points to draw (keys of :data:`BREAK_EVEN_STYLES`).
    step_updates : bool
        True: the neuron updates as counted (``a_star``); False: without per-step neuron updates
        (``a_star_without_step_updates``, an asynchronous chip).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        x: k/C of the conv layers (winners per hypercolumn / channels; pooling k scaled alike),
        log scale; y: activity (excitatory spikes per neuron per image), log scale. Per model: the
        activity of a network with one spike per winner, proportional to k (line through the
        origin and the model's measured point, a filled circle), and on it the break-even points
        (where that activity equals the break-even activity a*). Beyond k/C = 1 (shaded) no
        network exists: a break-even point there means the spiking network is cheaper at every k.
        Models without a break-even (the part that does not scale with activity costs more than
        the reference) are listed in the lower right corner.
    """
    ax = _axes(ax)
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    key = "a_star" if step_updates else "a_star_without_step_updates"
    xs, ys, none = [], [], []
    for j, m in enumerate(models):
        x0, a0 = m.get("k_over_c_conv"), m.get("measured_activity")
        if not x0 or not a0:
            continue
        color = colors[j % len(colors)]
        pts, missing = [], []
        for comp in comparisons:
            c = (m.get("comparisons") or {}).get(comp)
            if c is None:
                continue
            a = c.get(key)
            if a is None:
                missing.append(BREAK_EVEN_STYLES[comp][2])
                continue
            pts.append((comp, x0 * a / a0, a))
        if missing:
            none.append(f"{m['model']}: {', '.join(missing)}")
        x_hi = max([1.0, x0] + [p[1] for p in pts])
        line_x = np.geomspace(min(0.01, x0 / 10), x_hi * 1.2, 50)
        ax.plot(line_x, a0 * line_x / x0, color=color, lw=1.0, alpha=0.7)
        ax.plot([x0], [a0], "o", color=color, ms=6, label=f"{m['model']} (measured, {m.get('n_images', '?')} images)")
        for comp, x, a in pts:
            ax.plot([x], [a], BREAK_EVEN_STYLES[comp][0], color=color, ms=10 if comp == "with_dm_dense" else 8,
                    mec="k", mew=0.5)
        xs += [x0] + [p[1] for p in pts]
        ys += [a0] + [p[2] for p in pts]
    for comp in comparisons:  # legend entries for the marker shapes
        ax.plot([], [], BREAK_EVEN_STYLES[comp][0], color="0.5", mec="k", mew=0.5, label=BREAK_EVEN_STYLES[comp][1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    if xs:
        ax.set_xlim(min(min(xs) / 3, 0.02), max(max(xs) * 2, 2.0))
        ax.set_ylim(min(ys) / 3, max(ys) * 3)
    ax.axvspan(1.0, ax.get_xlim()[1], color="0.9", zorder=0)
    ax.text(1.08, 0.5, "k > C: no such network", transform=ax.get_xaxis_transform(), fontsize=7, color="0.4",
            rotation=90, va="center")
    if none:
        ax.text(0.99, 0.02, "no break-even (dense: compute only; +DM: with data movement):\n" + "\n".join(none),
                transform=ax.transAxes, fontsize=6, ha="right", va="bottom", color="0.2",
                bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9})
    ax.set_xlabel("k / C of the conv layers (winners per hypercolumn / channels)")
    ax.set_ylabel("activity (spikes per neuron per image)")
    profile = models[0].get("profile") if models else None
    ax.set_title(title or f"break-even activity against k ({profile}; lines: one spike per winner, "
                          f"{'neuron updates as counted' if step_updates else 'no per-step neuron updates'})",
                 fontsize=8)
    ax.legend(fontsize=6, loc="upper left")
    return ax

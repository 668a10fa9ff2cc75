"""Competition dynamics of one hypercolumn inside a whole network (``hcs-neuro plot dynamics``).

Three panels sharing the time axis: the excitatory membrane traces with the collapsing bound, the
interneuron(s) with the inhibitory input of the excitatory cells, and the hypercolumn's raster
with the spiking and the reference winners. The panel functions take plain arrays (ms, mV), take
``ax=None``, draw only on that Axes, label the axes with units and return it;
:func:`plot_hypercolumn_dynamics` lays out the three panels from a record with the attributes of
:class:`hcs_neuro.brian.dynamics.HypercolumnRecord`.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.plotting.axes import axes_or_new
from hcs_neuro.plotting.circuit import INH_COLOR, LOSE_COLOR, WIN_COLOR

__all__ = ["plot_exc_membrane", "plot_inhibition", "plot_winner_raster", "plot_hypercolumn_dynamics",
           "shown_window_ms", "MISSED_COLOR"]

#: Reference winners that did not spike.
MISSED_COLOR = "#ff7f0e"
_LOSE_LIGHT = "#b8b8b8"
_XLABEL = "time after stimulus onset (ms)"


def _ax(ax, figsize=(7.0, 3.5)):
    return axes_or_new(ax, figsize, constrained=True)


def _events(ax, events):
    """Vertical lines at named times ``[(label, t_ms, style)]`` (finite times only)."""
    for label, t, ls in events:
        if t is not None and np.isfinite(t):
            ax.axvline(t, color="k", ls=ls, lw=0.8, alpha=0.6, label=label)


def plot_exc_membrane(t_ms, v_mv, spiking_winners, reference_winners=None, *, bound_mv=None, threshold_mv=None,
                      events=(), ax=None):
    """Membrane potentials (mV) of a hypercolumn's excitatory cells.

    Spiking winners in red, reference winners that did not spike in orange, the other cells in grey;
    ``bound_mv`` (T,) is the time-varying threshold, ``threshold_mv`` the resting threshold V_th.
    """
    ax = _ax(ax)
    v = np.atleast_2d(np.asarray(v_mv, dtype=float))
    win = np.asarray(spiking_winners, dtype=bool)
    ref = win if reference_winners is None else np.asarray(reference_winners, dtype=bool)
    missed = ref & ~win
    for c in np.flatnonzero(~win & ~missed):
        ax.plot(t_ms, v[c], color=_LOSE_LIGHT, lw=0.5)  # opaque: many overlapping lines stay light
    for c in np.flatnonzero(missed):
        ax.plot(t_ms, v[c], color=MISSED_COLOR, lw=1.0)
    for c in np.flatnonzero(win):
        ax.plot(t_ms, v[c], color=WIN_COLOR, lw=0.9)
    if bound_mv is not None:
        ax.plot(t_ms, bound_mv, color="k", ls="--", lw=1.2, label="threshold bound V_th - u(t)")
    if threshold_mv is not None:
        ax.axhline(threshold_mv, color="k", ls=":", lw=0.8, label=f"V_th = {threshold_mv:g} mV")
    _events(ax, events)
    ax.plot([], [], color=WIN_COLOR, label=f"spiking winners ({int(win.sum())})")
    if missed.any():
        ax.plot([], [], color=MISSED_COLOR, label=f"reference winners without a spike ({int(missed.sum())})")
    ax.plot([], [], color=_LOSE_LIGHT, label=f"other cells ({int((~win & ~missed).sum())})")
    ax.set_ylabel("membrane potential v (mV)")
    ax.set_xlabel(_XLABEL)
    ax.legend(loc="lower left", fontsize=7, ncol=2)
    return ax


def plot_inhibition(t_ms, inter, inter_spikes_ms, inh, *, k=None, inter_label="interneuron count",
                    inh_label="inhibitory conductance", events=(), ax=None):
    """Interneuron trace(s) (left axis) and the inhibitory input of the excitatory cells (right axis).

    ``inter`` (P, T) one row per interneuron; ``inter_spikes_ms`` P arrays of spike times; ``inh``
    (C, T) the inhibitory variable of each excitatory cell (drawn once if equal in every cell, else
    the mean with the min-max range). Returns the left Axes (the right one is ``ax.right_ax``).
    """
    ax = _ax(ax)
    inter = np.atleast_2d(np.asarray(inter, dtype=float))
    for p, row in enumerate(inter):
        ax.step(t_ms, row, where="post", color=INH_COLOR, lw=1.2, alpha=1.0 if p == 0 else 0.5,
                label=("interneuron" if inter.shape[0] == 1 else f"{inter.shape[0]} interneurons") if p == 0 else None)
    if k is not None:
        ax.axhline(k - 0.5, color=INH_COLOR, ls=":", lw=0.8, label=f"interneuron threshold k - 0.5 = {k - 0.5:g}")
    top = max(float(np.nanmax(inter)) if inter.size else 1.0, (k or 0) + 0.5, 1.0)
    for p, st in enumerate(inter_spikes_ms):
        st = np.asarray(st, dtype=float)
        if st.size:
            ax.plot(st, np.full(st.size, top * (1.08 + 0.04 * p)), "v", color=INH_COLOR, ms=4,
                    label="interneuron spikes" if p == 0 else None)
    ax.set_ylim(-0.05 * top, top * (1.2 + 0.04 * inter.shape[0]))
    ax.set_ylabel(inter_label, color=INH_COLOR)
    ax.set_xlabel(_XLABEL)
    _events(ax, events)
    right = ax.twinx()
    g = np.atleast_2d(np.asarray(inh, dtype=float))
    same = np.allclose(g, g[:1], rtol=1e-9, atol=1e-12)
    if same:
        right.plot(t_ms, g[0], color="#9467bd", lw=1.2, label=f"inhibitory input {inh_label}, the same in every excitatory cell")
    else:
        right.plot(t_ms, g.mean(0), color="#9467bd", lw=1.2, label=f"inhibitory input {inh_label}, mean over the excitatory cells")
        right.fill_between(t_ms, g.min(0), g.max(0), color="#9467bd", alpha=0.2, lw=0, label="min-max over cells")
    right.set_ylabel(inh_label, color="#9467bd")
    right.set_ylim(bottom=min(0.0, float(g.min())))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = right.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=7)
    ax.right_ax = right
    return ax


def plot_winner_raster(spikes_ms, spiking_winners, reference_winners, *, inter_spikes_ms=(), events=(), ax=None):
    """Raster of a hypercolumn by channel; spiking winners filled (red) and reference winners outlined
    (black) in two marker columns right of the axes ("S", "R"), interneuron spikes on a top row."""
    ax = _ax(ax)
    n = len(spikes_ms)
    win = np.asarray(spiking_winners, dtype=bool)
    ref = np.asarray(reference_winners, dtype=bool)
    for c, st in enumerate(spikes_ms):
        st = np.asarray(st, dtype=float)
        if st.size:
            ax.plot(st, np.full(st.size, c), "|", color=WIN_COLOR if win[c] else LOSE_COLOR, ms=6, mew=1.5)
    row = n + max(1, n // 40)
    for st in inter_spikes_ms:
        st = np.asarray(st, dtype=float)
        if st.size:
            ax.plot(st, np.full(st.size, row), "|", color=INH_COLOR, ms=6, mew=1.5)
    _events(ax, events)
    tr = ax.get_yaxis_transform()  # x in axes fraction, y in channels
    ax.scatter(np.full(win.sum(), 1.015), np.flatnonzero(win), marker="s", s=10, color=WIN_COLOR,
               transform=tr, clip_on=False)
    ax.scatter(np.full(ref.sum(), 1.04), np.flatnonzero(ref), marker="s", s=14, facecolor="none",
               edgecolor="k", lw=0.8, transform=tr, clip_on=False)
    ax.text(1.015, row, "S", transform=tr, ha="center", va="center", fontsize=7, color=WIN_COLOR)
    ax.text(1.04, row, "R", transform=tr, ha="center", va="center", fontsize=7)
    ticks = list(range(0, n, max(1, n // 8)))
    ax.set_yticks(ticks + [row])
    ax.set_yticklabels([str(t) for t in ticks] + ["inh"])
    ax.set_ylim(-1, row + 1.5)
    ax.set_ylabel("excitatory cell (channel)")
    ax.set_xlabel(_XLABEL)
    ax.plot([], [], "|", color=WIN_COLOR, ms=6, mew=1.5, label="excitatory spike")
    ax.plot([], [], "|", color=INH_COLOR, ms=6, mew=1.5, label="interneuron spike")
    ax.scatter([], [], marker="s", s=10, color=WIN_COLOR, label="S: spiking winner")
    ax.scatter([], [], marker="s", s=14, facecolor="none", edgecolor="k", lw=0.8, label="R: reference winner")
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    return ax


def shown_window_ms(rec) -> float:
    """End of the time window worth showing: the last event of the hypercolumn (winner spike, first
    interneuron spike, race start) plus 30 %, at least 5 ms more, within the image period."""
    times = [float(np.max(s)) for s in rec.spikes_ms if len(s)]
    times += [t for t in (rec.decision_ms, rec.race_start_ms) if np.isfinite(t)]
    last = max(times) if times else rec.t_image_ms
    return float(min(rec.t_image_ms, last + max(5.0, 0.3 * last)))


def plot_hypercolumn_dynamics(rec, *, t_max_ms=None, fig=None):
    """The three panels of one hypercolumn's record, stacked with a shared time axis.

    Parameters
    ----------
    rec : hcs_neuro.brian.dynamics.HypercolumnRecord (or anything with its attributes)
    t_max_ms : float, optional
        End of the time axis (default :func:`shown_window_ms`); traces beyond it are not drawn.
    fig : matplotlib Figure, optional

    Returns
    -------
    list of Axes
        ``[membrane, inhibition, raster]``.
    """
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(9.0, 10.0), constrained_layout=True)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 0.8, 1.2]})
    t_end = shown_window_ms(rec) if t_max_ms is None else float(t_max_ms)
    m = rec.t_ms <= t_end
    t = rec.t_ms[m]
    events = [("gate (inputs complete)", rec.gate_ms, ":"), ("race starts (gate + settle)", rec.race_start_ms, "-."),
              ("decision (first interneuron spike)", rec.decision_ms, "--")]
    plot_exc_membrane(t, rec.v_mV[:, m], rec.spiking_winners, rec.reference_winners, bound_mv=rec.bound_mV[m],
                      threshold_mv=rec.v_threshold_mV, events=events, ax=axes[0])
    events = [(None, t_ev, ls) for _, t_ev, ls in events]  # labelled once, in the first panel
    inh_label = f"{rec.inh_name} ({rec.inh_unit})"
    plot_inhibition(t, rec.inter[:, m], [s[s <= t_end] for s in rec.inter_spikes_ms], rec.inh[:, m], k=rec.k,
                    inter_label=f"interneuron {rec.inter_name}", inh_label=inh_label,
                    events=events, ax=axes[1])
    plot_winner_raster([s[s <= t_end] for s in rec.spikes_ms], rec.spiking_winners, rec.reference_winners,
                       inter_spikes_ms=[s[s <= t_end] for s in rec.inter_spikes_ms], events=events, ax=axes[2])
    axes[2].set_xlim(0, t_end)
    for a in axes[:2]:
        a.set_xlabel("")
    axes[0].set_title("excitatory membrane traces (winners reset to V_reset after their one spike)", fontsize=9)
    axes[1].set_title("inhibition: interneuron and the inhibitory input of the excitatory cells", fontsize=9)
    axes[2].set_title("raster of the hypercolumn", fontsize=9)
    loc = ", ".join(f"{a} = {v}" for a, v in zip(("y", "x")[-len(rec.location):] if rec.location else (),
                                                     rec.location)) or "the readout"
    img = "" if rec.image_index is None else f", image {rec.image_index}"
    n_s, n_r = int(np.sum(rec.spiking_winners)), int(np.sum(rec.reference_winners))
    agree = "equal" if np.array_equal(rec.spiking_winners, rec.reference_winners) else "differ"
    fig.suptitle(f"{rec.model}, circuit {rec.circuit}, layer {rec.layer} ({rec.layer_type}), hypercolumn "
                 f"{loc}{img}, k = {rec.k}\nspiking winners {n_s}, reference winners {n_r}: {agree}; "
                 f"shown 0-{t_end:.3g} ms of the {rec.t_image_ms:g} ms image period", fontsize=10)
    return list(axes)

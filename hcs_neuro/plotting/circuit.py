"""Competition-dynamics figures of a hypercolumn circuit.

Every function takes ``ax=None`` (a new figure is made if None), draws only on ``ax``, labels the
axes with units and returns the Axes. Inputs are plain NumPy arrays (ms, mV, drive units), so the
functions work on results from the runtime or the standalone device alike.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.plotting.axes import axes_or_new

__all__ = [
    "plot_raster",
    "plot_membrane",
    "plot_interneuron",
    "plot_latency_vs_margin",
    "plot_psychometric",
    "plot_front",
]

WIN_COLOR = "#d62728"
LOSE_COLOR = "#7f7f7f"
INH_COLOR = "#1f77b4"


def _ax(ax, figsize=(6.4, 4.2)):
    return axes_or_new(ax, figsize, constrained=True)


def plot_raster(drives, exc_spike_i, exc_spike_t_ms, winners, inh_spike_t_ms=(), *, k=None, ax=None):
    """Raster of one hypercolumn: excitatory cells sorted by drive, winners highlighted.

    Parameters
    ----------
    drives : (N,) array
        Drives of the hypercolumn's channels.
    exc_spike_i, exc_spike_t_ms : arrays
        Channel index (0..N-1) and time (ms) of every excitatory spike.
    winners : (N,) bool array
    inh_spike_t_ms : array
        Interneuron spike times (ms), drawn on a row above the excitatory cells.
    k : int, optional
        Shown in the title.
    """
    ax = _ax(ax)
    drives = np.asarray(drives)
    n = len(drives)
    rank = np.empty(n, dtype=int)
    rank[np.argsort(-drives, kind="stable")] = np.arange(n)  # rank 0 = largest drive
    ei = np.asarray(exc_spike_i, dtype=int)
    et = np.asarray(exc_spike_t_ms, dtype=float)
    win = np.asarray(winners, dtype=bool)
    for w, color, label in ((True, WIN_COLOR, "winner spike"), (False, LOSE_COLOR, "spike undone by refinement")):
        m = win[ei] == w if ei.size else np.zeros(0, bool)
        if m.any():
            ax.scatter(et[m], n - 1 - rank[ei[m]], marker="|", s=120, color=color, label=label, lw=2)
    it = np.asarray(inh_spike_t_ms, dtype=float)
    if it.size:
        ax.scatter(it, np.full(it.size, n + 1.0), marker="|", s=120, color=INH_COLOR, lw=2, label="interneuron spike")
    for r in range(n):
        c = np.argsort(-drives, kind="stable")[r]
        if win[c]:
            ax.axhspan(n - 1 - r - 0.45, n - 1 - r + 0.45, color=WIN_COLOR, alpha=0.12, lw=0)
    ticks = [n + 1] + list(range(n - 1, -1, -max(1, n // 8)))
    ax.set_yticks(ticks)
    ax.set_yticklabels(["inh"] + [f"{n - 1 - t + 1}" for t in ticks[1:]])
    ax.set_ylabel("excitatory cell, rank by drive (1 = largest)")
    ax.set_xlabel("time after stimulus onset (ms)")
    ax.set_ylim(-1, n + 2.5)
    title = "raster: excitatory cells sorted by drive, winners shaded"
    ax.set_title(title + (f" (k = {k})" if k is not None else ""), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_membrane(t_ms, v_mv, threshold_mv, winners, drives=None, *, ax=None):
    """Membrane potential traces (mV) of the cells of one hypercolumn, with the threshold.

    Parameters
    ----------
    t_ms : (T,) array
    v_mv : (C, T) array
        Traces of C cells.
    threshold_mv : float
    winners : (C,) bool
    drives : (C,) array, optional
        Used for the colour scale of the losers and the legend.
    """
    ax = _ax(ax)
    v = np.atleast_2d(v_mv)
    win = np.asarray(winners, dtype=bool)
    for c in range(v.shape[0]):
        ax.plot(t_ms, v[c], color=WIN_COLOR if win[c] else LOSE_COLOR, lw=1.4 if win[c] else 0.7,
                alpha=1.0 if win[c] else 0.6)
    ax.axhline(threshold_mv, color="k", ls="--", lw=1)
    ax.text(0.01, threshold_mv, "threshold", va="bottom", ha="left", fontsize=8,
            transform=ax.get_yaxis_transform())
    ax.plot([], [], color=WIN_COLOR, label="winners")
    ax.plot([], [], color=LOSE_COLOR, label="losers")
    ax.set_xlabel("time after stimulus onset (ms)")
    ax.set_ylabel("membrane potential v (mV)")
    ax.set_title("membrane traces (winners reset to V_reset after their spike)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_interneuron(t_ms, count, spike_t_ms, k, *, ax=None):
    """Interneuron activity: its spike count (input spikes received) and its own spikes."""
    ax = _ax(ax)
    ax.step(t_ms, count, where="post", color=INH_COLOR, label="excitatory spikes counted")
    ax.axhline(k - 0.5, color="k", ls="--", lw=1, label=f"firing threshold (k - 0.5 = {k - 0.5:g})")
    st = np.asarray(spike_t_ms, dtype=float)
    if st.size:
        ax.plot(st, np.full(st.size, k + 0.8), "v", color=WIN_COLOR, ms=5, label="interneuron spikes")
    ax.set_xlabel("time after stimulus onset (ms)")
    ax.set_ylabel("interneuron count (input spikes)")
    ax.set_ylim(-0.2, k + 1.5)
    ax.set_title("interneuron activity", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_latency_vs_margin(margin, latency_ms, *, levels=None, ax=None):
    """Decision latency (ms) against the margin between the k-th and (k+1)-th drive."""
    ax = _ax(ax)
    m = np.asarray(margin, dtype=float)
    lat = np.asarray(latency_ms, dtype=float)
    ok = np.isfinite(lat) & (m > 0)
    if levels is not None:
        lv = np.asarray(levels)[ok]
        sc = ax.scatter(m[ok], lat[ok], c=lv, s=6, cmap="viridis", alpha=0.6)
        cb = ax.figure.colorbar(sc, ax=ax)
        cb.set_label("refinement levels used")
    else:
        ax.scatter(m[ok], lat[ok], s=6, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("margin: k-th minus (k+1)-th drive (drive units)")
    ax.set_ylabel("decision latency (ms)")
    ax.set_title("latency vs margin", fontsize=10)
    return ax


def plot_psychometric(margin_center, agreement, n_trials=None, *, theory=None, label="measured (strict)",
                      ax=None, **line_kw):
    """Agreement against margin (log x), optional theory curve ``(margin, p)``."""
    ax = _ax(ax)
    x = np.asarray(margin_center, dtype=float)
    y = np.asarray(agreement, dtype=float)
    if n_trials is not None:
        n = np.maximum(np.asarray(n_trials, dtype=float), 1)
        err = np.sqrt(np.clip(y * (1 - y), 1e-12, None) / n)
        ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=2, label=label, **line_kw)
    else:
        ax.plot(x, y, marker="o", ms=4, label=label, **line_kw)
    if theory is not None:
        ax.plot(theory[0], theory[1], "k--", lw=1, label="theory")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("margin: k-th minus (k+1)-th drive (drive units)")
    ax.set_ylabel("winner agreement (fraction of trials)")
    ax.set_title("psychometric curve", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_front(rows, *, y="strict_agreement", ax=None):
    """The front of circuit settings: error rate vs wall time per trial, coloured by latency.

    ``rows`` is a list of dicts with keys ``y`` (an agreement in [0, 1]),
    ``wall_time_per_trial_s``, ``latency_ms_median`` and ``label``. Error rates of 0 are drawn on
    the linear part of a symlog axis.
    """
    ax = _ax(ax)
    xs = np.array([r["wall_time_per_trial_s"] for r in rows], dtype=float) * 1e3
    err = 1 - np.array([r[y] for r in rows], dtype=float)
    lat = np.array([r["latency_ms_median"] for r in rows], dtype=float)
    sc = ax.scatter(xs, err, c=lat, cmap="viridis", s=45, zorder=3, edgecolor="k", lw=0.5)
    for j, (r, xi, yi) in enumerate(zip(rows, xs, err)):
        ax.annotate(r.get("label", ""), (xi, yi), fontsize=7, xytext=(5, 6 if j % 2 else -10),
                    textcoords="offset points")
    cb = ax.figure.colorbar(sc, ax=ax)
    cb.set_label("median decision latency (ms)")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_ylim(-2e-5, 1)
    ax.axhline(1e-3, color="k", ls=":", lw=1)
    ax.text(ax.get_xlim()[0], 1e-3, " 99.9% target", va="bottom", fontsize=7)
    ax.set_xlabel("wall time per trial (ms, one hypercolumn, this machine)")
    ax.set_ylabel(f"error rate: 1 - {y.replace('_', ' ')}")
    ax.set_title("agreement vs wall time, colour = latency", fontsize=10)
    return ax

"""Figures of analysis/REPORT.md. Every helper takes ``ax=None``, draws on it and returns the Axes.

Inputs are tidy tables (pandas DataFrames, one row per record: the point's parameters, ``seed``
and its metrics) built by :mod:`report`. Each seed is drawn as a small dot, the mean as a line;
error bars are the sample standard deviation over seeds (stated in the legends).
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_precision", "plot_data", "plot_pruning", "plot_robustness", "save", "bits_label"]

HCS_STYLE = {"on": dict(color="tab:blue", marker="o", ls="-", label="HCS (k-WTA)"),
             "off": dict(color="tab:red", marker="s", ls="--", label="no HCS")}


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.6))
    return ax


def bits_label(b) -> str:
    """``"float32"`` for 32 bits, else the number."""
    return "float32" if int(b) == 32 else str(int(b))


def _series(df, x_col, xs, y_col, scale=100.0):
    m, s, dots = [], [], []
    for x in xs:
        v = df.loc[df[x_col] == x, y_col].dropna().to_numpy(dtype=float) * scale
        m.append(v.mean() if v.size else np.nan)
        s.append(v.std(ddof=1) if v.size > 1 else 0.0)
        dots.append(v)
    return np.array(m), np.array(s), dots


def plot_precision(df, weight_bits, act_bits: int, ax=None, title: str = "", metric: str = "test_accuracy",
                   ylabel: str = "test accuracy (%)"):
    """``metric`` (in %) against weight precision at one activity precision, HCS on and off."""
    ax = _ax(ax)
    x = np.arange(len(weight_bits))
    sub = df[df["act_bits"] == act_bits]
    for hcs, st in HCS_STYLE.items():
        m, s, dots = _series(sub[sub["hcs"] == hcs], "weight_bits", weight_bits, metric)
        off = 0.07 if hcs == "on" else -0.07
        ok = np.isfinite(m)  # cells without records are left out (the line joins the others)
        ax.errorbar(x[ok] + off, m[ok], yerr=s[ok], color=st["color"], marker=st["marker"], ls=st["ls"], capsize=3,
                    label=f"{st['label']} (mean ± sd)")
        for xi, d in zip(x, dots):
            ax.plot(np.full(d.size, xi + off), d, ".", color=st["color"], alpha=0.35, ms=4)
    ax.set_xticks(x)
    ax.set_xticklabels([bits_label(b) for b in weight_bits])
    ax.set_xlabel("weight precision (bits)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or ("activities: 1 bit" if act_bits == 1 else f"activities: {bits_label(act_bits)}"),
                 fontsize=10)
    if sub.empty:
        ax.text(0.5, 0.5, "no records yet", transform=ax.transAxes, ha="center", va="center", color="0.5")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_data(df, fractions, ax=None, title: str = ""):
    """Test accuracy (%) against the share of the training images (log axis), HCS on and off."""
    ax = _ax(ax)
    xs = np.asarray(fractions, dtype=float) * 100
    for hcs, st in HCS_STYLE.items():
        m, s, dots = _series(df[df["hcs"] == hcs], "data_fraction", list(fractions), "test_accuracy")
        ok = np.isfinite(m)
        ax.errorbar(xs[ok], m[ok], yerr=s[ok], color=st["color"], marker=st["marker"], ls=st["ls"], capsize=3,
                    label=f"{st['label']} (mean ± sd)")
        for xi, d in zip(xs, dots):
            ax.plot(np.full(d.size, xi), d, ".", color=st["color"], alpha=0.35, ms=4)
    ax.set_xscale("log")
    ax.set_xlabel("training images used (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def plot_pruning(df, weight_bits, ax=None, title: str = "", init=None):
    """Zero-level weights (%) against weight precision (binary activities), HCS on and off, with the
    share at initialisation (``init``: bits -> fraction)."""
    ax = plot_precision(df, weight_bits, 1, ax=ax, title=title, metric="zero_level_weight_fraction",
                        ylabel="zero-level weights (%)")
    if init:
        x = np.arange(len(weight_bits))
        ax.plot(x, [100 * init.get(b, np.nan) for b in weight_bits], "k:", marker="_", ms=12,
                label="at initialisation")
        ax.legend(fontsize=8)
    return ax


def plot_robustness(df, kind: str, levels, ax=None, title: str = "", xlabel: str = "", precision_labels=None):
    """Accuracy (%) against the noise level of one kind, HCS on and off, one line style per
    precision (``precision_labels``: (weight_bits, act_bits) -> label; clean accuracy at level 0)."""
    ax = _ax(ax)
    precision_labels = precision_labels or {}
    xs = [0.0, *levels]
    for (wb, ab), plabel in precision_labels.items():
        sub = df[(df["weight_bits"] == wb) & (df["act_bits"] == ab)]
        if sub.empty:
            continue
        cols = ["acc_clean"] + [f"acc_{kind}_{float(lv):g}" for lv in levels]
        if sub[cols[1:]].isna().all().all():
            continue
        for hcs, st in HCS_STYLE.items():
            rows = sub[sub["hcs"] == hcs]
            if rows.empty:
                continue
            vals = rows[cols].to_numpy(dtype=float) * 100
            m = np.nanmean(vals, axis=0)
            s = np.nanstd(vals, axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(cols))
            ls = st["ls"] if wb != 32 else ":"
            ax.errorbar(range(len(xs)), m, yerr=s, color=st["color"], marker=st["marker"], ls=ls, capsize=3,
                        alpha=1.0 if wb != 32 else 0.6, label=f"{st['label']}, {plabel} (n={len(rows)})")
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(["clean", *[f"{lv:g}" for lv in levels]])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def save(fig, path_png) -> None:
    """Write the figure as PNG (150 dpi) and PDF beside it, atomically."""
    from pathlib import Path

    from hcs_neuro.core.io import atomic_path

    path_png = Path(path_png)
    path_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for suffix in (".png", ".pdf"):
        with atomic_path(path_png.with_suffix(suffix), suffix=suffix) as tmp:
            fig.savefig(tmp, dpi=150)

"""Figures of analysis/REPORT.md. Every helper takes ``ax=None``, draws on it and returns the Axes.

Error bars are the sample standard deviation over seeds (stated in every legend title).
Inputs are lists of run records (see :mod:`runs`), grouped here by their ``spec``.
"""

from __future__ import annotations

import numpy as np

from stats import mean_sd

__all__ = ["plot_precision", "plot_learning", "plot_k", "plot_data", "plot_pruning", "plot_theory", "save"]

HCS_STYLE = {True: dict(color="tab:blue", marker="o", ls="-"), False: dict(color="tab:red", marker="s", ls="--")}
ACT_COLORS = {1: "tab:blue", 2: "tab:green", 32: "tab:purple"}


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.6))
    return ax


def _bits_label(b) -> str:
    return "full" if int(b) == 32 else str(b)


def _pick(records, **match):
    return [r for r in records if all(r["spec"].get(k) == v for k, v in match.items())]


def _stat(records, key, **match):
    vals = [_get(r, key) for r in _pick(records, **match)]
    return mean_sd(vals)


def _get(rec, key):
    cur = rec
    for part in key.split("."):
        cur = cur[part]
    return cur


def plot_precision(records, weight_bits, act_bits, ax=None, title=""):
    """Test accuracy (%) against weight precision, one line per activity precision and HCS on/off."""
    ax = _ax(ax)
    x = np.arange(len(weight_bits))
    for ab in act_bits:
        for hcs in (True, False):
            m, s = [], []
            for wb in weight_bits:
                mu, sd, _ = _stat(records, "test_accuracy", weight_bits=wb, act_bits=ab, hcs=hcs,
                                  learning="probabilistic", data_fraction=1.0, k=0.25)
                m.append(mu * 100)
                s.append(sd * 100)
            st = HCS_STYLE[hcs]
            ax.errorbar(x + (0.06 if hcs else -0.06), m, yerr=s, color=ACT_COLORS.get(ab, "k"), marker=st["marker"],
                        ls=st["ls"], capsize=3, label=f"act {'full' if int(ab) == 32 else f'{ab} bit'}, {'HCS' if hcs else 'no HCS'}")
    ax.set_xticks(x, [_bits_label(b) for b in weight_bits])
    ax.set_xlim(-0.5, len(weight_bits) - 0.5)
    ax.set_xlabel("weight precision (bits)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, title="mean ± sd over seeds", title_fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return ax


def plot_learning(records, bits, ax=None, title=""):
    """Bars: probabilistic vs shadow-weight learning at each weight precision, HCS on/off."""
    ax = _ax(ax)
    groups = [(wb, hcs) for wb in bits for hcs in (True, False)]
    x = np.arange(len(groups))
    for j, (rule, color) in enumerate((("probabilistic", "tab:blue"), ("shadow", "tab:orange"))):
        m, s = [], []
        for wb, hcs in groups:
            mu, sd, _ = _stat(records, "test_accuracy", weight_bits=wb, act_bits=1, hcs=hcs, learning=rule,
                              data_fraction=1.0, k=0.25)
            m.append(mu * 100)
            s.append(sd * 100)
        ax.bar(x + (j - 0.5) * 0.38, m, 0.38, yerr=s, capsize=3, color=color, label=rule)
    ax.set_xticks(x, [f"{wb} bit\n{'HCS' if hcs else 'no HCS'}" for wb, hcs in groups], fontsize=8)
    ax.set_xlabel("weight precision, sparsification (binary activities)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, title="mean ± sd over seeds", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return ax


def _no_hcs_band(ax, records, key, scale=100.0, label="no HCS"):
    mu, sd, n = _stat(records, key, weight_bits=2, act_bits=1, hcs=False, learning="probabilistic",
                      data_fraction=1.0, k=0.25)
    if n:
        ax.axhline(mu * scale, color="tab:red", ls="--", lw=1, label=f"{label} (mean)")
        ax.axhspan((mu - sd) * scale, (mu + sd) * scale, color="tab:red", alpha=0.12, label=f"{label} ± sd")


def plot_k(records, k_fractions, key="test_accuracy", ylabel="test accuracy (%)", scale=100.0, ax=None, title="",
           logy=False):
    """A quantity against k (fraction of channels, log axis), HCS on; the no-HCS run as a band."""
    ax = _ax(ax)
    m, s = [], []
    for kf in k_fractions:
        mu, sd, _ = _stat(records, key, weight_bits=2, act_bits=1, hcs=True, learning="probabilistic",
                          data_fraction=1.0, k=kf)
        m.append(mu * scale)
        s.append(sd * scale)
    ax.errorbar(k_fractions, m, yerr=s, capsize=3, **HCS_STYLE[True], label="HCS (k-WTA in conv layers)")
    _no_hcs_band(ax, records, key, scale)
    ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xticks(k_fractions, [f"{kf:g}" for kf in k_fractions], fontsize=8)
    ax.set_xlabel("k (fraction of the conv channels that win)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, title="mean ± sd over seeds", title_fontsize=7)
    ax.grid(alpha=0.3)
    return ax


def plot_data(records, fractions, n_train_full, ax=None, title=""):
    """Test accuracy against training-set size (log axis), HCS on/off."""
    ax = _ax(ax)
    for hcs in (True, False):
        m, s = [], []
        for f in fractions:
            mu, sd, _ = _stat(records, "test_accuracy", weight_bits=2, act_bits=1, hcs=hcs, learning="probabilistic",
                              data_fraction=f, k=0.25)
            m.append(mu * 100)
            s.append(sd * 100)
        ax.errorbar([f * 100 for f in fractions], m, yerr=s, capsize=3, **HCS_STYLE[hcs],
                    label="HCS" if hcs else "no HCS")
    ax.set_xscale("log")
    ax.set_xticks([f * 100 for f in fractions], [f"{f * 100:g}" for f in fractions])
    ax.set_xlabel(f"training-set size (% of {n_train_full} images)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, title="mean ± sd over seeds", title_fontsize=7)
    ax.grid(alpha=0.3)
    return ax


def plot_pruning(records, k_fractions, ax=None, title=""):
    """Zero-level weight fraction and never-used synapse fraction (%) against k; no-HCS as bands."""
    ax = _ax(ax)
    for key, label, color in (("pruning.zero_level_weight_fraction", "zero-level weights (% of weights)", "tab:blue"),
                              ("pruning.never_used_synapse_fraction", "never used (% of non-zero synapses)", "tab:green"),
                              ("pruning.removed_fraction", "zero or never used (% of all weight instances)", "tab:purple")):
        m, s = [], []
        for kf in k_fractions:
            mu, sd, _ = _stat(records, key, weight_bits=2, act_bits=1, hcs=True, learning="probabilistic",
                              data_fraction=1.0, k=kf)
            m.append(mu * 100)
            s.append(sd * 100)
        ax.errorbar(k_fractions, m, yerr=s, capsize=3, color=color, marker="o", label=f"{label}, HCS")
        mu, sd, n = _stat(records, key, weight_bits=2, act_bits=1, hcs=False, learning="probabilistic",
                          data_fraction=1.0, k=0.25)
        if n:
            ax.axhline(mu * 100, color=color, ls="--", lw=1, label=f"{label}, no HCS")
    ax.set_xscale("log", base=2)
    ax.set_xticks(k_fractions, [f"{kf:g}" for kf in k_fractions], fontsize=8)
    ax.set_xlabel("k (fraction of the conv channels that win)")
    ax.set_ylabel("percent of weighted-layer weights / synapses (%)")
    ax.set_title(title)
    ax.legend(fontsize=6.5, title="ternary weights; mean ± sd over seeds", title_fontsize=7)
    ax.grid(alpha=0.3)
    return ax


def plot_theory(probes, key, ylabel, ax=None, title="", scale=1.0):
    """Bars per weighted layer of one probe quantity, HCS vs no HCS (mean ± sd over seeds)."""
    ax = _ax(ax)
    if not probes:
        return ax
    layer_names = [f"{l['type']} {l['index']}" for l in probes[0]["layers"]]
    x = np.arange(len(layer_names))
    for j, hcs in enumerate((True, False)):
        sel = [p for p in probes if p["spec"]["hcs"] == hcs]
        m, s = [], []
        for li in range(len(layer_names)):
            mu, sd, _ = mean_sd([p["layers"][li][key] for p in sel])
            m.append(mu * scale)
            s.append(sd * scale)
        ax.bar(x + (j - 0.5) * 0.38, m, 0.38, yerr=s, capsize=3, color=HCS_STYLE[hcs]["color"],
               label="HCS" if hcs else "no HCS")
    ax.set_xticks(x, layer_names, fontsize=8)
    ax.set_xlabel("weighted layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, title="mean ± sd over seeds", title_fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return ax


def save(fig, path_png) -> list:
    """Save ``fig`` as PNG (150 dpi) and PDF next to it, atomically; return the paths."""
    from pathlib import Path

    from hcs_neuro.core.io import atomic_path

    path_png = Path(path_png)
    out = []
    for p in (path_png, path_png.with_suffix(".pdf")):
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
        out.append(p)
    return out

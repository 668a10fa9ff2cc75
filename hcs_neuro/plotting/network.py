"""Whole-network figures: spike raster of one image, winner-agreement maps, decision-latency
histogram, per-layer SOP and energy bars, agreement against margin (psychometric view).

Every function takes ``ax=None`` (a new figure is made), draws only on that Axes, labels its
axes with units and returns it. Inputs are plain arrays or the dicts of
:func:`hcs_neuro.measure.energy.network_energy`, so each plot is testable without a simulation.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.plotting.axes import axes_or_new

__all__ = ["plot_raster", "plot_agreement_map", "plot_latency_histogram", "plot_sop_bars",
           "plot_energy_bars", "plot_psychometric", "plot_psychometric_layers", "layer_label",
           "figure_profiles"]


def _axes(ax, figsize=(6.0, 4.0)):
    return axes_or_new(ax, figsize)


def layer_label(index: int, layer_type: str, out_shape=None) -> str:
    """Short label such as ``L0 conv2d 32x8x8``."""
    shape = "" if out_shape is None else " " + "x".join(str(int(s)) for s in out_shape)
    return f"L{index} {layer_type}{shape}"


def plot_raster(spiking, image: int = 0, *, layer_types=None, ax=None):
    """Spike raster of every layer for one image: first-spike time of each excitatory unit.

    Parameters
    ----------
    spiking : hcs_neuro.core.spiking_result.SpikingResult
    image : int
        Image index within the batch.
    layer_types : list of str, optional
        Names for the layer bands (e.g. ``[l.type for l in model.architecture.layers]``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        x: time from stimulus onset (ms); y: one band per layer, bottom-up, its units spread
        evenly over the band in the layer's flat (C, H, W) order. Units with more than one spike show their first spike;
        the marker size grows with the spike count.
    """
    ax = _axes(ax, (7.0, 4.5))
    if not 0 <= image < spiking.n_images:
        raise IndexError(f"image {image} out of range 0..{spiking.n_images - 1}")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    ticks, labels = [], []
    n_layers = len(spiking.layers)
    for i, layer in enumerate(spiking.layers):
        first = np.asarray(layer.first_spike_ms[image], dtype=np.float64).reshape(-1)
        counts = np.asarray(layer.spike_counts[image]).reshape(-1)
        fired = np.isfinite(first)
        idx = np.flatnonzero(fired)
        n_units = first.size
        # each layer gets a band of height 1; its units are spread evenly over the band
        y = i + (idx + 0.5) / max(n_units, 1)
        ax.scatter(first[fired], y, s=4 + 4 * np.clip(counts[fired] - 1, 0, 5), marker="|",
                   color=colors[i % len(colors)], linewidths=1.0)
        ticks.append(i + 0.5)
        name = layer_types[i] if layer_types is not None else f"layer {i}"
        labels.append(f"L{i} {name}\n{int(fired.sum())} of {n_units} fired")
        if i:
            ax.axhline(i, color="0.85", linewidth=0.6)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(0, max(n_layers, 1))
    ax.set_xlim(0, spiking.window_ms)
    pred = int(spiking.pred[image])
    lat = float(spiking.decision_latency_ms[image])
    if np.isfinite(lat):
        ax.axvline(lat, color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel("time from stimulus onset (ms)")
    ax.set_ylabel("unit (flat index, one band per layer)")
    ax.set_title(f"image {image}: spikes per layer, class {pred}, decision at {lat:.2f} ms", fontsize=9)
    return ax


def plot_agreement_map(reference_winners, spiking_winners, *, image: int | None = None, title: str | None = None,
                       ax=None):
    """Where spiking winners agree with the reference winners of one layer.

    Parameters
    ----------
    reference_winners, spiking_winners : ndarray of bool, shape ``(n_images, C, *spatial)``
        Winners of the same layer (reference: conditional on the spiking input, or not).
    image : int, optional
        None: map over spatial locations of the fraction of images whose hypercolumn winner set
        agrees exactly (strict). An index: channel x location map of that image with four
        categories (both, reference only, spiking only, neither).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax, (5.0, 4.0))
    ref = np.asarray(reference_winners, dtype=bool)
    spk = np.asarray(spiking_winners, dtype=bool)
    if ref.shape != spk.shape or ref.ndim < 2:
        raise ValueError(f"winner arrays of shapes {ref.shape} and {spk.shape} do not match")
    fig = ax.figure
    if image is None:
        agree = (ref == spk).all(axis=1).mean(axis=0)  # (*spatial)
        grid = agree if agree.ndim == 2 else agree.reshape(1, -1)
        im = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest", aspect="auto")
        fig.colorbar(im, ax=ax, label="fraction of images, winner set equal (1)")
        ax.set_xlabel("x position (unit)" if agree.ndim == 2 else "position (unit)")
        ax.set_ylabel("y position (unit)" if agree.ndim == 2 else "")
        ax.set_title(title or f"strict hypercolumn agreement, {len(ref)} images (mean {agree.mean():.4f})",
                     fontsize=9)
        return ax
    from matplotlib.colors import ListedColormap

    r = ref[image].reshape(ref.shape[1], -1)
    s = spk[image].reshape(spk.shape[1], -1)
    cat = np.where(r & s, 3, np.where(r, 2, np.where(s, 1, 0)))
    cmap = ListedColormap(["white", "tab:red", "tab:orange", "tab:green"])
    im = ax.imshow(cat, vmin=-0.5, vmax=3.5, cmap=cmap, interpolation="nearest", aspect="auto")
    cb = fig.colorbar(im, ax=ax, ticks=[0, 1, 2, 3])
    cb.ax.set_yticklabels(["neither", "spiking only", "reference only", "both"], fontsize=7)
    ax.set_xlabel("location (flat spatial index)")
    ax.set_ylabel("channel")
    ax.set_title(title or f"image {image}: winners, {int((r != s).sum())} differ", fontsize=9)
    return ax


def plot_latency_histogram(latency_ms, *, bins=30, ax=None, label: str | None = None):
    """Histogram of decision latencies (ms); images without a decision (NaN) are counted in the title."""
    ax = _axes(ax)
    lat = np.asarray(latency_ms, dtype=np.float64)
    ok = lat[np.isfinite(lat)]
    ax.hist(ok, bins=bins, color="tab:blue", alpha=0.8, label=label)
    if ok.size:
        for q, style in ((50, "-"), (95, "--")):
            ax.axvline(np.percentile(ok, q), color="k", linestyle=style, linewidth=0.8,
                       label=f"p{q} {np.percentile(ok, q):.2f} ms")
        ax.legend(fontsize=7)
    ax.set_xlabel("decision latency from stimulus onset (ms)")
    ax.set_ylabel("images (count)")
    ax.set_title(f"{ok.size} decided, {lat.size - ok.size} undecided", fontsize=9)
    return ax


def _layer_names(energy: dict) -> list[str]:
    return [layer_label(l["index"], l["type"]) for l in energy["layers"]]


def plot_sop_bars(energy: dict, *, ax=None, log: bool = True):
    """Per layer: synaptic operations arriving at the layer, simulated and analytic, beside the
    reference's dense and effective (zero-skipping) operations and the layer's own k-WTA circuit
    events (E->I, I->E); counts per image. Series without values (no simulation) are left out."""
    ax = _axes(ax, (7.0, 4.0))
    layers = energy["layers"]
    x = np.arange(len(layers))
    series = [("dense ops (reference)", "dense_ops_per_image", "0.7"),
              ("effective ops (reference)", "effective_ops_per_image", "tab:gray"),
              ("SOPs analytic", "sops_in_analytic_per_image", "tab:orange"),
              ("SOPs simulated", "sops_in_per_image", "tab:blue"),
              ("k-WTA circuit events (simulated)", "sops_circuit_per_image", "tab:purple")]
    series = [s for s in series if all(l.get(s[1]) is not None for l in layers)]
    width = 0.8 / max(len(series), 1)
    for j, (name, key, color) in enumerate(series):
        vals = [l[key] for l in layers]
        ax.bar(x + (j - (len(series) - 1) / 2) * width, vals, width, label=name, color=color)
    ax.set_xticks(x)
    ax.set_xticklabels(_layer_names(energy), rotation=20, fontsize=7)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("operations per image (count)")
    ax.set_title(f"synaptic operations by receiving layer, {energy['n_images']} images", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def figure_profiles(energy: dict) -> list[str]:
    """Profiles worth a bar in the energy figure: every spiking one, the reference at its own
    precision (``reference_profile_own_precision``) and at fp32 (tables list them all)."""
    names = [n for n, p in energy["energy"].items() if p["kind"] == "spiking"]
    for n in (energy.get("reference_profile_own_precision"), "cmos45_fp32"):
        if n in energy["energy"] and n not in names:
            names.append(n)
    return names or list(energy["energy"])


def plot_energy_bars(energy: dict, *, profiles=None, ax=None, log: bool = True):
    """Per layer energy per image (pJ) for each profile: spiking profiles priced on the
    (simulated, else analytic) counts charged to the receiving layer; reference profiles dense
    and effective. Chip-level figures only (noted in the title)."""
    ax = _axes(ax, (7.0, 4.0))
    layers = energy["layers"]
    names = list(energy["energy"]) if profiles is None else list(profiles)
    missing = [p for p in names if p not in energy["energy"]]
    if missing:
        raise KeyError(f"profiles {missing} not in the energy result (has {sorted(energy['energy'])})")
    series = []
    for name in names:
        e = energy["energy"][name]
        if e["kind"] == "spiking":
            series.append((f"{name} (spiking)", [p["total_pj"] for p in e["per_layer_pj"]]))
        else:
            series.append((f"{name} dense", [p["dense_pj"] for p in e["per_layer_pj"]]))
            if all(p["effective_pj"] is not None for p in e["per_layer_pj"]):
                series.append((f"{name} effective", [p["effective_pj"] for p in e["per_layer_pj"]]))
    x = np.arange(len(layers))
    width = 0.8 / max(len(series), 1)
    for j, (name, vals) in enumerate(series):
        ax.bar(x + (j - (len(series) - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(_layer_names(energy), rotation=20, fontsize=7)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("energy per image (pJ)")
    ax.set_title("energy per layer (chip level only)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return ax


def plot_psychometric(margin, agreement, *, n=None, ax=None, label: str | None = None,
                      margin_unit: str = "fraction of drive range"):
    """Agreement against the margin between the k-th and (k+1)-th drive.

    Parameters
    ----------
    margin : array
        Bin centres of the margin (``margin_unit``).
    agreement : array
        Fraction of hypercolumns (or images) that agree in each bin (NaN: empty bin).
    n : array, optional
        Hypercolumns per bin, shown as a binomial standard error band.
    """
    ax = _axes(ax)
    m = np.asarray(margin, dtype=np.float64)
    a = np.asarray(agreement, dtype=np.float64)
    ax.plot(m, a, marker="o", markersize=3, label=label)
    if n is not None:
        cnt = np.maximum(np.asarray(n, dtype=np.float64), 1)
        se = np.sqrt(np.clip(a * (1 - a), 0, None) / cnt)
        ax.fill_between(m, a - se, a + se, alpha=0.25)
    if np.all(m[np.isfinite(m)] > 0) and m.size > 1:
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"margin between k-th and (k+1)-th drive ({margin_unit})")
    ax.set_ylabel("agreement (fraction)")
    if label:
        ax.legend(fontsize=7)
    return ax


def _bin_label(lo, hi) -> str:
    lo = int(lo)
    if hi is None:
        return f">={lo}"
    hi = int(hi)
    return str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}"


def plot_psychometric_layers(layers, *, ax=None):
    """Conditional strict agreement per margin bin, one line per layer.

    Parameters
    ----------
    layers : list of dict
        ``validation["layers"]`` entries of :func:`hcs_neuro.measure.validate.validate` with
        ``psychometric_margin_lo``, ``psychometric_margin_hi`` (integer drive units, None = open),
        ``psychometric_count`` and ``psychometric_agreement_strict`` (None for empty bins).

    Returns
    -------
    matplotlib Axes
        x: margin between the k-th and (k+1)-th largest drive of a hypercolumn (drive units,
        binned); y: fraction of hypercolumns whose winner set is identical.
    """
    ax = _axes(ax, (6.5, 4.0))
    labels = None
    for l in layers:
        lo, hi = l["psychometric_margin_lo"], l["psychometric_margin_hi"]
        agree = np.array([np.nan if a is None else a for a in l["psychometric_agreement_strict"]], dtype=float)
        count = np.asarray(l["psychometric_count"], dtype=float)
        x = np.arange(len(agree))
        keep = count > 0
        if not keep.any():
            continue
        name = f"L{l.get('index', '?')} {l.get('type', '')}".strip()
        ax.plot(x[keep], agree[keep], marker="o", markersize=3, label=f"{name} ({int(count.sum()):,} hc)")
        labels = [_bin_label(a, b) for a, b in zip(lo, hi)]
    if labels is not None:
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.legend(fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("margin between k-th and (k+1)-th drive (drive units, binned)")
    ax.set_ylabel("conditional strict agreement (fraction)")
    return ax

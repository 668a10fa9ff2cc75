"""Sweep figures: a metric against one parameter with a confidence band over seeds (lines, one
per value of a second parameter), and heatmaps of a metric over two parameters.

The statistics (:func:`summarize_sweep`) are plain pandas/SciPy and testable without a figure;
the plot functions take ``ax=None``, draw only on it, label the axes with units and return it.
Rows whose ``error`` is not empty carry no metric values and are left out of every mean (the
count of such rows is returned in ``n_errors``).
"""

from __future__ import annotations

import re

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = ["BANDS", "summarize_sweep", "column_label", "resolve_column", "filter_table",
           "check_free_parameters", "plot_sweep_line", "plot_sweep_heatmap"]

#: Confidence bands over seeds: ``ci95`` = mean +- t(0.975, n-1) * sd / sqrt(n) (Student's t
#: 95% confidence interval of the mean); ``sd`` = mean +- one sample standard deviation (ddof=1).
BANDS = ("ci95", "sd")

_UNIT_SUFFIXES = {
    "ms": "ms", "s": "s", "us": "µs", "hz": "Hz", "Hz": "Hz", "mV": "mV", "nS": "nS", "pA": "pA",
    "pF": "pF", "pj": "pJ", "pJ": "pJ", "nj": "nJ", "uj": "µJ", "mV_per_ms": "mV/ms",
    "pA_per_ms": "pA/ms", "Mohm": "MΩ", "kHz": "kHz",
}


def column_label(column: str, meta: dict | None = None) -> str:
    """Axis label with unit for a results column: ``neuron.tau_m_ms`` -> ``neuron.tau_m (ms)``,
    ``latency_ms`` -> ``latency (ms)``; dimensionless float parameters get ``(1)``, integer and
    categorical ones none; agreement/fraction metrics ``(fraction of trials)``, selection
    counts ``(trials)``; other names without a unit suffix are kept as they are."""
    if meta:
        for p in meta.get("parameters", []):
            if p["column"] == column:
                if p["kind"] in ("str", "int"):
                    return p["name"]
                return f"{p['name']} ({p['unit'] or '1'})"
    if column.endswith("agreement") or column.endswith("_fraction"):
        return f"{column} (fraction of trials)"
    if column in ("over_selection", "under_selection", "undecided"):
        return f"{column} (trials)"
    for suffix in sorted(_UNIT_SUFFIXES, key=len, reverse=True):
        if column.endswith("_" + suffix):
            return f"{column[: -len(suffix) - 1]} ({_UNIT_SUFFIXES[suffix]})"
    return column


def resolve_column(table, name: str, meta: dict | None, what: str) -> str:
    """A column of ``table`` from a column name or a dotted parameter name (ConfigError naming
    the option ``--<what>`` and the allowed columns otherwise)."""
    if name in table.columns:
        return name
    if meta:
        for p in meta.get("parameters", []):
            if p["name"] == name:
                return p["column"]
    allowed = [c for c in table.columns if c not in ("point_id", "error")]
    raise ConfigError(f"--{what} {name!r}: no such column; allowed: {', '.join(allowed)}")


def summarize_sweep(table, x: str, y: str, by: list[str] | tuple[str, ...] = (),
                    band: str = "ci95"):
    """Mean of ``y`` over seeds at each (``by``..., ``x``) with a band.

    Parameters
    ----------
    table : pandas.DataFrame
        The tidy sweep table (one row per point x seed).
    x, y : str
        Parameter column for the x axis, metric column to average.
    by : sequence of str
        Further grouping columns (hue, facet, heatmap rows).
    band : {"ci95", "sd"}
        See :data:`BANDS`.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, x, mean, lo, hi, sd, n`` (``n`` = seeds without error; ``lo``/``hi`` NaN
        when n < 2), sorted by the grouping columns.
    """
    import pandas as pd
    from scipy import stats

    if band not in BANDS:
        raise ConfigError(f"--band {band!r}; allowed: {', '.join(BANDS)}")
    keys = list(by) + [x]
    ok = table[table["error"].fillna("") == ""] if "error" in table else table
    g = ok.groupby(keys, sort=True)[y]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    n = out["n"].to_numpy()
    sd = out["sd"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if band == "ci95":
            half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        else:
            half = sd
    half = np.where(n >= 2, half, np.nan)
    out["lo"] = out["mean"] - half
    out["hi"] = out["mean"] + half
    return pd.DataFrame(out[keys + ["mean", "lo", "hi", "sd", "n"]])


def plot_sweep_line(table, x: str, y: str, hue: str | None = None, *, ax=None,
                    band: str = "ci95", meta: dict | None = None, log_x: bool | None = None):
    """Metric ``y`` against parameter ``x``, mean over seeds with a shaded band, one line per
    value of ``hue``.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy sweep table; every other varying parameter must already be fixed (filtered).
    x, y, hue : str
        Column names (parameter, metric, optional second parameter).
    ax : matplotlib.axes.Axes, optional
    band : {"ci95", "sd"}
        See :data:`BANDS`; stated in the legend title.
    meta : dict, optional
        ``sweep.json`` content, for axis labels with units.
    log_x : bool, optional
        Logarithmic x axis; default: when the x values are positive and span > 20x.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    summary = summarize_sweep(table, x, y, by=[hue] if hue else [], band=band)
    groups = [(None, summary)] if not hue else list(summary.groupby(hue, sort=True))
    for value, g in groups:
        label = None if hue is None else f"{value:g}" if isinstance(value, float) else str(value)
        line, = ax.plot(g[x], g["mean"], marker="o", ms=3, label=label)
        if g["lo"].notna().any():
            ax.fill_between(g[x], g["lo"], g["hi"], color=line.get_color(), alpha=0.2, lw=0)
    xs = np.asarray(summary[x])
    if log_x is None:
        log_x = xs.dtype.kind in "fi" and len(xs) and xs.min() > 0 and xs.max() / xs.min() > 20
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(column_label(x, meta))
    ax.set_ylabel(column_label(y, meta))
    n_seeds = int(summary["n"].max()) if len(summary) else 0
    band_text = "95% CI" if band == "ci95" else "±1 sd"
    title = f"mean over {n_seeds} seed{'s' if n_seeds != 1 else ''}, band {band_text}"
    if hue:
        ax.legend(title=f"{column_label(hue, meta)}; {title}", fontsize="small",
                  title_fontsize="small")
    else:
        ax.set_title(title, fontsize="small")
    return ax


def plot_sweep_heatmap(table, x: str, y: str, metric: str, *, ax=None, meta: dict | None = None,
                       cmap: str = "viridis"):
    """Heatmap of the seed-mean of ``metric`` over parameters ``x`` (columns) and ``y`` (rows).

    Cells where every seed errored are blank. Returns the Axes; the colour bar is labelled with
    the metric and its unit.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    summary = summarize_sweep(table, x, metric, by=[y])
    grid = summary.pivot(index=y, columns=x, values="mean")
    # keep cells whose every seed errored, as blanks
    grid = grid.reindex(index=sorted(table[y].unique()), columns=sorted(table[x].unique()))
    image = ax.imshow(np.ma.masked_invalid(grid.to_numpy(dtype=float)), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(grid.shape[1]), [_tick(v) for v in grid.columns], rotation=45)
    ax.set_yticks(range(grid.shape[0]), [_tick(v) for v in grid.index])
    ax.set_xlabel(column_label(x, meta))
    ax.set_ylabel(column_label(y, meta))
    n_seeds = int(summary["n"].max()) if len(summary) else 0
    bar = ax.figure.colorbar(image, ax=ax)
    bar.set_label(f"{column_label(metric, meta)}, mean over {n_seeds} seeds")
    return ax


def _tick(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}"
    return str(value)


def filter_table(table, where: dict[str, str], meta: dict | None = None):
    """Rows where each named parameter equals the given value (text compared after parsing it
    as the column's type; floats to 9 significant digits)."""
    for name, text in where.items():
        col = resolve_column(table, name, meta, "where")
        values = table[col]
        if values.dtype.kind in "fi":
            try:
                target = float(re.sub(r"\s*[A-Za-zµΩ/]+$", "", text))
            except ValueError:
                raise ConfigError(f"--where {name}={text}: not a number") from None
            mask = np.isclose(values.astype(float), target, rtol=1e-9, atol=0)
        else:
            mask = values.astype(str) == text
        if not mask.any():
            allowed = ", ".join(_tick(v) for v in sorted(values.unique()))
            raise ConfigError(f"--where {name}={text}: no such value; allowed: {allowed}")
        table = table[mask]
    return table



def check_free_parameters(table, used: list[str], meta: dict | None) -> None:
    """Raise ConfigError if a parameter that still varies is neither plotted nor fixed."""
    if not meta:
        return
    for p in meta.get("parameters", []):
        col = p["column"]
        if col in used or col not in table:
            continue
        values = table[col].unique()
        if len(values) > 1:
            shown = ", ".join(_tick(v) for v in sorted(values))
            raise ConfigError(f"parameter {p['name']} varies ({shown}) but is not --x, --hue or "
                              f"--facet; fix it with --where {p['name']}=VALUE")


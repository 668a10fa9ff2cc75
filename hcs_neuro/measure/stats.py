"""Effects between groups of runs (seeds), with Welch 95 % intervals: the one statistics helper.

Used by the recipe comparisons (``analysis/tools/seed_gap.py``) and the claims study
(``analysis/paper``). For independent groups with unequal variances, the standard error of a sum
or difference of their means is ``sqrt(sum(s_i**2 / n_i))`` and its degrees of freedom follow
Welch (1947) and Satterthwaite (1946); the interval is ``diff +- t(0.975, dof) * se``.
"""

from __future__ import annotations

import math
import statistics

from scipy import stats

__all__ = ["welch", "gap", "mean_sd", "welch_effect", "difference_of_effects"]


def welch(groups: list, confidence: float = 0.95) -> tuple[float, float, float]:
    """Standard error, Welch-Satterthwaite degrees of freedom and the half-width of the
    ``confidence`` interval of a sum or difference of the means of independent ``groups`` (lists
    of runs, at least two each)."""
    parts = [statistics.stdev(g) ** 2 / len(g) for g in groups]
    se = math.sqrt(sum(parts))
    dof = sum(parts) ** 2 / sum(v * v / (len(g) - 1) for v, g in zip(parts, groups)) if se > 0 else float("inf")
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se if se > 0 else 0.0
    return se, dof, half


def gap(a: list, b: list) -> dict:
    """Means, sds, the difference of the means (a - b), its Welch standard error and 95 % interval."""
    ma, mb = statistics.mean(a), statistics.mean(b)
    se, dof, half = welch([a, b])
    return {"mean_a": ma, "sd_a": statistics.stdev(a), "n_a": len(a), "mean_b": mb, "sd_b": statistics.stdev(b),
            "n_b": len(b), "difference": ma - mb, "se": se, "dof": dof, "ci95": [ma - mb - half, ma - mb + half]}


def _finite(values) -> list[float]:
    return [float(x) for x in values if x is not None and math.isfinite(float(x))]


def mean_sd(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; 0 for a single value) and count of the finite
    values (None and non-finite values are dropped); NaN, NaN, 0 when there is none."""
    v = _finite(values)
    if not v:
        return float("nan"), float("nan"), 0
    return statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)


def _interval(diff: float, groups: list, confidence: float) -> dict:
    """``se``, ``dof``, ``ci``, ``p`` (two-sided) and ``crosses_zero`` of ``diff``, a signed sum of
    the means of ``groups`` (each with at least two runs), from :func:`welch`."""
    se, dof, half = welch(groups, confidence)
    if se == 0:
        return {"se": 0.0, "dof": dof, "ci": [diff, diff], "p": 0.0 if diff != 0 else 1.0,
                "crosses_zero": diff == 0}
    ci = [diff - half, diff + half]
    return {"se": se, "dof": dof, "ci": ci, "p": float(2 * stats.t.sf(abs(diff) / se, dof)),
            "crosses_zero": bool(ci[0] <= 0 <= ci[1])}


def welch_effect(a, b, confidence: float = 0.95) -> dict:
    """The difference of the means ``mean(a) - mean(b)`` with its Welch interval.

    Parameters
    ----------
    a, b : sequences of float
        The runs of the two groups (None and non-finite values are dropped).
    confidence : float
        Coverage of the two-sided interval.

    Returns
    -------
    dict
        ``diff``, ``se``, ``dof``, ``ci`` (``[low, high]``; NaN when a group has fewer than two
        runs), ``p`` (two-sided Welch t-test; NaN likewise), ``n_a``, ``n_b``, ``mean_a``,
        ``mean_b``, ``sd_a``, ``sd_b`` and ``crosses_zero`` (the interval contains 0, or is
        undefined). The interval and standard error are those of :func:`gap` (same arithmetic,
        :func:`welch`).
    """
    a, b = _finite(a), _finite(b)
    nan = float("nan")
    out = {"n_a": len(a), "n_b": len(b), "mean_a": statistics.fmean(a) if a else nan,
           "mean_b": statistics.fmean(b) if b else nan,
           "sd_a": statistics.stdev(a) if len(a) > 1 else nan, "sd_b": statistics.stdev(b) if len(b) > 1 else nan}
    out["diff"] = out["mean_a"] - out["mean_b"]
    if len(a) < 2 or len(b) < 2:
        out.update(se=nan, dof=nan, ci=[nan, nan], p=nan, crosses_zero=True)
        return out
    out.update(_interval(out["diff"], [a, b], confidence))
    return out


def difference_of_effects(a1, b1, a2, b2, confidence: float = 0.95) -> dict:
    """``(mean a1 - mean b1) - (mean a2 - mean b2)`` with the Welch-Satterthwaite interval over the
    four independent groups (e.g. the HCS gain with little data minus the gain with all data).

    Returns
    -------
    dict
        ``diff``, ``se``, ``dof``, ``ci``, ``p`` and ``crosses_zero`` as :func:`welch_effect`
        (undefined interval, ``crosses_zero`` True, when a group has fewer than two runs).
    """
    groups = [_finite(g) for g in (a1, b1, a2, b2)]
    nan = float("nan")
    means = [statistics.fmean(g) if g else nan for g in groups]
    d = means[0] - means[1] - means[2] + means[3]
    if any(len(g) < 2 for g in groups):
        return {"diff": d, "se": nan, "dof": nan, "ci": [nan, nan], "p": nan, "crosses_zero": True}
    return {"diff": d, **_interval(d, groups, confidence)}

"""Aggregation over seeds: mean, standard deviation, Welch's t-test between two groups."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mean_sd", "fmt_mean_sd", "welch"]


def mean_sd(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; 0 for a single value) and count of finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(float(x))], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def fmt_mean_sd(values, scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± sd"`` (values times ``scale``, e.g. percent), or ``"–"`` when empty; ``(n=…)`` if n < 3."""
    m, s, n = mean_sd(values)
    if n == 0:
        return "–"
    text = f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"
    return text if n >= 3 else f"{text} (n={n})"


def welch(a, b) -> tuple[float, float]:
    """Difference of means ``mean(a) - mean(b)`` and the two-sided Welch t-test p-value.

    The p-value is NaN when either group has fewer than 2 values or both have zero variance
    with equal means.
    """
    from scipy import stats

    a = np.asarray([x for x in a if x is not None], dtype=np.float64)
    b = np.asarray([x for x in b if x is not None], dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return diff, float("nan")
    if a.std() == 0 and b.std() == 0:
        return diff, (0.0 if diff != 0 else float("nan"))
    return diff, float(stats.ttest_ind(a, b, equal_var=False).pvalue)

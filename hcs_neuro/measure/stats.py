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

__all__ = ["welch", "gap"]


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

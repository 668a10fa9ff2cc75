"""Effects over seeds: means, sample sd, and Welch 95 % intervals of differences.

An *effect* is the difference of the means of two groups of runs (e.g. HCS − no HCS, seeds as
the replicates) with its Welch standard error ``sqrt(sd_a**2/n_a + sd_b**2/n_b)``, the
Welch-Satterthwaite degrees of freedom and a two-sided 95 % interval from Student's t (the same
arithmetic as ``analysis/seed_gap.py``; a test checks that the two agree). The p-value of Welch's
t-test comes with it, but the report leads with the interval.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mean_sd", "fmt_mean_sd", "welch_effect", "difference_of_effects", "fmt_effect", "sign_verdict"]


def _finite(values) -> np.ndarray:
    return np.asarray([float(x) for x in values if x is not None and math.isfinite(float(x))], dtype=np.float64)


def mean_sd(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; 0 for a single value) and count of finite values."""
    v = _finite(values)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def fmt_mean_sd(values, scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± sd"`` (values times ``scale``, e.g. percent), ``"–"`` when empty; ``(n=…)`` unless n = 3."""
    m, s, n = mean_sd(values)
    if n == 0:
        return "–"
    text = f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"
    return text if n == 3 else f"{text} (n={n})"


def _welch_parts(groups) -> tuple[float, float]:
    """Standard error and Welch-Satterthwaite degrees of freedom of a sum/difference of the
    means of independent groups (each with at least two values)."""
    parts = [float(np.var(g, ddof=1)) / len(g) for g in groups]
    se = math.sqrt(sum(parts))
    if se == 0:
        return 0.0, float("inf")
    dof = sum(parts) ** 2 / sum(v * v / (len(g) - 1) for v, g in zip(parts, groups))
    return se, dof


def welch_effect(a, b, level: float = 0.95) -> dict:
    """The difference of the means ``mean(a) - mean(b)`` with its Welch interval.

    Parameters
    ----------
    a, b : sequences of float
        The runs of the two groups (non-finite values and None are dropped).
    level : float
        Coverage of the two-sided interval.

    Returns
    -------
    dict
        ``diff``, ``se``, ``dof``, ``ci`` (``[low, high]``; NaN when a group has fewer than two
        runs), ``p`` (two-sided Welch t-test; NaN likewise), ``n_a``, ``n_b``, ``mean_a``,
        ``mean_b``, ``sd_a``, ``sd_b`` and ``crosses_zero`` (the interval contains 0, or is
        undefined).
    """
    from scipy import stats

    a, b = _finite(a), _finite(b)
    out = {"n_a": int(a.size), "n_b": int(b.size), "mean_a": float(a.mean()) if a.size else float("nan"),
           "mean_b": float(b.mean()) if b.size else float("nan"),
           "sd_a": float(a.std(ddof=1)) if a.size > 1 else float("nan"),
           "sd_b": float(b.std(ddof=1)) if b.size > 1 else float("nan")}
    out["diff"] = out["mean_a"] - out["mean_b"]
    if a.size < 2 or b.size < 2:
        out.update(se=float("nan"), dof=float("nan"), ci=[float("nan"), float("nan")], p=float("nan"),
                   crosses_zero=True)
        return out
    se, dof = _welch_parts([a, b])
    if se == 0:
        ci = [out["diff"], out["diff"]]
        p = 0.0 if out["diff"] != 0 else 1.0
    else:
        half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
        ci = [out["diff"] - half, out["diff"] + half]
        p = float(2 * stats.t.sf(abs(out["diff"]) / se, dof))
    out.update(se=se, dof=dof, ci=ci, p=p, crosses_zero=bool(ci[0] <= 0 <= ci[1]))
    return out


def difference_of_effects(a1, b1, a2, b2, level: float = 0.95) -> dict:
    """``(mean a1 - mean b1) - (mean a2 - mean b2)`` with the Welch-Satterthwaite interval over the
    four independent groups (e.g. the HCS gain with little data minus the gain with all data).
    Same keys as :func:`welch_effect` except the per-group ones."""
    from scipy import stats

    groups = [_finite(g) for g in (a1, b1, a2, b2)]
    d = float(groups[0].mean() - groups[1].mean() - groups[2].mean() + groups[3].mean()) \
        if all(g.size for g in groups) else float("nan")
    if any(g.size < 2 for g in groups):
        return {"diff": d, "se": float("nan"), "dof": float("nan"), "ci": [float("nan")] * 2, "p": float("nan"),
                "crosses_zero": True}
    se, dof = _welch_parts(groups)
    if se == 0:
        return {"diff": d, "se": 0.0, "dof": dof, "ci": [d, d], "p": 0.0 if d else 1.0, "crosses_zero": d == 0}
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    ci = [d - half, d + half]
    return {"diff": d, "se": se, "dof": dof, "ci": ci, "p": float(2 * stats.t.sf(abs(d) / se, dof)),
            "crosses_zero": bool(ci[0] <= 0 <= ci[1])}


def fmt_effect(e: dict, scale: float = 100.0, digits: int = 1, unit: str = "") -> str:
    """``"+1.2 [−0.3, +2.7]"``: the effect (times ``scale``) and its 95 % interval; ``"–"`` if none."""
    if e is None or not math.isfinite(e.get("diff", float("nan"))):
        return "–"
    d = e["diff"] * scale
    lo, hi = (x * scale for x in e["ci"])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{d:+.{digits}f}{unit} [n < 2]"
    return f"{d:+.{digits}f}{unit} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def sign_verdict(e: dict) -> str:
    """``"+"`` (interval above 0), ``"−"`` (below 0) or ``"0"`` (it contains 0 or is undefined)."""
    if e is None or e.get("crosses_zero", True):
        return "0"
    return "+" if e["diff"] > 0 else "−"

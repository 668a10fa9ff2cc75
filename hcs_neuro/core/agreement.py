"""Agreement between spiking winners and the reference top-k: the definitions, in one place.

Definitions (``docs/guide/concepts.md``):

* **top-k set** of a hypercolumn: the k largest drives, equal drives broken by "lower channel
  index wins" (the reference's tie rule, :func:`hcs_neuro.core.kwta.kwta_mask`);
* **strict agreement**: the spiking winner set equals the top-k set exactly;
* **tie-tolerant agreement** (``tie_tol``, a fraction of the hypercolumn's drive range): every
  channel whose drive exceeds the k-th largest by more than the tolerance wins, every channel
  more than the tolerance below it loses, channels within it may go either way;
* **margin**: the k-th minus the (k+1)-th largest drive; agreement as a function of the margin
  is the psychometric curve.

Rows are hypercolumns (trials of a circuit benchmark, or the locations of a network layer,
:func:`hypercolumn_rows`), columns are channels.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = [
    "CIRCUIT_MARGIN_EDGES",
    "NETWORK_MARGIN_EDGES",
    "topk_mask",
    "tie_tolerant",
    "kth_margin",
    "hypercolumn_rows",
    "score_trials",
    "psychometric",
    "margin_bins",
]

#: Margin bin edges of a circuit benchmark's psychometric curve (drives in [0, 1]): 0, then
#: log-spaced 1e-7 .. 1.
CIRCUIT_MARGIN_EDGES = np.concatenate([[0.0], np.logspace(-7, 0, 22)])
#: Margin bin edges of a network layer (integer drive units between the k-th and (k+1)-th drive).
NETWORK_MARGIN_EDGES = np.array([0, 1, 2, 3, 5, 9, 17, 33, 65, np.inf])


def topk_mask(drives, k: int) -> np.ndarray:
    """Boolean mask of the k largest drives per row; equal drives: lower index wins."""
    d = np.asarray(drives, dtype=float)
    order = np.argsort(-d, axis=1, kind="stable")[:, :k]
    ref = np.zeros(d.shape, dtype=bool)
    np.put_along_axis(ref, order, True, axis=1)
    return ref


def tie_tolerant(drives, winners, k: int, tie_tol: float, positive_only: bool = False) -> np.ndarray:
    """Tie-tolerant agreement per row (bool). With ``positive_only`` (network conv/pool layers,
    where a cell needs a positive drive to win) non-positive drives must lose."""
    d = np.asarray(drives, dtype=np.float64)
    w = np.asarray(winners, dtype=bool)
    kth = -np.sort(-d, axis=1)[:, k - 1:k]
    tol = tie_tol * (d.max(axis=1, keepdims=True) - d.min(axis=1, keepdims=True))
    must_win = d > kth + tol
    must_lose = d < kth - tol
    if positive_only:
        must_win &= d > 0
        must_lose |= d <= 0
    return ~((must_win & ~w) | (must_lose & w)).any(axis=1)


def kth_margin(drives, k: int) -> np.ndarray:
    """k-th minus (k+1)-th largest drive per row (inf where k equals the number of channels)."""
    d = np.asarray(drives, dtype=np.float64)
    if k >= d.shape[1]:
        return np.full(d.shape[0], np.inf)
    s = -np.sort(-d, axis=1)
    return s[:, k - 1] - s[:, k]


def hypercolumn_rows(a: np.ndarray) -> np.ndarray:
    """``(N, C, *spatial)`` -> ``(N * locations, C)``: one row per hypercolumn of every image."""
    n, c = a.shape[:2]
    return np.moveaxis(a.reshape(n, c, -1), 1, 2).reshape(-1, c)


def score_trials(drives, winners, k: int, tie_tol: float = 0.01) -> dict[str, np.ndarray]:
    """Per-trial scores of a hypercolumn benchmark.

    Parameters
    ----------
    drives : (T, N) array
    winners : (T, N) bool array
    k : int
    tie_tol : float
        Tolerance as a fraction of each row's drive range (max - min).

    Returns
    -------
    dict of (T,) arrays
        ``strict``, ``tie_tolerant`` (bool), ``n_winners`` (int), ``margin`` (k-th minus
        (k+1)-th drive).
    """
    d = np.asarray(drives, dtype=float)
    w = np.asarray(winners, dtype=bool)
    if d.shape != w.shape:
        raise ConfigError(f"drives {d.shape} and winners {w.shape} differ in shape")
    return {
        "strict": (w == topk_mask(d, k)).all(1),
        "tie_tolerant": tie_tolerant(d, w, k, tie_tol),
        "n_winners": w.sum(1),
        "margin": kth_margin(d, k),
    }


def margin_bins(margin, edges) -> np.ndarray:
    """Index of the bin of ``edges`` that holds each margin (the last bin is closed)."""
    return np.clip(np.searchsorted(edges, np.asarray(margin), side="right") - 1, 0, len(edges) - 2)


def psychometric(margin, correct, edges=CIRCUIT_MARGIN_EDGES) -> dict[str, list]:
    """Agreement per margin bin (bins with no trial are dropped).

    Returns
    -------
    dict
        ``margin_lo``, ``margin_hi``, ``margin_center`` (geometric centre; half the upper edge
        for the first bin), ``agreement``, ``n_trials``.
    """
    correct = np.asarray(correct, dtype=float)
    idx = margin_bins(margin, edges)
    out: dict[str, list] = {"margin_lo": [], "margin_hi": [], "margin_center": [], "agreement": [], "n_trials": []}
    for b in range(len(edges) - 1):
        m = idx == b
        if not m.any():
            continue
        lo, hi = float(edges[b]), float(edges[b + 1])
        out["margin_lo"].append(lo)
        out["margin_hi"].append(hi)
        out["margin_center"].append(float(np.sqrt(lo * hi)) if lo > 0 else hi / 2)
        out["agreement"].append(float(correct[m].mean()))
        out["n_trials"].append(int(m.sum()))
    return out

r"""When does the hypercolumn race select the exact top-k? An analytic prediction.

Notes
-----
**Model.** Between stimulus onset (t = 0) and the decision, an excitatory cell of the
``lif_kwta`` family obeys (relative to rest, no noise, no synaptic input)

.. math::

    \tau_m \dot v = G x + u(t) - v,\qquad u(t) = \rho t,\qquad v(0) = 0,

with drive :math:`x`, gain :math:`G` (``drive_gain``), urgency slope :math:`\rho`
(``urgency_rate``). The solution is

.. math::

    v(t) = G x (1 - e^{-t/\tau_m}) + \rho\,(t - \tau_m (1 - e^{-t/\tau_m})),

increasing in both t and x. The first-spike time :math:`T(x)` solves
:math:`v(T) = \theta` (:math:`\theta = V_{th} - V_{rest}`); for :math:`T \gg \tau_m`,
:math:`T(x) \approx \tau_m + (\theta - G x)/\rho`, so :math:`|dT/dx| \approx G/\rho`: the urgency
ramp turns drive differences into spike-time differences *linearly* (25 ms per unit of drive with
the defaults), where a plain leaky race (:math:`\rho = 0`) has
:math:`|dT/dx| = \tau_m \theta / (G x (G x - \theta))` relative to :math:`T` only.

**Selection.** Cells cross threshold in the order of their drives (the map is monotone in x).
The interneuron fires in the step of the k-th crossing and its inhibition lands after a delay
:math:`d` (0 for the same-step schedule of ``hcs_neuro.brian.hypercolumn``, one step :math:`h` for Brian2's
default schedule). The (k+1)-th cell wins too iff it crosses no later than that step plus
:math:`d`. With step :math:`h` and a uniformly random phase of :math:`T_k` within its step, the
probability of the exact top-k given the margin :math:`m = x_k - x_{k+1}` is

.. math::

    P(\text{strict} \mid m) = \mathrm{clip}\!\left(\frac{\Delta T - d}{h_{\mathrm{eff}}}, 0, 1\right),
    \qquad \Delta T = T(x_{k+1}) - T(x_k) \approx \frac{G}{\rho}\, m,

where the local time refinement (``refinement.max_levels`` = L, ``factor`` = F) re-integrates a
step with too many crossings at :math:`h/F`, recursively, so :math:`h_{\mathrm{eff}} = h / F^L`.
Tie-tolerant agreement fails only if a cell more than ``tie_tol`` below :math:`x_k` crosses in
the same (final-level) step, which needs :math:`(G/\rho)\,\mathrm{tie\_tol} < h_{\mathrm{eff}} + d`:
with the defaults 0.25 ms > 0.1 ms, so a plain race with same-step inhibition already meets the
tie-tolerant target. The decision latency is the grid time of the k-th crossing,
:math:`\lceil T(x_k)/h \rceil h` plus at most :math:`F h` per refinement level used.

For N i.i.d. uniform drives the margin :math:`m` is a spacing of uniform order statistics,
:math:`P(m < \delta) = 1 - (1-\delta)^N \approx N \delta`; the plain race therefore errs with
probability :math:`\approx N h \rho / (2 G)`, i.e. ~6% at N = 32, h = 0.1 ms, the defaults.
Each refinement level divides that by F.

References
----------
Churchland, Kiani & Shadlen 2008, Nat Neurosci 11:693 (urgency / collapsing bounds).
Su, Chang & Lynch 2019, Neural Computation 31(12) (spiking k-WTA decision time).
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core.circuit_file import CircuitSpec

__all__ = ["RaceParams", "race_params", "first_spike_time_ms", "p_strict_given_margin", "predict_agreement",
           "predict_latency_ms"]


class RaceParams(tuple):
    """(tau_m_ms, gain_mv, urgency_mv_per_ms, theta_mv) of a lif_kwta-type circuit."""

    __slots__ = ()

    def __new__(cls, tau_m_ms, gain_mv, urgency_mv_per_ms, theta_mv):
        return super().__new__(cls, (float(tau_m_ms), float(gain_mv), float(urgency_mv_per_ms), float(theta_mv)))


def race_params(spec: CircuitSpec) -> RaceParams:
    """Extract the race parameters of a ``lif_kwta``-type spec (tau_m, drive_gain, urgency_rate,
    v_threshold - v_rest)."""
    return RaceParams(
        spec.value("tau_m", "ms"),
        spec.value("drive_gain", "mV"),
        spec.value("urgency_rate", "mV/ms"),
        spec.value("v_threshold", "mV") - spec.value("v_rest", "mV"),
    )


def first_spike_time_ms(x, p: RaceParams, t_max_ms: float = 1e4) -> np.ndarray:
    """First-passage time T(x) (ms) of the noise-free race; inf where the cell never fires.

    Solved by bisection on the closed-form v(t) (monotone in t for x >= 0, rho > 0).
    """
    tau, G, rho, theta = p
    x = np.asarray(x, dtype=float)

    def v(t):
        e = 1 - np.exp(-t / tau)
        return G * x * e + rho * (t - tau * e)

    lo = np.zeros_like(x)
    hi = np.full_like(x, t_max_ms)
    never = v(hi) < theta
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        above = v(mid) >= theta
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return np.where(never, np.inf, hi)


def p_strict_given_margin(x_k, margin, p: RaceParams, dt_ms: float, *, max_levels: int = 0, factor: int = 10,
                          inhibition_delay_ms: float = 0.0) -> np.ndarray:
    """Predicted probability that the winner set is exactly the top-k.

    Parameters
    ----------
    x_k : array
        k-th largest drive(s).
    margin : array
        x_k minus the (k+1)-th drive.
    p : RaceParams
    dt_ms : float
        Simulation step h.
    max_levels, factor : int
        Refinement depth L and factor F (h_eff = h / F**L).
    inhibition_delay_ms : float
        Delay d from the k-th crossing step to inhibition (0 for the same-step schedule).
    """
    x_k = np.asarray(x_k, dtype=float)
    gap = first_spike_time_ms(x_k - np.asarray(margin, dtype=float), p) - first_spike_time_ms(x_k, p)
    h_eff = dt_ms / float(factor) ** max_levels
    return np.clip((gap - inhibition_delay_ms) / h_eff, 0.0, 1.0)


def predict_agreement(drives, k: int, p: RaceParams, dt_ms: float, **kw) -> float:
    """Predicted strict agreement for given drive rows (mean of :func:`p_strict_given_margin`)."""
    srt = -np.sort(-np.asarray(drives, dtype=float), axis=1)
    return float(np.mean(p_strict_given_margin(srt[:, k - 1], srt[:, k - 1] - srt[:, k], p, dt_ms, **kw)))


def predict_latency_ms(drives, k: int, p: RaceParams, dt_ms: float) -> np.ndarray:
    """Predicted grid decision time (ms) per row: ceil(T(x_k)/h) h, without refinement."""
    srt = -np.sort(-np.asarray(drives, dtype=float), axis=1)
    T = first_spike_time_ms(srt[:, k - 1], p)
    return np.ceil(T / dt_ms - 1e-9) * dt_ms

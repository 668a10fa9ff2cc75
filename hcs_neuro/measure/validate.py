"""Validate a spiking simulation against the rate-based reference (NumPy only).

Definitions (``docs/guide/concepts.md``):

* **class agreement**: fraction of images whose spiking class equals the reference class.
* **conditional layer agreement** of layer l: the spiking winners of layer l compared with
  ``reference.layer_forward(model, l, x)`` where x is the *spiking* output of layer l-1 (the
  quantized image for layer 0), so errors of earlier layers are not counted again. Reported per
  hypercolumn (image x location), **strict** (winner set identical, ties: lower channel index
  wins) and **tie-tolerant**: with ``tol = tie_tol x (max - min drive of the hypercolumn)``, every
  channel with positive drive above ``kth + tol`` must win and every channel below ``kth - tol``
  (or without positive drive) must lose; channels within ``tol`` of the k-th drive may go either
  way. For the readout (one "hypercolumn" of classes): strict = the spiking class equals the
  argmax of the conditional logits (ties to the lower class), tie-tolerant = its logit is within
  ``tol`` of the largest.
* **psychometric view**: conditional agreement as a function of the margin between the k-th and
  the (k+1)-th largest drive of the hypercolumn (integer drive units).
* **SOP cross-check**: for every image whose spiking winners of layer l equal the reference
  winners, the simulated SOPs of layer l must equal the reference winners times the analytic
  fan-out of :mod:`hcs_neuro.core.topology` (``output_fan_out``).

Large runs are validated block by block with :class:`Validator` (memory bounded);
:func:`validate` is one block.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core import reference as ref_mod
from hcs_neuro.core.agreement import (
    NETWORK_MARGIN_EDGES,
    hypercolumn_rows,
    kth_margin,
    margin_bins,
    tie_tolerant,
)
from hcs_neuro.core.errors import DataError
from hcs_neuro.core.topology import output_fan_out

__all__ = ["validate", "Validator"]

class Validator:
    """Accumulate validation metrics over blocks of images (memory bounded).

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    tie_tol : float
        Tolerance as a fraction of each hypercolumn's drive range (default 0.01 = 1 %).
    """

    def __init__(self, model, tie_tol: float = 0.01):
        self.model = model
        self.tie_tol = float(tie_tol)
        arch = model.architecture
        nl = len(arch.layers)
        self.n = 0
        self.n_agree = self.n_correct_sp = self.n_correct_ref = self.n_undecided = 0
        self.hc = np.zeros(nl, np.int64)
        self.strict = np.zeros(nl, np.int64)
        self.tol = np.zeros(nl, np.int64)
        self.uncond = np.zeros(nl, np.int64)
        self.sop_checked = np.zeros(nl, np.int64)
        self.sop_equal = np.zeros(nl, np.int64)
        self.spikes = np.zeros(nl, np.int64)
        self.cells = np.array([int(np.prod(s.out_shape)) for s in arch.layers], np.int64)
        self.margin_total = np.zeros((nl, len(NETWORK_MARGIN_EDGES) - 1), np.int64)
        self.margin_strict = np.zeros((nl, len(NETWORK_MARGIN_EDGES) - 1), np.int64)
        self.latencies = []
        self.fan_out = [output_fan_out(model, i) for i in range(nl)]
        self.input_spikes = 0
        self.interneuron_spikes = np.zeros(nl, np.int64)
        self.wall_time_s = 0.0
        self.metadata = {}

    def update(self, images, labels, spiking, reference=None) -> None:
        """Add one block: images in [0, 1], labels, its SpikingResult (and reference result)."""
        model = self.model
        arch = model.architecture
        n = len(images)
        if spiking.n_images != n or len(labels) != n:
            raise DataError(f"validate: {n} images, {len(labels)} labels and a spiking result of "
                            f"{spiking.n_images} images do not match")
        if len(spiking.layers) != len(arch.layers):
            raise DataError(f"validate: the spiking result has {len(spiking.layers)} layers; the model "
                            f"{arch.source} has {len(arch.layers)}")
        reference = reference if reference is not None else ref_mod.forward(model, images)
        labels = np.asarray(labels)
        self.n += n
        self.n_agree += int((spiking.pred == reference.pred).sum())
        self.n_correct_sp += int((spiking.pred == labels).sum())
        self.n_correct_ref += int((reference.pred == labels).sum())
        self.n_undecided += int((spiking.pred < 0).sum())
        self.latencies.append(np.asarray(spiking.decision_latency_ms, dtype=np.float64))
        self.input_spikes += int(spiking.input_spike_counts.sum())
        self.wall_time_s += float(spiking.wall_time_s)
        self.metadata = dict(spiking.metadata)
        x = ref_mod.quantize_input(model, images)
        for i, spec in enumerate(arch.layers):
            sl = spiking.layers[i]
            self.spikes[i] += int(sl.spike_counts.sum())
            self.interneuron_spikes[i] += int(np.asarray(sl.interneuron_spikes).sum())
            if spec.is_readout:
                logits, _, _ = ref_mod.layer_forward(model, i, x)
                pred_c = np.argmax(logits, axis=1)
                ok = spiking.pred == pred_c
                lg = logits.astype(np.float64)
                tol = self.tie_tol * (lg.max(axis=1) - lg.min(axis=1))
                chosen = np.where(spiking.pred >= 0, lg[np.arange(n), np.clip(spiking.pred, 0, None)], -np.inf)
                ok_tol = chosen >= lg.max(axis=1) - tol
                self.hc[i] += n
                self.strict[i] += int(ok.sum())
                self.tol[i] += int(ok_tol.sum())
                self.uncond[i] += int((spiking.pred == reference.pred).sum())
                m = kth_margin(lg, 1)
                b = margin_bins(m, NETWORK_MARGIN_EDGES)
                np.add.at(self.margin_total[i], b, 1)
                np.add.at(self.margin_strict[i], b, ok.astype(np.int64))
                continue
            won = np.asarray(sl.winners, dtype=bool)
            drive, winners, x = ref_mod.conditional_layer(model, i, x, won)
            k = spec.k if spec.k is not None else spec.out_shape[0]
            d2, w2, r2 = hypercolumn_rows(drive), hypercolumn_rows(won), hypercolumn_rows(winners)
            strict = (w2 == r2).all(axis=1)
            self.hc[i] += len(strict)
            self.strict[i] += int(strict.sum())
            self.tol[i] += int(tie_tolerant(d2, w2, k, self.tie_tol, True).sum())
            self.uncond[i] += int((w2 == hypercolumn_rows(reference.layers[i].winners)).all(axis=1).sum())
            m = kth_margin(d2, k)
            b = margin_bins(m, NETWORK_MARGIN_EDGES)
            np.add.at(self.margin_total[i], b, 1)
            np.add.at(self.margin_strict[i], b, strict.astype(np.int64))
            # SOP cross-check on images whose winners equal the reference's (unconditional)
            same = (won == reference.layers[i].winners).reshape(n, -1).all(axis=1)
            analytic = (reference.layers[i].winners.reshape(n, -1).astype(np.int64)
                        @ self.fan_out[i].reshape(-1))
            self.sop_checked[i] += int(same.sum())
            self.sop_equal[i] += int((same & (np.asarray(sl.sops) == analytic)).sum())

    def result(self) -> dict:
        """The JSON-able metrics (stable snake_case keys; see :func:`validate`)."""
        arch = self.model.architecture
        n = max(self.n, 1)
        lat = np.concatenate(self.latencies) if self.latencies else np.zeros(0)
        ok = lat[np.isfinite(lat)]

        def stat(f):
            return float(f(ok)) if ok.size else None

        layers = []
        for i, spec in enumerate(arch.layers):
            hc = max(int(self.hc[i]), 1)
            tot = self.margin_total[i]
            layers.append({
                "index": i, "type": spec.type, "k": 1 if spec.is_readout else spec.k,
                "n_hypercolumns_checked": int(self.hc[i]),
                "conditional_agreement_strict": self.strict[i] / hc,
                "conditional_agreement_tie_tolerant": self.tol[i] / hc,
                "unconditional_agreement_strict": self.uncond[i] / hc,
                "spikes_per_neuron_per_image": float(self.spikes[i] / (self.cells[i] * n)),
                "interneuron_spikes_per_image": float(self.interneuron_spikes[i] / n),
                "sop_check_images": int(self.sop_checked[i]),
                "sop_check_equal": int(self.sop_equal[i]),
                "psychometric_margin_lo": NETWORK_MARGIN_EDGES[:-1].tolist(),
                "psychometric_margin_hi": [float(v) if np.isfinite(v) else None for v in NETWORK_MARGIN_EDGES[1:]],
                "psychometric_count": tot.tolist(),
                "psychometric_agreement_strict": [float(a / t) if t else None
                                                  for a, t in zip(self.margin_strict[i], tot)],
            })
        hcs_layers = [l for l, s in zip(layers, arch.layers) if not s.is_readout]
        hist_edges = np.linspace(0, float(ok.max()) + 1e-9, 21) if ok.size else np.zeros(0)
        hist = np.histogram(ok, bins=hist_edges)[0].tolist() if ok.size else []
        total_cells = int(self.cells.sum())
        return {
            "n_images": int(self.n),
            "class_agreement": self.n_agree / n,
            "spiking_accuracy": self.n_correct_sp / n,
            "reference_accuracy": self.n_correct_ref / n,
            "accuracy_difference": (self.n_correct_sp - self.n_correct_ref) / n,
            "undecided_fraction": self.n_undecided / n,
            "tie_tol": self.tie_tol,
            "min_conditional_agreement_strict": min(l["conditional_agreement_strict"] for l in hcs_layers)
            if hcs_layers else None,
            "min_conditional_agreement_tie_tolerant": min(l["conditional_agreement_tie_tolerant"] for l in hcs_layers)
            if hcs_layers else None,
            "latency_ms_mean": stat(np.mean), "latency_ms_median": stat(np.median),
            "latency_ms_p95": stat(lambda a: np.percentile(a, 95)), "latency_ms_max": stat(np.max),
            "latency_ms_min": stat(np.min),
            "latency_hist_edges_ms": hist_edges.tolist(), "latency_hist_count": hist,
            "spikes_per_neuron_per_image": float(self.spikes.sum() / (total_cells * n)),
            "input_spikes_per_image": self.input_spikes / n,
            "sop_check_passed": bool(all(l["sop_check_equal"] == l["sop_check_images"] for l in hcs_layers)),
            "dt_ms": self.metadata.get("plan", {}).get("dt_ms"),
            "window_ms": self.metadata.get("plan", {}).get("window_ms"),
            "wall_time_s": self.wall_time_s,
            "images_per_s": self.n / self.wall_time_s if self.wall_time_s > 0 else None,
            "circuit": self.metadata.get("circuit"),
            "layers": layers,
        }


def validate(model, images, labels, spiking, *, reference=None, tie_tol: float = 0.01) -> dict:
    """Compare a spiking simulation with the reference network.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    images : ndarray, shape ``(N, *input_shape)``
        The images the simulation ran on (in [0, 1]).
    labels : ndarray of int, shape (N,)
    spiking : SpikingResult
    reference : ReferenceResult, optional
        ``reference.forward(model, images)`` (computed if not given).
    tie_tol : float
        Near-tie tolerance as a fraction of each hypercolumn's drive range (default 1 %).

    Returns
    -------
    dict
        Stable keys: ``n_images``, ``class_agreement``, ``spiking_accuracy``,
        ``reference_accuracy``, ``accuracy_difference``, ``undecided_fraction``, ``tie_tol``,
        ``min_conditional_agreement_strict``, ``min_conditional_agreement_tie_tolerant``,
        ``latency_ms_{mean,median,p95,min,max}``, ``latency_hist_edges_ms``,
        ``latency_hist_count``, ``spikes_per_neuron_per_image``, ``input_spikes_per_image``,
        ``sop_check_passed``, ``dt_ms``, ``window_ms``, ``wall_time_s``, ``images_per_s``,
        ``circuit`` and ``layers``: per layer ``conditional_agreement_strict``,
        ``conditional_agreement_tie_tolerant``, ``unconditional_agreement_strict``,
        ``spikes_per_neuron_per_image``, ``interneuron_spikes_per_image``, ``sop_check_images``,
        ``sop_check_equal``, ``psychometric_margin_lo/hi`` (drive units), ``psychometric_count``,
        ``psychometric_agreement_strict``.

    Raises
    ------
    DataError
        Sizes of images, labels and the spiking result do not match.
    """
    v = Validator(model, tie_tol=tie_tol)
    v.update(images, labels, spiking, reference)
    return v.result()

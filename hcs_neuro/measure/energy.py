"""Operation counts and energy: synaptic operations (SOPs), MACs, and their price per hardware profile.

Definitions (``docs/guide/concepts.md``):

* **SOPs** — the sum over spikes of the number of *existing* (non-zero) outgoing synapses of the
  neuron that spiked. A pruned (zero-level) weight is no synapse and costs nothing.
* **dense MACs** — multiply-accumulates of the dense reference forward pass (every weight, every
  input, including zeros; border positions counted exactly).
* **effective ops** — the MACs left when zero activities and zero weights are skipped. With 1-bit
  activities this equals the SOP count of a spiking network whose winners each spike once, which
  is the cross-check between simulation and reference.
* **energy** — counts priced by a named profile of ``hcs_neuro/data/energy_profiles.toml`` (pJ per
  event, each with its citation). Chip-level figures only.

:func:`network_energy` puts it together for a whole network: per layer the spikes, SOPs and
neuron updates counted in a simulation (:class:`hcs_neuro.core.spiking_result.SpikingResult`) beside the
analytic counts from the reference activations, the reference's dense MACs and effective ops,
an SOP cross-check, and the energy per image of every requested profile.

Fan-out is computed exactly per input position (as sinabs does for its synop counter): an input
at the border of a padded convolution reaches fewer outputs than one in the middle.

NumPy only.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.topology import (
    conv_dense_macs,
    conv_fan_out,
    layer_fan_out,
    linear_fan_out,
)

__all__ = [
    "EnergyProfile",
    "load_profiles",
    "get_profile",
    "conv_fan_out",
    "linear_fan_out",
    "conv_dense_macs",
    "synaptic_ops",
    "spiking_energy_pj",
    "reference_energy_pj",
    "INPUT_CODINGS",
    "layer_fan_out",
    "analytic_spike_counts",
    "network_energy",
    "merge_energy",
    "own_precision_profile",
]


@dataclass(frozen=True)
class EnergyProfile:
    """Energy per event of one hardware profile, in picojoules.

    ``kind`` is ``"spiking"`` (uses ``synaptic_op_pj``, ``spike_pj``, ``neuron_update_pj``) or
    ``"reference"`` (uses ``mac_pj`` and ``accumulate_pj``).
    """

    name: str
    kind: str
    description: str
    citation: str
    synaptic_op_pj: float = 0.0
    spike_pj: float = 0.0
    neuron_update_pj: float = 0.0
    neuron_update_active_pj: float = 0.0
    mac_pj: float = 0.0
    accumulate_pj: float = 0.0
    extra: dict = field(default_factory=dict, compare=False, hash=False)


_FLOAT_FIELDS = (
    "synaptic_op_pj",
    "spike_pj",
    "neuron_update_pj",
    "neuron_update_active_pj",
    "mac_pj",
    "accumulate_pj",
)


def load_profiles() -> dict[str, EnergyProfile]:
    """All built-in profiles, by name (from ``hcs_neuro/data/energy_profiles.toml``)."""
    text = resources.files("hcs_neuro.data").joinpath("energy_profiles.toml").read_text()
    raw = tomllib.loads(text)["profiles"]
    profiles = {}
    for name, entry in raw.items():
        values = {k: float(entry[k]) for k in _FLOAT_FIELDS if k in entry}
        for k, v in values.items():
            if v < 0:
                raise ConfigError(f"energy profile {name!r}: {k} must be >= 0 pJ, got {v}")
        profiles[name] = EnergyProfile(
            name=name,
            kind=entry["kind"],
            description=entry["description"],
            citation=entry["citation"],
            **values,
        )
    return profiles


def get_profile(name: str, kind: str | None = None) -> EnergyProfile:
    """Look up a profile by name; ``kind`` optionally requires ``"spiking"`` or ``"reference"``."""
    profiles = load_profiles()
    allowed = sorted(n for n, p in profiles.items() if kind is None or p.kind == kind)
    if name not in profiles or (kind is not None and profiles[name].kind != kind):
        what = f"{kind} " if kind else ""
        raise ConfigError(f"unknown {what}energy profile {name!r}; choose one of: {', '.join(allowed)}")
    return profiles[name]


def synaptic_ops(spike_counts: np.ndarray, fan_out: np.ndarray) -> int:
    """SOPs: spikes of each presynaptic unit times its number of existing outgoing synapses.

    ``spike_counts`` and ``fan_out`` must have the same shape (a leading image axis on
    ``spike_counts`` is summed over).
    """
    spike_counts = np.asarray(spike_counts)
    fan_out = np.asarray(fan_out)
    if spike_counts.shape[-fan_out.ndim :] != fan_out.shape:
        raise ValueError(f"spike counts {spike_counts.shape} do not match fan-out {fan_out.shape}")
    return int((spike_counts.astype(np.int64) * fan_out).sum())


def spiking_energy_pj(profile: EnergyProfile, *, sops: float, spikes: float, neuron_updates: float) -> dict:
    """Energy of a spiking run, itemised, in pJ."""
    if profile.kind != "spiking":
        raise ConfigError(f"energy profile {profile.name!r} prices a reference network, not spikes")
    parts = {
        "synaptic_ops_pj": sops * profile.synaptic_op_pj,
        "spikes_pj": spikes * profile.spike_pj,
        "neuron_updates_pj": neuron_updates * profile.neuron_update_pj,
    }
    parts["total_pj"] = sum(parts.values())
    return parts


def reference_energy_pj(profile: EnergyProfile, *, dense_macs: float, effective_ops: float) -> dict:
    """Energy of the rate-based reference network, dense and with zeros skipped, in pJ."""
    if profile.kind != "reference":
        raise ConfigError(f"energy profile {profile.name!r} prices spikes, not a reference network")
    return {
        "dense_pj": dense_macs * profile.mac_pj,
        "effective_pj": effective_ops * profile.mac_pj,
    }


# ---------------------------------------------------------------------------------------------
# Network level: per-layer counts of a spiking run beside the analytic counts of the reference.
# ---------------------------------------------------------------------------------------------

#: Input codings and the number of spikes an input unit with integer level ``x`` emits:
#: ``"count"``: ``x`` spikes (each with the unit efficacy); ``"single"``: one spike if ``x > 0``
#: whose efficacy carries the level as a multiplier (a single synaptic event per synapse).
INPUT_CODINGS = ("count", "single")

#: Note printed beside every energy figure (shared design: never mix chip and system level).
CHIP_LEVEL_NOTE = ("chip-level energy per event only (no data movement, no host, no static power); "
                   "system-level figures are 3-5 orders of magnitude higher and are not comparable")


def _dense_ops(spec) -> int:
    """Dense MACs (weighted layers) or additions (pooling) per image, real taps only."""
    if spec.type == "linear":
        return int(spec.out_shape[0] * int(np.prod(spec.in_shape)))
    spatial = tuple(spec.in_shape[1:])
    if spec.type.startswith("conv"):
        return conv_dense_macs(spec.weight_shape, spatial, spec.stride, spec.padding)
    ones = np.ones((1, 1) + (spec.kernel,) * spec.spatial_dims, dtype=np.int8)
    return int(conv_fan_out(ones, spatial, spec.stride, spec.padding).sum()) * int(spec.in_shape[0])


def analytic_spike_counts(levels: np.ndarray, act_bits: int = 1, coding: str = "count") -> np.ndarray:
    """Spikes a correct spiking network emits for the reference activity ``levels``.

    Binary (``act_bits = 1``) and full-precision (``act_bits = 32``, time-to-first-spike)
    layers: one spike per active unit. Multi-bit layers and the input: ``levels`` spikes with
    ``coding = "count"``, one spike per non-zero unit with ``coding = "single"``.
    """
    levels = np.asarray(levels)
    if coding not in INPUT_CODINGS:
        raise ConfigError(f"input coding {coding!r}: allowed {', '.join(INPUT_CODINGS)}")
    if act_bits in (1, 32) or coding == "single" or levels.dtype.kind == "f":
        return (levels != 0).astype(np.int64)
    return np.clip(levels, 0, None).astype(np.int64)


def _per_image_sops(counts: np.ndarray, fan: np.ndarray) -> np.ndarray:
    """counts (N, *shape) x fan-out (*shape) summed per image, exact: float64 BLAS on small
    integers (every partial sum far below 2**53), rounded back to int64."""
    counts = np.asarray(counts)
    flat = counts.reshape(len(counts), -1).astype(np.float64, copy=False)
    return np.rint(flat @ np.asarray(fan, dtype=np.float64).reshape(-1)).astype(np.int64)


def _mean(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(a.mean()) if a.size else 0.0


def _resolve_profiles(profiles) -> list[EnergyProfile]:
    if profiles is None:
        return list(load_profiles().values())
    if isinstance(profiles, (str, EnergyProfile)):
        profiles = [profiles]
    return [p if isinstance(p, EnergyProfile) else get_profile(str(p)) for p in profiles]


def own_precision_profile(architecture) -> str:
    """The 45 nm reference profile that matches a model's arithmetic.

    ``cmos45_fp32`` if any weight, activity or the input is full precision; ``cmos45_lowprec``
    (an int32 accumulate per non-zero product) if every weighted layer multiplies a binary
    operand (1-bit activities into it, or binary/ternary weights: the product of a level with
    +-1 is a sign-controlled add); else ``cmos45_int8`` (integer multiply-accumulate).
    """
    if architecture.is_full_precision:
        return "cmos45_fp32"
    in_bits = architecture.input_bits
    needs_multiply = False
    for spec in architecture.layers:
        if spec.has_weights and spec.weight_bits > 2 and in_bits > 1:
            needs_multiply = True
        in_bits = spec.act_bits  # the next layer's input activity width
    return "cmos45_int8" if needs_multiply else "cmos45_lowprec"


def network_energy(model, reference, spiking=None, profiles=None, *, input_levels=None,
                   input_coding: str | None = None) -> dict:
    """Spikes, synaptic operations, neuron updates, MACs and energy per image, layer by layer.

    Parameters
    ----------
    model : hcs_neuro.core.model.Model
    reference : hcs_neuro.core.reference.ReferenceResult
        Reference forward pass of the same images with ``keep_layers=True``.
    spiking : hcs_neuro.core.spiking_result.SpikingResult, optional
        The simulation of the same images (same order). Without it only the analytic counts
        (what a correct spiking network with one spike per winner emits) and the reference
        costs are reported, and spiking profiles price the analytic counts without neuron
        updates.
    profiles : None, str or list of str / EnergyProfile
        Hardware profiles to price with (default: every built-in profile). Unknown names raise
        :class:`~hcs_neuro.core.errors.ConfigError`.
    input_levels : ndarray, optional
        Quantized input levels of the images (:func:`hcs_neuro.core.reference.quantize_input`); needed
        for the analytic input SOPs and the layer-0 effective operations.
    input_coding : {"count", "single"}, optional
        How integer activity levels (the input's, and those of multi-bit layers) become spikes
        (:data:`INPUT_CODINGS`): ``"single"`` (one spike per active unit, its level carried as a
        weight multiplier; what :mod:`hcs_neuro.brian.session` does) or ``"count"`` (``level``
        spikes). Default ``spiking.metadata["input_coding"]`` if it is one of those, else
        ``"single"``. Binary layers emit one spike per winner either way.

    Returns
    -------
    dict
        JSON-able, stable keys; every count is a mean per image unless named ``n_*``:

        ``n_images``, ``input_coding``, ``note`` (chip-level caveat), ``has_spiking``,
        ``reference_profile_own_precision`` (:func:`own_precision_profile`);
        ``input``: ``n_units``, ``spikes_per_image``, ``spikes_analytic_per_image``,
        ``sops_per_image`` (into layer 0, simulated), ``sops_analytic_per_image``;
        ``layers`` (one per architecture layer): ``index``, ``type``, ``k``, ``out_shape``,
        ``n_units``, ``n_synapses_in`` (existing feed-forward synapses into the layer, from
        the weights), ``n_synapses_in_simulated``, ``spikes_per_image``,
        ``interneuron_spikes_per_image``, ``spikes_analytic_per_image``, ``sops_out_per_image``
        (caused by this layer's spikes, simulated), ``sops_out_recount_per_image`` (the
        simulated spike counts times the exact fan-out, recomputed here),
        ``sops_out_analytic_per_image`` (reference activity times fan-out), ``sops_in_per_image``
        / ``sops_in_analytic_per_image`` (arriving at this layer's synapses),
        ``sops_circuit_per_image``, ``neuron_updates_per_image``, ``dense_ops_per_image`` (MACs;
        additions for pooling), ``effective_ops_per_image`` (zero activities and zero weights
        skipped), ``op_kind`` (``"mac"`` or ``"add"``), ``sop_check`` (see below), ``energy_pj``
        (per profile: this layer's share per image);
        ``totals``: the per-image sums of the above; ``energy``: per profile ``kind``,
        ``citation``, ``per_image_pj`` (itemised, ``total_pj``) and for reference profiles
        ``dense_pj``/``effective_pj``; ``sop_check``: over all images and layers
        ``n_image_layers_winners_agree``, ``n_sop_mismatches_where_winners_agree``,
        ``sops_equal_where_winners_agree`` (bool) and ``n_recount_mismatches`` (images where
        the simulation's own SOP count differs from spike counts x fan-out); ``per_image``:
        ``sops``, ``spikes`` and ``sops_analytic`` lists.

    Raises
    ------
    ConfigError
        Unknown profile or input coding.
    hcs_neuro.core.errors.DataError
        Reference or spiking result that does not fit the model (layer count, shapes, images).

    Notes
    -----
    SOPs follow the shared definition: sum over spikes of the number of *existing* outgoing
    synapses (pruned zero-level weights are no synapses). A layer's spikes cause SOPs in the
    next layer; per-layer energy charges them to the receiving layer (``sops_in``), beside the
    receiving layer's own circuit events, spikes and neuron updates. With binary activities and
    one spike per winner, ``sops_out_analytic`` of layer l equals the effective operations of
    layer l + 1 of the reference, so whenever the spiking winners of a layer equal the reference
    winners for an image, its simulated SOPs must equal the analytic count exactly.
    """

    arch = model.architecture
    n_layers = len(arch.layers)
    if len(reference.layers) != n_layers:
        raise DataError(f"reference result has {len(reference.layers)} layers; the model {arch.source} has "
                        f"{n_layers} (run reference.forward with keep_layers=True)")
    n = int(np.asarray(reference.pred).shape[0])
    if spiking is not None:
        if spiking.n_images != n:
            raise DataError(f"spiking result has {spiking.n_images} images, the reference {n}")
        if len(spiking.layers) != n_layers:
            raise DataError(f"spiking result has {len(spiking.layers)} layers; the model {arch.source} has {n_layers}")
    if input_coding is None:
        meta = getattr(spiking, "metadata", None) or {}
        input_coding = meta.get("input_coding") if meta.get("input_coding") in INPUT_CODINGS else "single"
    if input_coding not in INPUT_CODINGS:
        raise ConfigError(f"input coding {input_coding!r}: allowed {', '.join(INPUT_CODINGS)}")
    prof = _resolve_profiles(profiles)

    fans = [layer_fan_out(model, i) for i in range(n_layers)]  # fan[i]: into layer i, shape in_shape
    zeros = np.zeros(n, dtype=np.int64)

    # Input: units feeding layer 0.
    inp = {"n_units": int(np.prod(arch.input_shape))}
    in_sops_analytic = None
    if input_levels is not None:
        x = np.asarray(input_levels)
        if x.shape != (n,) + tuple(arch.input_shape):
            raise DataError(f"input levels of shape {x.shape} do not fit {n} images of shape {arch.input_shape}")
        in_counts = analytic_spike_counts(x, act_bits=arch.input_bits, coding=input_coding)
        if arch.input_bits == 32:
            in_counts = (x != 0).astype(np.int64)
        in_sops_analytic = _per_image_sops(in_counts, fans[0])
        inp["spikes_analytic_per_image"] = _mean(in_counts.reshape(n, -1).sum(1))
        inp["sops_analytic_per_image"] = _mean(in_sops_analytic)
        eff0 = _per_image_sops((x != 0).astype(np.int64), fans[0])
    else:
        inp["spikes_analytic_per_image"] = None
        inp["sops_analytic_per_image"] = None
        eff0 = None
    if spiking is not None:
        in_spk = np.asarray(spiking.input_spike_counts)
        inp["spikes_per_image"] = _mean(in_spk.reshape(n, -1).sum(1))
        inp["sops_per_image"] = _mean(spiking.input_sops)
        inp["sops_recount_per_image"] = _mean(_per_image_sops(in_spk, fans[0]))
        in_sops_sim = np.asarray(spiking.input_sops, dtype=np.int64)
    else:
        inp["spikes_per_image"] = inp["sops_per_image"] = inp["sops_recount_per_image"] = None
        in_sops_sim = None

    layers = []
    per_image_sops = np.zeros(n, dtype=np.int64) if spiking is None else np.asarray(spiking.input_sops, np.int64).copy()
    per_image_spikes = np.zeros(n, dtype=np.int64)
    if spiking is not None:
        per_image_spikes += np.asarray(spiking.input_spike_counts).reshape(n, -1).sum(1).astype(np.int64)
    per_image_analytic = in_sops_analytic.copy() if in_sops_analytic is not None else zeros.copy()
    n_agree = n_mismatch = n_recount_bad = 0
    prev_sops_out_sim, prev_sops_out_an = in_sops_sim, in_sops_analytic
    for i, spec in enumerate(arch.layers):
        ref = reference.layers[i]
        out = np.asarray(ref.output)
        if out.shape != (n,) + tuple(spec.out_shape):
            raise DataError(f"reference layer {i} output has shape {out.shape}; expected {(n,) + tuple(spec.out_shape)}")
        nxt = fans[i + 1] if i + 1 < n_layers else None
        entry = {"index": i, "type": spec.type, "k": spec.k, "out_shape": list(spec.out_shape),
                 "n_units": int(np.prod(spec.out_shape)), "n_synapses_in": int(fans[i].sum()),
                 "op_kind": "mac" if spec.has_weights else "add", "dense_ops_per_image": _dense_ops(spec)}
        # Effective ops of the reference: non-zero input activity x existing synapses into layer i.
        if i == 0:
            eff = eff0
        else:
            eff = _per_image_sops((np.asarray(reference.layers[i - 1].output) != 0).astype(np.int64), fans[i])
        entry["effective_ops_per_image"] = None if eff is None else _mean(eff)
        # Analytic spikes and outgoing SOPs of this layer (the readout's spikes go nowhere).
        if spec.is_readout:
            an_counts = None
            an_sops_out = zeros
            entry["spikes_analytic_per_image"] = 1.0  # one readout unit decides per image
        else:
            an_counts = analytic_spike_counts(out, act_bits=spec.act_bits, coding=input_coding)
            an_sops_out = _per_image_sops(an_counts, nxt)
            entry["spikes_analytic_per_image"] = _mean(an_counts.reshape(n, -1).sum(1))
        entry["sops_out_analytic_per_image"] = _mean(an_sops_out)
        entry["sops_in_analytic_per_image"] = None if prev_sops_out_an is None else _mean(prev_sops_out_an)
        per_image_analytic += an_sops_out
        if spiking is not None:
            sl = spiking.layers[i]
            counts = np.asarray(sl.spike_counts)
            if counts.shape != (n,) + tuple(spec.out_shape):
                raise DataError(f"spiking layer {i} spike counts have shape {counts.shape}; "
                                f"expected {(n,) + tuple(spec.out_shape)}")
            sops_out = np.asarray(sl.sops, dtype=np.int64)
            recount = zeros if nxt is None else _per_image_sops(counts, nxt)
            n_recount_bad += int((recount != sops_out).sum())
            inh = np.asarray(sl.interneuron_spikes, dtype=np.int64)
            circ = np.asarray(sl.sops_circuit, dtype=np.int64)
            upd = np.asarray(sl.neuron_updates, dtype=np.int64)
            entry.update({
                "n_synapses_in_simulated": int(sl.n_synapses),
                "n_exc": int(sl.n_exc), "n_inh": int(sl.n_inh),
                "spikes_per_image": _mean(counts.reshape(n, -1).sum(1)),
                "interneuron_spikes_per_image": _mean(inh),
                "sops_out_per_image": _mean(sops_out),
                "sops_out_recount_per_image": _mean(recount),
                "sops_in_per_image": None if prev_sops_out_sim is None else _mean(prev_sops_out_sim),
                "sops_circuit_per_image": _mean(circ),
                "neuron_updates_per_image": _mean(upd),
            })
            # SOP cross-check: where this layer's winners equal the reference winners, the
            # simulated SOPs must equal the analytic count exactly.
            if spec.is_readout:
                agree = np.ones(n, dtype=bool)  # no outgoing synapses: both counts are 0
            else:
                sw = np.asarray(sl.winners, dtype=bool).reshape(n, -1)
                rw = np.asarray(ref.winners, dtype=bool).reshape(n, -1)
                agree = (sw == rw).all(axis=1)
            mism = int((sops_out[agree] != an_sops_out[agree]).sum())
            entry["sop_check"] = {"n_images_winners_agree": int(agree.sum()),
                                  "n_sop_mismatches_where_winners_agree": mism,
                                  "n_recount_mismatches": int((recount != sops_out).sum())}
            n_agree += int(agree.sum())
            n_mismatch += mism
            per_image_sops += sops_out + circ
            per_image_spikes += counts.reshape(n, -1).sum(1).astype(np.int64) + inh
            prev_sops_out_sim = sops_out
        else:
            for key in ("n_synapses_in_simulated", "n_exc", "n_inh", "spikes_per_image",
                        "interneuron_spikes_per_image", "sops_out_per_image", "sops_out_recount_per_image",
                        "sops_in_per_image", "sops_circuit_per_image", "neuron_updates_per_image", "sop_check"):
                entry[key] = None
            if an_counts is not None:
                per_image_spikes += an_counts.reshape(n, -1).sum(1)
            else:
                per_image_spikes += 1
        prev_sops_out_an = an_sops_out
        layers.append(entry)

    result = {
        "n_images": n,
        "model": arch.name,
        "input_coding": input_coding,
        "reference_profile_own_precision": own_precision_profile(arch),
        "has_spiking": spiking is not None,
        "note": CHIP_LEVEL_NOTE,
        "input": inp,
        "layers": layers,
    }
    result["totals"] = _totals(result, per_image_sops, per_image_spikes, per_image_analytic)
    result["energy"] = _price(result, prof)
    if spiking is not None:
        result["sop_check"] = {
            "n_image_layers_winners_agree": n_agree,
            "n_sop_mismatches_where_winners_agree": n_mismatch,
            "sops_equal_where_winners_agree": n_mismatch == 0,
            "n_recount_mismatches": n_recount_bad,
        }
        result["per_image"] = {"sops": per_image_sops.tolist(), "spikes": per_image_spikes.tolist(),
                               "sops_analytic": per_image_analytic.tolist()}
    else:
        result["sop_check"] = None
        result["per_image"] = {"sops_analytic": per_image_analytic.tolist(), "spikes_analytic": per_image_spikes.tolist()}
    return result


def _sum_key(layers, key):
    vals = [l[key] for l in layers]
    return None if any(v is None for v in vals) else float(sum(vals))


def _totals(result, per_image_sops, per_image_spikes, per_image_analytic) -> dict:
    layers, inp = result["layers"], result["input"]
    tot = {
        "dense_ops_per_image": float(sum(l["dense_ops_per_image"] for l in layers)),
        "dense_macs_per_image": float(sum(l["dense_ops_per_image"] for l in layers if l["op_kind"] == "mac")),
        "dense_adds_per_image": float(sum(l["dense_ops_per_image"] for l in layers if l["op_kind"] == "add")),
        "effective_ops_per_image": _sum_key(layers, "effective_ops_per_image"),
        "sops_analytic_per_image": _mean(per_image_analytic),
    }
    if result["has_spiking"]:
        ff = _sum_key(layers, "sops_out_per_image") + (inp["sops_per_image"] or 0.0)
        circ = _sum_key(layers, "sops_circuit_per_image")
        tot.update({
            "spikes_per_image": _mean(per_image_spikes),
            "excitatory_spikes_per_image": _sum_key(layers, "spikes_per_image"),
            "interneuron_spikes_per_image": _sum_key(layers, "interneuron_spikes_per_image"),
            "input_spikes_per_image": inp["spikes_per_image"],
            "sops_feedforward_per_image": ff,
            "sops_circuit_per_image": circ,
            "sops_per_image": ff + circ,
            "neuron_updates_per_image": _sum_key(layers, "neuron_updates_per_image"),
        })
    else:
        tot.update({"spikes_per_image": None, "excitatory_spikes_per_image": None,
                    "interneuron_spikes_per_image": None, "input_spikes_per_image": None,
                    "sops_feedforward_per_image": None, "sops_circuit_per_image": None,
                    "sops_per_image": None, "neuron_updates_per_image": None,
                    "spikes_analytic_per_image": _mean(per_image_spikes)})
    return tot


def _price(result, profiles) -> dict:
    """Energy per image and per layer for each profile (pJ)."""
    out = {}
    layers, inp, tot = result["layers"], result["input"], result["totals"]
    sim = result["has_spiking"]
    for p in profiles:
        entry = {"kind": p.kind, "description": p.description, "citation": p.citation}
        per_layer = []
        if p.kind == "spiking":
            for l in layers:
                if sim:
                    sops = (l["sops_in_per_image"] or 0.0) + l["sops_circuit_per_image"]
                    spikes = l["spikes_per_image"] + l["interneuron_spikes_per_image"]
                    upd = l["neuron_updates_per_image"]
                else:
                    sops = l["sops_in_analytic_per_image"] or 0.0
                    spikes = l["spikes_analytic_per_image"]
                    upd = 0.0
                per_layer.append(spiking_energy_pj(p, sops=sops, spikes=spikes, neuron_updates=upd))
            in_spikes = inp["spikes_per_image"] if sim else inp["spikes_analytic_per_image"]
            entry["input_pj"] = (in_spikes or 0.0) * p.spike_pj
            if sim:
                e = spiking_energy_pj(p, sops=tot["sops_per_image"], spikes=tot["spikes_per_image"],
                                      neuron_updates=tot["neuron_updates_per_image"])
            else:
                e = spiking_energy_pj(p, sops=tot["sops_analytic_per_image"],
                                      spikes=tot["spikes_analytic_per_image"], neuron_updates=0.0)
            entry["basis"] = "simulated" if sim else "analytic (no neuron updates)"
            entry["per_image_pj"] = e
            entry["per_image_uj"] = e["total_pj"] * 1e-6
        else:
            dense = eff = 0.0
            eff_known = True
            for l in layers:
                price = p.mac_pj if l["op_kind"] == "mac" else p.accumulate_pj
                d = l["dense_ops_per_image"] * price
                e_eff = None if l["effective_ops_per_image"] is None else l["effective_ops_per_image"] * price
                dense += d
                if e_eff is None:
                    eff_known = False
                else:
                    eff += e_eff
                per_layer.append({"dense_pj": d, "effective_pj": e_eff})
            entry["per_image_pj"] = {"dense_pj": dense, "effective_pj": eff if eff_known else None,
                                     "total_pj": dense}
            entry["per_image_uj"] = dense * 1e-6
        entry["per_layer_pj"] = per_layer
        out[p.name] = entry
    return out


def _merge_value(key: str, values: list, weights: np.ndarray, where: str):
    first = values[0]
    if isinstance(first, dict):
        return {k: _merge_value(k, [v[k] for v in values], weights, f"{where}.{k}") for k in first}
    if isinstance(first, list):
        if where.startswith("per_image"):
            return [x for v in values for x in v]
        if first and isinstance(first[0], dict):  # per-layer lists: merge element by element
            return [_merge_value(key, [v[i] for v in values], weights, f"{where}[{i}]") for i in range(len(first))]
        if any(v != first for v in values):
            raise ValueError(f"merge_energy: {where} differs between parts")
        return first
    if isinstance(first, bool):
        return all(values)
    if first is None or isinstance(first, str):
        if any(v != first for v in values):
            if any(v is None for v in values):
                return None
            raise ValueError(f"merge_energy: {where} differs between parts")
        return first
    if key == "n_images" or where.startswith("sop_check") or ".sop_check." in where or key.startswith("n_image") \
            or key.startswith("n_sop") or key.startswith("n_recount"):
        return int(sum(values))
    if key.endswith(("_per_image", "_pj", "_uj")):
        return float(np.dot(np.asarray(values, dtype=np.float64), weights) / weights.sum())
    if any(v != first for v in values):
        raise ValueError(f"merge_energy: {where} = {values} differs between parts")
    return first


def merge_energy(parts: list) -> dict:
    """Combine :func:`network_energy` results of consecutive blocks of images into one.

    Means per image are weighted by each block's ``n_images`` (pricing is linear in the counts,
    so energies merge the same way); ``n_*`` counts of the SOP check add up; ``per_image`` lists
    are concatenated in order; structural values (shapes, synapse counts, citations) must agree.

    Raises
    ------
    ValueError
        Parts that are not of the same model and settings.
    """
    if not parts:
        raise ValueError("merge_energy: no parts")
    if len(parts) == 1:
        return parts[0]
    weights = np.asarray([p["n_images"] for p in parts], dtype=np.float64)
    return {k: _merge_value(k, [p[k] for p in parts], weights, k) for k in parts[0]}

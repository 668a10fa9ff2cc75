"""Operation counts and energy: synaptic operations (SOPs), MACs, data movement, and their price.

Definitions (``docs/guide/concepts.md``):

* **SOPs** — the sum over spikes of the number of *existing* (non-zero) outgoing synapses of the
  neuron that spiked. A pruned (zero-level) weight is no synapse and costs nothing.
* **dense MACs** — multiply-accumulates of the dense reference forward pass (every weight, every
  input, including zeros; border positions counted exactly).
* **effective ops** — the MACs left when zero activities and zero weights are skipped. With 1-bit
  activities this equals the SOP count of a spiking network whose winners each spike once, which
  is the cross-check between simulation and reference.
* **energy** — counts priced by a named profile (:mod:`hcs_neuro.measure.profiles`: the built-in
  ``hcs_neuro/data/energy_profiles.toml`` or a user file), each figure with its citation, beside
  the reference network priced under the same model.

**One energy model for both sides** (Lemaire et al., "An Analytical Estimation of Spiking Neural
Networks Energy Efficiency", ICONIP 2022, LNCS 13623, doi:10.1007/978-3-031-30105-6_48: its
operation and memory-access counts, equation numbers as in the authors' implementation
``qualia_plugin_snn.postprocessing.EnergyEstimationMetric``; and, for the reference's best case,
the data-reuse and sparsity bound of Dampfhoffer et al., IEEE TETCI 7(3):731-741, 2023). Energy =
compute + data movement. Compute is priced by the profile; data movement is one access per word
read or written, priced by the memory table (Horowitz, ISSCC 2014, 45 nm) at the size of the array
it touches (:class:`~hcs_neuro.measure.profiles.MemoryTable`), and is added only to profiles whose
figures do not already contain their memory accesses (``includes`` without ``"memory"``). Per
image and layer ``l``:

* spiking network (IF neurons, event-driven; Lemaire Eq. 5, 7, 9-10, 13-15, 1.4):
  every SOP arriving at ``l`` reads its weight (weighted layers; pooling and k-WTA circuit
  synapses have one shared weight) and reads and writes the target's membrane potential; every
  neuron update reads and writes the potential and reads the cell's bias; every spike is written
  once and read once (event queue); every input spike is read once. Compute: one synaptic-op
  figure per SOP (circuit SOPs included), one neuron-update figure per update, one spike figure
  per spike.
* reference, dense (Lemaire Eq. 1-4, 6, 11-12): every MAC reads its input (convolution and
  pooling; a linear layer reads each input once) and its weight; every output reads its bias and
  is written once; the accumulator stays in a register. Compute: dense MACs (adds for pooling).
* reference, best case (Dampfhoffer's bound): zero activities and zero weights skipped
  (effective ops), and maximal reuse: every weight, bias and input read once, every output
  written once.

Word widths size the arrays: weights ``weight_bits``, biases ``bias_bits``, activities
``act_bits`` (the readout's 32), the input ``input_bits``, membrane potentials and accumulators
:data:`POTENTIAL_BITS`.

:func:`network_energy` puts it together for a whole network: per layer the spikes, SOPs and
neuron updates of a simulation (:class:`hcs_neuro.core.spiking_result.SpikingResult`) beside the
analytic counts from the reference activations, the reference's dense MACs and effective ops,
an SOP cross-check, the energy per image of every requested profile with and without data
movement, the comparison with the reference under the same model and the break-even activity
(:func:`break_even`). Every count carries its basis (``count_basis``: counted in the simulation,
or computed and from what).

Fan-out is computed exactly per input position (as sinabs does for its synop counter): an input
at the border of a padded convolution reaches fewer outputs than one in the middle.

NumPy only.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.spiking_result import count_basis as spiking_count_basis
from hcs_neuro.core.topology import (
    conv_dense_macs,
    conv_fan_out,
    layer_fan_out,
    linear_fan_out,
)
from hcs_neuro.measure.profiles import (
    EnergyProfile,
    MemoryTable,
    get_profile,
    load_memory_table,
    load_profiles,
    resolve_profiles,
)

# Profiles and the memory table live in hcs_neuro.measure.profiles (imported here, not re-exported).
__all__ = [
    "conv_fan_out",
    "linear_fan_out",
    "conv_dense_macs",
    "synaptic_ops",
    "spiking_energy_pj",
    "reference_energy_pj",
    "INPUT_CODINGS",
    "POTENTIAL_BITS",
    "layer_fan_out",
    "analytic_spike_counts",
    "layer_arrays",
    "network_energy",
    "merge_energy",
    "finalize_energy",
    "break_even",
    "own_precision_profile",
    "own_precision_snn_profile",
    "REFERENCE_VARIANTS",
    "BREAK_EVEN_VARIANTS",
    "break_even_summary",
    "reprice_energy",
]

#: Bits of a membrane potential (spiking network) or accumulator word (reference): an int32
#: accumulate, as priced by the 45 nm profiles.
POTENTIAL_BITS = 32
#: Bits of a readout output word (the reference's class scores).
READOUT_BITS = 32

#: The reference accelerator's variants, each with and without data movement:
#: ``dense``: every MAC, Lemaire's memory accesses (no reuse); ``sparse``: Dampfhoffer's bound,
#: zeros skipped and every weight, bias and input read once.
REFERENCE_VARIANTS = ("dense", "sparse")


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
CHIP_LEVEL_NOTE = ("chip-level energy per event; each profile says what its figures include (compute, memory, "
                   "leakage, routing) and the data-movement term (Horowitz 45 nm memory accesses) is added only "
                   "where they exclude memory; no host, no off-chip I/O; system-level figures are 3-5 orders of "
                   "magnitude higher and are not comparable")


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


def _resolve_profiles(profiles, memory) -> tuple[list[EnergyProfile], MemoryTable]:
    """Profiles (built-in names, objects, TOML files) and the memory table to price with: ``memory``
    if given (a :class:`MemoryTable` or a TOML file with a ``[memory]`` table), else the last
    profile file's table, else the built-in one."""
    if profiles is None:
        profs, mem = list(load_profiles().values()), None
    else:
        if isinstance(profiles, (str, EnergyProfile)):
            profiles = [profiles]
        profs, mem = resolve_profiles(profiles)
    if memory is not None:
        mem = memory if isinstance(memory, MemoryTable) else load_memory_table(memory)
    return profs, mem or load_memory_table()


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


def own_precision_snn_profile(architecture) -> str:
    """The 45 nm event-driven spiking profile that matches a model's arithmetic (the spiking side of
    the one energy model): ``cmos45_snn_int8`` where the reference needs multiplies (a spike then
    carries a multi-bit level into a multi-bit weight), else ``cmos45_snn`` (an int32 add per SOP)."""
    return "cmos45_snn_int8" if own_precision_profile(architecture) != "cmos45_lowprec" else "cmos45_snn"


def layer_arrays(model) -> list[dict]:
    """Per layer, the arrays the energy model reads and writes and their sizes in bytes:
    ``in_bytes`` (the activity it reads: the input image for layer 0, else the previous layer's
    activations), ``weights_bytes``, ``biases_bytes``, ``potentials_bytes`` (excitatory cells and
    one interneuron per hypercolumn, :data:`POTENTIAL_BITS` each; the reference keeps its
    accumulators in registers and does not use it), ``activations_bytes`` (outputs), and the
    counts ``n_in``, ``n_out``, ``n_weights``, ``n_biases``, ``n_hypercolumns``."""
    arch = model.architecture
    prev = float(np.prod(arch.input_shape)) * arch.input_bits / 8.0
    out = []
    for i, spec in enumerate(arch.layers):
        params = model.layers[i] if i < len(model.layers) else None
        n_out = int(np.prod(spec.out_shape))
        n_hc = 1 if spec.is_readout else int(np.prod(spec.out_shape[1:]))
        n_w = int(np.prod(spec.weight_shape)) if spec.has_weights else 0
        has_bias = bool(spec.has_weights and params is not None and getattr(params, "bias_levels", None) is not None)
        n_b = int(spec.out_shape[0]) if has_bias else 0
        act_bits = READOUT_BITS if spec.is_readout else spec.act_bits
        entry = {"n_in": int(np.prod(spec.in_shape)), "n_out": n_out, "n_weights": n_w, "n_biases": n_b,
                 "n_hypercolumns": n_hc, "in_bytes": prev, "weights_bytes": n_w * spec.weight_bits / 8.0,
                 "biases_bytes": n_b * spec.bias_bits / 8.0,
                 "potentials_bytes": (n_out + n_hc) * POTENTIAL_BITS / 8.0,
                 "activations_bytes": n_out * act_bits / 8.0}
        out.append(entry)
        prev = entry["activations_bytes"]
    return out


def _access_prices(arrays: dict, memory: MemoryTable) -> dict:
    """Energy of one access (pJ) to each array of a layer."""
    return {"inputs": memory.access_pj(arrays["in_bytes"]),
            "weights": memory.access_pj(arrays["weights_bytes"]) if arrays["n_weights"] else 0.0,
            "biases": memory.access_pj(arrays["biases_bytes"]) if arrays["n_biases"] else 0.0,
            "potentials": memory.access_pj(arrays["potentials_bytes"]),
            "activations": memory.access_pj(arrays["activations_bytes"])}


def network_energy(model, reference, spiking=None, profiles=None, *, input_levels=None,
                   input_coding: str | None = None, memory=None) -> dict:
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
        Hardware profiles to price with: built-in names, :class:`EnergyProfile` objects or user
        TOML files (each contributes all its profiles; default: every built-in profile). Unknown
        names and invalid files raise :class:`~hcs_neuro.core.errors.ConfigError`.
    input_levels : ndarray, optional
        Quantized input levels of the images (:func:`hcs_neuro.core.reference.quantize_input`); needed
        for the analytic input SOPs and the layer-0 effective operations.
    input_coding : {"count", "single"}, optional
        How integer activity levels (the input's, and those of multi-bit layers) become spikes
        (:data:`INPUT_CODINGS`): ``"single"`` (one spike per active unit, its level carried as a
        weight multiplier; what :mod:`hcs_neuro.brian.session` does) or ``"count"`` (``level``
        spikes). Default ``spiking.metadata["input_coding"]`` if it is one of those, else
        ``"single"``. Binary layers emit one spike per winner either way.
    memory : MemoryTable or path, optional
        The memory-access table of the data-movement term (default: the ``[memory]`` of the
        last profile file given, else the built-in Horowitz 45 nm table).

    Returns
    -------
    dict
        JSON-able, stable keys; every count is a mean per image unless named ``n_*``:

        ``n_images``, ``input_coding``, ``note`` (chip-level caveat), ``has_spiking``,
        ``reference_profile_own_precision`` (:func:`own_precision_profile`),
        ``snn_profile_own_precision`` (:func:`own_precision_snn_profile`), ``memory`` (the
        memory-access table and its rule), ``count_basis`` (for every count key of ``input``,
        ``layers`` and ``totals``: ``basis`` ``"counted"`` in the simulation or ``"computed"``, and
        ``how``; neuron updates also name their ``policy``);
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
        ``arrays`` (:func:`layer_arrays`) and ``access_pj`` (energy of one access to each);
        ``totals``: the per-image sums of the above; ``energy``: per profile its summary
        (``kind``, ``citation``, ``scope``, ``includes``, ``unpriced``, ``figures_pj``, ...),
        ``per_image_pj`` (compute or per-event figures only, itemised, ``total_pj``; reference
        profiles ``dense_pj``/``effective_pj``), ``data_movement_pj`` and
        ``data_movement_accesses`` (spiking: one table; reference: ``dense`` and ``sparse``), and
        ``totals_pj`` (spiking: ``without_data_movement_pj``/``with_data_movement_pj``; reference:
        ``dense_without_data_movement_pj``, ``dense_with_data_movement_pj``,
        ``sparse_without_data_movement_pj``, ``sparse_with_data_movement_pj``); ``comparison`` and
        ``break_even`` (:func:`finalize_energy`); ``sop_check``: over all images and layers
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
    prof, mem = _resolve_profiles(profiles, memory)
    basis = None
    if spiking is not None:
        try:
            basis = spiking_count_basis(spiking)
        except ValueError as exc:
            raise DataError(f"spiking result: {exc}") from None
    arrays = layer_arrays(model)

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
                 "op_kind": "mac" if spec.has_weights else "add", "dense_ops_per_image": _dense_ops(spec),
                 "arrays": arrays[i], "access_pj": _access_prices(arrays[i], mem)}
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
        "model_source": str(arch.source),
        "input_coding": input_coding,
        "reference_profile_own_precision": own_precision_profile(arch),
        "snn_profile_own_precision": own_precision_snn_profile(arch),
        "has_spiking": spiking is not None,
        "note": CHIP_LEVEL_NOTE,
        "memory": mem.summary(),
        "count_basis": _count_basis_table(basis),
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
    return finalize_energy(result)


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


def _count_basis_table(basis: dict | None) -> dict:
    """What every count key of the energy dict is: counted in the simulation, or computed (and how)."""
    an = {"basis": "computed", "how": "analytic: what a network that reproduces the reference emits (one spike per "
                                      "winner, the input coding), from the reference activations x existing fan-out"}
    arch = {"basis": "computed", "how": "from the architecture and the weights (existing synapses: non-zero levels)"}
    eff = {"basis": "computed", "how": "reference activations and weights: non-zero input activity x existing synapses"}
    recount = {"basis": "computed", "how": "the result's spike counts x the exact fan-out, recomputed here (a check)"}
    table = {
        "input.spikes_analytic_per_image": an, "input.sops_analytic_per_image": an,
        "layers.spikes_analytic_per_image": an, "layers.sops_out_analytic_per_image": an,
        "layers.sops_in_analytic_per_image": an, "totals.sops_analytic_per_image": an,
        "layers.n_synapses_in": arch, "layers.dense_ops_per_image": arch, "totals.dense_ops_per_image": arch,
        "totals.dense_macs_per_image": arch, "totals.dense_adds_per_image": arch,
        "layers.effective_ops_per_image": eff, "totals.effective_ops_per_image": eff,
    }
    if basis is None:
        absent = {"basis": "absent", "how": "no simulation: spiking profiles price the analytic counts, without "
                                            "neuron updates, k-WTA circuit events or interneuron spikes"}
        table["totals.spikes_analytic_per_image"] = an
        for key in ("input.spikes_per_image", "input.sops_per_image", "layers.spikes_per_image",
                    "layers.interneuron_spikes_per_image", "layers.sops_out_per_image", "layers.sops_in_per_image",
                    "layers.sops_circuit_per_image", "layers.neuron_updates_per_image", "totals.neuron_updates_per_image",
                    "totals.spikes_per_image", "totals.excitatory_spikes_per_image",
                    "totals.interneuron_spikes_per_image", "totals.input_spikes_per_image",
                    "totals.sops_feedforward_per_image", "totals.sops_circuit_per_image", "totals.sops_per_image"):
            table[key] = absent
        table["per_image.sops_analytic"] = an
        table["per_image.spikes_analytic"] = an
        return table

    def total(*names):
        parts = [basis[n] for n in names]
        if all(p["basis"] == "counted" for p in parts):
            return {"basis": "counted", "how": "sum of " + " + ".join(names) + " (each counted)"}
        return {"basis": "computed", "how": "sum of " + " + ".join(f"{n} ({basis[n]['basis']})" for n in names)}

    table.update({
        "input.spikes_per_image": basis["input_spikes"], "input.sops_per_image": basis["input_sops"],
        "input.sops_recount_per_image": recount,
        "layers.spikes_per_image": basis["spikes"], "layers.interneuron_spikes_per_image": basis["interneuron_spikes"],
        "layers.sops_out_per_image": basis["sops"],
        "layers.sops_in_per_image": {"basis": basis["sops"]["basis"] if basis["sops"]["basis"] == basis["input_sops"][
            "basis"] else "computed", "how": "layer 0: input_sops; later layers: the previous layer's sops"},
        "layers.sops_out_recount_per_image": recount, "layers.sops_circuit_per_image": basis["sops_circuit"],
        "layers.neuron_updates_per_image": basis["neuron_updates"],
        "layers.n_synapses_in_simulated": {"basis": "computed", "how": "synapses the network was built with"},
        "totals.spikes_per_image": total("input_spikes", "spikes", "interneuron_spikes"),
        "totals.excitatory_spikes_per_image": total("spikes"),
        "totals.interneuron_spikes_per_image": total("interneuron_spikes"),
        "totals.input_spikes_per_image": basis["input_spikes"],
        "totals.sops_feedforward_per_image": total("input_sops", "sops"),
        "totals.sops_circuit_per_image": total("sops_circuit"),
        "totals.sops_per_image": total("input_sops", "sops", "sops_circuit"),
        "totals.neuron_updates_per_image": basis["neuron_updates"],
        "per_image.sops": total("input_sops", "sops", "sops_circuit"),
        "per_image.sops_analytic": an,
        "per_image.spikes": total("input_spikes", "spikes", "interneuron_spikes"),
    })
    return table


#: The counts a spiking network is priced on, and the event each is priced as.
_SNN_COUNTS = ("input_spikes", "sops_in", "sops_circuit", "neuron_updates", "spikes", "interneuron_spikes")


def _snn_layer(l: dict, i: int, inp: dict, sim: bool) -> dict:
    """The counts of layer ``i`` a spiking profile prices (means per image)."""
    if sim:
        c = {"sops_in": l["sops_in_per_image"] or 0.0, "sops_circuit": l["sops_circuit_per_image"],
             "neuron_updates": l["neuron_updates_per_image"], "spikes": l["spikes_per_image"],
             "interneuron_spikes": l["interneuron_spikes_per_image"]}
        c["input_spikes"] = (inp["spikes_per_image"] or 0.0) if i == 0 else 0.0
    else:
        c = {"sops_in": l["sops_in_analytic_per_image"] or 0.0, "sops_circuit": 0.0, "neuron_updates": 0.0,
             "spikes": l["spikes_analytic_per_image"], "interneuron_spikes": 0.0}
        c["input_spikes"] = (inp["spikes_analytic_per_image"] or 0.0) if i == 0 else 0.0
        if i == 0 and c["sops_in"] == 0.0:
            c["sops_in"] = inp["sops_analytic_per_image"] or 0.0
    return {k: float(v or 0.0) for k, v in c.items()}


def _snn_accesses(c: dict, arrays: dict) -> dict:
    """Memory accesses of one layer of the spiking network (Lemaire Eq. 5, 7, 9-10, 13-15)."""
    per_cell = c["sops_in"] + c["sops_circuit"] + c["neuron_updates"]
    n_exc, n_hc = arrays["n_out"], arrays["n_hypercolumns"]
    bias_frac = n_exc / (n_exc + n_hc) if arrays["n_biases"] else 0.0  # interneurons have no bias
    events = c["spikes"] + c["interneuron_spikes"]
    return {"weight_reads_per_image": c["sops_in"] if arrays["n_weights"] else 0.0,
            "potential_reads_per_image": per_cell, "potential_writes_per_image": per_cell,
            "bias_reads_per_image": c["neuron_updates"] * bias_frac,
            "spike_writes_per_image": events, "spike_reads_per_image": events,
            "input_reads_per_image": c["input_spikes"]}


def _price_spiking(p: EnergyProfile, result: dict) -> dict:
    layers, inp, sim = result["layers"], result["input"], result["has_spiking"]
    dm = not p.includes_memory
    per_layer = []
    tot = {"synaptic_ops_pj": 0.0, "spikes_pj": 0.0, "neuron_updates_pj": 0.0}
    dm_tot = {"weights_pj": 0.0, "potentials_pj": 0.0, "biases_pj": 0.0, "spikes_pj": 0.0, "input_pj": 0.0}
    acc_tot: dict = {}
    input_pj = 0.0
    for i, l in enumerate(layers):
        c = _snn_layer(l, i, inp, sim)
        a, arr = l["access_pj"], l["arrays"]
        acc = _snn_accesses(c, arr)
        for k, v in acc.items():
            acc_tot[k] = acc_tot.get(k, 0.0) + v
        bias_frac = acc["bias_reads_per_image"] / c["neuron_updates"] if c["neuron_updates"] else 0.0
        # per count: compute (profile figure) and data movement (memory accesses it causes)
        unit = {"input_spikes": (p.spike_pj, a["inputs"]),
                "sops_in": (p.synaptic_op_pj, (a["weights"] if arr["n_weights"] else 0.0) + 2 * a["potentials"]),
                "sops_circuit": (p.synaptic_op_pj, 2 * a["potentials"]),
                "neuron_updates": (p.neuron_update_pj, 2 * a["potentials"] + bias_frac * a["biases"]),
                "spikes": (p.spike_pj, 2 * a["activations"]),
                "interneuron_spikes": (p.spike_pj, 2 * a["activations"])}
        by = {f"{k}_pj": c[k] * unit[k][0] for k in _SNN_COUNTS}
        by_dm = {f"{k}_pj": c[k] * unit[k][1] if dm else 0.0 for k in _SNN_COUNTS}
        comp = {"synaptic_ops_pj": by["sops_in_pj"] + by["sops_circuit_pj"],
                "spikes_pj": by["spikes_pj"] + by["interneuron_spikes_pj"],
                "neuron_updates_pj": by["neuron_updates_pj"]}
        comp["total_pj"] = sum(comp.values())
        layer_dm = {"weights_pj": acc["weight_reads_per_image"] * a["weights"],
                    "potentials_pj": (acc["potential_reads_per_image"] + acc["potential_writes_per_image"])
                    * a["potentials"],
                    "biases_pj": acc["bias_reads_per_image"] * a["biases"],
                    "spikes_pj": (acc["spike_writes_per_image"] + acc["spike_reads_per_image"]) * a["activations"],
                    "input_pj": acc["input_reads_per_image"] * a["inputs"]}
        for k in tot:
            tot[k] += comp[k]
        input_pj += by["input_spikes_pj"]
        tot["spikes_pj"] += by["input_spikes_pj"]
        if dm:
            for k in dm_tot:
                dm_tot[k] += layer_dm[k]
        comp["data_movement_pj"] = sum(layer_dm.values()) if dm else 0.0
        comp["by_count_pj"] = by
        comp["by_count_data_movement_pj"] = by_dm
        per_layer.append(comp)
    tot["total_pj"] = tot["synaptic_ops_pj"] + tot["spikes_pj"] + tot["neuron_updates_pj"]
    entry = p.summary()
    entry.update({
        "counts": "simulation (see count_basis)" if sim else "analytic (no neuron updates, no k-WTA circuit events)",
        "basis": "counts from a simulation (see count_basis)" if sim else "analytic (no neuron updates)",
        "data_movement": ("added: memory accesses priced by the memory table" if dm else
                          "inside the figures (the profile includes memory): no term added"),
        "per_image_pj": tot, "per_image_uj": tot["total_pj"] * 1e-6, "input_pj": input_pj,
        "data_movement_pj": dict(dm_tot, total_pj=sum(dm_tot.values())) if dm else None,
        "data_movement_accesses": acc_tot,
        "per_layer_pj": per_layer,
    })
    with_dm = tot["total_pj"] + (entry["data_movement_pj"]["total_pj"] if dm else 0.0)
    entry["totals_pj"] = {"without_data_movement_pj": tot["total_pj"], "with_data_movement_pj": with_dm}
    entry["per_image_with_data_movement_uj"] = with_dm * 1e-6
    return entry


def _reference_accesses(l: dict) -> dict:
    """Memory accesses of one reference layer: ``dense`` (Lemaire Eq. 3-4, 6, 11-12: no reuse)
    and ``sparse`` (Dampfhoffer's bound: every weight, bias and input once)."""
    arr = l["arrays"]
    dense_in = arr["n_in"] if l["type"] == "linear" else l["dense_ops_per_image"]
    return {
        "dense": {"input_reads_per_image": float(dense_in),
                  "weight_reads_per_image": float(l["dense_ops_per_image"] if arr["n_weights"] else 0),
                  "bias_reads_per_image": float(arr["n_out"] if arr["n_biases"] else 0),
                  "output_writes_per_image": float(arr["n_out"])},
        "sparse": {"input_reads_per_image": float(arr["n_in"]), "weight_reads_per_image": float(arr["n_weights"]),
                   "bias_reads_per_image": float(arr["n_biases"]), "output_writes_per_image": float(arr["n_out"])},
    }


def _price_reference(p: EnergyProfile, result: dict) -> dict:
    layers = result["layers"]
    dm = not p.includes_memory
    dense = eff = 0.0
    eff_known = True
    per_layer = []
    dm_tot = {v: {"inputs_pj": 0.0, "weights_pj": 0.0, "biases_pj": 0.0, "outputs_pj": 0.0} for v in REFERENCE_VARIANTS}
    acc_tot = {v: {} for v in REFERENCE_VARIANTS}
    for l in layers:
        price = p.mac_pj if l["op_kind"] == "mac" else p.accumulate_pj
        d = l["dense_ops_per_image"] * price
        e_eff = None if l["effective_ops_per_image"] is None else l["effective_ops_per_image"] * price
        dense += d
        if e_eff is None:
            eff_known = False
        else:
            eff += e_eff
        a = l["access_pj"]
        entry = {"dense_pj": d, "effective_pj": e_eff}
        for v, acc in _reference_accesses(l).items():
            items = {"inputs_pj": acc["input_reads_per_image"] * a["inputs"],
                     "weights_pj": acc["weight_reads_per_image"] * a["weights"],
                     "biases_pj": acc["bias_reads_per_image"] * a["biases"],
                     "outputs_pj": acc["output_writes_per_image"] * a["activations"]}
            for k, val in acc.items():
                acc_tot[v][k] = acc_tot[v].get(k, 0.0) + val
            if dm:
                for k in items:
                    dm_tot[v][k] += items[k]
            entry[f"data_movement_{v}_pj"] = sum(items.values()) if dm else 0.0
        per_layer.append(entry)
    out = p.summary()
    eff_total = eff if eff_known else None
    dm_out = {v: dict(t, total_pj=sum(t.values())) for v, t in dm_tot.items()} if dm else None
    out.update({
        "data_movement": ("added: memory accesses priced by the memory table" if dm else
                          "inside the figures (the profile includes memory): no term added"),
        "per_image_pj": {"dense_pj": dense, "effective_pj": eff_total, "total_pj": dense},
        "per_image_uj": dense * 1e-6,
        "data_movement_pj": dm_out, "data_movement_accesses": acc_tot, "per_layer_pj": per_layer,
        "totals_pj": {
            "dense_without_data_movement_pj": dense,
            "dense_with_data_movement_pj": dense + (dm_out["dense"]["total_pj"] if dm else 0.0),
            "sparse_without_data_movement_pj": eff_total,
            "sparse_with_data_movement_pj": None if eff_total is None else
            eff_total + (dm_out["sparse"]["total_pj"] if dm else 0.0),
        },
    })
    out["per_image_with_data_movement_uj"] = out["totals_pj"]["dense_with_data_movement_pj"] * 1e-6
    return out


def _price_profile(p: EnergyProfile, result: dict) -> dict:
    return _price_spiking(p, result) if p.kind == "spiking" else _price_reference(p, result)


def _price(result, profiles) -> dict:
    """Energy per image and per layer for each profile (pJ), with and without data movement."""
    return {p.name: _price_profile(p, result) for p in profiles}


def _own_entries(result: dict) -> tuple[dict, dict]:
    """Spiking entries to compare (every priced spiking profile, and the model's own-precision
    45 nm one, priced here if it was not requested) and the own-precision reference entry."""
    energy = result["energy"]
    ref_name, snn_name = result["reference_profile_own_precision"], result["snn_profile_own_precision"]
    ref = energy.get(ref_name)
    if ref is None or ref.get("kind") != "reference":
        ref = _price_reference(get_profile(ref_name), result)
    spiking = {n: e for n, e in energy.items() if e["kind"] == "spiking"}
    if snn_name not in spiking:
        spiking = {snn_name: _price_spiking(get_profile(snn_name), result), **spiking}
    return spiking, ref


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else float(a) / float(b)


def _comparison(result: dict, spiking: dict, ref: dict) -> dict:
    r = ref["totals_pj"]
    rows = []
    for name, e in spiking.items():
        t = e["totals_pj"]
        inside = e["data_movement_pj"] is None
        wo = None if inside else t["without_data_movement_pj"]
        rows.append({
            "profile": name, "scope": e["scope"], "includes": e["includes"], "unpriced": e["unpriced"],
            "data_movement": "inside the figures" if inside else "added",
            "snn_without_data_movement_pj": wo,
            "snn_with_data_movement_pj": t["with_data_movement_pj"],
            "reference_dense_without_data_movement_pj": r["dense_without_data_movement_pj"],
            "reference_dense_with_data_movement_pj": r["dense_with_data_movement_pj"],
            "reference_sparse_without_data_movement_pj": r["sparse_without_data_movement_pj"],
            "reference_sparse_with_data_movement_pj": r["sparse_with_data_movement_pj"],
            "ratio_without_data_movement": _ratio(wo, r["dense_without_data_movement_pj"]),
            "ratio_with_data_movement": _ratio(t["with_data_movement_pj"], r["dense_with_data_movement_pj"]),
            "ratio_with_data_movement_vs_sparse": _ratio(t["with_data_movement_pj"], r["sparse_with_data_movement_pj"]),
        })
    return {
        "reference_profile": result["reference_profile_own_precision"],
        "reference_citation": ref["citation"],
        "memory_citation": result["memory"]["citation"],
        "ratio": "SNN energy / reference energy per image (< 1: the spiking network uses less)",
        "reference_dense": "every MAC; data movement: every MAC reads its input and weight, every output its bias, "
                           "outputs written once (Lemaire et al. 2022, no reuse)",
        "reference_sparse": "zero activities and weights skipped (effective ops); data movement: every weight, bias "
                            "and input read once, every output written once (Dampfhoffer et al. 2023's bound)",
        "chip_note": "profiles whose figures include memory (all-in figures, or per-operation figures that contain "
                     "the core's SRAM accesses) have no value without data movement: compare them with the reference "
                     "with data movement",
        "rows": rows,
    }


def break_even(result: dict) -> dict:
    """The activity at which the spiking network would cost what the reference costs, per profile.

    Activity ``a`` = excitatory spikes per excitatory cell per image (all layers). The priced
    counts split into a part that scales with ``a`` (``E_var``: the excitatory spikes of every
    layer and the feed-forward SOPs they cause in the next layer, each with its compute and data
    movement) and a part that does not (``E_fixed``: input spikes and the SOPs they cause, k-WTA
    circuit events, interneuron spikes, and neuron updates unless their policy is ``event``, in
    which case they scale too). With the measured activity ``a0``, a network with the same
    distribution of activity over its layers costs ``E(a) = E_fixed + (a / a0) E_var(a0)``, so it
    matches a reference that costs ``E_ref`` at::

        a* = a0 (E_ref - E_fixed) / E_var(a0)

    (none where ``E_ref <= E_fixed``: the fixed part alone costs more). Each spiking profile is
    compared without data movement with the dense reference without it, and with data movement
    with the dense reference (Lemaire) and the sparse bound (Dampfhoffer), both with it. A
    second value, ``a_star_without_step_updates``, drops per-step neuron updates (an asynchronous
    chip whose only membrane update is the SOP's accumulate). With one spike per winner the
    activity scales with k, so the break-even k/C of the conv layers is ``(k/C) a* / a0``.
    """
    spiking, ref = _own_entries(result)
    layers = result["layers"]
    sim = result["has_spiking"]
    cells = float(sum(l["n_units"] for l in layers))
    spikes = float(sum((l["spikes_per_image"] if sim else l["spikes_analytic_per_image"]) or 0.0 for l in layers))
    a0 = spikes / cells if cells else 0.0
    basis = result.get("count_basis", {}).get("layers.neuron_updates_per_image", {})
    event_updates = basis.get("policy") == "event"
    hcs = [l for l in layers if l["k"] is not None and l["type"] != "linear"]
    conv = [l for l in hcs if l["type"].startswith("conv")]
    k_over_c = [l["k"] / l["out_shape"][0] for l in hcs]
    k_conv = (sum(l["k"] / l["out_shape"][0] * l["n_units"] for l in conv) / sum(l["n_units"] for l in conv)
              if conv else None)
    r = ref["totals_pj"]
    rows = []
    for name, e in spiking.items():
        inside = e["data_movement_pj"] is None
        for with_dm, variant in ((False, "dense"), (True, "dense"), (True, "sparse")):
            if not with_dm and inside:
                continue  # a chip figure that contains its memory has no value without it
            e_ref = r[f"{variant}_{'with' if with_dm else 'without'}_data_movement_pj"]

            def part(i, key):
                pl = e["per_layer_pj"][i]
                return pl["by_count_pj"][key] + (pl["by_count_data_movement_pj"][key] if with_dm else 0.0)

            total = sum(part(i, f"{k}_pj") for i in range(len(layers)) for k in _SNN_COUNTS)
            e_var = sum(part(i, "spikes_pj") for i in range(len(layers)))
            e_var += sum(part(i, "sops_in_pj") for i in range(1, len(layers)))
            e_upd = sum(part(i, "neuron_updates_pj") for i in range(len(layers)))
            if event_updates:
                e_var += e_upd
            e_fixed = total - e_var
            row = {"profile": name, "data_movement": with_dm, "reference": variant,
                   "reference_pj": e_ref, "snn_pj": total, "fixed_pj": e_fixed, "variable_pj": e_var,
                   "neuron_updates_pj": e_upd}
            for key, fixed in (("a_star", e_fixed), ("a_star_without_step_updates",
                                                     e_fixed - (0.0 if event_updates else e_upd))):
                if e_ref is None or e_var <= 0 or a0 <= 0:
                    row[key] = None
                    row[key + "_reason"] = "no reference value or no activity"
                elif e_ref <= fixed:
                    row[key] = None
                    row[key + "_reason"] = "the part that does not scale with activity alone costs more than the reference"
                else:
                    row[key] = a0 * (e_ref - fixed) / e_var
            for key in ("a_star", "a_star_without_step_updates"):
                row[key.replace("a_star", "k_over_c_conv")] = (None if row[key] is None or k_conv is None or a0 <= 0
                                                               else k_conv * row[key] / a0)
            rows.append(row)
    return {
        "activity": "excitatory spikes per excitatory cell per image, all layers",
        "measured_activity": a0, "activity_counts": "simulation" if sim else "analytic",
        "k_over_c": k_over_c, "k_over_c_conv": k_conv,
        "neuron_updates_scale_with_activity": event_updates,
        "formula": "a* = a0 * (E_ref - E_fixed) / E_var(a0)",
        "rows": rows,
    }


def finalize_energy(result: dict) -> dict:
    """Add ``comparison`` (the SNN against the reference at its own precision, under one model, with
    and without data movement) and ``break_even`` (:func:`break_even`) to an energy dict; called
    by :func:`network_energy` and again by :func:`merge_energy` on the merged counts."""
    spiking, ref = _own_entries(result)
    result["comparison"] = _comparison(result, spiking, ref)
    result["break_even"] = break_even(result)
    return result


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
    so energies merge the same way; the comparison and break-even, ratios of means, are
    recomputed from the merged dict); ``n_*`` counts of the SOP check add up; ``per_image`` lists
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
    derived = ("comparison", "break_even")  # ratios of means: recomputed from the merged counts
    merged = {k: _merge_value(k, [p[k] for p in parts], weights, k) for k in parts[0] if k not in derived}
    return finalize_energy(merged) if "energy" in merged else merged


#: The comparisons a break-even summary reports: (key, with data movement, reference variant).
BREAK_EVEN_VARIANTS = (("without_dm_dense", False, "dense"), ("with_dm_dense", True, "dense"),
                       ("with_dm_sparse", True, "sparse"))


def break_even_summary(e: dict, profile: str | None = None) -> dict:
    """One model's break-even numbers for one spiking profile (default: the model's own-precision
    45 nm profile), from an energy dict (:func:`network_energy`): the measured activity, k/C of
    the conv layers, and per comparison (:data:`BREAK_EVEN_VARIANTS`) ``a*``, ``a*`` without
    per-step neuron updates, the break-even k/C, and the energies they come from.

    Raises
    ------
    ConfigError
        ``profile`` not priced in ``e`` (nor the own-precision one).
    """
    be = e.get("break_even") or break_even(e)
    name = profile or e["snn_profile_own_precision"]
    rows = [r for r in be["rows"] if r["profile"] == name]
    if not rows:
        have = sorted({r["profile"] for r in be["rows"]})
        raise ConfigError(f"energy result of {e.get('model')}: no spiking profile {name!r} (has {', '.join(have)})")
    out = {"model": e.get("model"), "n_images": e.get("n_images"), "profile": name,
           "counts": be["activity_counts"], "measured_activity": be["measured_activity"],
           "k": [l["k"] for l in e["layers"]], "k_over_c": be["k_over_c"], "k_over_c_conv": be["k_over_c_conv"],
           "neuron_update_basis": (e.get("count_basis") or {}).get("layers.neuron_updates_per_image"),
           "neuron_updates_scale_with_activity": be["neuron_updates_scale_with_activity"],
           "formula": be["formula"], "comparisons": {}}
    for key, with_dm, variant in BREAK_EVEN_VARIANTS:
        match = [r for r in rows if r["data_movement"] == with_dm and r["reference"] == variant]
        if not match:
            continue
        r = match[0]
        out["comparisons"][key] = {k: r[k] for k in ("a_star", "a_star_without_step_updates", "k_over_c_conv",
                                                     "k_over_c_conv_without_step_updates", "reference_pj",
                                                     "snn_pj", "fixed_pj", "variable_pj", "neuron_updates_pj")}
        out["comparisons"][key]["snn_over_reference"] = _ratio(r["snn_pj"], r["reference_pj"])
    return out


def reprice_energy(e: dict, profiles=None, memory=None) -> dict:
    """Price the counts of an energy dict (:func:`network_energy`, e.g. read back from its JSON)
    again, with other profiles or another memory table, without simulating again: the access
    energies of every layer's arrays, the energy of every profile, the comparison and the
    break-even are recomputed; the counts and their basis are kept."""
    prof, mem = _resolve_profiles(profiles, memory)
    out = dict(e)
    out["memory"] = mem.summary()
    out["layers"] = [dict(l, access_pj=_access_prices(l["arrays"], mem)) for l in e["layers"]]
    out["energy"] = _price(out, prof)
    return finalize_energy(out)

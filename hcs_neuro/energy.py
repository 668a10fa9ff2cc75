"""Operation counts and energy: synaptic operations (SOPs), MACs, and their price per hardware profile.

Definitions (``docs/ARCHITECTURE.md``, shared design):

* **SOPs** — the sum over spikes of the number of *existing* (non-zero) outgoing synapses of the
  neuron that spiked. A pruned (zero-level) weight is no synapse and costs nothing.
* **dense MACs** — multiply-accumulates of the dense reference forward pass (every weight, every
  input, including zeros; border positions counted exactly).
* **effective ops** — the MACs left when zero activities and zero weights are skipped. With 1-bit
  activities this equals the SOP count of a spiking network whose winners each spike once, which
  is the cross-check between simulation and reference.
* **energy** — counts priced by a named profile of ``hcs_neuro/data/energy_profiles.toml`` (pJ per
  event, each with its citation). Chip-level figures only.

Fan-out is computed exactly per input position (as sinabs does for its synop counter): an input
at the border of a padded convolution reaches fewer outputs than one in the middle.

NumPy only.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from hcs_neuro.errors import ConfigError

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


def _axis_reach(n_in: int, n_out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """reach[d, i] = 1 where input index i feeds an output through kernel offset d.

    Output o reads input ``i = o * stride - padding + d``; the input reaches an output through
    offset d if ``(i + padding - d)`` is a non-negative multiple of stride below ``n_out * stride``.
    """
    reach = np.zeros((kernel, n_in), dtype=np.int64)
    i = np.arange(n_in)
    for d in range(kernel):
        q = i + padding - d
        ok = (q >= 0) & (q % stride == 0) & (q // stride < n_out)
        reach[d] = ok
    return reach


def _out_size(n_in: int, kernel: int, stride: int, padding: int) -> int:
    return (n_in + 2 * padding - kernel) // stride + 1


def conv_fan_out(weight_levels: np.ndarray, in_spatial: tuple[int, ...], stride=1, padding=0) -> np.ndarray:
    """Existing outgoing synapses of every input unit of a 1-D or 2-D convolution.

    Parameters
    ----------
    weight_levels : ndarray, shape (C_out, C_in, *kernel)
        Integer weight levels; zero levels are pruned connections and are not counted.
    in_spatial : tuple of int
        Input spatial shape, ``(H, W)`` or ``(L,)``.
    stride, padding : int or tuple of int
        As in the convolution (zero padding; padded positions have no neurons).

    Returns
    -------
    ndarray of int64, shape (C_in, *in_spatial)
        Number of non-zero synapses leaving each input unit.
    """
    w = np.asarray(weight_levels)
    nd = w.ndim - 2
    if nd not in (1, 2) or len(in_spatial) != nd:
        raise ConfigError(f"conv_fan_out: weights of shape {w.shape} do not fit input {in_spatial}")
    stride = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    padding = (padding,) * nd if np.isscalar(padding) else tuple(padding)
    nz = (w != 0).astype(np.int64).sum(axis=0)  # (C_in, *kernel): how many output channels per offset
    reaches = [
        _axis_reach(n, _out_size(n, k, s, p), k, s, p)
        for n, k, s, p in zip(in_spatial, w.shape[2:], stride, padding)
    ]
    if nd == 1:
        return np.einsum("cd,di->ci", nz, reaches[0])
    return np.einsum("cde,di,ej->cij", nz, reaches[0], reaches[1])


def linear_fan_out(weight_levels: np.ndarray) -> np.ndarray:
    """Existing outgoing synapses of every input of a dense layer with weights (out, in)."""
    return (np.asarray(weight_levels) != 0).sum(axis=0).astype(np.int64)


def conv_dense_macs(weight_shape: tuple[int, ...], in_spatial: tuple[int, ...], stride=1, padding=0) -> int:
    """Dense multiply-accumulates of a convolution, counting only taps on real (unpadded) inputs."""
    ones = np.ones(weight_shape, dtype=np.int8)
    return int(conv_fan_out(ones, in_spatial, stride, padding).sum())


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

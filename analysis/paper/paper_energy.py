"""Energy per image of the claims grid's models, HCS against no HCS: computed, not simulated.

The models of the grid (same architecture, precision and recipe, HCS on and off, one per seed) are
run by the NumPy reference forward pass on test images, and :func:`hcs_neuro.measure.energy.network_energy`
turns their activity into what a spiking network that reproduces the reference would emit
(one spike per winner, its SOPs = activity x the exact fan-out of the existing synapses) and prices
it with the package's one energy model (Lemaire et al., ICONIP 2022 operation counts, with the data
movement term of the Horowitz 45 nm memory table), beside the reference network at its own
precision, dense and with zeros skipped. Every number here is **computed** from the reference's
activity: no spiking simulation (the spiking networks reproduce these winners exactly in the
``network_race`` mode; see docs/studies/network.md).

:func:`energy_point` is the ``python`` sweep target of ``analysis/paper/specs/energy_*.toml``; it
reads the models that :func:`paper_grid.train_point` kept.
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = ["SPIKING_PROFILES", "energy_point"]

#: The spiking profiles reported beside the model's own-precision event-driven profile.
SPIKING_PROFILES = ("loihi",)


def _row(comparison: dict, profile: str) -> dict:
    for row in comparison.get("rows", []):
        if row.get("profile") == profile:
            return row
    raise ConfigError(f"energy comparison has no row for profile {profile!r}")


def energy_point(params: dict, seed: int, *, dataset: str, model_dir: str, test_images: int = 0) -> dict:
    """Spikes, SOPs and energy per image of one grid model (the ``python`` sweep target).

    Parameters
    ----------
    params : dict
        The grid point (``weight_bits``, ``act_bits``, ``hcs``, ``data_fraction``); its model is
        :func:`paper_grid.model_file` under ``model_dir``.
    seed : int
        The grid seed of the model.
    dataset : str
        Test images of this dataset.
    model_dir : str
        Where the grid keeps its models.
    test_images : int
        0: the whole test split; else a fixed class-stratified subset of that many test images
        (:func:`paper_grid.stratified_subset`, seed 0), the same for every model.

    Returns
    -------
    dict
        Means per image, all computed from the reference's activity: ``spikes``, ``sops``
        (analytic), ``dense_ops``, ``effective_ops`` (zero activities and weights skipped);
        ``snn_pj`` / ``snn_dm_pj``: the model's own-precision event-driven 45 nm profile
        (``cmos45_snn``...) without / with data movement; ``ref_dense_pj``, ``ref_dense_dm_pj``,
        ``ref_sparse_pj``, ``ref_sparse_dm_pj``: the reference at its own precision, dense and
        with zeros skipped, without / with data movement; ``loihi_pj`` (its figures include the
        core's memory); ``n_test``.

    Raises
    ------
    ConfigError
        The model file is missing (run the grid spec first), or the model has float32 weights
        or activities (no spiking twin).
    """
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.model import load_model
    from hcs_neuro.core.reference import forward, quantize_input
    from hcs_neuro.measure.energy import network_energy, own_precision_snn_profile
    from paper_grid import model_file, stratified_subset

    path = model_file(model_dir, dataset, params, seed)
    if not path.exists():
        raise ConfigError(f"{path}: no model (train the grid point first: its grid spec keeps it there)")
    model = load_model(path)
    if any(s.weight_bits == 32 or (s.act_bits == 32 and not s.is_readout)
           for s in model.architecture.layers if s.has_weights):
        raise ConfigError(f"{path}: float32 weights or activities have no spiking twin; energy is for integer levels")
    x, y = load_dataset(dataset, "test")
    if test_images:
        keep = np.sort(stratified_subset(y, int(test_images), seed=0))
        x, y = x[keep], y[keep]
    ref = forward(model, x, keep_layers=True)
    snn = own_precision_snn_profile(model.architecture)
    e = network_energy(model, ref, profiles=[snn, *SPIKING_PROFILES], input_levels=quantize_input(model, x))
    own = _row(e["comparison"], snn)
    tot = e["totals"]
    return {
        "spikes": float(tot["spikes_analytic_per_image"]),
        "sops": float(tot["sops_analytic_per_image"]),
        "dense_ops": float(tot["dense_ops_per_image"]),
        "effective_ops": float(tot["effective_ops_per_image"]),
        "snn_pj": float(own["snn_without_data_movement_pj"]),
        "snn_dm_pj": float(own["snn_with_data_movement_pj"]),
        "ref_dense_pj": float(own["reference_dense_without_data_movement_pj"]),
        "ref_dense_dm_pj": float(own["reference_dense_with_data_movement_pj"]),
        "ref_sparse_pj": float(own["reference_sparse_without_data_movement_pj"]),
        "ref_sparse_dm_pj": float(own["reference_sparse_with_data_movement_pj"]),
        "loihi_pj": float(e["energy"]["loihi"]["per_image_with_data_movement_uj"]) * 1e6,
        "n_test": float(len(y)),
    }

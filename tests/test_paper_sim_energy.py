"""Tests of the paper study's grid settings and of its simulated-energy part (analysis/paper)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "analysis" / "paper"


@pytest.fixture(scope="module")
def paper():
    sys.path.insert(0, str(PAPER))
    try:
        import make_paper
        import report
        import runs
        import sim_energy

        yield {"make_paper": make_paper, "runs": runs, "sim_energy": sim_energy, "report": report}
    finally:
        sys.path.remove(str(PAPER))


SECTION = {"dataset": "digits", "base_config": "models/configs/digits.toml", "channels": 4, "epochs": 3,
           "batch_size": 32, "weight_bits": [1, 2, 32], "act_bits": [1, 32], "learning_bits": [2],
           "k_fractions": [0.25, 0.5], "data_fractions": [0.1, 1.0], "data_max_epochs": 20}


def test_grid_overrides_touch_only_the_grid_studies(paper):
    mp, runs = paper["make_paper"], paper["runs"]
    plain = mp.build_specs(SECTION, [0, 1])
    over = mp.build_specs({**SECTION, "grid_epochs": 1, "grid_test_subset": 100}, [0, 1])
    for study in ("precision", "learning", "k"):
        assert all(s["epochs"] == 1 and s["test_subset"] == 100 for s in over[study])
        assert all(s["epochs"] == 3 and "test_subset" not in s for s in plain[study])
    # the data-efficiency study keeps its settings and its run keys (cached records stay valid)
    assert [runs.run_key(s) for s in over["data"]] == [runs.run_key(s) for s in plain["data"]]
    assert all("test_subset" not in s for s in over["data"])
    assert {s["epochs"] for s in over["data"]} == {3, 20}  # 10% trains min(20, 3 / 0.1) = 20 epochs


def test_run_keys_of_the_committed_grid_are_unchanged(paper):
    """The digits section has no grid_* keys: its specs (hence cache keys) carry no new field."""
    mp = paper["make_paper"]
    grid = mp.load_grid(False)
    specs = [s for lst in mp.build_specs(grid["digits"], grid["seeds"]).values() for s in lst]
    assert specs and all(set(s) == set(mp._base(grid["digits"], 0)) for s in specs)


def test_sim_specs_selects_integer_points_of_the_chosen_seeds(paper):
    mp, se = paper["make_paper"], paper["sim_energy"]
    ds = {**SECTION, "sim_energy_seeds": [1], "sim_energy_weight_bits": [2, 32], "sim_energy_act_bits": [1, 32],
          "sim_energy_k": True}
    studies = mp.build_specs(ds, [0, 1])
    got = se.sim_specs(ds, studies)
    assert all(s["seed"] == 1 for s in got)
    assert all(s["weight_bits"] != 32 and s["act_bits"] != 32 for s in got)  # no spiking twin at full precision
    prec = {(s["weight_bits"], s["act_bits"], s["hcs"], s["k"]) for s in got}
    # (2, 1) with and without HCS from the precision grid, and k = 0.5 from the k sweep (0.25 is shared)
    assert prec == {(2, 1, True, 0.25), (2, 1, False, 0.25), (2, 1, True, 0.5)}
    assert len(got) == len({paper["runs"].run_key(s) for s in got})
    assert se.sim_specs({**ds, "sim_energy_k": False}, studies) == [s for s in got if s["k"] == 0.25 or not s["hcs"]]
    only_hcs = se.sim_specs({**ds, "sim_energy_hcs": [True]}, studies)
    assert only_hcs == [s for s in got if s["hcs"]] and len(only_hcs) == 2


def test_split_energy_prices_each_part():
    sys.path.insert(0, str(PAPER))
    try:
        from sim_energy import split_energy
    finally:
        sys.path.remove(str(PAPER))
    from hcs_neuro.measure.profiles import get_profile

    loihi = get_profile("loihi")
    counts = {"sops_feedforward_sim": 1000.0, "sops_analytic": 1000.0, "input_spikes_sim": 10.0,
              "input_spikes_analytic": 10.0, "excitatory_spikes_sim": 40.0, "excitatory_spikes_analytic": 40.0,
              "sops_circuit_sim": 200.0, "interneuron_spikes_sim": 5.0, "neuron_updates_sim": 3000.0}
    e = split_energy(counts, loihi)
    assert e["feedforward_sim"] == pytest.approx(1000 * 23.6 + 50 * 1.7)
    assert e["feedforward_analytic"] == e["feedforward_sim"]
    assert e["circuit_sim"] == pytest.approx(200 * 23.6 + 5 * 1.7)
    assert e["neuron_updates_sim"] == pytest.approx(3000 * 52.0)
    assert e["total_sim"] == pytest.approx(e["feedforward_sim"] + e["circuit_sim"] + e["neuron_updates_sim"])
    assert e["total_analytic"] == e["feedforward_analytic"]


def test_pool_sd_equals_the_sd_of_the_pooled_samples(paper):
    rng = np.random.default_rng(0)
    parts = [rng.normal(5, 2, 7), rng.normal(9, 1, 4)]
    grp = [{"n_images": len(p), "energy_pj": {"loihi": {"total_sim": p.mean()}, "sd": p.std(ddof=1)}} for p in parts]
    got = paper["report"]._pool_sd(grp, "sd", "total_sim")
    assert got == pytest.approx(np.concatenate(parts).std(ddof=1))


def test_simulate_point_counts_agree_with_the_analytic_ones(paper):
    """A tiny random digits model, 3 images, Brian2 runtime device: the simulation's counts must
    equal the analytic ones image by image, and the energy split must add up to network_energy's."""
    runs, se = paper["runs"], paper["sim_energy"]
    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.core.model import random_model

    spec = {"dataset": "digits", "base_config": "models/configs/digits.toml", "channels": 4, "layers": 0, "epochs": 1,
            "batch_size": 32, "train_subset": 0, "weight_bits": 3, "act_bits": 2, "hcs": True, "k": 0.5,
            "learning": "probabilistic", "data_fraction": 1.0, "seed": 0}
    raw, _ = runs.build_architecture_dict(spec)
    model = random_model(load_architecture(raw), seed=3)
    rec = se.simulate_point(spec, model, 3, device="runtime")
    assert rec["class_agreement"] == 1.0
    assert rec["counts_equal_every_image"] == {"sops_feedforward": True, "excitatory_spikes": True,
                                               "input_spikes": True}
    c = rec["counts"]
    assert c["sops_feedforward_sim"] == pytest.approx(c["sops_analytic"]) and c["sops_analytic"] > 0
    assert c["neuron_updates_sim"] > 0 and c["interneuron_spikes_sim"] > 0
    e = rec["energy_pj"]
    assert e["loihi"]["total_sim"] == pytest.approx(e["loihi_network_energy_simulated"]["total_pj"])
    # the analytic Loihi price of network_energy includes the input spikes (one energy model for
    # both count bases, issue 26), as the split does
    assert c["input_spikes_analytic"] > 0
    assert e["loihi"]["total_analytic"] == pytest.approx(e["loihi_network_energy_analytic"]["total_pj"])
    assert e["own_precision_profile"] == "cmos45_int8"  # 2-bit activities x 3-bit weights: no binary operand
    assert e["reference_own_effective"] == e["reference"]["cmos45_int8"]["effective_pj"] > 0
    assert e["reference"]["cmos45_fp32"]["dense_pj"] > e["reference"]["cmos45_fp32"]["effective_pj"]
    assert rec["sop_check"]["n_sop_mismatches_where_winners_agree"] == 0


def test_grid_lr_is_pinned_in_the_run_key(paper):
    """A grid section's lr goes into every spec (and so the cache key) and into the training table;
    without it the base config's [training] lr applies, so a config edit would silently mix runs."""
    mp, runs = paper["make_paper"], paper["runs"]
    pinned = mp._base({**SECTION, "lr": 0.07}, seed=0)
    plain = mp._base(SECTION, seed=0)
    assert pinned["lr"] == 0.07 and "lr" not in plain
    assert runs.run_key(pinned) != runs.run_key(plain)
    assert runs.build_architecture_dict(pinned)[1]["lr"] == 0.07
    assert runs.build_architecture_dict(plain)[1]["lr"] == 0.05  # models/configs/digits.toml

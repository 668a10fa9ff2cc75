"""The claims study (analysis/paper): its specs on the sweep engine, its statistics, its robustness
perturbations, and `make_paper.py --quick` end to end (the CI smoke test)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
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
        import paper_grid
        import report
        import robustness

        yield {"make_paper": make_paper, "grid": paper_grid, "report": report, "robustness": robustness}
    finally:
        sys.path.remove(str(PAPER))


# -- the grid specs ----------------------------------------------------------------------------------


def _ids(spec):
    from hcs_neuro.sweep import expand_grid

    return {p.point_id for p in expand_grid(spec)}


def test_study_specs_cover_the_grid_and_share_points(paper):
    """Every stage parses; the grid is 6 weight x 2 activity precisions x HCS on/off x 3 seeds per
    dataset; stage 1 and the 100 % data points are points of the grid (shared records)."""
    mp = paper["make_paper"]
    specs = {stem: spec for _, stem, spec in mp.stage_specs(False, None, extra=False)}
    assert [s for _, s in mp.STAGES] == list(specs)
    # the generated specs (seeds 3-4 of cells whose interval crossed 0) follow the fixed stages
    extra = [(stem, spec) for _, stem, spec in mp.stage_specs(False, None) if stem.startswith("extra/")]
    for stem, spec in extra:
        assert spec.seeds == mp.EXTRA_SEEDS, stem
        assert stem.split("__")[1] in specs, stem  # names the fixed stage it extends
    for ds in ("digits", "fashion"):
        grid = specs[f"{ds}_grid"]
        params = {p.name: p.values for p in grid.parameters}
        assert sorted(params["weight_bits"]) == [1, 2, 3, 4, 8, 32] and params["act_bits"] == (1, 32)
        assert params["hcs"] == ("on", "off") and params["data_fraction"] == (1.0,)
        assert grid.seeds == (0, 1, 2) and grid.n_points == 72
        data = specs[f"{ds}_data"]
        assert len(_ids(data) & _ids(grid)) == 6  # the 100 % cells: HCS on/off x 3 seeds
        opts = grid.target_cfg["options"]
        assert opts["weight_step"] == "range"
        # every training spec of a dataset has the same [target] (the point hashes depend on it)
        for stem, spec in specs.items():
            if stem.startswith(ds) and spec.target_cfg["function"] == "paper_grid:train_point":
                assert spec.target_cfg == grid.target_cfg and spec.out == grid.out
    assert _ids(specs["fashion_first"]) <= _ids(specs["fashion_grid"])
    fo = specs["fashion_grid"].target_cfg["options"]
    # the shipped narrow Fashion recipe: the whole recipe of fashion_hcs_ternary is its config
    # (models/MANIFEST.json names it); the grid's base config is the same network
    assert (fo["epochs"], fo["batch_size"], fo["lr"]) == (6, 128, 0.01)
    assert fo["settings"] == {"reset_momentum": True, "beta1": 0.99}
    manifest = json.loads((REPO / "models" / "MANIFEST.json").read_text())
    assert "models/configs/fashion_hcs_ternary.toml" in manifest["models"]["fashion_hcs_ternary"]["command"]
    shipped = tomllib.loads((REPO / "models" / "configs" / "fashion_hcs_ternary.toml").read_text())
    base = tomllib.loads((REPO / fo["config"]).read_text())
    tr = shipped.pop("training")
    assert {k: tr[k] for k in ("epochs", "batch_size", "lr", "learning", "reset_momentum", "beta1")} == {
        "epochs": fo["epochs"], "batch_size": fo["batch_size"], "lr": fo["lr"], "learning": "probabilistic",
        **fo["settings"]}
    base.pop("training")
    assert base == shipped  # architecture, precision and k-WTA: the shipped network
    # the robustness stages read the models the grid keeps
    for ds in ("digits", "fashion"):
        assert specs[f"robustness_{ds}"].target_cfg["options"]["model_dir"] == \
            specs[f"{ds}_grid"].target_cfg["options"]["model_dir"]


def test_out_root_moves_records_and_models(paper, tmp_path):
    mp = paper["make_paper"]
    base = {stem: s for _, stem, s in mp.stage_specs(True, None)}
    moved = {stem: s for _, stem, s in mp.stage_specs(True, tmp_path)}
    for stem, spec in moved.items():
        assert Path(spec.out).parent == tmp_path / "records"
        if "model_dir" in spec.target_cfg["options"]:
            assert Path(spec.target_cfg["options"]["model_dir"]).parent == tmp_path / "models"
            assert not (_ids(spec) & _ids(base[stem]))  # never mixes with the default records
    assert [s for _, s, _ in mp.stage_specs(False, None, only=["digits"], extra=False)] == \
        [s for sec, s in mp.STAGES if sec == "digits"]


def test_committed_records_are_points_of_the_specs_and_resume(paper):
    """Every committed record is a point of one of the study's specs (renaming a config or editing a
    [target] would orphan them; see records/fashion/REKEYED.md), and every record folder carries the
    engine's sweep marker, so that `make paper` resumes it from a fresh clone."""
    from hcs_neuro.core.io import output_dir_marker

    mp = paper["make_paper"]
    ids, outs = set(), set()
    for _, _, spec in mp.stage_specs(False, None):
        ids |= _ids(spec)
        outs.add((REPO / spec.out).resolve())
    records = REPO / "analysis" / "paper" / "records"
    folders = [d for d in records.iterdir() if d.is_dir()]
    assert folders
    for d in folders:
        assert d.resolve() in outs, f"{d.name}: no spec writes there"
        marker = output_dir_marker(d)
        assert marker is not None and marker["kind"] == "sweep", f"{d.name}: no sweep marker"
        orphans = [f.name for f in (d / "points").glob("*.json") if f.stem not in ids]
        assert not orphans, f"{d.name}: records of no spec's point: {orphans[:3]}"


@pytest.mark.parametrize("text, needle", [
    ('[sweep]\nmetrics = ["test_accuracy"]\n[target]\nkind = "python"\nfunction = "paper_grid:train_point"\n'
     'parameters = {weight_bits = "int"}\n[parameters]\nweight_bits = [2, 2]\n', "appears twice"),
    ('[sweep]\nmetrics = ["test_accuracy"]\n[target]\nkind = "python"\nfunction = "paper_grid:nope"\n'
     '[parameters]\nweight_bits = [2]\n', "cannot import"),
    ('[sweep\n', "invalid TOML"),
    ('[sweep]\nmetrics = ["test_accuracy"]\n[target]\nkind = "python"\nfunction = "paper_grid:train_point"\n'
     'parameters = {hcs = "str"}\n[parameters]\nk = [1]\n', "not a parameter"),
])
def test_malformed_spec_is_a_one_line_hcs_error(paper, tmp_path, text, needle):
    from hcs_neuro.core.errors import HCSError

    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HCSError) as err:
        paper["make_paper"].load_stage_spec(path)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and "bad.toml" in msg


def test_make_paper_bad_arguments_are_one_line_errors(tmp_path):
    for args, needle in ((["--quick", "--stages", "bogus"], "bogus"), (["--quick", "--only", "cifar"], "cifar"),
                         (["--quick", "--workers", "0"], "--workers")):
        r = subprocess.run([sys.executable, str(PAPER / "make_paper.py"), *args, "--out", str(tmp_path)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and needle in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_point_parameters_are_checked(paper):
    from hcs_neuro.core.errors import ConfigError

    g = paper["grid"]
    with pytest.raises(ConfigError, match="hcs"):
        g.train_point({"weight_bits": 2, "act_bits": 1, "hcs": "yes"}, 0, dataset="digits",
                      config="models/configs/digits.toml", epochs=1, batch_size=32, lr=0.05)
    with pytest.raises(ConfigError, match="unknown parameter"):
        g.train_point({"weight_bits": 2, "act_bits": 1, "hcs": "on", "k": 1}, 0, dataset="digits",
                      config="models/configs/digits.toml", epochs=1, batch_size=32, lr=0.05)
    with pytest.raises(ConfigError, match="data_fraction"):
        g.subset_epochs(6, 0.0, 60)


def test_subset_epochs_and_model_file(paper):
    g = paper["grid"]
    assert g.subset_epochs(6, 1.0, 60) == 6
    assert g.subset_epochs(6, 0.1, 60) == 60 and g.subset_epochs(6, 0.01, 60) == 60
    assert g.subset_epochs(25, 0.25, 250) == 100 and g.subset_epochs(25, 0.3, 250) == 84
    p = g.model_file("m", "digits", {"weight_bits": 2, "act_bits": 1, "hcs": "on", "data_fraction": 1.0}, 3)
    assert p == Path("m/digits_w2_a1_hcs-on_f1_s3.npz")
    assert g.init_zero_fraction(2) == pytest.approx(1 / 3) and g.init_zero_fraction(1) == 0.0
    assert g.init_zero_fraction(4) == pytest.approx(1 / 15)


def test_point_train_config_applies_the_recipe(paper):
    g = paper["grid"]
    cfg = g.point_train_config("models/configs/fashion_short_budget.toml", 2, epochs=6, batch_size=128, lr=0.01, seed=4,
                               threads=1, weight_step="range", settings={"reset_momentum": True, "beta1": 0.99})
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, cfg.weight_step) == (6, 128, 0.01, 4, "range")
    assert cfg.reset_momentum and cfg.beta1 == 0.99 and cfg.learning == "probabilistic"
    flt = g.point_train_config("models/configs/fashion_short_budget.toml", 32, epochs=6, batch_size=128, lr=0.01, seed=4,
                               threads=1, weight_step="range", settings={"reset_momentum": True, "beta1": 0.99})
    assert not flt.reset_momentum and flt.beta1 == 0.9  # float32 weights: plain Adam (fashion_fp32)
    arch = g.point_architecture("models/configs/fashion_short_budget.toml", 3, 32, False)
    assert not arch.hcs and {s.weight_bits for s in arch.layers if s.has_weights} == {3}


def test_stratified_subset_is_seeded_and_stratified(paper):
    g = paper["grid"]
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    a = g.stratified_subset(labels, 95, seed=3)
    b = g.stratified_subset(labels, 95, seed=3)
    c = g.stratified_subset(labels, 95, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a.tolist())) == len(a)
    counts = np.bincount(labels[a], minlength=10)
    assert np.all(counts >= 1)
    expected = np.round(95 * np.bincount(labels) / len(labels))
    assert np.all(np.abs(counts - expected) <= 1)


def _tiny_model(seed=5, weight_bits=2):
    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.core.model import random_model

    arch = load_architecture({"input": {"shape": [1, 6, 6], "bits": 2},
                              "precision": {"weight_bits": weight_bits, "act_bits": 1},
                              "hcs": {"enabled": True, "k": 1},
                              "layers": [{"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
                                         {"type": "pool2d", "kernel": 2},
                                         {"type": "linear", "channels": 3}]})
    return random_model(arch, seed=seed)


def test_pruning_counts_match_brute_force(paper):
    """Never-used synapse counts of test_pass against an explicit per-synapse enumeration."""
    from hcs_neuro.core.reference import forward, quantize_input

    model = _tiny_model()
    rng = np.random.default_rng(0)
    images = rng.random((7, 1, 6, 6)).astype(np.float32)
    images[:, :, :2, :] = 0  # two pixel rows never active
    labels = rng.integers(0, 3, 7)
    got = paper["grid"].test_pass(model, images, labels)
    ref = forward(model, images)
    assert got["accuracy"] == pytest.approx(float((ref.pred == labels).mean()))
    x = quantize_input(model, images)
    w = np.asarray(model.layers[0].weight_levels)
    used = nonzero = dense = 0
    ever = (x != 0).any(axis=0)[0]
    for co in range(4):
        for oy in range(6):
            for ox in range(6):
                for dy in range(3):
                    for dx in range(3):
                        iy, ix = oy + dy - 1, ox + dx - 1
                        if 0 <= iy < 6 and 0 <= ix < 6:
                            dense += 1
                            if w[co, 0, dy, dx] != 0:
                                nonzero += 1
                                used += int(ever[iy, ix])
    pool_out = ref.layers[1].output.reshape(7, -1)
    wl = np.asarray(model.layers[2].weight_levels)
    ever_l = (pool_out != 0).any(axis=0)
    dense += wl.size
    nonzero += int((wl != 0).sum())
    used += int((wl[:, ever_l] != 0).sum())
    pr = got["pruning"]
    assert (pr["dense_synapses"], pr["nonzero_synapses"], pr["used_synapses"]) == (dense, nonzero, used)
    assert pr["never_used_synapse_fraction"] == pytest.approx(1 - used / nonzero)
    assert used < nonzero  # the blanked rows must remove synapses (the test can fail)


# -- statistics --------------------------------------------------------------------------------------


def test_welch_effect_matches_scipy(paper):
    """The study's effects come from the package's one statistics module (no second Welch)."""
    from scipy import stats as ss

    from hcs_neuro.measure import stats as st

    rep = paper["report"]
    a, b = [83.1, 84.0, 82.2, 85.3], [80.2, 81.9, 79.5]
    e = st.welch_effect(a, b)
    t = ss.ttest_ind(a, b, equal_var=False)
    ci = t.confidence_interval(0.95)
    assert e["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert e["ci"] == pytest.approx([ci.low, ci.high]) and e["p"] == pytest.approx(t.pvalue)
    assert e["dof"] == pytest.approx(t.df) and not e["crosses_zero"] and rep.sign_verdict(e) == "+"
    assert rep.sign_verdict(st.welch_effect(b, a)) == "−"
    wide = st.welch_effect([1.0, 5.0, 9.0], [2.0, 6.0, 4.0])
    assert wide["crosses_zero"] and rep.sign_verdict(wide) == "0"
    few = st.welch_effect([1.0], [2.0, 3.0])
    assert few["crosses_zero"] and math.isnan(few["ci"][0]) and few["diff"] == pytest.approx(-1.5)
    assert rep.fmt_effect(e, scale=1, digits=2).startswith(f"+{e['diff']:.2f} [")
    same = st.welch_effect([1.0, 1.0], [1.0, 1.0])
    assert same["ci"] == [0.0, 0.0] and same["crosses_zero"]
    assert st.mean_sd([1.0, None, 3.0, float("nan")]) == (2.0, pytest.approx(math.sqrt(2)), 2)


def test_welch_agrees_with_seed_gap(paper):
    """One arithmetic for a gap and for a difference of gaps: analysis/tools/seed_gap.py's."""
    from hcs_neuro.measure import stats as st

    tools = REPO / "analysis" / "tools"
    sys.path.insert(0, str(tools))
    try:
        import seed_gap
    finally:
        sys.path.remove(str(tools))
    a, b, c, d = [85.0, 84.1, 86.2], [83.3, 82.9, 84.8, 83.0], [90.1, 90.5, 89.7], [90.0, 89.2, 90.9]
    g = seed_gap.gap(a, b)
    e = st.welch_effect(a, b)
    assert e["ci"] == pytest.approx(g["ci95"]) and e["se"] == pytest.approx(g["se"])
    g2 = seed_gap.gap(c, d)
    cmp = seed_gap.compare_gaps({**g, "a": dict(enumerate(a)), "b": dict(enumerate(b))},
                                {**g2, "a": dict(enumerate(c)), "b": dict(enumerate(d))})
    dd = st.difference_of_effects(a, b, c, d)
    assert dd["diff"] == pytest.approx(cmp["difference"]) and dd["ci"] == pytest.approx(cmp["ci95"])


def test_verdict_rules(paper):
    from hcs_neuro.measure import stats as st

    rep = paper["report"]
    pos = st.welch_effect([5.0, 5.2, 5.1], [1.0, 1.1, 0.9])
    zero = st.welch_effect([1.0, 5.0, 3.0], [2.0, 4.0, 3.0])
    neg = st.welch_effect([1.0, 1.1, 0.9], [5.0, 5.2, 5.1])
    cells = {(w, 1): pos for w in (1, 2, 3)} | {(w, 1): zero for w in (4, 8)}
    assert rep.verdict_claim1(cells) == "holds"
    assert rep.verdict_claim1({(1, 1): pos, (2, 1): zero, (3, 1): zero, (4, 1): zero}) == "holds only partly"
    assert rep.verdict_claim1({(1, 1): neg, (2, 1): zero}) == "does not hold (against the method)"
    assert rep.verdict_claim1({(2, 1): zero}) == "does not hold"
    assert rep.verdict_claim1({}) == "not measured yet"
    assert rep.verdict_claim2({0.01: pos, 1.0: pos}, {0.01: pos}) == "holds"
    assert rep.verdict_claim2({0.01: pos, 1.0: pos}, {0.01: zero}).startswith("holds only partly")
    assert rep.verdict_claim2({0.01: zero, 1.0: pos}, {0.01: zero}) == "does not hold"
    assert rep.verdict_claim3({2: pos, 3: pos, 4: zero, 8: zero}, {}) == "holds"
    assert rep.verdict_claim3({2: zero, 3: zero}, {2: pos}) == "holds only partly"
    assert rep.verdict_claim3({2: neg, 3: zero}, {}).startswith("does not hold")
    assert rep.verdict_claim5([pos, pos, zero]) == "holds"
    assert rep.verdict_claim5([pos, zero, zero]) == "holds only partly"
    assert rep.verdict_claim5([neg, zero]) == "does not hold (against the method)"


# -- computed energy ---------------------------------------------------------------------------------


def test_energy_point_is_the_package_energy_model(paper, tmp_path):
    """energy_point reports network_energy's analytic counts and own-precision comparison for a grid
    model, and refuses a missing model."""
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.errors import ConfigError
    from hcs_neuro.core.model import save_model
    from hcs_neuro.core.reference import forward, quantize_input
    from hcs_neuro.measure.energy import network_energy

    sys.path.insert(0, str(PAPER))
    try:
        import paper_energy
    finally:
        sys.path.remove(str(PAPER))
    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.core.model import random_model

    arch = load_architecture({"input": {"shape": [1, 8, 8], "bits": 4}, "precision": {"weight_bits": 2, "act_bits": 1},
                              "hcs": {"enabled": True, "k": 0.25},
                              "layers": [{"type": "conv2d", "channels": 8, "kernel": 3, "padding": 1},
                                         {"type": "pool2d", "kernel": 2, "k": 0.5},
                                         {"type": "linear", "channels": 10}]})
    model = random_model(arch, seed=3)
    params = {"weight_bits": 2, "act_bits": 1, "hcs": "on", "data_fraction": 1.0}
    path = paper["grid"].model_file(tmp_path, "digits", params, 0)
    save_model(model, path)
    got = paper_energy.energy_point(params, 0, dataset="digits", model_dir=str(tmp_path), test_images=50)
    x, y = load_dataset("digits", "test")
    keep = np.sort(paper["grid"].stratified_subset(y, 50, seed=0))
    e = network_energy(model, forward(model, x[keep], keep_layers=True), profiles=["cmos45_snn", "loihi"],
                       input_levels=quantize_input(model, x[keep]))
    row = e["comparison"]["rows"][0]
    assert got["n_test"] == 50 and got["sops"] == pytest.approx(e["totals"]["sops_analytic_per_image"])
    assert got["snn_dm_pj"] == pytest.approx(row["snn_with_data_movement_pj"])
    assert got["ref_sparse_dm_pj"] == pytest.approx(row["reference_sparse_with_data_movement_pj"])
    assert got["snn_dm_pj"] > got["snn_pj"] > 0
    with pytest.raises(ConfigError, match="no model"):
        paper_energy.energy_point(params, 1, dataset="digits", model_dir=str(tmp_path))


# -- robustness perturbations ------------------------------------------------------------------------


def test_noise_functions_are_seeded_shaped_and_bounded(paper):
    R = paper["robustness"]
    x = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    g1 = R.gaussian_noise(x, 0.2, R.noise_rng(3, "gauss", 0.2, 0))
    g2 = R.gaussian_noise(x, 0.2, R.noise_rng(3, "gauss", 0.2, 0))
    g3 = R.gaussian_noise(x, 0.2, R.noise_rng(4, "gauss", 0.2, 0))
    assert np.array_equal(g1, g2) and not np.array_equal(g1, g3)
    assert g1.shape == x.shape and g1.dtype == np.float32 and g1.min() >= 0 and g1.max() <= 1
    assert np.array_equal(R.gaussian_noise(x, 0.0, R.noise_rng(3, "gauss", 0, 0)), x)
    # small sigma: the added noise has about that sd (clipping aside)
    mid = np.full((200, 1, 8, 8), 0.5, np.float32)
    assert np.std(R.gaussian_noise(mid, 0.05, R.noise_rng(0, "gauss", 0.05, 0)) - 0.5) == pytest.approx(0.05, rel=0.05)
    # the draw of one level does not depend on the other levels or on the draw index of another
    assert not np.array_equal(R.noise_rng(3, "gauss", 0.2, 0).random(4), R.noise_rng(3, "gauss", 0.2, 1).random(4))
    assert not np.array_equal(R.noise_rng(3, "gauss", 0.2, 0).random(4), R.noise_rng(3, "sp", 0.2, 0).random(4))
    big = np.full((400, 1, 10, 10), 0.5, np.float32)
    s = R.salt_and_pepper(big, 0.1, R.noise_rng(1, "sp", 0.1, 0))
    hit = s != 0.5
    assert s.shape == big.shape and s.dtype == np.float32 and set(np.unique(s[hit]).tolist()) <= {0.0, 1.0}
    assert hit.mean() == pytest.approx(0.1, abs=0.005) and (s[hit] == 1).mean() == pytest.approx(0.5, abs=0.03)
    assert np.array_equal(s, R.salt_and_pepper(big, 0.1, R.noise_rng(1, "sp", 0.1, 0)))
    assert np.array_equal(R.salt_and_pepper(big, 0.0, R.noise_rng(1, "sp", 0, 0)), big)
    assert R.metric_name("gauss", 0.1) == "acc_gauss_0.1" and R.metric_name("flip", 0.005) == "acc_flip_0.005"


@pytest.mark.parametrize("bad", [
    lambda R, x: R.gaussian_noise(x, -0.1, R.noise_rng(0, "gauss", 0, 0)),
    lambda R, x: R.salt_and_pepper(x, 1.5, R.noise_rng(0, "sp", 0, 0)),
    lambda R, x: R.noise_rng(0, "blur", 0.1, 0),
    lambda R, x: R.metric_name("blur", 0.1),
])
def test_bad_noise_levels_are_config_errors(paper, bad):
    from hcs_neuro.core.errors import ConfigError

    with pytest.raises(ConfigError):
        bad(paper["robustness"], np.zeros((2, 1, 4, 4), np.float32))


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_weight_flips_change_exactly_that_share(paper, bits):
    from hcs_neuro.core.quant import weight_level_range

    R = paper["robustness"]
    model = _tiny_model(weight_bits=bits)
    flipped = R.flip_weight_levels(model, 0.25, R.noise_rng(0, "flip", 0.25, 0))
    again = R.flip_weight_levels(model, 0.25, R.noise_rng(0, "flip", 0.25, 0))
    lo, hi = weight_level_range(bits)
    for i, (a, b, c) in enumerate(zip(model.layers, flipped.layers, again.layers)):
        if a.weight_levels is None:
            continue
        w0, w1 = np.asarray(a.weight_levels), np.asarray(b.weight_levels)
        assert w1.shape == w0.shape and (w1 != w0).sum() == round(0.25 * w0.size)
        assert w1.min() >= lo and w1.max() <= hi and (bits != 1 or not (w1 == 0).any())
        if bits == 1:
            assert np.array_equal(w1[w1 != w0], -w0[w1 != w0])
        assert np.array_equal(np.asarray(c.weight_levels), w1)
        assert np.array_equal(np.asarray(b.bias_levels), np.asarray(a.bias_levels))
    unchanged = R.flip_weight_levels(model, 0.0, R.noise_rng(0, "flip", 0, 0))
    assert all(np.array_equal(np.asarray(u.weight_levels), np.asarray(a.weight_levels))
               for u, a in zip(unchanged.layers, model.layers) if a.weight_levels is not None)


def test_weight_flips_refuse_float_weights(paper):
    from hcs_neuro.core.errors import ConfigError

    R = paper["robustness"]
    with pytest.raises(ConfigError, match="float32"):
        R.flip_weight_levels(_tiny_model(weight_bits=32), 0.01, R.noise_rng(0, "flip", 0.01, 0))
    with pytest.raises(ConfigError):
        R.flip_weight_levels(_tiny_model(), 2.0, R.noise_rng(0, "flip", 0.01, 0))


def test_robustness_point_needs_the_grid_model(paper, tmp_path):
    from hcs_neuro.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no model"):
        paper["robustness"].robustness_point({"weight_bits": 2, "act_bits": 1, "hcs": "on"}, 0, dataset="digits",
                                             model_dir=str(tmp_path), gauss=[0.1])


# -- end to end ----------------------------------------------------------------------------------------


def _run(args):
    return subprocess.run([sys.executable, str(PAPER / "make_paper.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


def test_make_paper_quick_end_to_end(tmp_path):
    out = tmp_path / "paper"
    r = _run(["--quick", "--no-progress", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    report = (out / "REPORT.md").read_text()
    assert "## The five claims" in report and "| # | claim | verdict |" in report
    for c in (1, 2, 3, 4, 5):
        assert f"\n| {c} | " in report
    for heading in ("Claim 1: weight and activity precision", "Claim 2: data efficiency", "Claim 3: emergent pruning",
                    "Claim 4: theory", "Claim 5: robustness", "Claim 5b: membrane noise", "Progress of the study",
                    "Energy per image, computed"):
        assert heading in report
    for fig in ("precision", "data", "pruning", "robustness"):
        png = out / "figures" / f"{fig}_digits.png"
        assert png.stat().st_size > 10_000 and png.with_suffix(".pdf").exists()
        assert f"figures/{fig}_digits.png" in report
    summary = json.loads((out / "paper_summary.json").read_text())
    # 8 grid + 4 data (the 100 % points are grid points) + 4 robustness + 4 energy + 4 theory points
    assert summary["n_missing"] == 0 and summary["n_records"] == summary["n_points"] == 24
    t = summary["time"]  # a point shared by two stages is counted once in the totals
    assert t["missing_wall_s"] == 0 and t["recorded_wall_s"] > 0
    assert t["whole_study_one_worker_s"] == pytest.approx(t["recorded_wall_s"])
    eff = summary["effects"]["digits"]
    cell = eff["claim1"]["cells"]["2/1"]
    assert cell["n_a"] == cell["n_b"] == 2 and len(cell["ci"]) == 2
    assert eff["claim4"]["readout_max_abs_error"] == 0  # the exact readout prediction, on every probe
    rob = eff["claim5"]["w2a1"]["kinds"]
    assert set(rob) == {"gauss", "sp", "flip"} and set(rob["flip"]["levels"]) == {"0.01", "0.05"}
    # computed energy of the ternary/binary models, HCS against no HCS, from the package's energy model
    en = eff["energy"]
    assert {"sops", "snn_pj", "snn_dm_pj", "loihi_pj", "ref_sparse_dm_pj"} <= set(en)
    assert en["snn_dm_pj"]["n_a"] == en["snn_dm_pj"]["n_b"] == 2 and en["snn_dm_pj"]["ratio"] > 0
    assert "Energy per image beside the claims" in report
    # records are the engine's point files, one per point x seed
    assert len(list((out / "records" / "digits" / "points").glob("*.json"))) == 12
    assert len(list((out / "models" / "digits").glob("*.npz"))) == 12
    # resume: a second run computes nothing and gives the same effects
    r2 = _run(["--quick", "--no-progress", "--out", str(out), "--json", str(tmp_path / "s.json")])
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "to compute" in r2.stderr and "computed in" not in r2.stderr
    s2 = json.loads((tmp_path / "s.json").read_text())
    assert s2["effects"] == summary["effects"] and s2["verdicts"] == summary["verdicts"]


def test_extra_seeds_for_cells_whose_interval_crosses_zero(paper, tmp_path):
    """Cells with an interval across 0 get seeds 3-4 in a generated spec that shares the source's
    [target] and out (hence its records); complete stages only."""
    import shutil

    from hcs_neuro.measure import stats as st

    mp = paper["make_paper"]
    clear = st.welch_effect([5.0, 5.2, 5.1], [1.0, 1.1, 0.9])
    unclear = st.welch_effect([1.0, 5.0, 3.0], [2.0, 4.0, 3.0])
    eff = {"fashion": {"claim1": {"cells": {(2, 1): unclear, (1, 1): clear, (32, 32): unclear}},
                       "claim2": {"gains": {0.01: unclear}, "gain_minus_all": {0.01: unclear}},
                       "claim5": {"w2a1": {"kinds": {"gauss": {"levels": {0.1: {"robustness": clear}}}}}}}}
    cells = mp.extra_seed_cells(eff, complete={"fashion_grid", "robustness_fashion"})
    assert cells == {("fashion", "fashion_grid"): [{"act_bits": 1, "weight_bits": 2, "data_fraction": 1.0},
                                                   {"act_bits": 32, "weight_bits": 32, "data_fraction": 1.0}]}
    assert mp.extra_seed_cells(eff, complete=set()) == {}
    folder = tmp_path / "specs"
    shutil.copytree(PAPER / "specs", folder, ignore=shutil.ignore_patterns("extra", "quick"))
    cells = mp.extra_seed_cells(eff, complete={"fashion_grid", "fashion_data"})
    files = mp.write_extra_specs(cells, folder=folder)
    assert sorted(f.name for f in files) == ["fashion__fashion_data__w2_a1_f0.01.toml",
                                             "fashion__fashion_grid__w2_a1_f1.toml",
                                             "fashion__fashion_grid__w32_a32_f1.toml"]
    assert mp.write_extra_specs(cells, folder=folder) == []  # written once
    src = mp.load_stage_spec(folder / "fashion_grid.toml")
    new = mp.load_stage_spec(folder / "extra" / "fashion__fashion_grid__w2_a1_f1.toml")
    assert new.target_cfg == src.target_cfg and new.out == src.out and new.seeds == mp.EXTRA_SEEDS
    assert {p.name: p.values for p in new.parameters} == {"act_bits": (1,), "weight_bits": (2,), "hcs": ("on", "off"),
                                                          "data_fraction": (1.0,)}
    assert new.n_points == 4 and not (_ids(new) & _ids(src))

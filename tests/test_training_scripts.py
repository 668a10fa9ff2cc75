"""analysis/tools/validate_recipe.py (recipe selection on a held-out part of the training split),
analysis/tools/level_flips.py (per-epoch level changes), analysis/tools/seed_gap.py (gap between recipes over seeds)
analysis/tools/kwta_ties.py (k-WTA decisions made by the tie rule), analysis/tools/weight_drift.py (how far
training moved the levels from their seeded start) and analysis/tools/win_rates.py (how evenly the channels
of a k-WTA layer share the wins)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest


from test_cli_train import TINY  # noqa: E402  (the tiny digits architecture of the CLI tests)

ANALYSIS = Path(__file__).resolve().parent.parent / "analysis" / "tools"
SCRIPT = ANALYSIS / "validate_recipe.py"




@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("validate_recipe", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_runs_are_appended_with_validation_accuracy(script, cfg, tmp_path, capsys):
    out = tmp_path / "v.jsonl"
    argv = ["--config", str(cfg), "--name", "tiny", "--seeds", "0", "1", "--set", "epochs=1",
            "--set", "lr=0.05", "--set", "batch_size=32", "--val", "200", "--out", str(out)]
    assert script.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seed"] for r in rows] == [0, 1]
    assert all(r["n_val"] == 200 and r["n_train"] == 1438 - 200 for r in rows)
    assert rows[0]["overrides"] == {"epochs": 1, "lr": 0.05, "batch_size": 32}
    # 1 epoch of the tiny net learns something (chance 10 %; sd on 200 images about 2 points)
    assert all(r["val_accuracy"] > 0.25 for r in rows)
    assert "tiny:" in capsys.readouterr().out
    # seeded: the same seed gives the same validation accuracy
    assert script.main(argv[:4] + ["--seeds", "0"] + argv[7:]) == 0  # seeds 0 1 -> seed 0
    again = json.loads(out.read_text().splitlines()[-1])
    assert again["val_accuracy"] == rows[0]["val_accuracy"]


@pytest.mark.parametrize("bad,msg", [(["--set", "epochs"], "KEY=VALUE"), (["--set", "nope=1"], "nope"),
                                     (["--set", "epochs=two"], "type int"), (["--set", "learning=bogus"], "learning"),
                                     (["--val", "0"], "--val 0")])
def test_bad_arguments_are_one_line_errors(script, cfg, tmp_path, capsys, bad, msg):
    with pytest.raises(SystemExit) as exc:
        script.main(["--config", str(cfg), "--name", "x", "--out", str(tmp_path / "v.jsonl"), *bad])
    assert exc.value.code == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "v.jsonl").exists()


def test_level_flips_records_every_epoch(cfg, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("level_flips", ANALYSIS / "level_flips.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "f.jsonl"
    assert mod.main(["--config", str(cfg), "--out", str(out), "--epochs", "3", "--lr", "0.05",
                     "--set", "beta1=0.95", "--eval-images", "100"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["epoch"] for r in rows[:-1]] == [1, 2, 3]
    assert rows[0]["flips"] is None
    for r in rows[1:-1]:  # two weighted layers; probabilistic updates at lr 0.05 move some levels
        assert len(r["flips"]) == 2 and all(0 < f < 1 for f in r["flips"])
        assert r["n_eval"] == 100
    assert rows[-1]["overrides"] == {"beta1": 0.95} and rows[-1]["training"]["beta1"] == 0.95
    assert 0 < rows[-1]["test_accuracy"] <= 1
    assert "test accuracy" in capsys.readouterr().out


def _curve(path, accs):
    path.write_text(json.dumps({"dataset": "digits", "n_test": 100, "seed": 0,
                                "epochs": [{"epoch": i + 1, "test_accuracy": a} for i, a in enumerate(accs)]}))
    return path


def test_seed_gap_takes_the_last_epoch_and_a_welch_interval(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("seed_gap", ANALYSIS / "seed_gap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a = [_curve(tmp_path / f"a{i}.json", [0.5, x]) for i, x in enumerate((0.80, 0.82, 0.81))]
    b = [_curve(tmp_path / f"b{i}.json", [0.9, x]) for i, x in enumerate((0.84, 0.86))]
    out = tmp_path / "gap.json"
    assert mod.main(["--a", *map(str, a), "--b", *map(str, b), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["mean_a"] == pytest.approx(81.0) and r["mean_b"] == pytest.approx(85.0)
    assert r["difference"] == pytest.approx(-4.0)
    # Welch: sd_a = 1, sd_b = sqrt(2); se = sqrt(1/3 + 2/2)
    assert r["se"] == pytest.approx((1 / 3 + 1.0) ** 0.5)
    assert r["ci95"][0] < -4.0 < r["ci95"][1] and r["ci95"][1] - r["ci95"][0] > 2 * 1.96 * r["se"]
    assert "-4.00 points" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit, match="bad.json"):
        mod.main(["--a", str(bad), str(a[0]), "--b", *map(str, b)])


def test_seed_gap_draws_several_gaps_from_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("seed_gap", ANALYSIS / "seed_gap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    gaps = []
    for n, (xa, xb) in enumerate((((0.80, 0.82), (0.84, 0.86)), ((0.85, 0.86), (0.85, 0.87)))):
        a = [_curve(tmp_path / f"a{n}{i}.json", [x]) for i, x in enumerate(xa)]
        b = [_curve(tmp_path / f"b{n}{i}.json", [x]) for i, x in enumerate(xb)]
        gaps.append(tmp_path / f"gap{n}.json")
        assert mod.main(["--a", *map(str, a), "--b", *map(str, b), "--names", "prob", "shadow",
                         "--json", str(gaps[-1])]) == 0
    assert mod.main(["--compare", str(gaps[1]), str(gaps[0])]) == 0
    # gap 0: 81 - 85 = -4 (sds 1.414, 1.414); gap 1: 85.5 - 86 = -0.5 (sds 0.707, 1.414)
    r = mod.compare_gaps(mod.read_gap(gaps[1]), mod.read_gap(gaps[0]))
    assert r["difference"] == pytest.approx(3.5)
    assert r["se"] == pytest.approx((0.5 / 2 + 2 / 2 + 2 / 2 + 2 / 2) ** 0.5)
    assert r["ci95"][0] < 3.5 < r["ci95"][1]
    assert "first - second: +3.50 points" in capsys.readouterr().out
    fig = tmp_path / "gaps.png"
    assert mod.main(["--from-json", *map(str, gaps), "--labels", "2-bit", "4-bit", "--plot", str(fig),
                     "--target", "1"]) == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    with pytest.raises(SystemExit):  # one label for two files
        mod.main(["--from-json", *map(str, gaps), "--labels", "2-bit", "--plot", str(tmp_path / "x.png")])
    assert "1 labels for 2 files" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(gaps[0].read_text().replace('"shadow"', '"float"'))
    with pytest.raises(SystemExit):  # a gap between other recipes
        mod.main(["--from-json", str(gaps[0]), str(other), "--plot", str(tmp_path / "x.png")])
    assert "differently named recipes" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"names": ["a", "b"]}')
    with pytest.raises(SystemExit, match="bad.json: not an output of seed_gap.py --json"):
        mod.main(["--from-json", str(bad), "--plot", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def ties():
    spec = importlib.util.spec_from_file_location("kwta_ties", ANALYSIS / "kwta_ties.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kwta_ties_rules_reorder_only_equal_drives(ties):
    import numpy as np

    from hcs_neuro.core import reference

    d = np.array([[3, 3, 3, 1, 5]]).reshape(1, 5, 1)
    expect = {"index": [1, 1, 0, 0, 1], "reverse": [0, 1, 1, 0, 1], "all": [1, 1, 1, 0, 1]}
    for rule, want in expect.items():
        with ties.tie_rule(rule, np.random.default_rng(0)):
            got = reference.kwta_mask(d, 3, axis=1)
        assert got.reshape(-1).astype(int).tolist() == want, rule
    picks = set()
    for seed in range(20):
        with ties.tie_rule("random", np.random.default_rng(seed)):
            got = reference.kwta_mask(d, 3, axis=1).reshape(-1)
        assert got[4] and not got[3] and got[:3].sum() == 2  # the 5 wins, the 1 loses, 2 of the tied 3
        picks.add(tuple(np.flatnonzero(got[:3])))
    assert len(picks) == 3  # every pair of the tied channels is drawn
    assert reference.kwta_mask is ties.kwta_mask  # restored after each block


def test_kwta_ties_counts_ties_of_identical_channels(ties, tmp_path, capsys):
    """Every conv channel with the same filter and bias: each hypercolumn with a positive drive is a
    tie, the index rule picks all k winners, the low channels always win; then the CLI on the
    shipped digits model: the index rule's accuracy is the reference forward pass's."""
    import numpy as np

    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.model import load_model, random_model
    from hcs_neuro.core import reference
    from hcs_neuro.core.catalog import model_path as resolve_model_path

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    m = random_model(load_architecture(cfg_path), seed=1)
    w = np.asarray(m.layers[0].weight_levels)
    w[:] = np.abs(w[0])  # one non-negative filter for all 8 channels
    m.layers[0].bias_levels[:] = 0
    x, _ = load_dataset("digits", "test")
    res = reference.forward(m, x[:20])
    stats = ties.tie_stats(m, res)
    first = stats[0]
    assert first["layer"] == 0 and first["k"] == 2 and first["integer_drive"]
    positive = (res.layers[0].drive[:, 0] > 0).mean()
    assert first["tied"] == pytest.approx(positive)
    assert first["by_index"] == pytest.approx(2 * positive)
    assert first["high_half"] == 0.0 and first["low_half"] == pytest.approx(2 / 4 * positive)

    path = resolve_model_path("digits_hcs")
    out = tmp_path / "ties.json"
    assert ties.main([str(path), "--dataset", "digits", "--images", "100", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["models"][0]
    model = load_model(path)
    xt, yt = load_dataset("digits", "test")
    ref = float(np.mean(reference.forward(model, xt[:100], keep_layers=False).pred == yt[:100]))
    assert r["accuracy"]["index"] == ref and set(r["accuracy"]) == set(ties.RULES)
    assert [s["layer"] for s in r["layers"]] == [i for i, s in enumerate(model.architecture.layers) if s.k]
    assert ties.main([str(tmp_path / "none.npz"), "--dataset", "digits"]) == 2
    assert "none.npz" in capsys.readouterr().err
    # redraw from the JSON: a figure, written whole; bad input: a one-line error, no figure
    fig = tmp_path / "ties.png"
    assert ties.main(["--from-json", str(out), "--plot", str(fig), "--labels", "digits"]) == 0
    assert fig.read_bytes()[:4] == b"\x89PNG" and not list(tmp_path.glob(".ties*"))
    (tmp_path / "bad.json").write_text("{}")
    assert ties.main(["--from-json", str(tmp_path / "bad.json"), "--plot", str(tmp_path / "b.png")]) == 2
    assert "bad.json" in capsys.readouterr().err and not (tmp_path / "b.png").exists()
    with pytest.raises(SystemExit):
        ties.main([str(path), "--from-json", str(out), "--plot", str(fig)])  # both
    with pytest.raises(SystemExit):
        ties.main(["--from-json", str(out), "--plot", str(tmp_path / "t.gif")])


def test_weight_drift_compares_with_the_seeded_start(cfg, tmp_path, capsys):
    """A model holding its run's starting levels has drifted by 0 (also with channel gains); one
    changed level is counted."""
    import numpy as np

    from hcs_neuro.core.architecture import load_architecture, with_overrides
    from hcs_neuro.core.model import save_model
    from hcs_neuro.train import HCSNet

    spec = importlib.util.spec_from_file_location("weight_drift", ANALYSIS / "weight_drift.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = HCSNet(load_architecture(cfg), "probabilistic", seed=5).to_model({"seed": 5})
    save_model(model, tmp_path / "start.npz")
    w = model.layers[0].weight_levels
    w.flat[0] = 1 if w.flat[0] != 1 else 0
    save_model(model, tmp_path / "moved.npz")
    out = tmp_path / "d.json"
    assert mod.main([str(tmp_path / "start.npz"), str(tmp_path / "moved.npz"), "--json", str(out)]) == 0
    start, moved = json.loads(out.read_text())["models"]
    assert [ly["layer"] for ly in start["layers"]] == [0, 2]
    assert all(ly["changed_fraction"] == 0 for ly in start["layers"])
    assert moved["layers"][0]["changed_fraction"] == pytest.approx(1 / w.size)
    assert moved["layers"][1]["changed_fraction"] == 0
    model.metadata.pop("seed")
    save_model(model, tmp_path / "noseed.npz")
    assert mod.main([str(tmp_path / "noseed.npz")]) == 2
    assert "metadata field 'seed'" in capsys.readouterr().err
    # a layer trained with channel_gains starts as ternary levels times its top level (7 for 4 bits)
    arch = with_overrides(load_architecture(cfg), weight_bits=4)
    net = HCSNet(arch, "probabilistic", seed=5, weight_step="range")
    net.use_channel_gains({2})
    gained = net.to_model({"seed": 5, "training": {"channel_gains": "2", "weight_step": "range"}})
    assert set(np.unique(gained.layers[2].weight_levels)) == {-7, 0, 7}
    save_model(gained, tmp_path / "gains.npz")
    assert mod.main([str(tmp_path / "gains.npz"), "--json", str(out)]) == 0
    assert all(ly["changed_fraction"] == 0 for ly in json.loads(out.read_text())["models"][0]["layers"])
    # a warm-started model is compared with the levels of its init file, which must be there
    model.metadata = {"seed": 5, "training": {"init": str(tmp_path / "start.npz")}}
    save_model(model, tmp_path / "warm.npz")
    assert mod.main([str(tmp_path / "warm.npz"), "--json", str(out)]) == 0
    warm = json.loads(out.read_text())["models"][0]["layers"]
    assert warm[0]["changed_fraction"] == pytest.approx(1 / w.size) and warm[1]["changed_fraction"] == 0
    model.metadata["training"]["init"] = str(tmp_path / "gone.npz")
    save_model(model, tmp_path / "orphan.npz")
    assert mod.main([str(tmp_path / "orphan.npz")]) == 2
    assert "gone.npz" in capsys.readouterr().err


def test_win_rates_counts_silent_and_always_on_channels(cfg, tmp_path, capsys):
    """A channel whose bias is far above every drive wins everywhere, one far below nowhere; the
    CLI on the shipped digits model reports the reference's accuracy and every k-WTA layer."""
    import numpy as np

    from hcs_neuro.core import reference
    from hcs_neuro.core.architecture import load_architecture
    from hcs_neuro.core.catalog import model_path as resolve_model_path
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.model import load_model, random_model

    spec = importlib.util.spec_from_file_location("win_rates", ANALYSIS / "win_rates.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = random_model(load_architecture(cfg), seed=1)
    b = m.layers[0].bias_levels
    b[:] = 0
    b[0], b[1] = 10 ** 6, -10 ** 6
    x, y = load_dataset("digits", "test")
    res = reference.forward(m, x[:30])
    first = mod.win_rates(m, res)[0]
    assert first["layer"] == 0 and first["always_on"] >= 1 and first["silent"] >= 1 and first["max"] == 1.0
    assert first["mean"] <= first["k"] / first["channels"] + 1e-12
    out = tmp_path / "r.json"
    fig = tmp_path / "r.png"
    assert mod.main(["digits_hcs", "--dataset", "digits", "--images", "50", "--json", str(out),
                     "--plot", str(fig)]) == 0
    assert fig.read_bytes()[:4] == b"\x89PNG" and not list(tmp_path.glob(".r*"))
    r = json.loads(out.read_text())["models"][0]
    digits = load_model(resolve_model_path("digits_hcs"))
    xt, yt = load_dataset("digits", "test")
    assert r["accuracy"] == float(np.mean(reference.forward(digits, xt[:50], keep_layers=False).pred == yt[:50]))
    assert r["images"] == 50 and [s["layer"] for s in r["layers"]] == [0, 1, 2, 3]
    assert "digits_hcs (50 test images" in capsys.readouterr().out
    assert mod.main([str(tmp_path / "none.npz"), "--dataset", "digits"]) == 2
    assert "none.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.main(["digits_hcs", "--dataset", "digits", "--plot", str(tmp_path / "r.gif")])
    assert not (tmp_path / "r.gif").exists()
    from hcs_neuro.core.architecture import with_overrides
    from hcs_neuro.core.model import save_model

    save_model(random_model(with_overrides(load_architecture(cfg), hcs=False), seed=0), tmp_path / "plain.npz")
    assert mod.main([str(tmp_path / "plain.npz"), "--dataset", "digits", "--plot", str(tmp_path / "p.png")]) == 2
    assert "no k-WTA layer" in capsys.readouterr().err and not (tmp_path / "p.png").exists()

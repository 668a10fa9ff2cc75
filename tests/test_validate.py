"""Validation metrics on synthetic spiking results built from the reference (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.core import reference
from hcs_neuro.core.errors import DataError
from hcs_neuro.core.spiking_result import SpikingLayer, SpikingResult
from hcs_neuro.core.agreement import tie_tolerant
from hcs_neuro.core.topology import output_fan_out
from hcs_neuro.measure.validate import Validator, validate

from test_convert import tiny_model


def synthetic_spiking(model, images):
    """What a correct spiking network produces: one spike per reference winner."""
    r = reference.forward(model, images)
    n = len(images)
    layers = []
    for i, (spec, rl) in enumerate(zip(model.architecture.layers, r.layers)):
        if spec.is_readout:
            w = np.zeros(rl.drive.shape, bool)
            w[np.arange(n), r.pred] = True
        else:
            w = rl.winners
        counts = w.astype(np.int64)
        fan = output_fan_out(model, i).reshape(-1)
        layers.append(SpikingLayer(counts, w, np.where(w, 1.0, np.nan), np.ones(n, np.int64),
                                   counts.reshape(n, -1) @ fan, np.zeros(n, np.int64), np.zeros(n, np.int64),
                                   int(w[0].size), 1, 0))
    x = reference.quantize_input(model, images)
    return r, SpikingResult(r.pred.copy(), np.full(n, 5.0), (x > 0).astype(np.int64), np.zeros(n, np.int64), layers,
                            0.1, 10.0, 1.0, {"circuit": "synthetic"})


def test_perfect_spiking_result_agrees_everywhere():
    m = tiny_model(0)
    x = np.random.default_rng(0).random((8, 1, 6, 6))
    y = np.arange(8) % 4
    r, sp = synthetic_spiking(m, x)
    v = validate(m, x, y, sp, reference=r)
    assert v["class_agreement"] == 1.0 and v["n_images"] == 8
    assert v["spiking_accuracy"] == v["reference_accuracy"] == pytest.approx(np.mean(r.pred == y))
    for layer in v["layers"]:
        assert layer["conditional_agreement_strict"] == 1.0
        assert layer["conditional_agreement_tie_tolerant"] == 1.0
    assert v["sop_check_passed"] and v["layers"][0]["sop_check_equal"] == 8
    assert v["latency_ms_median"] == 5.0
    assert sum(v["layers"][0]["psychometric_count"]) == 8 * 36


def test_a_wrong_winner_is_caught_strict_and_conditional():
    """Swap one winner of layer 0 for a loser with a clearly lower drive: strict and tolerant
    agreement drop in layer 0 only; layer 1 is judged on the *spiking* layer-0 output."""
    m = tiny_model(0)
    x = np.random.default_rng(1).random((4, 1, 6, 6))
    r, sp = synthetic_spiking(m, x)
    d = r.layers[0].drive[0, :, 0, 0]
    order = np.argsort(-d, kind="stable")
    k = m.architecture.layers[0].k
    win, lose = order[0], order[-1]
    assert d[win] - d[lose] > 0.05 * (d.max() - d.min())
    sp.layers[0].winners[0, win, 0, 0] = False
    sp.layers[0].winners[0, lose, 0, 0] = True
    v = validate(m, x, np.zeros(4, int), sp, reference=r)
    l0 = v["layers"][0]
    assert l0["conditional_agreement_strict"] == pytest.approx(1 - 1 / (4 * 36))
    assert l0["conditional_agreement_tie_tolerant"] == pytest.approx(1 - 1 / (4 * 36))
    assert k >= 1


def test_tie_tolerance_lets_near_ties_go_either_way():
    drive = np.array([[10, 5, 5, 0], [10, 5, 5, 0], [100, 50, 49, 0]])
    k = 2
    ref_like = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]], bool)
    ok = tie_tolerant(drive, ref_like, k, 0.01, True)
    # exact tie at the k-th: either channel may win; 50 vs 49 is 1 % of the range 100: allowed
    assert ok.tolist() == [True, True, True]
    assert tie_tolerant(drive, ref_like, k, 0.005, True).tolist() == [True, True, False]
    # a non-positive drive must never win
    assert not tie_tolerant(np.array([[3, 0, 0]]), np.array([[1, 1, 0]], bool), 2, 0.5, True)[0]


def test_blocks_accumulate_like_one_call():
    m = tiny_model(2)
    x = np.random.default_rng(2).random((6, 1, 6, 6))
    y = np.arange(6) % 4
    r, sp = synthetic_spiking(m, x)
    sp.pred[1] = (sp.pred[1] + 1) % 4
    whole = validate(m, x, y, sp, reference=r)
    v = Validator(m)
    for s in (slice(0, 2), slice(2, 6)):
        rb, spb = synthetic_spiking(m, x[s])
        if s.start == 0:
            spb.pred[1] = (spb.pred[1] + 1) % 4
        v.update(x[s], y[s], spb, rb)
    parts = v.result()
    assert parts["class_agreement"] == whole["class_agreement"] == pytest.approx(5 / 6)
    assert parts["layers"][-1]["conditional_agreement_strict"] == whole["layers"][-1]["conditional_agreement_strict"]


def test_mismatched_sizes_are_a_clear_error():
    m = tiny_model(0)
    x = np.random.default_rng(0).random((3, 1, 6, 6))
    r, sp = synthetic_spiking(m, x)
    with pytest.raises(DataError, match="do not match"):
        validate(m, x[:2], np.zeros(2, int), sp)

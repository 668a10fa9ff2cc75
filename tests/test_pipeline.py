"""The pipeline API: blocks of whole chunks, one compiled network, the same numbers as one run."""

from __future__ import annotations

import numpy as np
import pytest

from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.pipeline import load_images, resolve_model, run_network, validation_summary


@pytest.fixture(scope="module")
def digits():
    model = resolve_model("digits_hcs")
    images, labels = load_images(model, "digits", "test", None, 24)
    return model, images, labels


@pytest.mark.standalone
def test_blocks_hold_whole_chunks_and_merge_to_the_one_block_result(digits):
    model, x, y = digits
    one = run_network(model, x, y, block=len(x), chunk=8, n_jobs=2, keep_first=True, progress=False)
    assert len(one.first_block[0]) == len(x)  # a block as large as the images is one block
    many = run_network(model, x, y, block=10, chunk=8, n_jobs=2, keep_first=True, progress=False)
    assert len(many.first_block[0]) == 16  # 10 images round up to two whole chunks of 8
    for key in ("class_agreement", "spiking_accuracy", "reference_accuracy", "spikes_per_neuron_per_image"):
        assert one.validation[key] == pytest.approx(many.validation[key], rel=1e-12)
    assert one.energy["totals"]["sops_per_image"] == pytest.approx(many.energy["totals"]["sops_per_image"])
    assert one.validation["class_agreement"] == 1.0  # the exact mode, by construction
    assert one.simulation_time_s > 0 and one.compile_time_s >= 0
    s = validation_summary(one)
    assert s["images_per_s"] > 0 and s["wall_time_s"] <= s["total_time_s"]


def test_bad_calls_are_refused_before_any_work(digits):
    model, x, y = digits
    with pytest.raises(ConfigError, match="labels"):
        run_network(model, x, None)
    with pytest.raises(ConfigError, match="--block"):
        run_network(model, x, y, block=0)
    with pytest.raises(ConfigError, match="device"):
        run_network(model, x, y, device="gpu")
    with pytest.raises(ConfigError, match="analytic"):
        run_network(model, x, y, analytic=True)
    with pytest.raises(DataError, match="no images"):
        run_network(model, x[:0], y[:0])


def test_analytic_counting_needs_no_simulation(digits):
    model, x, _ = digits
    run = run_network(model, x, analytic=True, validate=False, block=7, progress=False)
    assert run.validation is None and run.energy["n_images"] == len(x) and not run.energy["has_spiking"]
    assert np.isfinite(run.energy["totals"]["effective_ops_per_image"])

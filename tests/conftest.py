"""Shared test fixtures: every test is deterministic and plots never need a display."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Seed Python and NumPy (and Brian2/PyTorch when the test imported them)."""
    random.seed(1234)
    np.random.seed(1234)
    import sys

    if "brian2" in sys.modules:
        sys.modules["brian2"].seed(1234)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(1234)
    yield


def require_data() -> bool:
    """True where a missing dataset must fail rather than skip (CI sets HCS_NEURO_REQUIRE_DATA=1)."""
    return os.environ.get("HCS_NEURO_REQUIRE_DATA", "") not in ("", "0")


def fashion_test_split():
    """Fashion-MNIST's test split; skips the test when it is not installed, fails under CI's
    HCS_NEURO_REQUIRE_DATA=1 (a broken data install must not hide)."""
    from hcs_neuro.core.datasets import load_dataset
    from hcs_neuro.core.errors import DataError

    try:
        return load_dataset("fashion-mnist", "test")
    except DataError:
        if require_data():
            raise
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")

"""Datasets: digits split, IDX reader, missing-data errors, Fashion-MNIST when installed."""

import gzip

import numpy as np
import pytest

from conftest import fashion_test_split
from hcs_neuro.core.datasets import load_dataset, read_idx
from hcs_neuro.core.errors import ConfigError, DataError


def test_digits_split_fixed_and_disjoint():
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    assert xtr.shape == (1438, 1, 8, 8) and xte.shape == (359, 1, 8, 8)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert set(np.unique(ytr)) == set(range(10))
    x2, y2 = load_dataset("digits", "train")
    assert np.array_equal(xtr, x2) and np.array_equal(ytr, y2)
    # no image of the test split is also a training image (row-wise comparison)
    tr = {r.tobytes() for r in xtr.reshape(len(xtr), -1)}
    dup = sum(r.tobytes() in tr for r in xte.reshape(len(xte), -1))
    assert dup <= 2  # the digits data hold a handful of identical images; the split is by index


def _write_idx(path, arr, gz):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory(tmp_path, gz):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    imgs = rng.integers(0, 256, (5, 6, 7))
    labs = np.arange(5)
    for stem, arr in (("train-images-idx3-ubyte", imgs), ("train-labels-idx1-ubyte", labs),
                      ("t10k-images-idx3-ubyte", imgs[:2]), ("t10k-labels-idx1-ubyte", labs[:2])):
        _write_idx(tmp_path / (stem + suffix), arr, gz)
    x, y = load_dataset("mnist", "train", data_dir=tmp_path)
    assert x.shape == (5, 1, 6, 7) and np.allclose(x[:, 0] * 255, imgs)
    assert y.tolist() == labs.tolist()
    x, y = load_dataset("idx", "test", data_dir=tmp_path)
    assert len(x) == 2


def test_truncated_idx(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    _write_idx(p, np.zeros((3, 4, 4)), False)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)
    p.write_bytes(b"garbage!")
    with pytest.raises(DataError, match="magic"):
        read_idx(p)


def test_missing_dataset_message(tmp_path, monkeypatch):
    monkeypatch.delenv("HCS_NEURO_DATA", raising=False)
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", "train", data_dir=tmp_path)
    msg = str(exc.value)
    assert str(tmp_path) in msg and "--data-dir" in msg and "\n" not in msg


def test_missing_fashion_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HCS_NEURO_DATA", str(tmp_path / "env"))
    import hcs_neuro.core.datasets as ds

    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", tmp_path / "debian")
    with pytest.raises(DataError) as exc:
        load_dataset("fashion-mnist", "test")
    msg = str(exc.value)
    for where in ("env", "debian", "apt-get install dataset-fashion-mnist"):
        assert where in msg


def test_a_named_data_dir_is_the_only_place_searched(tmp_path, monkeypatch):
    """--data-dir names the data: a folder without the files is an error, never a silent fall-back
    to $HCS_NEURO_DATA or the system copy."""
    import hcs_neuro.core.datasets as ds

    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", tmp_path / "debian")
    with pytest.raises(DataError) as exc:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path / "cli")
    msg = str(exc.value)
    assert "cli" in msg and "debian" not in msg
    with pytest.raises(ConfigError, match="empty"):
        load_dataset("fashion-mnist", "test", data_dir="")


def test_unknown_dataset_and_split():
    with pytest.raises(ConfigError, match="allowed"):
        load_dataset("cifar", "train")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", "validation")


@pytest.mark.fashion
def test_fashion_mnist_installed():
    x, y = fashion_test_split()
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert np.bincount(y).tolist() == [1000] * 10

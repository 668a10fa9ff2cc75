"""Datasets: scikit-learn's bundled digits, Fashion-MNIST and any IDX-format directory.

Nothing is downloaded. ``load_dataset`` returns float32 images in [0, 1] with shape
(N, C, H, W) and int64 labels.

* ``digits``: the 1797 8x8 handwritten digits bundled with scikit-learn (pixel values 0..16,
  divided by 16). Fixed split: a permutation drawn with seed :data:`DIGITS_SPLIT_SEED`, the
  first 80 % (1438 images) for training, the remaining 359 for testing.
* ``fashion-mnist``: the standard IDX files (Xiao, Rasul & Vollgraf 2017), looked up in
  ``data_dir``, ``$HCS_NEURO_DATA`` (and its ``fashion-mnist`` sub-folder), then
  ``/usr/share/datasets/fashion-mnist`` where Debian's ``dataset-fashion-mnist`` puts them.
* ``mnist`` (or ``idx``): the same reader for any directory holding
  ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np

from hcs_neuro.errors import ConfigError, DataError

__all__ = ["DATASETS", "DIGITS_SPLIT_SEED", "load_dataset", "read_idx", "find_idx_dir"]

#: Dataset names that :func:`load_dataset` knows.
DATASETS = ("digits", "fashion-mnist", "mnist", "idx")

#: Seed of the fixed digits train/test permutation (any fixed value; 0 by convention here).
DIGITS_SPLIT_SEED = 0
#: Fraction of the digits used for training.
DIGITS_TRAIN_FRACTION = 0.8

#: Where Debian's dataset-fashion-mnist package installs the IDX files (dpkg -L).
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type codes (LeCun et al., "THE MNIST DATABASE", file format section).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_dataset(name: str, split: str = "train", data_dir=None):
    """Load a dataset split as float32 images in [0, 1] and int64 labels.

    Parameters
    ----------
    name : {"digits", "fashion-mnist", "mnist", "idx"}
        Dataset name. ``mnist``/``idx`` read any IDX directory (``data_dir`` or
        ``$HCS_NEURO_DATA``).
    split : {"train", "test"}
        Which split.
    data_dir : str or Path, optional
        Folder with the IDX files (not used by ``digits``).

    Returns
    -------
    images : ndarray of float32, shape (N, C, H, W)
    labels : ndarray of int64, shape (N,)

    Raises
    ------
    ConfigError
        Unknown dataset name or split.
    DataError
        The IDX files are missing or malformed; the message says where it looked and how
        to get them.
    """
    if split not in _FILES:
        raise ConfigError(f"split = {split!r}: allowed 'train' or 'test'")
    if name == "digits":
        return _load_digits(split)
    if name not in DATASETS:
        raise ConfigError(f"dataset = {name!r}: allowed {', '.join(DATASETS)}")
    folder = find_idx_dir(name, data_dir)
    img_name, lab_name = _FILES[split]
    images = _read_cached(str(_resolve(folder, img_name)))
    labels = _read_cached(str(_resolve(folder, lab_name)))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: {img_name} has shape {images.shape} and {lab_name} {labels.shape}; "
                        f"expected (N, H, W) images and N labels")
    scale = 255.0 if images.dtype == np.uint8 else max(float(images.max()), 1.0)
    x = (images.astype(np.float32) / np.float32(scale))[:, None, :, :]
    return x, labels.astype(np.int64)


def _load_digits(split: str):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]  # values 0..16
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    n_train = int(round(DIGITS_TRAIN_FRACTION * len(labels)))
    idx = order[:n_train] if split == "train" else order[n_train:]
    return np.ascontiguousarray(images[idx]), labels[idx]


def _candidates(name: str, data_dir) -> list[Path]:
    out: list[Path] = []
    if data_dir is not None:
        out.append(Path(data_dir))
    env = os.environ.get("HCS_NEURO_DATA")
    if env:
        out.append(Path(env))
        if name in ("fashion-mnist", "mnist"):
            out.append(Path(env) / name)
    if name == "fashion-mnist":
        out.append(DEBIAN_FASHION_DIR)
    return out


def find_idx_dir(name: str, data_dir=None) -> Path:
    """The first candidate folder holding the four IDX files of ``name``.

    Raises
    ------
    DataError
        Nothing found; the message lists every folder tried and how to get the files.
    """
    tried = _candidates(name, data_dir)
    for folder in tried:
        if all(_resolve(folder, f, must_exist=False) is not None for pair in _FILES.values() for f in pair):
            return folder
    where = ", ".join(str(p) for p in tried) or "(no folder: pass --data-dir or set HCS_NEURO_DATA)"
    how = ("install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) "
           "or pass --data-dir DIR / set HCS_NEURO_DATA" if name == "fashion-mnist"
           else "pass --data-dir DIR or set HCS_NEURO_DATA to a folder with the IDX files")
    raise DataError(f"dataset {name!r}: IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) not found in: {where}; {how}")


def _resolve(folder: Path, stem: str, must_exist: bool = True):
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    if must_exist:
        raise DataError(f"{folder}: {stem}[.gz] not found")
    return None


@functools.lru_cache(maxsize=8)
def _read_cached(path: str) -> np.ndarray:
    arr = read_idx(path)
    arr.setflags(write=False)
    return arr


def read_idx(path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into an array.

    Raises
    ------
    DataError
        Unreadable file, bad magic number, or a size that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(f"{path}: IDX header says shape {shape} ({count * dtype.itemsize} bytes) but the file "
                        f"holds {len(raw) - header} data bytes (truncated?)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))

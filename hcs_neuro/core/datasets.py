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
import zlib
from pathlib import Path

import numpy as np

from hcs_neuro.core.errors import ConfigError, DataError
from hcs_neuro.core.limits import check_memory

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


def load_dataset(name: str, split: str = "train", data_dir=None, *, limit: int | None = None):
    """Load a dataset split as float32 images in [0, 1] and int64 labels.

    Parameters
    ----------
    name : {"digits", "fashion-mnist", "mnist", "idx"}
        Dataset name. ``mnist``/``idx`` read any IDX directory (``data_dir`` or
        ``$HCS_NEURO_DATA``).
    split : {"train", "test"}
        Which split.
    data_dir : str or Path, optional
        Folder with the IDX files (not used by ``digits``). When given, only this folder is
        searched.
    limit : int, optional
        Only the first ``limit`` images (and labels) are read (a gzip file is inflated no further).

    Returns
    -------
    images : ndarray of float32, shape (N, C, H, W)
    labels : ndarray of int64, shape (N,)

    Raises
    ------
    ConfigError
        Unknown dataset name or split, an empty ``data_dir``, ``limit`` < 1.
    DataError
        The IDX files are missing, corrupt or inconsistent (sizes, a split without images,
        pixels that are not finite, negative labels); the message says which file and how to get
        the data.
    ResourceError
        A header that declares more data than memory allows.
    """
    if split not in _FILES:
        raise ConfigError(f"split = {split!r}: allowed 'train' or 'test'")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ConfigError(f"limit = {limit!r}: allowed an integer >= 1")
    if data_dir is not None and not str(data_dir).strip():
        raise ConfigError("--data-dir is empty: name the folder with the IDX files, or leave the option out")
    if name == "digits":
        x, y = _load_digits(split)
        return (x, y) if limit is None else (x[:limit], y[:limit])
    if name not in DATASETS:
        raise ConfigError(f"dataset = {name!r}: allowed {', '.join(DATASETS)}")
    folder = find_idx_dir(name, data_dir)
    img_name, lab_name = _FILES[split]
    img_path, lab_path = _resolve(folder, img_name), _resolve(folder, lab_name)
    images = _read_cached(str(img_path), limit)
    labels = _read_cached(str(lab_path), limit)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: {img_name} has shape {images.shape} and {lab_name} {labels.shape}; "
                        f"expected (N, H, W) images and N labels")
    if len(images) == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise DataError(f"{img_path}: the {split} split holds no images (shape {images.shape})")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise DataError(f"{img_path}: pixels that are not finite numbers (NaN or infinity)")
    if labels.dtype.kind not in "iu" or int(labels.min()) < 0:
        raise DataError(f"{lab_path}: labels must be non-negative integers")
    if images.dtype == np.uint8:
        scale = 255.0
    else:
        lo, hi = float(images.min()), float(images.max())
        if lo < 0:
            raise DataError(f"{img_path}: negative pixel values (down to {lo:g}); expected intensities >= 0")
        scale = max(hi, 1.0)
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
    if data_dir is not None:  # named by the user: that folder only
        return [Path(data_dir)]
    out: list[Path] = []
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
def _read_cached(path: str, limit: int | None = None) -> np.ndarray:
    arr = read_idx(path, limit=limit)
    arr.setflags(write=False)
    return arr


def _read_exact(fh, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise DataError(f"{path}: the IDX file ends inside its {what} ({len(data)} of {n} bytes; truncated?)")
    return data


def read_idx(path, *, limit: int | None = None) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into an array, streaming.

    The header is read first; the memory the data need is checked against the limit before any
    allocation (:func:`hcs_neuro.core.limits.check_memory`), and with ``limit`` only the first
    ``limit`` items are read.

    Raises
    ------
    DataError
        Unreadable or corrupt file (including a damaged gzip stream), bad magic number, or a size
        that does not match the header.
    ResourceError
        The header declares more data than the memory limit allows.
    """

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            magic = _read_exact(fh, 4, path, "header")
            if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            ndim = magic[3]
            if ndim == 0:
                raise DataError(f"{path}: an IDX file with zero dimensions holds no items")
            dims = _read_exact(fh, 4 * ndim, path, "header")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_DTYPES[magic[2]])
            item = int(np.prod(shape[1:], dtype=object)) * dtype.itemsize
            n = shape[0] if limit is None else min(shape[0], int(limit))
            check_memory(float(n) * item, f"{path}: {n:,} items of shape {shape[1:]}")
            if path.suffix != ".gz" and limit is None:
                expected = 4 + 4 * ndim + shape[0] * item
                actual = path.stat().st_size
                if actual != expected:
                    raise DataError(f"{path}: the IDX header says shape {shape} ({shape[0] * item} data bytes) but "
                                    f"the file holds {actual - 4 - 4 * ndim} data bytes (truncated?)")
            raw = _read_exact(fh, n * item, path, "data")
            if limit is None and fh.read(1):
                raise DataError(f"{path}: the IDX file holds more data than its header {shape} declares")
    except DataError:
        raise
    except EOFError:
        raise DataError(f"{path}: the compressed IDX file ends early (truncated download?)") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the IDX file ({exc}); is it a complete, uncorrupted "
                        "download?") from None
    return np.frombuffer(raw, dtype=dtype).reshape((n,) + shape[1:]).astype(dtype.newbyteorder("="))

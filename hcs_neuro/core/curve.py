"""Learning-curve files (``hcs-neuro train --curve PATH``): test accuracy after every epoch.

Layout (JSON)::

    {"dataset": "fashion-mnist", "n_test": 10000, "seed": 0,
     "epochs": [{"epoch": 1, "test_accuracy": 0.81, "wall_s": 93.2}, ...]}

The file is rewritten (atomically) after every epoch, so it always holds the epochs so far.
"""

from __future__ import annotations

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.io import read_json, write_json_atomic

__all__ = ["read_curve", "write_curve"]


def read_curve(path):
    """A curve file as ``(raw JSON, its epochs list)``.

    Raises
    ------
    ConfigError
        Naming the file, when it cannot be read or is not such a file.
    """
    raw = read_json(path, what="curve file", expect=None)
    rows = raw.get("epochs") if isinstance(raw, dict) else None
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and isinstance(r.get("epoch"), int)
            and isinstance(r.get("test_accuracy"), (int, float)) for r in rows):
        raise ConfigError(f"{path}: expected a 'hcs-neuro train --curve' file: an 'epochs' list of "
                          "{{epoch, test_accuracy}} entries")
    return raw, rows


def write_curve(path, *, dataset: str, n_test: int, seed: int, rows: list) -> None:
    """Write (replace atomically) a curve file with the epochs so far."""
    write_json_atomic(path, {"dataset": dataset, "n_test": int(n_test), "seed": seed, "epochs": rows})

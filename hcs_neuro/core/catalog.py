"""Shipped models and circuits, found by name: the one place that maps ``digits_hcs`` or
``lif_kwta`` to a file.

Built-in circuits live in ``circuits/`` and shipped models in ``models/`` at the top of the
repository; both are installed as data sub-packages (``hcs_neuro.circuits``,
``hcs_neuro.models``), so names work after a regular ``pip install .`` too. Anything that is not
a name is a path, resolved against the working folder (or ``base_dir`` where a spec file names
it).
"""

from __future__ import annotations

import hashlib
import tomllib
from importlib import resources
from pathlib import Path

from hcs_neuro.core.errors import ConfigError, ModelError
from hcs_neuro.core.io import read_bytes, read_text
from hcs_neuro.core.model import load_model

__all__ = [
    "shipped_model_names",
    "model_path",
    "load_model_named",
    "model_reference",
    "load_model_reference",
    "shipped_circuit_names",
    "circuit_text",
    "is_path_like",
    "SHIPPED_PREFIX",
]

#: Prefix of a shipped model's reference in sweep specs and records (``shipped:digits_hcs``).
SHIPPED_PREFIX = "shipped:"


def is_path_like(text: str) -> bool:
    """True for ``x.npz``, ``x.toml``, ``a/b``: names with a suffix or a folder are paths."""
    p = Path(str(text))
    return p.suffix in (".npz", ".toml", ".json") or "/" in str(text) or "\\" in str(text)


def shipped_model_names() -> list[str]:
    """Names of the models shipped in ``models/`` (``*.npz``)."""
    root = resources.files("hcs_neuro.models")
    return sorted(f.name[:-4] for f in root.iterdir() if f.name.endswith(".npz"))


def _shipped_model(name: str):
    root = resources.files("hcs_neuro.models")
    for cand in (name, name.replace("-", "_"), f"{name}_hcs", f"{name}-hcs"):
        entry = root / f"{cand}.npz"
        if entry.is_file():
            return cand, entry
    return None, None


def model_path(name_or_path, base_dir=None) -> Path:
    """The file of a model: an existing path, or the shipped model of that name.

    Raises
    ------
    ModelError
        Neither an existing file nor a shipped name (the message lists the shipped models).
    """
    text = str(name_or_path)
    p = Path(text)
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir) / p
    if p.exists() or is_path_like(text):
        return p
    _, entry = _shipped_model(text)
    if entry is not None:
        with resources.as_file(entry) as real:
            return Path(real)
    raise ModelError(f"model {text!r}: no such file, and not a shipped model; shipped models: "
                     f"{', '.join(shipped_model_names()) or '(none in this installation)'}")


def load_model_named(name_or_path, base_dir=None):
    """:func:`hcs_neuro.core.model.load_model` of :func:`model_path`."""

    return load_model(model_path(name_or_path, base_dir))


def model_reference(name_or_path, base_dir=None) -> tuple[str, str]:
    """``(reference, SHA-256 of the file)``: ``shipped:NAME`` for a shipped model (valid on any
    machine with hcs-neuro installed), else the absolute path. For records and sweep workers.

    Raises
    ------
    ModelError
        As :func:`model_path`.
    """
    text = str(name_or_path)
    p = Path(text)
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir) / p
    if not (p.exists() or is_path_like(text)):
        name, entry = _shipped_model(text)
        if entry is not None:
            return f"{SHIPPED_PREFIX}{name}", hashlib.sha256(entry.read_bytes()).hexdigest()
    path = model_path(text, base_dir)
    if not path.is_file():
        raise ModelError(f"model {text!r}: no such file ({path})")
    return str(path.resolve()), hashlib.sha256(read_bytes(path, what="model file", error=ModelError,
                                                          limit=2 ** 34)).hexdigest()


def load_model_reference(ref: str):
    """The model a :func:`model_reference` names."""
    if ref.startswith(SHIPPED_PREFIX):
        return load_model_named(ref[len(SHIPPED_PREFIX):])
    return load_model_named(ref)


def shipped_circuit_names(kind: str | None = None) -> list[str]:
    """Names of the built-in circuit files; ``kind`` ``"hypercolumn"`` (a ``[neuron]`` section) or
    ``"race"`` (a ``[race]`` section) selects one kind."""
    root = resources.files("hcs_neuro.circuits")
    names = []
    for f in root.iterdir():
        if not f.name.endswith(".toml"):
            continue
        try:
            raw = tomllib.loads(f.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        if kind is None or (kind == "hypercolumn" and "neuron" in raw) or (kind == "race" and "race" in raw):
            names.append(f.name[:-5])
    return sorted(names)


def circuit_text(name_or_path, base_dir=None) -> tuple[str, str]:
    """``(TOML text, source label)`` of a circuit file or built-in circuit name.

    Raises
    ------
    ConfigError
        Neither a readable file nor a built-in name (the message lists the built-in circuits).
    """
    text = str(name_or_path)
    p = Path(text)
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir) / p
    if p.exists() or is_path_like(text):
        return read_text(p, what="circuit file"), str(p)
    entry = resources.files("hcs_neuro.circuits") / f"{text}.toml"
    if entry.is_file():
        return entry.read_text(encoding="utf-8"), f"{text}.toml (built-in)"
    raise ConfigError(f"circuit {text!r} is neither a file nor a built-in circuit "
                      f"(built-in: {', '.join(shipped_circuit_names())})")
